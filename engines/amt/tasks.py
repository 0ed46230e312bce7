"""The AMT engine's tasks and their parameters (ranges and defaults live here only).

Inputs follow the hub's convention: a param ending in ``artifact`` holds an artifact id
that the hub resolves into ``EngineRequest.inputs[<param name>]`` (a CAS digest).
Lengths are seconds, or bars at the section's tempo and meter (``length_bars`` wins).
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from engines.params import TaskParams, TaskSpec, TaskTable

_ARTIFACT_ID = Field(min_length=1, max_length=200)
_GRID = r"^1/(1|2|4|8|16|32)t?$"
MAX_SECONDS = 90.0  # one model context spans at most 100 s of absolute time
LONG_SECONDS = 600.0  # generate / continue chain contexts up to this
CONSTRAINTS = ("instruments", "drums", "pitch_range", "key_lock", "max_silence")


class CommonParams(TaskParams):
    """Sampling, constraints (exact logit masks) and how the result is written."""

    top_p: float = Field(0.95, gt=0.0, le=1.0, description="nucleus sampling mass")
    temperature: float = Field(1.0, ge=0.1, le=2.0, description="softmax temperature")
    seed: int | None = Field(
        None, ge=0, le=2**31 - 1, description="variation k uses seed + k (default: the job's)"
    )
    instruments: list[Annotated[int, Field(ge=0, le=127)]] | None = Field(
        None, min_length=1, max_length=128, description="allowed General MIDI programs (0-127)"
    )
    drums: bool = Field(True, description="allow drum notes")
    pitch_low: int = Field(0, ge=0, le=127, description="lowest pitch (pitched instruments)")
    pitch_high: int = Field(127, ge=0, le=127, description="highest pitch (pitched instruments)")
    key: str | None = Field(
        None, max_length=32, description="key for key_lock, e.g. 'D minor' (default: section's)"
    )
    key_lock: bool = Field(False, description="only notes of the key's scale (drums exempt)")
    max_silence_seconds: float | None = Field(
        None,
        ge=0.1,
        le=30.0,
        description="longest gap between note onsets: the model may not rest longer "
        "(default: its own choice)",
    )
    quantize: str | None = Field(
        None, pattern=_GRID, description="snap onsets in the file to a grid, e.g. '1/16'"
    )
    velocity: int = Field(80, ge=1, le=127, description="mean velocity of the written notes")
    accent: float = Field(0.5, ge=0.0, le=1.0, description="metrical accent of velocities")

    @model_validator(mode="after")
    def _pitch_order(self) -> Self:
        if self.pitch_low > self.pitch_high:
            raise ValueError("pitch_low must not be above pitch_high")
        return self

    def grid_beats(self) -> float | None:
        if self.quantize is None:
            return None
        value = self.quantize.removeprefix("1/")
        factor = 2 / 3 if value.endswith("t") else 1.0
        return 4.0 / int(value.rstrip("t")) * factor


class LengthParams(CommonParams):
    length_seconds: float | None = Field(
        None,
        ge=0.5,
        le=LONG_SECONDS,
        description="length in seconds (default: the target section's length, else 10); "
        f"bridge and accompany: at most {MAX_SECONDS:g}",
    )
    length_bars: int | None = Field(
        None, ge=1, le=64, description="length in bars at the section's tempo (wins)"
    )


class GenerateParams(LengthParams):
    """Generate from scratch."""


class ContinueParams(LengthParams):
    """Continue a MIDI prompt; the result starts where the prompt's last onset is."""

    prompt_artifact: Annotated[str, _ARTIFACT_ID] = Field(description="id of the prompt MIDI")
    prime_seconds: float = Field(
        10.0, ge=1.0, le=60.0, description="how much of the prompt's end the model reads"
    )


class BridgeParams(LengthParams):
    """Fill the span between section A's end and section B's start (B's opening anticipated)."""

    a_artifact: Annotated[str, _ARTIFACT_ID] = Field(description="id of section A's MIDI")
    b_artifact: Annotated[str, _ARTIFACT_ID] = Field(description="id of section B's MIDI")
    prime_seconds: float = Field(10.0, ge=1.0, le=60.0, description="end of A the model reads")
    lookahead_seconds: float = Field(
        5.0, ge=0.5, le=20.0, description="opening of B given as anticipated controls"
    )


class InfillParams(CommonParams):
    """Regenerate a time range of one artifact; everything outside it stays as it was."""

    artifact: Annotated[str, _ARTIFACT_ID] = Field(description="id of the MIDI to edit")
    start_seconds: float = Field(ge=0.0, le=3600.0, description="start of the range")
    end_seconds: float = Field(gt=0.0, le=3600.0, description="end of the range (exclusive)")
    prime_seconds: float = Field(10.0, ge=1.0, le=60.0, description="music before the range read")
    lookahead_seconds: float = Field(
        5.0, ge=0.5, le=20.0, description="music after the range given as anticipated controls"
    )

    @model_validator(mode="after")
    def _range(self) -> Self:
        if not 0.1 <= self.end_seconds - self.start_seconds <= MAX_SECONDS:
            raise ValueError(f"the range must last 0.1 to {MAX_SECONDS:g} seconds")
        return self


class AccompanyParams(LengthParams):
    """Generate the other parts around a melody (given as anticipated controls)."""

    melody_artifact: Annotated[str, _ARTIFACT_ID] = Field(description="id of the melody MIDI")
    melody_instruments: list[Annotated[int, Field(ge=0, le=128)]] | None = Field(
        None, min_length=1, max_length=129, description="use only these programs (128 = drums)"
    )


class LoopParams(CommonParams):
    """N bars whose ending leads back into their beginning."""

    bars: int = Field(4, ge=1, le=16, description="loop length in bars")


class EmbedParams(TaskParams):
    """A pooled hidden state of the model for a MIDI artifact."""

    artifact: Annotated[str, _ARTIFACT_ID] = Field(description="id of the MIDI to embed")
    layer: int = Field(-1, ge=-1, le=64, description="hidden-state layer (0 = embeddings, -1 last)")
    pool: Literal["mean", "last"] = Field("mean", description="how positions are pooled")
    format: Literal["json", "npy"] = Field("json", description="stored artifact format")


TASKS = TaskTable(
    [
        TaskSpec("generate", "Generate music from scratch", GenerateParams, CONSTRAINTS),
        TaskSpec(
            "continue",
            "Continue a MIDI prompt",
            ContinueParams,
            (*CONSTRAINTS, "inputs: prompt_artifact"),
        ),
        TaskSpec(
            "bridge",
            "Bridge from the end of section A into the start of section B",
            BridgeParams,
            (*CONSTRAINTS, "inputs: a_artifact, b_artifact"),
        ),
        TaskSpec(
            "infill",
            "Regenerate a time range of a MIDI file, keeping the rest",
            InfillParams,
            (*CONSTRAINTS, "inputs: artifact"),
        ),
        TaskSpec(
            "accompany",
            "Accompany a melody (or chosen instruments of a file)",
            AccompanyParams,
            (*CONSTRAINTS, "inputs: melody_artifact"),
        ),
        TaskSpec("loop", "A loop of N bars that leads back into itself", LoopParams, CONSTRAINTS),
        TaskSpec("embed", "Embedding vector of a MIDI file", EmbedParams, ("inputs: artifact",)),
    ]
)
