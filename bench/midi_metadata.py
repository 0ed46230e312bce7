#!/usr/bin/env python3
"""Benchmark: engines.analysis.compute_metadata vs music21 and pretty_midi, in one run.

For each MIDI fixture and a generated 10-minute, 8-track file (conductor + 7 instruments,
~24,000 notes), the median time of:
  ours       compute_metadata(bytes): symusic parse + the full metadata set
  pretty     pretty_midi.PrettyMIDI + duration/tempo/meter/instruments/count/range + K-S key
  music21    converter.parse + Stream.analyze('key')
and the ratios pretty/ours and music21/ours.  Medians over repetitions (at least --min-reps, then
until --budget seconds per cell); these machines are shared and noisy, so quote the ratios, and the
minimum of ours (closest to the cost on a quiet machine) is printed beside its median.

    .venv/bin/python bench/midi_metadata.py [--budget 2] [--skip-music21]
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mido
import numpy as np

from engines.analysis import compute_metadata
from engines.analysis.keys import estimate_key

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "midi"


def write_ten_minutes(path: Path, minutes: float = 10.0, bpm: int = 120, tpq: int = 480) -> None:
    """Conductor + drums (16ths), bass (8ths), pad (4-note chords per beat), two melodies (8ths),
    arpeggio (16ths), strings (half-note chords); a C-minor loop, mod-wheel CCs on the pad."""
    rnd = random.Random(7)
    beats = int(minutes * bpm)
    total = beats * tpq
    mid = mido.MidiFile(type=1, ticks_per_beat=tpq)
    conductor = mido.MidiTrack()
    conductor.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
    conductor.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
    conductor.append(mido.MetaMessage("end_of_track", time=total))
    mid.tracks.append(conductor)
    chords = [[48, 51, 55, 58], [44, 48, 51, 55], [46, 50, 53, 56], [43, 47, 50, 55]]
    scale = [0, 2, 3, 5, 7, 8, 10]
    # (channel, program, name, step in ticks)
    layout = [(9, 0, "drums", tpq // 4), (0, 33, "bass", tpq // 2), (1, 89, "pad", tpq),
              (2, 0, "melody", tpq // 2), (3, 73, "flute", tpq // 2), (4, 81, "arp", tpq // 4),
              (5, 48, "strings", tpq * 2)]
    for ch, program, name, step in layout:
        events: list[tuple[int, int, mido.Message]] = []
        if ch != 9:
            events.append((0, 2, mido.Message("program_change", channel=ch, program=program)))
        for i, t in enumerate(range(0, total, step)):
            chord = chords[(t // (tpq * 4)) % 4]
            if name == "drums":
                notes = [42] + ([36] if i % 8 == 0 else []) + ([38] if i % 8 == 4 else [])
            elif name == "bass":
                notes = [chord[0] - 12 + (7 if rnd.random() < 0.3 else 0)]
            elif name in ("pad", "strings"):
                notes = [n + (12 if name == "strings" else 0) for n in chord]
            elif name == "arp":
                notes = [chord[i % 4] + 24]
            else:
                base = 72 if name == "melody" else 79
                notes = [] if rnd.random() < 0.15 else [base + rnd.choice(scale) - 12 * rnd.randrange(2)]
            for n in notes:
                v = rnd.randint(60, 110)
                events.append((t, 1, mido.Message("note_on", channel=ch, note=n, velocity=v)))
                events.append((t + int(step * 0.9), 0, mido.Message("note_off", channel=ch, note=n)))
            if name == "pad" or (name == "arp" and i % 4 == 0):
                events.append((t, 2, mido.Message("control_change", channel=ch, control=1,
                                                  value=i % 128)))
        events.sort(key=lambda e: (e[0], e[1]))
        track = mido.MidiTrack([mido.MetaMessage("track_name", name=name, time=0)])
        last = 0
        for tick, _, msg in events:
            track.append(msg.copy(time=tick - last))
            last = tick
        mid.tracks.append(track)
    mid.save(str(path))


def ours(data: bytes, path: str) -> object:
    return compute_metadata(data)


def pretty(data: bytes, path: str) -> object:
    import pretty_midi  # type: ignore[import-untyped]

    pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    _, bpm = pm.get_tempo_changes()
    ts = pm.time_signature_changes
    pitches = [n.pitch for inst in pm.instruments if not inst.is_drum for n in inst.notes]
    hist = np.asarray(pm.get_pitch_class_histogram(use_duration=True), dtype=np.float64)
    return {
        "duration_s": pm.get_end_time(),
        "tempo": float(bpm[0]) if len(bpm) else None,
        "time_sig": f"{ts[0].numerator}/{ts[0].denominator}" if ts else None,
        "instruments": [(i.program, i.is_drum, i.name) for i in pm.instruments],
        "notes": sum(len(i.notes) for i in pm.instruments),
        "range": (min(pitches), max(pitches)) if pitches else None,
        "key": estimate_key(hist),
    }


def music21(data: bytes, path: str) -> object:
    from music21 import converter

    score = converter.parse(path, forceSource=True, storePickle=False)
    return score.analyze("key")


def median_time(fn: Callable[[bytes, str], object], data: bytes, path: str, budget: float,
                min_reps: int, max_reps: int) -> tuple[float, float, int]:
    times: list[float] = []
    stop = time.perf_counter() + budget
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() < stop):
        t0 = time.perf_counter()
        fn(data, path)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), len(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=2.0, help="seconds per (file, library) cell")
    ap.add_argument("--min-reps", type=int, default=3)
    ap.add_argument("--max-reps", type=int, default=2000)
    ap.add_argument("--skip-music21", action="store_true")
    a = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="midi_metadata_bench_"))
    synth = tmp / "synthetic_10min_8track.mid"
    write_ten_minutes(synth)
    files = [*sorted(FIXTURES.glob("*.mid")), synth]
    libs: dict[str, Callable[[bytes, str], object]] = {"ours": ours, "pretty_midi": pretty}
    if not a.skip_music21:
        libs["music21"] = music21
    import music21 as _m21  # noqa: F401  (imports outside the timings)
    import pretty_midi as _pm  # noqa: F401

    rows: list[dict[str, Any]] = []
    for f in files:
        data = f.read_bytes()
        meta = compute_metadata(data)
        row: dict[str, Any] = {"file": f.name, "notes": meta.note_count,
                               "length_s": meta.duration_seconds, "tracks": len(mido.MidiFile(f).tracks)}
        for name, fn in libs.items():
            fn(data, str(f))  # warm-up: lazy imports inside the libraries
            med, best, reps = median_time(fn, data, str(f), a.budget, a.min_reps if name != "music21" else 1,
                                    a.max_reps)
            row[name] = med * 1000
            row[f"{name}_min"] = best * 1000
            row[f"{name}_reps"] = reps
        rows.append(row)
        print(f"# {f.name}: " + ", ".join(f"{k}={row[k]:.3f} ms" for k in libs), flush=True)

    head = f"| {'file':34} | notes | len s | ours ms | ours min ms | pretty_midi ms | music21 ms | pretty/ours | music21/ours |"
    print()
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    for r in rows:
        m21 = r.get("music21")
        m21_ms = "-" if m21 is None else f"{m21:.1f}"
        m21_ratio = "-" if m21 is None else f"{m21 / r['ours']:.0f}x"
        pm_ratio = f"{r['pretty_midi'] / r['ours']:.0f}x"
        print(f"| {r['file']:34} | {r['notes']:5d} | {r['length_s']:5.1f} | {r['ours']:7.3f} | "
              f"{r['ours_min']:11.3f} | "
              f"{r['pretty_midi']:14.3f} | {m21_ms:>10} | {pm_ratio:>11} | {m21_ratio:>12} |")
    print(f"\ncpu count {os.cpu_count()}, reps ours/pretty/music21 on the 10-min file: "
          f"{rows[-1]['ours_reps']}/{rows[-1]['pretty_midi_reps']}/{rows[-1].get('music21_reps')}")


if __name__ == "__main__":
    main()
