"""AMT sampler benchmark: our batched KV-cached decoder against the reference algorithm.

The reference is our own faithful re-implementation of how the ``anticipation`` package
samples: every token is a full forward pass over the whole window (flag + up to 1017
tokens) with logits for all positions, batch 1, the window sliding by one triple. Both
use the same random weights, seed and harness rule (onsets limited to [last onset, last
onset + 20 ticks), REST blocked), because random weights would otherwise stop after one
event. The slow reference is timed over ``--ref-tokens`` tokens from a prompt that puts
its window at the average length of the case, so its tokens/s is representative.

    python -m bench.amt_sampler [--threads 1] [--shapes tiny,small] [--ref-tokens 45]
    python -m bench.amt_sampler --device cuda --shapes small   # on a GPU: + 1/8/32 streams

Never run in tests or CI (minutes of CPU).
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from typing import Any

import torch

from engines.amt import models, ops
from engines.amt import vocab as V
from engines.amt.batching import BatchedCachedStep
from engines.amt.masks import Constraints
from engines.amt.sampler import (
    Decoder,
    GenerationRequest,
    SamplingParams,
    generate_batch,
    variations,
)
from engines.amt.steps import FullRecomputeStep

HARNESS = Constraints(block_rest=True, max_time_step=20)
OURS = SamplingParams(constraints=HARNESS, window="chunked")
REFERENCE = SamplingParams(constraints=HARNESS, window="reference")
SHAPES = {"tiny": (4, 256, 4), "small": (12, 768, 12)}


def make_model(shape: str, device: str = "cpu", dtype: str = "float32") -> Any:
    from transformers import GPT2Config, GPT2LMHeadModel

    layers, width, heads = SHAPES[shape]
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=V.VOCAB_SIZE,
        n_positions=V.CONTEXT_SIZE,
        n_layer=layers,
        n_embd=width,
        n_head=heads,
    )
    model: Any = GPT2LMHeadModel(config)
    return model.to(device=device, dtype=getattr(torch, dtype)).eval()


def ours(
    model: Any, requests: list[GenerationRequest], params: SamplingParams = OURS
) -> tuple[list[list[int]], int, float]:
    """(outputs, sampled tokens, seconds) of our decoder on fresh caches."""
    decoder = Decoder(BatchedCachedStep(model))
    ids = [decoder.add(r, params) for r in requests]
    began = time.perf_counter()
    while decoder.active():
        decoder.step()
    return [decoder.output(i) for i in ids], decoder.tokens, time.perf_counter() - began


def reference_rate(model: Any, request: GenerationRequest, tokens: int) -> float:
    """Tokens/s of the full-recompute reference over its first ``tokens`` tokens."""
    step = FullRecomputeStep(lambda ids: model(input_ids=ids).logits, model.device)  # all positions
    count = 0

    def stop() -> bool:
        nonlocal count
        count += 1
        return count > tokens

    began = time.perf_counter()
    try:
        generate_batch(step, [request], REFERENCE, cancel=stop)
    except Exception as exc:  # SamplingCancelled ends the timed span
        if getattr(exc, "code", None) != "cancelled":
            raise
    return min(count - 1, tokens) / (time.perf_counter() - began)


def midpoint_request(prompt: list[int], start: float, end: float, seed: int) -> GenerationRequest:
    """The case half done: our own output up to the middle as the prompt."""
    middle = (start + end) / 2
    inputs = ops.clip(prompt, 0, ops.seconds_to_ticks(middle), clip_duration=False)
    return GenerationRequest(middle, end, inputs, seed=seed)


VARIATION_RUNS = 11


def variation_times(model: Any, base: GenerationRequest) -> tuple[float, float]:
    """Median seconds of 1 row and of 4 variations of ``base``. Sub-second runs vary by
    ~20 % on a shared VM and the noise drifts, so the two kinds of run alternate."""
    one: list[float] = []
    four: list[float] = []
    for _ in range(VARIATION_RUNS):
        one.append(ours(model, [base])[2])
        four.append(ours(model, variations(base, 4))[2])
    return statistics.median(one), statistics.median(four)


def job_times(model: Any) -> tuple[float, float]:
    """Median wall seconds of a 10 s generate job through the engine (start to its last
    event: decoding, then each variation's MIDI file into the CAS), 1 variation and 4,
    alternating."""
    import tempfile

    from cas.store import CasStore
    from engines.amt.engine import AmtEngine
    from engines.protocol import EngineRequest

    engine = AmtEngine()
    engine.use_model(model, "bench")
    engine.warmup()

    def job(count: int) -> float:
        with tempfile.TemporaryDirectory() as tmp:
            cas = CasStore(tmp)
            request = EngineRequest(
                "bench", "generate", {"length_seconds": 10}, num_variations=count, seed=0
            )
            began = time.perf_counter()
            run = engine.start(request, cas)
            run.setup = replace(run.setup, sampling=OURS)  # type: ignore[attr-defined]
            while not run.done:
                engine.step_many([run])  # what the worker does every step
            return time.perf_counter() - began

    one: list[float] = []
    four: list[float] = []
    for _ in range(VARIATION_RUNS):
        one.append(job(1))
        four.append(job(4))
    return statistics.median(one), statistics.median(four)


def first_chunk_latency(model: Any) -> float:
    """Seconds from ``engine.start`` to the first Notes event of a generate job."""
    import tempfile

    from cas.store import CasStore
    from engines.amt.engine import AmtEngine
    from engines.protocol import EngineRequest, Notes

    engine = AmtEngine()
    engine.use_model(model, "bench")
    engine.warmup()
    with tempfile.TemporaryDirectory() as tmp:
        cas = CasStore(tmp)
        began = time.perf_counter()
        run = engine.start(EngineRequest("bench", "generate", {"length_seconds": 10}), cas)
        run.setup = replace(run.setup, sampling=OURS)  # type: ignore[attr-defined]
        while not run.done:
            if any(isinstance(e, Notes) for e in run.step()):
                latency = time.perf_counter() - began
                run.cancel()
                return latency
    raise RuntimeError("no notes")


def bundled_variations(device: str = "cpu") -> str:
    """4 variations against 1 with the bundled model (real music at top_p 0.95, no harness
    rule). Its variations differ in length (a busy one has twice the notes of a sparse
    one), so tokens/s is the fair comparison; its rows mostly share instruments, unlike
    random weights' 15 random ones each."""
    from engines.errors import EngineError

    try:
        model = models.load(None, device=device).model
    except EngineError as exc:
        return f"bundled model: not measured ({exc})"
    params = SamplingParams(top_p=0.95, window="chunked")
    base = GenerationRequest(0, 10.0)

    def rate(requests: list[GenerationRequest]) -> tuple[int, float]:
        runs = [ours(model, requests, params) for _ in range(5)]
        seconds = statistics.median(run[2] for run in runs)
        return runs[0][1], seconds  # same seeds: the same tokens every run

    with torch.no_grad():
        ours(model, [GenerationRequest(0, 0.5)], params)
        tokens1, one = rate([base])
        tokens4, four = rate(variations(base, 4))
    return (
        f"bundled model, 10 s at top_p 0.95: 1 variation {tokens1} tokens in {one:.2f} s"
        f" ({tokens1 / one:.0f} tok/s), 4 variations {tokens4} tokens in {four:.2f} s"
        f" ({tokens4 / four:.0f} tok/s, {tokens4 / four / (tokens1 / one):.2f}x; median of 5)"
    )


def row(cells: list[str], widths: list[int]) -> str:
    return " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--shapes", default="tiny,small",
                        help="comma-separated model shapes: tiny (4 x 256), small (12 x 768, music-small)")
    parser.add_argument("--ref-tokens", type=int, default=45,
                        help="tokens the slow reference is timed over (at each case's average window length)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    parser.add_argument(
        "--dtype", help="weights' dtype (default: what the engine picks for the device)"
    )
    parser.add_argument(
        "--streams",
        default=None,
        help="comma-separated batch sizes for per-stream and aggregate tok/s of the 10 s"
        " case (default: 1,8,32 on a GPU, none on the CPU)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    dtype = models.pick_dtype(args.device, args.dtype)
    streams = (
        args.streams if args.streams is not None else ("" if args.device == "cpu" else "1,8,32")
    )
    print(
        f"torch {torch.__version__}, {args.device} ({dtype}), {args.threads} thread(s),"
        " harness rule on, seed 0"
    )
    widths = [6, 22, 8, 11, 11, 7]
    print(row(["shape", "case", "tokens", "ours tok/s", "ref tok/s", "ratio"], widths))
    print("-" * (sum(widths) + 3 * len(widths)))
    extras: list[str] = []
    for shape in args.shapes.split(","):
        model = make_model(shape, args.device, dtype)
        with torch.no_grad():
            ours(model, [GenerationRequest(0, 0.5)])  # warm up kernels
            (prompt,), _, _ = ours(model, [GenerationRequest(0, 5.0, seed=1)])
            cases: list[tuple[str, GenerationRequest]] = [
                ("10 s from scratch", GenerationRequest(0, 10.0)),
                ("20 s from scratch", GenerationRequest(0, 20.0)),
                ("10 s after 5 s prompt", GenerationRequest(5.0, 15.0, prompt)),
            ]
            for name, request in cases:
                (out,), tokens, seconds = ours(model, [request])
                rate = tokens / seconds
                mid = midpoint_request(out, request.start_time, request.end_time, request.seed)
                ref = reference_rate(model, mid, args.ref_tokens)
                print(
                    row(
                        [
                            shape,
                            name,
                            str(tokens),
                            f"{rate:.1f}",
                            f"{ref:.1f}",
                            f"{rate / ref:.1f}x",
                        ],
                        widths,
                    )
                )
            for count in [int(n) for n in streams.split(",") if n]:
                _, tokens, seconds = ours(model, variations(GenerationRequest(0, 10.0), count))
                extras.append(
                    f"{shape}, 10 s, {count} stream(s) in one batch: {tokens / seconds:.0f} tok/s"
                    f" aggregate, {tokens / seconds / count:.0f} tok/s per stream"
                )
            if shape == "tiny":
                # first: the first job of a process, as a fresh worker's first job is
                latency = first_chunk_latency(model)
                extras.append(f"tiny: first Notes chunk {latency * 1000:.0f} ms after engine.start")
                one, four = variation_times(model, GenerationRequest(0, 10.0))
                extras.append(
                    f"tiny, 10 s: 4 variations {four:.2f} s vs 1 {one:.2f} s = {four / one:.2f}x"
                    f" (medians of {VARIATION_RUNS} interleaved runs each)"
                )
                one, four = job_times(model)
                extras.append(
                    f"tiny, 10 s generate job (engine: decode, MIDI, CAS): 4 variations"
                    f" {four:.2f} s vs 1 {one:.2f} s = {four / one:.2f}x (medians of"
                    f" {VARIATION_RUNS} interleaved)"
                )
    extras.append(bundled_variations(args.device))
    for line in extras:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
