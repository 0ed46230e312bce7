"""The transform engine's tasks and their parameters (ranges and defaults live here only).

Inputs follow the hub's convention: a param ending in ``artifact`` (an artifact id)
or ``artifacts`` (a list of ids) is resolved by the hub into ``EngineRequest.inputs``
(``artifact`` -> digest, ``artifacts.0``, ``artifacts.1`` ... -> digests). Single-file
tasks read the ``artifact`` input (or the only input); ``merge`` reads them all in order.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from engines.params import TaskParams, TaskSpec, TaskTable

_NOTE_VALUE = r"^1/(1|2|4|8|16|32|64)[t.]?$"
_ARTIFACT_ID = Field(min_length=1, max_length=200)


class SingleInput(TaskParams):
    artifact: Annotated[str, _ARTIFACT_ID] = Field(
        description="id of the MIDI artifact to transform"
    )


class TransposeParams(SingleInput):
    """Shift pitches; drum parts are never transposed."""

    semitones: int = Field(0, ge=-48, le=48, description="chromatic shift in semitones")
    steps: int = Field(
        0,
        ge=-14,
        le=14,
        description="diatonic shift in scale degrees within `key` (2 = up a third)",
    )
    key: str | None = Field(
        None,
        max_length=32,
        description="key for diatonic steps, e.g. 'C major', 'A minor', 'Bb', 'D dorian'; "
        "defaults to the section's key",
    )


class QuantizeParams(SingleInput):
    """Pull note starts toward a grid."""

    grid: Annotated[float, Field(ge=1 / 16, le=16)] | Annotated[str, Field(pattern=_NOTE_VALUE)] = (
        Field(
            "1/16",
            description="grid as a note value ('1/16', '1/8t' triplet, '1/8.' dotted) "
            "or in beats (quarter notes; 0.25 = a sixteenth)",
        )
    )
    strength: float = Field(
        1.0, ge=0.0, le=1.0, description="0 = unchanged, 1 = exactly on the grid"
    )
    swing: float = Field(
        0.0,
        ge=0.0,
        le=0.5,
        description="delay of every second grid point, as a share of the grid (1/3 = triplet swing)",
    )
    quantize_ends: bool = Field(
        False, description="also snap note ends (otherwise durations are kept)"
    )

    def grid_beats(self) -> float:
        if isinstance(self.grid, float):
            return self.grid
        value = self.grid.removeprefix("1/")
        factor = 1.0
        if value.endswith("t"):
            value, factor = value[:-1], 2 / 3
        elif value.endswith("."):
            value, factor = value[:-1], 1.5
        return 4.0 / int(value) * factor


class TempoParams(SingleInput):
    """Change the tempo map; notes stay on their beats. Give exactly one of bpm and scale."""

    bpm: float | None = Field(None, ge=20.0, le=400.0, description="one tempo for the whole piece")
    scale: float | None = Field(
        None, ge=0.25, le=4.0, description="multiply every tempo (2 = twice as fast)"
    )

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if (self.bpm is None) == (self.scale is None):
            raise ValueError("give exactly one of bpm and scale")
        return self


class VelocityParams(SingleInput):
    """Shape velocities from metrical position (downbeats stronger) and phrase contour."""

    accent: float = Field(
        0.5, ge=0.0, le=1.0, description="metrical accent amount (1 = +20 on downbeats)"
    )
    contour: float = Field(
        0.3, ge=0.0, le=1.0, description="phrase arch amount (1 = 24 velocity steps)"
    )
    phrase_bars: int = Field(4, ge=1, le=64, description="phrase length in bars")
    spread: float = Field(
        1.0,
        ge=0.0,
        le=2.0,
        description="scale of the original dynamics around their mean (0 = flat)",
    )
    center: int | None = Field(
        None, ge=1, le=127, description="target mean velocity (default: keep)"
    )
    min_velocity: int = Field(1, ge=1, le=127)
    max_velocity: int = Field(127, ge=1, le=127)

    @model_validator(mode="after")
    def _range(self) -> Self:
        if self.min_velocity > self.max_velocity:
            raise ValueError("min_velocity must not be above max_velocity")
        return self


class HumanizeParams(VelocityParams):
    """Velocity shaping plus seeded timing and velocity jitter (same seed, same result)."""

    accent: float = Field(0.3, ge=0.0, le=1.0, description="metrical accent amount")
    contour: float = Field(0.2, ge=0.0, le=1.0, description="phrase arch amount")
    timing_ms: float = Field(8.0, ge=0.0, le=60.0, description="largest timing shift, milliseconds")
    velocity_jitter: int = Field(6, ge=0, le=30, description="largest random velocity change")
    seed: int | None = Field(None, description="random seed (default: the job's seed, else 0)")


class MergeParams(TaskParams):
    """Combine several MIDI artifacts into one multitrack file (tempo and meter from the first)."""

    artifacts: list[Annotated[str, _ARTIFACT_ID]] = Field(
        min_length=2, max_length=64, description="ids of the MIDI artifacts, in track order"
    )
    offsets: list[Annotated[float, Field(ge=0.0, le=65536.0)]] = Field(
        default_factory=list,
        max_length=64,
        description="start offset in beats of each artifact, by position (missing = 0)",
    )


class SplitParams(SingleInput):
    """One file per part (track and channel) or per instrument (program, or drums)."""

    by: Literal["part", "instrument"] = Field("part", description="how to group notes into files")


class ExtractParams(SingleInput):
    """Keep one instrument. Give exactly one selector."""

    program: int | None = Field(None, ge=0, le=127, description="General MIDI program (0-127)")
    drums: bool = Field(False, description="keep the drum parts (channel 10)")
    track: int | None = Field(None, ge=0, le=1023, description="part index as listed by split")
    name: str | None = Field(None, min_length=1, max_length=200, description="part name contains")

    @model_validator(mode="after")
    def _one_selector(self) -> Self:
        chosen = [
            self.program is not None,
            self.drums,
            self.track is not None,
            self.name is not None,
        ]
        if sum(chosen) != 1:
            raise ValueError("give exactly one of program, drums, track and name")
        return self


SINGLE_INPUT = "artifact"
MULTI_INPUT = "artifacts"

TASKS = TaskTable(
    [
        TaskSpec(
            "transpose",
            "Transpose chromatically or diatonically (drums stay)",
            TransposeParams,
            ("inputs: artifact",),
        ),
        TaskSpec(
            "quantize",
            "Quantize note starts to a grid with strength and swing",
            QuantizeParams,
            ("inputs: artifact",),
        ),
        TaskSpec(
            "tempo",
            "Set or scale the tempo (notes keep their beats)",
            TempoParams,
            ("inputs: artifact",),
        ),
        TaskSpec(
            "velocity",
            "Shape velocities from meter and phrase contour",
            VelocityParams,
            ("inputs: artifact",),
        ),
        TaskSpec(
            "humanize",
            "Velocity shaping plus seeded timing and velocity jitter",
            HumanizeParams,
            ("inputs: artifact",),
        ),
        TaskSpec(
            "merge",
            "Merge several MIDI files into one multitrack file",
            MergeParams,
            ("inputs: artifacts (two or more)",),
        ),
        TaskSpec(
            "split",
            "Split into one file per part or instrument",
            SplitParams,
            ("inputs: artifact",),
        ),
        TaskSpec(
            "extract",
            "Keep one instrument, program or the drums",
            ExtractParams,
            ("inputs: artifact",),
        ),
    ]
)
