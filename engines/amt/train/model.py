"""The GPT-2 model trained here and its loss (slot-restricted or full softmax)."""

from __future__ import annotations

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from engines.amt import vocab as V
from engines.amt.train.config import LossConfig, ModelConfig
from engines.amt.train.slots import LossParts, SlotTables, full_loss, slot_loss


def gpt2_config(cfg: ModelConfig) -> GPT2Config:
    return GPT2Config(
        vocab_size=cfg.vocab_size,
        n_positions=cfg.n_positions,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        resid_pdrop=cfg.dropout,
        embd_pdrop=cfg.dropout,
        attn_pdrop=cfg.dropout,
        tie_word_embeddings=True,  # the 55,028 x width matrix is most of the weights
        bos_token_id=None,  # GPT-2's 50256 would be a control-note id in this vocabulary
        eos_token_id=None,
    )


def build_model(cfg: ModelConfig, seed: int, device: torch.device | str = "cpu") -> GPT2LMHeadModel:
    """Freshly initialised model on ``device``; the seed makes the initial weights reproducible."""
    torch.manual_seed(seed)
    with torch.device(device):
        model = GPT2LMHeadModel(gpt2_config(cfg))
    if cfg.time_init == "sinusoidal":
        init_time_embeddings(model)
    return model


# Periods from 4 ticks (40 ms) to ~2.7 x the longest time (10,000 ticks), geometric.
SHORTEST_PERIOD = 4.0
LONGEST_PERIOD = 27_000.0


def sinusoidal_rows(count: int, width: int, std: float) -> torch.Tensor:
    """``count`` x ``width`` rows: row t = [cos(w_k t), sin(w_k t)]_k, scaled to ``std`` per entry.

    Why: a time token's logit is ``h . e_t``. With sinusoidal rows, e_(t+d) is a fixed
    rotation of e_t, so "the previous onset plus a typical gap" is a linear function of the
    previous time token's embedding, and neighbouring times share evidence from the start;
    with independent random rows every one of the 10,000 time ids has to be learned alone
    (measured here: the time slot dominated the loss of a run started that way).
    """
    half = width // 2
    periods = SHORTEST_PERIOD * (LONGEST_PERIOD / SHORTEST_PERIOD) ** (
        torch.arange(half, dtype=torch.float64) / max(half - 1, 1)
    )
    angles = torch.arange(count, dtype=torch.float64)[:, None] * (2 * torch.pi / periods)[None, :]
    rows = torch.zeros(count, width, dtype=torch.float64)
    rows[:, 0 : 2 * half : 2] = torch.cos(angles)
    rows[:, 1 : 2 * half : 2] = torch.sin(angles)
    # cos/sin entries have RMS 1/sqrt(2); match the per-entry std of GPT-2's init
    return (rows * std * 2**0.5).float()


def init_time_embeddings(model: GPT2LMHeadModel) -> None:
    """Overwrite the time and duration blocks (events and controls) with sinusoidal rows."""
    weight = model.transformer.wte.weight
    std = float(model.config.initializer_range)
    time_rows = sinusoidal_rows(V.MAX_TIME, weight.shape[1], std)
    dur_rows = sinusoidal_rows(V.MAX_DUR, weight.shape[1], std)
    with torch.no_grad():
        for offset, rows in (
            (V.TIME_OFFSET, time_rows),
            (V.ATIME_OFFSET, time_rows),
            (V.DUR_OFFSET, dur_rows),
            (V.ADUR_OFFSET, dur_rows),
        ):
            weight[offset : offset + len(rows)] = rows.to(weight.device, weight.dtype)


def compute_loss(
    model: GPT2LMHeadModel, input_ids: torch.Tensor, loss_cfg: LossConfig, tables: SlotTables
) -> LossParts:
    """Hidden states once; then per-slot logits (``slot``) or all-vocabulary logits (``full``)."""
    hidden = model.transformer(input_ids=input_ids).last_hidden_state
    weight = model.lm_head.weight
    if loss_cfg.mode == "full":
        return full_loss(hidden @ weight.T, input_ids)
    return slot_loss(
        hidden, input_ids, weight, tables, onsets_not_in_past=loss_cfg.onsets_not_in_past
    )
