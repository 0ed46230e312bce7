"""Generated pieces for ``tutti eval``: seeds 0..n-1 decoded as one batch, checked as MIDI."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mido

from engines.amt.codec import events_to_midi, midi_to_bytes
from engines.amt.evaluate.events import Notes, notes_of
from engines.amt.sampler import GenerationRequest, SamplingParams, generate_batch, variations

MIN_NOTES = 20


@dataclass(frozen=True)
class Sample:
    seed: int
    notes: Notes
    midi: bytes
    valid: bool  # parses back, every note-on has its note-off, at least MIN_NOTES notes
    problem: str = ""


def check_midi(data: bytes) -> str:
    """'' if ``data`` is a playable MIDI file with at least MIN_NOTES notes, else why not."""
    try:
        midi = mido.MidiFile(file=io.BytesIO(data))
    except (OSError, ValueError, EOFError) as exc:
        return f"does not parse: {exc}"
    sounding: dict[tuple[int, int], int] = {}
    notes = 0
    for message in midi:
        if message.type == "note_on" and message.velocity > 0:
            key = (message.channel, message.note)
            sounding[key] = sounding.get(key, 0) + 1
            notes += 1
        elif message.type in ("note_off", "note_on"):
            key = (message.channel, message.note)
            if sounding.get(key, 0) == 0:
                return f"note-off without note-on (channel {key[0]}, pitch {key[1]})"
            sounding[key] -= 1
    if any(sounding.values()):
        return "a note is never released"
    if notes < MIN_NOTES:
        return f"only {notes} notes (at least {MIN_NOTES} expected)"
    return ""


def generate_samples(
    model: Any,
    count: int = 20,
    seconds: float = 20.0,
    *,
    top_p: float = 0.95,
    temperature: float = 1.0,
    on_event: Callable[[int, tuple[int, int, int]], None] | None = None,
) -> list[Sample]:
    """``count`` pieces of ``seconds`` from scratch, seeds 0..count-1 (one batch)."""
    from engines.amt.batching import BatchedCachedStep

    requests = variations(GenerationRequest(0.0, seconds, seed=0), count)
    params = SamplingParams(top_p=top_p, temperature=temperature, window="chunked")
    results = generate_batch(BatchedCachedStep(model), requests, params, on_event=on_event)
    samples = []
    for request, events in zip(requests, results, strict=True):
        data = midi_to_bytes(events_to_midi(events))
        problem = check_midi(data)
        samples.append(Sample(request.seed, notes_of(events), data, not problem, problem))
    return samples
