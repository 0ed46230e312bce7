#!/usr/bin/env python3
"""Benchmark: AMT training throughput with the full softmax vs the slot-restricted loss.

One optimizer step = forward + backward + AdamW on a batch of B x 1024 tokens, for the
shipped shape (4 layers x 256, 4 heads, vocabulary 55,028, tied embeddings) on CPU with
a fixed thread count. Loss variants:
  full         the 55,028-way softmax at every position (what a plain LM head does)
  slot         per slot (time / duration / note) logits only for that slot's ids
  slot+inst    as slot, note slot restricted to the instruments in the data
Batches come from --tokens or engines/amt/data/tokens.npz, else from the MIDI fixtures.
Medians over --steps timed steps after one warm-up step; the machine is shared, so quote
the ratio as well as the absolute numbers.

    .venv/bin/python bench/amt_train_speed.py [--threads 2] [--steps 3] [--batch 4]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from engines.amt import codec, tokenize
from engines.amt.data.arrays import DATA_DIR, TOKENS_FILE, load_tokens, to_array
from engines.amt.train.config import LossConfig, ModelConfig, OptimConfig
from engines.amt.train.dataset import instruments_in
from engines.amt.train.memory import keep_freed_memory
from engines.amt.train.model import build_model, compute_loss
from engines.amt.train.optim import make_optimizer
from engines.amt.train.slots import SlotTables

ROOT = Path(__file__).resolve().parents[1]


def sequences(path: Path | None) -> tuple[npt.NDArray[np.uint16], str]:
    path = path or DATA_DIR / TOKENS_FILE
    if path.is_file():
        train, _valid = load_tokens(path)
        return train, str(path)
    midi = sorted((ROOT / "tests" / "fixtures" / "midi").glob("*.mid"))
    result = tokenize.tokenize([codec.midi_to_compound(p) for p in midi], augment_factor=2)
    return to_array(result.sequences), "MIDI fixtures"


def measure(
    name: str, loss: LossConfig, data: npt.NDArray[np.uint16], batch: int, steps: int
) -> float:
    model = build_model(ModelConfig(dropout=0.1), seed=0)
    model.train()
    optimizer = make_optimizer(model, OptimConfig())
    instruments = instruments_in(data) if loss.corpus_instruments_only else None
    tables = SlotTables.build(loss.predict_controls, instruments)
    rng = np.random.default_rng(0)
    times = []
    for step in range(steps + 1):
        ids = torch.from_numpy(data[rng.choice(len(data), batch, replace=False)].astype(np.int64))
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        parts = compute_loss(model, ids, loss, tables)
        torch.autograd.backward(parts.mean())
        optimizer.step()
        if step:  # the first step pays for allocations
            times.append(time.perf_counter() - start)
    return batch * ids.shape[1] / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--tokens", type=Path, help="tokens.npz (default: the committed one)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as tutti train does
    data, source = sequences(args.tokens)
    variants = {
        "full": LossConfig(mode="full"),
        "slot": LossConfig(mode="slot"),
        "slot+inst": LossConfig(mode="slot", corpus_instruments_only=True),
    }
    print(
        f"4x256 GPT-2, batch {args.batch}x1024, {args.threads} threads, torch "
        f"{torch.__version__}, data: {source}; instruments in data: {len(instruments_in(data))}"
    )
    print("| loss | tokens/s | vs full |")
    print("| --- | ---: | ---: |")
    base = None
    for name, loss in variants.items():
        rate = measure(name, loss, data, args.batch, args.steps)
        base = base or rate
        print(f"| {name} | {rate:,.0f} | {rate / base:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
