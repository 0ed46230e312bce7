"""``tutti eval``: how good is an AMT model? A table, not a test.

Validation NLL per event of the model against the same architecture untrained and unigram /
trigram event models fitted on the same training data; then the musical statistics of
generated pieces against the validation pieces, with the issue's targets checked.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

TARGET_GAIN = 0.10  # NLL per event at least 10 % below the trigram model's
TARGET_IN_KEY_POINTS = 5.0  # in-key share within 5 points of the corpus


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="folder or hub id (default: bundled)")
    parser.add_argument(
        "--tokens", type=Path, default=None, help="tokens.npz (default: the committed corpus)"
    )
    parser.add_argument(
        "--valid-sequences", type=int, default=0, help="first N validation sequences (0 = all)"
    )
    parser.add_argument("--pieces", type=int, default=20, help="generated pieces (seeds 0..N-1)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each piece")
    parser.add_argument(
        "--top-p", type=float, default=0.95, help="nucleus mass of the generated pieces (0.95)"
    )
    parser.add_argument(
        "--temperature", type=float, default=1.0, help="temperature of the generated pieces (1.0)"
    )
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch default)")
    parser.add_argument(
        "--out", type=Path, default=None,
        help="also write the pieces here (MIDI files and piano-rolls.png)",
    )
    parser.add_argument(
        "--record", type=Path, default=None,
        help="write the figures as JSON here (the bundled model's evaluation.json)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _row(cells: list[str], widths: list[int]) -> str:
    first, *rest = cells
    return "  ".join([first.ljust(widths[0])] + [c.rjust(w) for c, w in zip(rest, widths[1:], strict=True)])


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    print(_row(header, widths))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(_row(r, widths))


def _untrained_like(model: Any) -> Any:
    import torch
    from transformers import GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(model.config).to(next(model.parameters()).device).eval()


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from engines.amt import vocab as V
    from engines.amt.data.arrays import DATA_DIR, TOKENS_FILE, load_tokens
    from engines.amt.evaluate.events import pieces_of, sequence_events
    from engines.amt.evaluate.likelihood import (
        model_nll_per_event,
        reference_description,
        reference_sequences,
    )
    from engines.amt.evaluate.music import summarise, total_variation
    from engines.amt.evaluate.ngram import AddKUnigram, KneserNeyTrigram, nll_per_event
    from engines.amt.evaluate.samples import generate_samples
    from engines.amt.models import load
    from engines.errors import EngineError

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        loaded = load(args.model)
    except EngineError as exc:
        print(f"tutti eval: {exc.message}", file=sys.stderr)
        return 2
    train, valid = load_tokens(args.tokens or DATA_DIR / TOKENS_FILE)
    if args.valid_sequences > 0:
        valid = valid[: args.valid_sequences]

    started = time.perf_counter()
    train_events, valid_events = sequence_events(train), sequence_events(valid)
    unigram = nll_per_event(AddKUnigram(train_events, k=1.0).log_prob(valid_events))
    trigram_model = KneserNeyTrigram(train_events)
    trigram = nll_per_event(trigram_model.log_prob(valid_events))
    # Scored as sampled: onsets never before the previous event's (the n-grams' support too)
    ours, events = _nll(loaded.model, valid, "model", not args.no_progress)
    free, _ = _nll(loaded.model, valid, "model, free time", not args.no_progress, constrained=False)
    reference_set = reference_sequences(valid)
    reference, reference_events = model_nll_per_event(
        loaded.model, reference_set, onsets_not_in_past=True
    )
    reference_trigram = nll_per_event(
        trigram_model.log_prob(sequence_events(reference_set))
    )
    untrained, _ = _nll(_untrained_like(loaded.model), valid, "untrained", not args.no_progress)

    def gain(value: float) -> str:
        return f"{100 * (value - trigram) / trigram:+.1f} %"

    print_table(
        f"Validation NLL per event ({len(valid)} sequences, {events:,} events; nats, lower is better)",
        ["model", "nats/event", "vs trigram"],
        [
            [f"{loaded.choice.label} (this model, as sampled)", f"{ours:.3f}", gain(ours)],
            ["  the same, onsets in the past allowed", f"{free:.3f}", gain(free)],
            ["same architecture, untrained", f"{untrained:.3f}", gain(untrained)],
            ["unigram events (add-k, k=1)", f"{unigram:.3f}", gain(unigram)],
            ["trigram events (Kneser-Ney)", f"{trigram:.3f}", "0.0 %"],
        ],
    )

    reached = [0.0] * args.pieces  # seconds of music decoded per piece

    with tqdm(
        total=args.pieces * args.seconds, desc="generating", unit="s of music",
        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s of music [{elapsed}]",
        disable=args.no_progress,
    ) as bar:

        def advance(row: int, event: tuple[int, int, int]) -> None:
            onset = min((event[0] - V.TIME_OFFSET) / V.TIME_RESOLUTION, args.seconds)
            if 0 <= row < len(reached) and onset > reached[row]:
                bar.update(onset - reached[row])
                reached[row] = onset

        samples = generate_samples(
            loaded.model, args.pieces, args.seconds, top_p=args.top_p,
            temperature=args.temperature, on_event=advance,
        )
    if args.out is not None:
        from engines.amt.evaluate.pianoroll import write_piano_rolls

        args.out.mkdir(parents=True, exist_ok=True)
        for s in samples:
            (args.out / f"sample-{s.seed:02d}.mid").write_bytes(s.midi)
        picture = write_piano_rolls([s.notes for s in samples], args.seconds,
                                    args.out / "piano-rolls.png")
        print(f"wrote {len(samples)} MIDI files and {picture} to {args.out}")
    generated = summarise([s.notes for s in samples])
    corpus = summarise(pieces_of(valid))
    valid_count = sum(s.valid for s in samples)
    tv = total_variation(generated.pitch_classes, corpus.pitch_classes)
    print_table(
        f"{args.pieces} generated {args.seconds:g} s pieces (top_p {args.top_p}, temperature "
        f"{args.temperature}, seeds 0-{args.pieces - 1}) vs {corpus.pieces} validation pieces",
        ["statistic", "generated", "validation"],
        [
            ["notes in the estimated key", f"{100 * generated.in_key:.1f} %",
             f"{100 * corpus.in_key:.1f} %"],
            ["pitch-class histogram distance (TV)", f"{tv:.3f}", "0"],
            ["notes per second", f"{generated.notes_per_second:.2f}",
             f"{corpus.notes_per_second:.2f}"],
            ["mean polyphony", f"{generated.polyphony:.2f}", f"{corpus.polyphony:.2f}"],
            ["valid MIDI with >= 20 notes", f"{valid_count}/{len(samples)}", "-"],
            ["notes per piece (min)", str(min((len(s.notes) for s in samples), default=0)), "-"],
        ],
    )
    for s in samples:
        if not s.valid:
            print(f"  seed {s.seed}: {s.problem}")

    in_key_gap = abs(100 * (generated.in_key - corpus.in_key))
    checks = [
        (f"NLL per event >= {100 * TARGET_GAIN:.0f} % below the trigram model's",
         ours <= (1 - TARGET_GAIN) * trigram),
        (f"in-key share within {TARGET_IN_KEY_POINTS:g} points of the corpus "
         f"({in_key_gap:.1f})", math.isfinite(in_key_gap) and in_key_gap <= TARGET_IN_KEY_POINTS),
        ("every output valid MIDI with >= 20 notes", valid_count == len(samples)),
    ]
    print_table("Targets", ["target", "met"], [[t, "yes" if ok else "NO"] for t, ok in checks])
    print(f"\n({time.perf_counter() - started:.0f} s; model on {loaded.device}, {loaded.dtype})")
    if args.record is not None:
        figures = {
            "model": loaded.choice.label,
            "reference_nll": {
                "what": reference_description(valid),
                "nll_per_event": round(reference, 4),
                "trigram_nll_per_event": round(reference_trigram, 4),
                "events": reference_events,
            },
            "validation": {
                "sequences": len(valid),
                "events": events,
                "nll_per_event": {
                    "model": round(ours, 4),
                    "model_past_onsets_allowed": round(free, 4),
                    "untrained": round(untrained, 4),
                    "unigram_add_k": round(unigram, 4),
                    "trigram_kneser_ney": round(trigram, 4),
                },
            },
            "generated": {
                "pieces": len(samples),
                "seconds": args.seconds,
                "top_p": args.top_p,
                "temperature": args.temperature,
                "in_key_share": round(generated.in_key, 4),
                "pitch_class_tv_distance": round(tv, 4),
                "notes_per_second": round(generated.notes_per_second, 3),
                "polyphony": round(generated.polyphony, 3),
                "valid_midi": valid_count,
                "min_notes": min((len(s.notes) for s in samples), default=0),
            },
            "validation_pieces": {
                "pieces": corpus.pieces,
                "in_key_share": round(corpus.in_key, 4),
                "notes_per_second": round(corpus.notes_per_second, 3),
                "polyphony": round(corpus.polyphony, 3),
            },
            "targets_met": {label: ok for label, ok in checks},
        }
        args.record.parent.mkdir(parents=True, exist_ok=True)
        args.record.write_text(json.dumps(figures, indent=1) + "\n")
        print(f"wrote {args.record}")
    return 0


def _nll(
    model: Any, sequences: Any, label: str, progress: bool, *, constrained: bool = True
) -> tuple[float, int]:
    from tqdm import tqdm

    from engines.amt.evaluate.likelihood import model_nll_per_event

    total_nll = 0.0
    total_events = 0
    chunk = 16
    for i in tqdm(range(0, len(sequences), chunk), desc=label, unit="x16 seq", disable=not progress):
        nll, events = model_nll_per_event(
            model, sequences[i : i + chunk], onsets_not_in_past=constrained
        )
        total_nll += nll * events
        total_events += events
    return total_nll / max(total_events, 1), total_events
