"""The GPT-2 model trained here and its loss (slot-restricted or full softmax)."""

from __future__ import annotations

import torch
from transformers import GPT2Config, GPT2LMHeadModel

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
        return GPT2LMHeadModel(gpt2_config(cfg))


def compute_loss(
    model: GPT2LMHeadModel, input_ids: torch.Tensor, loss_cfg: LossConfig, tables: SlotTables
) -> LossParts:
    """Hidden states once; then per-slot logits (``slot``) or all-vocabulary logits (``full``)."""
    hidden = model.transformer(input_ids=input_ids).last_hidden_state
    weight = model.lm_head.weight
    if loss_cfg.mode == "full":
        return full_loss(hidden @ weight.T, input_ids)
    return slot_loss(hidden, input_ids, weight, tables)
