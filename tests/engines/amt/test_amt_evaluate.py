"""``tutti eval`` pieces: event extraction, the n-gram baselines, music statistics, MIDI checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engines.amt import vocab as V
from engines.amt.codec import events_to_midi, midi_to_bytes
from engines.amt.evaluate import ngram
from engines.amt.evaluate.events import (
    FIELD_SIZES,
    SEP_NOTE,
    EventArrays,
    notes_of,
    pieces_of,
    sequence_events,
)
from engines.amt.evaluate.music import (
    in_key_share,
    notes_per_second,
    pitch_class_distribution,
    total_variation,
)
from engines.amt.evaluate.samples import check_midi


def triple(time: int, dur: int, pitch: int, instrument: int = 0) -> list[int]:
    return [V.TIME_OFFSET + time, V.DUR_OFFSET + dur, V.NOTE_OFFSET + instrument * 128 + pitch]


def control(time: int, dur: int, pitch: int) -> list[int]:
    return [V.ATIME_OFFSET + time, V.ADUR_OFFSET + dur, V.ANOTE_OFFSET + pitch]


SEP = [V.SEPARATOR] * 3


def packed(*triples: list[int]) -> np.ndarray:
    body = [t for tr in triples for t in tr]
    return np.array([[V.AUTOREGRESS, *body]], dtype=np.uint16)


def test_events_are_interarrival_triples_with_controls_dropped_and_restart_after_separator() -> (
    None
):
    seq = packed(
        triple(10, 5, 60), control(12, 5, 64), triple(30, 7, 62), SEP, triple(4, 9, 67, 40)
    )
    ev = sequence_events(seq)
    assert ev.dt.tolist() == [10, 20, V.MAX_TIME, 4]
    assert ev.dur.tolist() == [5, 7, V.MAX_DUR, 9]
    assert ev.note.tolist() == [60, 62, SEP_NOTE, 40 * 128 + 67]
    assert ev.start.tolist() == [True, False, False, False]


def test_event_keys_are_unique_per_field_combination() -> None:
    n = 2000
    rng = np.random.default_rng(0)
    fields = [rng.integers(0, size, n) for size in FIELD_SIZES]
    dt, dur, note = fields
    ev = EventArrays(dt, dur, note, np.zeros(n, dtype=bool))
    pairs = set(zip(*(f.tolist() for f in fields), strict=True))
    assert len(np.unique(ev.keys())) == len(pairs)


def small_corpus() -> tuple[EventArrays, EventArrays]:
    """A repetitive training melody (a trigram model's home ground) and a held-out variant."""
    riff = [triple(25 * i, 20, p) for i, p in enumerate([60, 62, 64, 62] * 30)]
    held = [triple(25 * i, 20, p) for i, p in enumerate([60, 62, 64, 65, 62] * 6)]
    return sequence_events(packed(*riff)), sequence_events(packed(*held))


def test_field_base_is_a_distribution_per_field() -> None:
    train, _ = small_corpus()
    base = ngram.FieldBase(train)
    for logp in base.logp:
        assert math.isclose(float(np.exp(logp).sum()), 1.0, rel_tol=1e-9)


def all_seen_plus_unseen_mass(model: ngram.KneserNeyTrigram, context: EventArrays) -> float:
    """Total probability after ``context``: every training event explicitly, plus the mass
    of all unseen events (their probability is a fixed multiple of the base probability)."""
    vocab = model.vocab
    note = vocab % FIELD_SIZES[2]
    rest = vocab // FIELD_SIZES[2]
    candidates = EventArrays(
        rest // FIELD_SIZES[1], rest % FIELD_SIZES[1], note, np.zeros(len(vocab), bool)
    )
    seen_total = 0.0
    seen_base = float(np.exp(model.base.log_prob(candidates)).sum())
    for i in range(len(vocab)):
        one = _append(context, candidates, i)
        seen_total += float(np.exp(model.log_prob(one)[-1]))
    # an unseen probe event: p(probe) / base(probe) is the same for every unseen event
    probe = EventArrays(np.array([999]), np.array([999]), np.array([16000]), np.array([False]))
    with_probe = _concat(context, probe)
    ratio = float(np.exp(model.log_prob(with_probe)[-1] - model.base.log_prob(probe)[0]))
    return seen_total + ratio * (1.0 - seen_base)


def _append(context: EventArrays, candidates: EventArrays, i: int) -> EventArrays:
    one = EventArrays(
        candidates.dt[i : i + 1],
        candidates.dur[i : i + 1],
        candidates.note[i : i + 1],
        np.array([False]),
    )
    return _concat(context, one)


def _concat(a: EventArrays, b: EventArrays) -> EventArrays:
    return EventArrays(
        np.concatenate([a.dt, b.dt]),
        np.concatenate([a.dur, b.dur]),
        np.concatenate([a.note, b.note]),
        np.concatenate([a.start, b.start]),
    )


@pytest.mark.parametrize("context_length", [0, 1, 2, 3])
def test_kneser_ney_sums_to_one_after_any_context(context_length: int) -> None:
    train, held = small_corpus()
    model = ngram.KneserNeyTrigram(train)
    context = EventArrays(
        held.dt[:context_length],
        held.dur[:context_length],
        held.note[:context_length],
        held.start[:context_length],
    )
    assert math.isclose(all_seen_plus_unseen_mass(model, context), 1.0, rel_tol=1e-6)


def test_add_k_unigram_sums_to_one() -> None:
    train, _ = small_corpus()
    model = ngram.AddKUnigram(train, k=0.5)
    seen = float(np.exp(model.log_p_seen).sum())
    seen_base = float(np.exp(model._base_of_keys(model.keys)).sum())
    unseen = math.exp(model.log_unseen) * (1.0 - seen_base)
    assert math.isclose(seen + unseen, 1.0, rel_tol=1e-9)
    with pytest.raises(ValueError, match="k must be > 0"):
        ngram.AddKUnigram(train, k=0)


def test_trigram_beats_unigram_on_repetitive_music_and_unseen_events_stay_finite() -> None:
    train, held = small_corpus()
    tri = ngram.nll_per_event(ngram.KneserNeyTrigram(train).log_prob(held))
    uni = ngram.nll_per_event(ngram.AddKUnigram(train).log_prob(held))
    assert math.isfinite(tri) and math.isfinite(uni)
    assert tri < uni
    assert ngram.nll_per_event(ngram.KneserNeyTrigram(train).log_prob(train)) < 0.5


def test_notes_and_pieces_skip_rests_drums_and_short_stretches() -> None:
    events = (
        triple(0, 10, 60)
        + triple(5, 10, 36, V.DRUMS)
        + [V.TIME_OFFSET + 20, V.DUR_OFFSET + 30, V.REST]
    )
    notes = notes_of(events)
    assert notes.pitch.tolist() == [60] and notes.onset.tolist() == [0]
    long_piece = [triple(10 * i, 10, 60 + i % 12) for i in range(25)]
    short_piece = [triple(10 * i, 10, 60) for i in range(5)]
    pieces = pieces_of(packed(*long_piece, SEP, *short_piece))
    assert [len(p) for p in pieces] == [25]


def test_music_statistics_known_answers() -> None:
    c_major = [0, 2, 4, 5, 7, 9, 11, 12]
    scale = notes_of([t for i, p in enumerate(c_major) for t in triple(50 * i, 50, 60 + p)])
    assert in_key_share(scale) == 1.0
    assert notes_per_second(scale) == pytest.approx(8 / 4.0)
    chromatic = notes_of([t for p in range(12) for t in triple(10 * p, 10, 60 + p)])
    assert math.isnan(in_key_share(chromatic))  # a flat histogram has no key
    triad = [t for i, p in enumerate([0, 4, 7]) for t in triple(200 + 100 * i, 100, 60 + p)]
    mixed = notes_of([t for p in range(12) for t in triple(10 * p, 10, 60 + p)] + triad)
    assert in_key_share(mixed) == pytest.approx(10 / 15)  # C major: 7 of 12 + the triad
    p = pitch_class_distribution([scale])
    assert p.sum() == pytest.approx(1.0) and p[0] == pytest.approx(2 / 8)
    assert total_variation(p, p) == 0.0
    assert total_variation(p, pitch_class_distribution([chromatic])) > 0.2


def test_check_midi_accepts_playable_files_and_names_problems() -> None:
    many = [t for i in range(24) for t in triple(10 * i, 8, 60 + i % 7)]
    assert check_midi(midi_to_bytes(events_to_midi(many))) == ""
    few = [t for i in range(3) for t in triple(10 * i, 8, 60)]
    assert "only 3 notes" in check_midi(midi_to_bytes(events_to_midi(few)))
    assert "does not parse" in check_midi(b"MThd-not-really")


def test_piano_roll_png_decodes_and_shows_each_note_where_it_sounds(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import struct
    import zlib

    from engines.amt.evaluate.pianoroll import (
        BACKGROUND,
        FAMILY_COLOURS,
        PITCH_PIXELS,
        PIXELS_PER_SECOND,
        write_piano_rolls,
    )

    # a violin note at 1.0-1.5 s, pitch 60; a piano note at 2 s, pitch 72; second piece empty
    first = notes_of(triple(100, 50, 60, 40) + triple(200, 25, 72, 0))
    path = write_piano_rolls([first, notes_of([])], 3.0, tmp_path / "rolls.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    idat = data.index(b"IDAT")
    (length,) = struct.unpack(">I", data[idat - 4 : idat])
    raw = np.frombuffer(zlib.decompress(data[idat + 4 : idat + 4 + length]), dtype=np.uint8)
    image = raw.reshape(height, 1 + 3 * width)[:, 1:].reshape(height, width, 3)
    assert width == 3 * PIXELS_PER_SECOND
    low, high = 58, 74  # the pitches used, two either side
    strip = (high - low + 1) * PITCH_PIXELS
    assert height == 2 * strip + 6

    def pixel(pitch: int, seconds: float) -> tuple[int, ...]:
        row = strip - (pitch - low + 1) * PITCH_PIXELS
        return tuple(int(c) for c in image[row, int(seconds * PIXELS_PER_SECOND)])

    assert pixel(60, 1.2) == FAMILY_COLOURS[40 // 8]  # strings
    assert pixel(72, 2.05) == FAMILY_COLOURS[0]  # piano
    assert pixel(60, 0.55) == BACKGROUND  # before the note: nothing (off the grid lines)
    assert pixel(66, 1.2) == BACKGROUND
    assert (image[strip + 6 :] != FAMILY_COLOURS[0]).any(axis=2).all()  # empty second strip


def card_inputs() -> tuple[dict[str, object], dict[str, object]]:
    from engines.amt.train.config import DEFAULT_CONFIG, load_config

    training = {
        "step": 3000,
        "tokens_seen": 24_576_000,
        "best_val_nll_per_event": 4.61,
        "best_step": 2900,
        "train_instruments": [0, 40, 41],
        "train_tokens": 7_178_240,
        "hardware": "CPU, 2 threads, fp32",
        "config": load_config(DEFAULT_CONFIG).to_dict(),
        "run_notes": "from step 1350: dropout 0.0",
        "history": [[100, 11.7], [500, 7.65], [1000, 5.84], [2900, 4.61], [3000, 4.62]],
    }
    nll = {
        "model": 4.3,
        "model_past_onsets_allowed": 5.9,
        "untrained": 25.8,
        "unigram_add_k": 7.6,
        "trigram_kneser_ney": 4.96,
    }
    evaluation = {
        "reference_nll": {
            "what": "16 validation sequences spread over the set (every 14th)",
            "nll_per_event": 4.377,
            "trigram_nll_per_event": 5.548,
            "events": 5456,
        },
        "validation": {"sequences": 237, "events": 80817, "nll_per_event": nll},
        "generated": {
            "pieces": 20,
            "seconds": 20.0,
            "top_p": 0.95,
            "temperature": 1.0,
            "in_key_share": 0.97,
            "pitch_class_tv_distance": 0.05,
            "notes_per_second": 5.8,
            "polyphony": 2.1,
            "valid_midi": 20,
            "min_notes": 62,
        },
        "validation_pieces": {
            "pieces": 429,
            "in_key_share": 0.9745,
            "notes_per_second": 6.47,
            "polyphony": 1.67,
        },
        "targets_met": {"NLL per event >= 10 % below the trigram model's": True},
    }
    return training, evaluation


def test_model_card_renders_every_figure_from_the_json_files() -> None:
    import re

    from engines.amt.evaluate.card import render

    training, evaluation = card_inputs()
    card = render(training, evaluation, 35_000_000)
    assert "{" not in card and "}" not in card  # every placeholder filled
    # the bundled-model test reads the reference NLL back from this sentence
    quoted = re.search(r"reference NLL: \*\*([0-9.]+) nats per event\*\*", card)
    assert quoted is not None and quoted.group(1) == "4.377"
    assert "(5,456 events; the trigram model: 5.548)" in card
    assert (
        "| this model, as sampled (onsets never before the previous event's) | 4.300 | -13.3 % |"
        in card
    )
    assert "from step 1350: dropout 0.0" in card
    # the validation curve: every 500 steps, the first, the best and the last
    assert "| 100 | 11.700 |" in card and "| 500 | 7.650 |" in card
    assert "| 2,900 | 4.610 (best) |" in card and "| 3,000 | 4.620 |" in card
    assert "| 1,000 | 5.840 |" in card
    assert "NLL per event >= 10 % below the trigram model's: met" in card
    assert "3,000 (24,576,000 tokens seen, 3.42 passes" in card
    assert "![" not in card  # no picture unless one is given
    with_picture = render(training, evaluation, 35_000_000, "piano-rolls.png")
    assert "![Piano rolls of the generated pieces](piano-rolls.png)" in with_picture
