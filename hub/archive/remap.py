"""Import: id remapping (fresh ids for a copy, or the archive's own for a restore)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hub.archive.format import EVENT_ADAPTER, invalid
from hub.archive.parse import Line, Parsed
from hub.events import SectionAdded, SessionEvent, TakeAdded
from hub.ids import ARTIFACT, SECTION, SESSION, TAKE, new_id


@dataclass
class IdMap:
    session: str
    sections: dict[str, str]
    takes: dict[str, str]
    artifacts: dict[str, str]


def identity_map(p: Parsed) -> IdMap:
    sections = {s: s for s in _section_ids(p.lines)}
    takes = {t: t for t in _take_ids(p.lines)}
    arts = {a.id: a.id for a in p.artifacts}
    return IdMap(p.manifest.session.id, sections, takes, arts)


def fresh_map(p: Parsed) -> IdMap:
    return IdMap(
        new_id(SESSION),
        {s: new_id(SECTION) for s in _section_ids(p.lines)},
        {t: new_id(TAKE) for t in _take_ids(p.lines)},
        {a.id: new_id(ARTIFACT) for a in p.artifacts},
    )


def _section_ids(lines: Iterable[Line]) -> list[str]:
    out: dict[str, None] = {}
    for line in lines:
        if isinstance(line.event, SectionAdded):
            out[line.event.section.id] = None
    return list(out)


def _take_ids(lines: Iterable[Line]) -> list[str]:
    out: dict[str, None] = {}
    for line in lines:
        ev = line.event
        if isinstance(ev, SectionAdded):
            for take in ev.section.takes:
                out[take.id] = None
        elif isinstance(ev, TakeAdded):
            out[ev.take.id] = None
    return list(out)


def _lookup(table: Mapping[str, str], value: str, what: str) -> str:
    try:
        return table[value]
    except KeyError:
        raise invalid(
            f"an event names {what} {value!r}, which no event adds", **{what: value}
        ) from None


def _remap_take(d: dict[str, Any], m: IdMap) -> dict[str, Any]:
    return {
        **d,
        "id": _lookup(m.takes, d["id"], "take"),
        "artifact_id": _lookup(m.artifacts, d["artifact_id"], "artifact"),
    }


def _remap_section(d: dict[str, Any], m: IdMap) -> dict[str, Any]:
    chosen = d.get("chosen_take")
    return {
        **d,
        "id": _lookup(m.sections, d["id"], "section"),
        "takes": [_remap_take(t, m) for t in d.get("takes", [])],
        "chosen_take": None if chosen is None else _lookup(m.takes, chosen, "take"),
    }


def remap_event(ev: SessionEvent, m: IdMap) -> SessionEvent:
    """The event with every session/section/take/artifact id replaced via ``m``."""
    d = ev.model_dump(mode="json")
    d["session"] = m.session
    sec = d.get("section")
    if isinstance(sec, dict):
        d["section"] = _remap_section(sec, m)
    elif isinstance(sec, str):
        d["section"] = _lookup(m.sections, sec, "section")
    for key in ("take", "old_take"):
        value = d.get(key)
        if isinstance(value, dict):
            d[key] = _remap_take(value, m)
        elif isinstance(value, str):
            d[key] = _lookup(m.takes, value, "take")
    return EVENT_ADAPTER.validate_python(d)
