"""Generated documentation: the error-code table (docs/errors.md) comes from hub/errors.py,
the configuration reference (docs/config.md) from hub/config.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from hub.config import HubConfig
from hub.errors import ERROR_DESCRIPTIONS, ErrorCode
from hub.protocol import CloseCode


def errors_markdown() -> str:
    lines = [
        "# Error codes",
        "",
        "Generated from `hub/errors.py` by `tutti docs`; do not edit by hand.",
        "",
        "Every error, on the WebSocket and over HTTP, has one shape:",
        "`{\"type\": \"error\", \"code\", \"message\", \"details\", \"suggestions\", \"op_id\"}`.",
        "A command's error carries its `op_id`; the connection always stays open.",
        "",
        "| code | meaning |",
        "| --- | --- |",
    ]
    lines += [f"| `{code.value}` | {ERROR_DESCRIPTIONS[code]} |" for code in ErrorCode]
    lines += [
        "",
        "## WebSocket close codes",
        "",
        "| code | meaning | reconnect? |",
        "| --- | --- | --- |",
        f"| {CloseCode.NORMAL} | normal close | — |",
        f"| {CloseCode.GOING_AWAY} | the hub is shutting down | yes, with resume |",
        f"| {CloseCode.POLICY} | browser Origin not allowed | no |",
        f"| {CloseCode.TOO_BIG} | a frame far over the size limit (slightly over gets `payload_too_large`) | yes |",
        f"| {CloseCode.SERVICE_RESTART} | the server is restarting (sent by uvicorn on shutdown) | yes, with resume |",
        f"| {CloseCode.NOT_AUTHORIZED} | missing or wrong token | only with a new token |",
        f"| {CloseCode.HEARTBEAT_TIMEOUT} | no frame within the heartbeat timeout | yes, with resume |",
        f"| {CloseCode.SLOW_CONSUMER} | the client's queue overflowed | yes, with resume (recoverable) |",
        "",
    ]
    return "\n".join(lines)


# -- configuration reference ---------------------------------------------------------------

_BOUNDS = ((annotated_types.Ge, "ge", ">="), (annotated_types.Gt, "gt", ">"),
           (annotated_types.Le, "le", "<="), (annotated_types.Lt, "lt", "<"))


_TOML_NAMES: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean",
                               Path: "path"}


def _toml_type(annotation: Any) -> str:
    if annotation in _TOML_NAMES:
        return _TOML_NAMES[annotation]
    args = [a for a in get_args(annotation) if a is not type(None)]
    origin = get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(f'`"{a}"`' for a in args)
    if origin is list:
        return f"list of {_toml_type(args[0])}s"
    if origin is dict:
        return f"table of {_toml_type(args[1])}s"
    if len(args) == 1:  # X | None
        return f"{_toml_type(args[0])} (optional)"
    raise TypeError(f"no TOML name for {annotation!r}: add it to hub/docs.py")


def _bounds(info: FieldInfo) -> str:
    parts = []
    for item in info.metadata:
        for kind, attr, label in _BOUNDS:
            if isinstance(item, kind):
                parts.append(f"{label} {getattr(item, attr)}")
    return ", ".join(parts)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Path):
        return json.dumps(str(value))
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def _tables(model: BaseModel, name: str) -> list[tuple[str, BaseModel]]:
    """The config's TOML table and its nested tables, parents first."""
    found = [(name, model)]
    for key in type(model).model_fields:
        nested = getattr(model, key)
        if isinstance(nested, BaseModel):
            found += _tables(nested, f"{name}.{key}")
    return found


def _plain_fields(model: BaseModel) -> list[tuple[str, FieldInfo]]:
    return [(key, info) for key, info in type(model).model_fields.items()
            if not isinstance(getattr(model, key), BaseModel)]


def config_toml(config: HubConfig | None = None) -> str:
    """A config file spelling out every option of ``config`` (default: the defaults);
    unset options are commented out with an example value."""
    config = HubConfig() if config is None else config
    lines = []
    for table, model in _tables(config, "tutti"):
        lines.append(f"[{table}]")
        for key, info in _plain_fields(model):
            value = getattr(model, key)
            if value is None:  # unset: show how it would look
                sample = info.examples[0] if info.examples else ""
                lines.append(f"# {key} = {_toml_value(sample)}")
            else:
                lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def config_markdown() -> str:
    lines = [
        "# Configuration",
        "",
        "Generated from `hub/config.py` by `tutti docs`; do not edit by hand.",
        "",
        "`tutti serve --config FILE.toml` reads a `[tutti]` table; the command line's options",
        "(`--host`, `--port`, `--data`, `--token`, `--log-level`, `--amt-model`, `--engine`,",
        "`--disable-engine`) override it. A wrong key, type or value stops the hub at start with",
        "one line per problem naming the field.",
        "",
    ]
    for table, model in _tables(HubConfig(), "tutti"):
        lines += [f"## `[{table}]`", "", (type(model).__doc__ or "").strip(), "",
                  "| key | type | default | limits | meaning |", "| --- | --- | --- | --- | --- |"]
        for key, info in _plain_fields(model):
            value = getattr(model, key)
            default = "unset" if value is None else f"`{_toml_value(value)}`"
            lines.append(f"| `{key}` | {_toml_type(info.annotation)} | {default} | {_bounds(info)} | "
                         f"{info.description or ''} |")
        lines.append("")
    lines += ["## Example", "", "Every option at its default (`tutti config` prints this; "
              "`tutti config FILE` checks a file and prints what the hub would use):", "",
              "```toml", config_toml().rstrip(), "```", ""]
    return "\n".join(lines)
