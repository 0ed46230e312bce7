"""Which announced files the bridge mirrors, and under what name. Pure."""

from __future__ import annotations

from pathlib import PurePath

from hub.events import FileReady

MIDI_MIMES = frozenset({"audio/midi", "audio/x-midi", "audio/mid"})


def wanted(ev: FileReady) -> bool:
    return ev.mime in MIDI_MIMES


def mirror_name(ev: FileReady) -> tuple[str, bool]:
    """(file name, replace): exports keep the hub's export name; partial results of a
    running job share one name that is atomically replaced as the job goes on."""
    if ev.export_path:
        name = PurePath(ev.export_path).name
    else:
        name = PurePath(ev.filename or f"{ev.artifact}.mid").name
    name = name.lstrip(".") or f"{ev.artifact}.mid"  # a DAW ignores hidden files
    if ev.metadata.get("partial") and ev.job:
        return partial_name(ev.job), True
    return name, False


def partial_name(job: str) -> str:
    """The one file a running job's partial results share (removed once it completes)."""
    return f"{job}.partial.mid"
