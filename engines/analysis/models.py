"""Pydantic models of the metadata (JSON-friendly: plain numbers, strings and lists)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TempoChange(_Model):
    time_seconds: float
    bar: float = Field(description="1-based bar position (1.0 = first downbeat)")
    bpm: float


class TimeSignatureChange(_Model):
    time_seconds: float
    bar: int = Field(description="1-based bar where it takes effect")
    signature: str = Field(description='e.g. "3/4"')


class Instrument(_Model):
    name: str = Field(description='General MIDI name, "Drum Kit" for channel 10')
    program: int
    is_drum: bool
    track_name: str
    note_count: int


class Density(_Model):
    notes_per_second: float
    label: Literal["low", "medium", "high"]


class PitchRange(_Model):
    lowest: str = Field(description='note name, MIDI 60 = "C4"')
    highest: str
    lowest_midi: int
    highest_midi: int


class Polyphony(_Model):
    mean: float = Field(description="time-weighted mean of sounding pitched notes while any sounds")
    max: int


class EnergyProfile(_Model):
    start: float = Field(ge=0, le=1)
    peak: float = Field(ge=0, le=1)
    end: float = Field(ge=0, le=1)
    peak_time_seconds: float


class StructureSummary(_Model):
    sections: int = Field(description="sections found by self-similarity of per-bar features")
    repeats: bool = Field(description="whether some material (two bars or more) recurs")


class MidiMetadata(_Model):
    duration_seconds: float
    duration_bars: float
    tempos: list[TempoChange] = Field(description="the tempo map (at most 32 entries)")
    tempo_change_count: int
    time_signatures: list[TimeSignatureChange]
    key: str | None = Field(description='e.g. "F# minor"; None without pitched notes')
    key_confidence: float = Field(ge=0, le=1)
    instruments: list[Instrument]
    note_count: int
    density: Density
    pitch_range: PitchRange | None
    polyphony: Polyphony
    energy: EnergyProfile
    structure: StructureSummary
