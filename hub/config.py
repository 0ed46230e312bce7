"""Hub configuration: defaults, an optional TOML file, then command-line overrides."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hub.errors import ErrorCode, HubError

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class RetentionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Events older than BOTH limits are compacted into a snapshot; a client resuming
    # from before that point gets `recovered: false` and a snapshot instead of a replay.
    keep_seconds: float = Field(24 * 3600.0, ge=60)
    keep_events: int = Field(100_000, ge=100)
    # Finished job records expire after this; their ids then answer `job_expired`.
    job_keep_seconds: float = Field(7 * 24 * 3600.0, ge=60)


class LimitsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_frame_bytes: int = Field(1 << 20, ge=1024)
    max_upload_bytes: int = Field(32 << 20, ge=1024)
    # Lossless frames a client may have waiting before it is closed (recoverably).
    client_queue_frames: int = Field(20_000, ge=16)
    # Kernel send buffer of each client socket, in bytes. None keeps the OS's autotuning,
    # which lets a stalled client hold megabytes in flight before its queue grows; a small
    # fixed buffer bounds that (and its memory), so the hub notices a stalled client sooner.
    socket_send_buffer: int | None = Field(None, ge=4096, le=64 << 20)
    heartbeat_interval: float = Field(10.0, gt=0)
    heartbeat_timeout: float = Field(30.0, gt=0)


class HubConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    data: Path = Path("tutti-data")
    token: str | None = None
    log_level: str = "info"
    allowed_origins: list[str] = Field(default_factory=list)
    amt_model: str | None = None  # hub id, local directory, or None for the bundled model
    engines: list[str] = Field(default_factory=list)  # extra "name=module:Class" specs
    # built-in engines not to start (e.g. "amt" on a machine that only needs the hub)
    disabled_engines: list[str] = Field(default_factory=list)
    engine_concurrency: dict[str, int] = Field(default_factory=dict)
    retention: RetentionConfig = RetentionConfig()
    limits: LimitsConfig = LimitsConfig()
    transport_debounce: float = Field(0.25, ge=0)
    watch_inbox: bool = True

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
