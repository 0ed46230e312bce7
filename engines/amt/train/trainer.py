"""The training loop: steps, periodic validation, checkpoints, time-limited chunks."""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from tqdm import tqdm

from engines.amt.train.checkpoint import (
    HISTORY,
    RunState,
    load_checkpoint,
    save_best,
    save_checkpoint,
)
from engines.amt.train.config import TrainConfig
from engines.amt.train.dataset import Batches, eval_batches, instruments_in
from engines.amt.train.model import build_model, compute_loss
from engines.amt.train.optim import lr_at, make_optimizer, set_lr
from engines.amt.train.slots import SlotTables


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass
class Evaluation:
    loss: float  # mean NLL per token (nats), slot-normalised in "slot" mode
    nll_per_event: float  # summed NLL of the three tokens of an event, per event
    tokens: int


class Trainer:
    def __init__(
        self,
        cfg: TrainConfig,
        train: npt.NDArray[np.uint16],
        valid: npt.NDArray[np.uint16],
        device: torch.device | None = None,
    ) -> None:
        self.cfg = cfg
        self.device = device or pick_device(cfg.run.device)
        self.run_dir = Path(cfg.run.run_dir)
        if cfg.data.max_train_sequences:
            train = train[: cfg.data.max_train_sequences]
        self.instruments = instruments_in(train)
        self.train_tokens = int(train.size)
        self.model = build_model(cfg.model, cfg.run.seed, self.device)
        self.optimizer = make_optimizer(self.model, cfg.optim)
        self.tables = SlotTables.build(
            cfg.loss.predict_controls,
            self.instruments if cfg.loss.corpus_instruments_only else None,
            self.device,
        )
        self.batches = Batches(train, cfg.optim.batch_size * cfg.optim.grad_accum, cfg.run.seed)
        self.valid = eval_batches(valid, cfg.optim.batch_size, cfg.run.eval_sequences)
        opt = cfg.optim
        self.total_steps = opt.max_steps or max(1, math.ceil(opt.epochs * self.batches.per_epoch))
        self.state = RunState()

    # -- pieces --------------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager[object]:
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)  # fp32 master weights
        return contextlib.nullcontext()

    def resume(self) -> bool:
        """Load ``last.pt`` from the run folder if there is one."""
        state = load_checkpoint(self.run_dir, self.model, self.optimizer)
        if state is None:
            return False
        self.state = state
        return True

    def init_from(self, folder: Path) -> None:
        """Start from exported weights (``model.safetensors`` + ``training.json``): the
        schedule and batch order continue at the recorded step; the optimizer state is
        rebuilt (an export keeps weights only). How a run moves between machines."""
        from safetensors.torch import load_file

        info = json.loads((folder / "training.json").read_text())
        weights = {k: v.float() for k, v in load_file(str(folder / "model.safetensors")).items()}
        try:
            missing, unexpected = self.model.load_state_dict(weights, strict=False)
        except RuntimeError as exc:  # shape mismatches
            raise ValueError(f"{folder} does not match the configured model: {exc}") from exc
        if unexpected or set(missing) - {"lm_head.weight"}:  # lm_head is the tied embedding
            raise ValueError(
                f"{folder} does not match the configured model: missing {missing}, "
                f"unexpected {unexpected}"
            )
        self.model.tie_weights()
        self.state = RunState(
            step=int(info["step"]),
            tokens_seen=int(info["tokens_seen"]),
            best_val=float(info["best_val_nll_per_event"]),
            best_step=int(info["best_step"]),
        )

    def train_step(self) -> float:
        """One optimizer step (with gradient accumulation); returns the mean token loss."""
        self.model.train()
        opt = self.cfg.optim
        batch = self.batches.batch(self.state.step).to(self.device)
        set_lr(self.optimizer, lr_at(self.state.step, self.total_steps, opt))
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for micro in torch.split(batch, opt.batch_size):
            with self._autocast():
                parts = compute_loss(self.model, micro, self.cfg.loss, self.tables)
                loss = parts.mean() / opt.grad_accum
            torch.autograd.backward(loss)
            total += float(loss.detach())
        if opt.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), opt.grad_clip)
        self.optimizer.step()
        self.state.step += 1
        self.state.tokens_seen += batch.numel()
        return total

    @torch.no_grad()
    def evaluate(self) -> Evaluation:
        self.model.train(False)  # eval mode (typed spelling)
        nll = torch.zeros(3, dtype=torch.float64)
        count = torch.zeros(3, dtype=torch.float64)
        for batch in self.valid:
            with self._autocast():
                parts = compute_loss(self.model, batch.to(self.device), self.cfg.loss, self.tables)
            nll += parts.nll.double().cpu()
            count += parts.count.double().cpu()
        tokens = float(count.sum())
        return Evaluation(
            loss=float(nll.sum()) / max(tokens, 1.0),
            nll_per_event=float(nll.sum()) / max(float(count[2]), 1.0),
            tokens=int(tokens),
        )

    def checkpoint(self) -> None:
        save_checkpoint(self.run_dir, self.model, self.optimizer, self.state, self.cfg.to_dict())

    def _validate(self) -> Evaluation:
        result = self.evaluate()
        record = {
            "step": float(self.state.step),
            "val_loss": result.loss,
            "val_nll_per_event": result.nll_per_event,
        }
        self.state.history.append(record)
        if result.nll_per_event < self.state.best_val:
            self.state.best_val = result.nll_per_event
            self.state.best_step = self.state.step
            save_best(self.run_dir, self.model, self.card_info())
        with (self.run_dir / HISTORY).open("a") as log:
            log.write(json.dumps(record) + "\n")
        return result

    def card_info(self) -> dict[str, object]:
        """Facts the exported model card / training.json needs."""
        return {
            "step": self.state.step,
            "tokens_seen": self.state.tokens_seen,
            "best_val_nll_per_event": self.state.best_val,
            "best_step": self.state.best_step,
            "train_instruments": self.instruments,
            "train_tokens": self.train_tokens,
            "hardware": self.hardware(),
            "config": self.cfg.to_dict(),
        }

    def hardware(self) -> str:
        if self.device.type == "cuda":
            return f"{torch.cuda.get_device_name(self.device)} (bf16 autocast)"
        return f"CPU, {torch.get_num_threads()} threads, fp32"

    # -- the loop ------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self.state.step >= self.total_steps or self.state.stopped_early

    def _out_of_patience(self) -> bool:
        patience = self.cfg.run.patience
        evals_since_best = sum(1 for h in self.state.history if h["step"] > self.state.best_step)
        return patience > 0 and evals_since_best >= patience

    def steps(self, max_minutes: float = 0.0) -> Iterator[float]:
        """Yield the loss of every step until done or out of time (then checkpoint)."""
        deadline = time.monotonic() + 60 * max_minutes if max_minutes > 0 else math.inf
        run = self.cfg.run
        while not self.finished:
            yield self.train_step()
            step = self.state.step
            if step % run.eval_every == 0 or step == self.total_steps:
                self._validate()
                if self._out_of_patience():
                    self.state.stopped_early = True
                    break
            if step % run.checkpoint_every == 0 or time.monotonic() >= deadline:
                self.checkpoint()
            if time.monotonic() >= deadline:
                return
        self.checkpoint()

    def fit(self, max_minutes: float = 0.0, progress: bool = True) -> RunState:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        bar = tqdm(
            total=self.total_steps, initial=self.state.step, unit="step", disable=not progress
        )
        started, tokens0 = time.monotonic(), self.state.tokens_seen
        smooth: float | None = None
        for loss in self.steps(max_minutes):
            smooth = loss if smooth is None else 0.95 * smooth + 0.05 * loss
            rate = (self.state.tokens_seen - tokens0) / max(time.monotonic() - started, 1e-9)
            last_val = (
                self.state.history[-1]["val_nll_per_event"] if self.state.history else math.nan
            )
            bar.set_postfix(loss=f"{smooth:.3f}", tok_s=f"{rate:,.0f}", val_ev=f"{last_val:.3f}")
            bar.update()
        bar.close()
        return self.state
