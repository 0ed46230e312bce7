"""Builders of small MIDI files with known musical content, for the analysis tests."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import mido

TPQ = 480


@dataclass
class Part:
    program: int = 0
    channel: int = 0
    name: str = ""
    # (start beat, duration in beats, pitch, velocity), beats = quarter notes
    notes: list[tuple[float, float, int, int]] = field(default_factory=list)

    def add(self, start: float, dur: float, pitches: int | list[int], velocity: int = 80) -> None:
        for p in [pitches] if isinstance(pitches, int) else pitches:
            self.notes.append((start, dur, p, velocity))


def build(
    parts: list[Part],
    *,
    tempos: list[tuple[float, float]] | None = None,  # (beat, bpm)
    time_signature: tuple[int, int] = (4, 4),
    end_beat: float | None = None,
) -> bytes:
    mid = mido.MidiFile(type=1, ticks_per_beat=TPQ)
    conductor = mido.MidiTrack()
    events: list[tuple[int, mido.MetaMessage]] = [
        (0, mido.MetaMessage("time_signature", numerator=time_signature[0],
                             denominator=time_signature[1]))
    ]
    for beat, bpm in tempos or [(0.0, 120.0)]:
        events.append((round(beat * TPQ), mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm))))
    last = 0
    for tick, msg in sorted(events, key=lambda e: e[0]):
        conductor.append(msg.copy(time=tick - last))
        last = tick
    mid.tracks.append(conductor)
    for part in parts:
        track = mido.MidiTrack()
        track.append(mido.MetaMessage("track_name", name=part.name, time=0))
        track.append(mido.Message("program_change", channel=part.channel, program=part.program))
        ev: list[tuple[int, int, mido.Message]] = []
        for start, dur, pitch, vel in part.notes:
            on, off = round(start * TPQ), round((start + dur) * TPQ)
            ev.append((on, 1, mido.Message("note_on", channel=part.channel, note=pitch, velocity=vel)))
            ev.append((off, 0, mido.Message("note_off", channel=part.channel, note=pitch, velocity=0)))
        ev.sort(key=lambda e: (e[0], e[1]))
        last = 0
        for tick, _, msg in ev:
            track.append(msg.copy(time=tick - last))
            last = tick
        if end_beat is not None:
            track.append(mido.MetaMessage("end_of_track", time=max(round(end_beat * TPQ) - last, 0)))
        mid.tracks.append(track)
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


C_MAJOR_SCALE = [60, 62, 64, 65, 67, 69, 71, 72]


def c_major_scale() -> bytes:
    piano = Part(program=0, name="piano")
    for i, p in enumerate(C_MAJOR_SCALE):
        piano.add(float(i), 1.0, p, 80)
    return build([piano])


# Close-position triads with the root doubled an octave below.
G_MAJOR_PROGRESSION = {"G": [43, 55, 59, 62], "D": [38, 54, 57, 62], "Em": [40, 55, 59, 64],
                       "C": [36, 55, 60, 64]}


def progression_in_g(repeats: int = 2) -> bytes:
    piano = Part(program=0, name="piano")
    for r in range(repeats):
        for i, chord in enumerate(G_MAJOR_PROGRESSION.values()):
            piano.add((r * 4 + i) * 4.0, 4.0, chord, 70)
    return build([piano])


def aba_piece() -> bytes:
    """8 bars of A (C major, quarter-note tune over half-note chords), 8 of B (Eb major, low
    eighth-note figures over whole notes), then A again note for note."""
    melody, accomp = Part(program=0, name="melody"), Part(program=0, channel=1, name="left hand")
    tune = [[64, 62, 60, 62], [64, 64, 64, 67], [65, 64, 62, 60], [62, 64, 62, 59]]
    a_chords = [[48, 52, 55], [43, 47, 50], [45, 48, 52], [41, 45, 48]]
    b_figure = [[51, 55, 58, 55, 63, 58, 55, 51], [56, 60, 63, 60, 68, 63, 60, 56]]
    b_chords = [[39, 43, 46], [44, 48, 51]]

    def a_section(bar0: int) -> None:
        for b in range(8):
            start = (bar0 + b) * 4.0
            for q, p in enumerate(tune[b % 4]):
                melody.add(start + q, 1.0, p + (12 if b >= 4 else 0), 90)
            accomp.add(start, 2.0, a_chords[b % 4], 60)
            accomp.add(start + 2, 2.0, a_chords[(b + 1) % 4], 60)

    a_section(0)
    for b in range(8):
        start = (8 + b) * 4.0
        for e, p in enumerate(b_figure[b % 2]):
            melody.add(start + e * 0.5, 0.5, p - 12, 70)
        accomp.add(start, 4.0, b_chords[b % 2], 50)
    a_section(16)
    return build([melody, accomp])


def eighths(swing_position: float, bars: int = 8) -> bytes:
    """Pairs of eighth notes per beat, the second at ``swing_position`` of the beat."""
    ride = Part(program=0, name="lead")
    for beat in range(bars * 4):
        ride.add(float(beat), swing_position * 0.9, 67, 90)
        ride.add(beat + swing_position, (1 - swing_position) * 0.9, 64, 70)
    return build([ride], tempos=[(0.0, 140.0)])


def tempo_change_piece() -> bytes:
    """4 bars at 120 bpm (8 s), then 2 bars at 60 bpm (8 s): 16 s in all."""
    piano = Part(program=0, name="piano")
    for beat in range(24):
        piano.add(float(beat), 1.0, 60 + beat % 8, 80)
    return build([piano], tempos=[(0.0, 120.0), (16.0, 60.0)])
