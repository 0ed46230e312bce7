"""Hub configuration: defaults, an optional TOML file, then command-line overrides."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hub.errors import ErrorCode, HubError

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


LogLevel = Literal["debug", "info", "warning", "error"]


class RetentionConfig(BaseModel):
    """How long the event log and finished jobs are kept."""

    model_config = ConfigDict(extra="forbid")

    # Events older than BOTH limits are compacted into a snapshot.
    keep_seconds: float = Field(
        24 * 3600.0, ge=60,
        description="Keep every event at least this long (seconds); a client resuming from "
        "before the compaction point gets `recovered: false` and a snapshot instead of a replay.",
    )
    keep_events: int = Field(
        100_000, ge=100,
        description="Keep at least this many of the newest events (compaction needs both limits passed).",
    )
    job_keep_seconds: float = Field(
        7 * 24 * 3600.0, ge=60,
        description="Finished job records expire after this (seconds); their ids then answer `job_expired`.",
    )


class LimitsConfig(BaseModel):
    """Sizes and timings that protect the hub from one misbehaving client."""

    model_config = ConfigDict(extra="forbid")

    max_frame_bytes: int = Field(
        1 << 20, ge=1024,
        description="Largest WebSocket frame a client may send; bigger ones answer `payload_too_large`.",
    )
    max_upload_bytes: int = Field(32 << 20, ge=1024, description="Largest file accepted by `POST /cas`.")
    client_queue_frames: int = Field(
        20_000, ge=16,
        description="Lossless frames a client may have waiting; past this it is closed with 4008 "
        "and resumes from its last offset.",
    )
    socket_send_buffer: int | None = Field(
        None, ge=4096, le=64 << 20, examples=[65536],
        description="Kernel send buffer of each client socket (bytes). Unset keeps the OS's "
        "autotuning; a small fixed buffer bounds what a stalled client holds in flight, so the "
        "hub notices it sooner.",
    )
    heartbeat_interval: float = Field(10.0, gt=0, description="Seconds between the hub's `ping`s.")
    heartbeat_timeout: float = Field(
        30.0, gt=0, description="A client silent this long (seconds) is closed with 4002 (it may resume).",
    )


class HubConfig(BaseModel):
    """The `[tutti]` table of a config file; command-line options override it."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="Address to bind; anything but loopback needs `token`.")
    port: int = Field(8765, ge=0, le=65535, description="TCP port (0 picks a free one).")
    data: Path = Field(Path("tutti-data"), description="Data folder: event log, job store, CAS, exports, inbox.")
    token: str | None = Field(
        None, examples=["a-long-random-secret"],
        description="Shared secret clients send in `hello` (and HTTP `Authorization: Bearer`).",
    )
    log_level: LogLevel = Field("info", description="Log detail.")
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Extra browser origins allowed to open the WebSocket (the hub's own page always is).",
    )
    amt_model: str | None = Field(
        None, examples=["stanford-crfm/music-small-800k"],
        description="AMT weights: a Hugging Face hub id, a local folder, or unset for the bundled model.",
    )
    engines: list[str] = Field(
        default_factory=list, description='Extra engines to start, as `"name=module:Class"`.',
    )
    disabled_engines: list[str] = Field(
        default_factory=list,
        description='Built-in engines not to start (e.g. `["amt"]` on a machine that only needs the hub).',
    )
    engine_concurrency: dict[str, int] = Field(
        default_factory=dict, description="Jobs run at once per engine (`{amt = 2}`); default: the engine's own.",
    )
    retention: RetentionConfig = RetentionConfig()
    limits: LimitsConfig = LimitsConfig()
    transport_debounce: float = Field(
        0.25, ge=0,
        description="Seconds a tempo or meter change must hold still before it is stored (a ramp is one event).",
    )
    watch_inbox: bool = Field(True, description="Ingest MIDI files dropped into `<data>/inbox/`.")

    def check(self) -> None:
        """Refuse unsafe combinations at once, saying what is expected."""
        from engines.registry import DEFAULT_SPECS

        built_in = [s.name for s in DEFAULT_SPECS]
        unknown = sorted(set(self.disabled_engines) - set(built_in))
        if unknown:
            raise HubError(
                ErrorCode.validation_failed,
                f"cannot disable {', '.join(unknown)}: not a built-in engine",
                suggestions=[f"built-in engines: {', '.join(built_in)}"],
            )
        if self.host not in LOOPBACK_HOSTS and not self.token:
            raise HubError(
                ErrorCode.not_authorized,
                f"binding to {self.host} exposes the hub beyond this machine; a token is required",
                suggestions=["pass --token SECRET (clients send it in hello)", "or bind to 127.0.0.1"],
            )

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"


def load_config(path: Path | None, overrides: dict[str, Any]) -> HubConfig:
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise HubError(ErrorCode.validation_failed, f"cannot read config {path}: {exc}") from exc
        data = data.get("tutti", data)
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return HubConfig.model_validate(data)
    except ValidationError as exc:
        raise HubError(
            ErrorCode.validation_failed,
            f"invalid configuration: {exc.error_count()} problem(s)",
            details={"errors": exc.errors(include_url=False, include_context=False)},
        ) from exc
