"""Hub state as a pure fold over the event log: ``reduce(state, envelope) -> state``.

The reducer is total: an event naming an unknown session, section or take is
ignored rather than raising, so logs written by older releases (or holding
events a later command made moot) always load. State values are immutable;
each event copies only the session and section it touches, and ``replay``
folds many envelopes into one pair of fresh dicts, so rebuilding from 100,000
events costs one small copy per event rather than a deep copy of everything.

Undo bookkeeping lives beside the sessions: every session keeps its command
groups (the events each undoable command produced) on an undo and a redo
stack, so ``decide`` can compute undo and redo from state alone and both
survive restarts by construction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, cast, get_args

from hub.events import (
    Envelope,
    KeySet,
    MeterSet,
    SectionAdded,
    SectionLocked,
    SectionMoved,
    SectionPropsSet,
    SectionRemoved,
    SectionRenamed,
    SectionResized,
    SessionCreated,
    SessionDeleted,
    SessionEvent,
    SessionRenamed,
    TakeAdded,
    TakeChosen,
    TakeRemoved,
    TakeStatusSet,
    TempoSet,
)
from hub.model import Section, Session, SessionSummary, Take

MAX_UNDO_GROUPS = 200  # per session; the oldest steps fall off

SESSION_EVENT_TYPES: tuple[type[Any], ...] = get_args(get_args(SessionEvent)[0])
_SESSION_EVENT_SET = frozenset(SESSION_EVENT_TYPES)


@dataclass(frozen=True, slots=True)
class UndoStep:
    """One undoable command: its group id and the events it applied, in order."""

    group: str
    events: tuple[SessionEvent, ...]


@dataclass(frozen=True, slots=True)
class UndoHistory:
    undo: tuple[UndoStep, ...] = ()  # oldest first; the top is the last element
    redo: tuple[UndoStep, ...] = ()


@dataclass(frozen=True, slots=True)
class HubState:
    sessions: Mapping[str, Session] = field(default_factory=dict)
    history: Mapping[str, UndoHistory] = field(default_factory=dict)
    offset: int = 0  # offset of the last envelope folded in; a snapshot is valid at it

    def session(self, session_id: str) -> Session | None:
        return self.sessions.get(session_id)

    def undo_history(self, session_id: str) -> UndoHistory:
        return self.history.get(session_id, _EMPTY_HISTORY)


_EMPTY_HISTORY = UndoHistory()
EMPTY = HubState()


# --- public folds ------------------------------------------------------------------


def reduce(state: HubState, env: Envelope) -> HubState:
    """The state after ``env``; pure (``state`` is not modified) and total."""
    return replay(state, (env,))


def replay(state: HubState, envelopes: Iterable[Envelope]) -> HubState:
    """Fold many envelopes at once (what a restart does); same result as repeated reduce."""
    sessions = dict(state.sessions)
    history = dict(state.history)
    offset = state.offset
    for env in envelopes:
        _fold(sessions, history, env)
        offset = env.offset
    return HubState(sessions=sessions, history=history, offset=offset)


def snapshot(state: HubState) -> list[Session]:
    """Every live session, in creation order (what a non-recovered resume sends)."""
    return list(state.sessions.values())


def summaries(state: HubState) -> list[SessionSummary]:
    return [
        SessionSummary(
            id=s.id,
            title=s.title,
            tempo=s.tempo,
            meter=s.meter,
            key=s.key,
            sections=len(s.sections),
        )
        for s in state.sessions.values()
    ]


# --- the fold step (mutates only the two fresh dicts handed in by replay) -----------


def _fold(sessions: dict[str, Session], history: dict[str, UndoHistory], env: Envelope) -> None:
    ev = env.event
    if type(ev) not in _SESSION_EVENT_SET:
        return  # job and file events leave sessions alone
    if isinstance(ev, SessionCreated):
        if ev.session not in sessions:  # a duplicate create never clobbers a session
            sessions[ev.session] = _created(ev, env.offset)
            history[ev.session] = _EMPTY_HISTORY
        return  # creation starts the history; it is not an undoable step
    if isinstance(ev, SessionDeleted):
        sessions.pop(ev.session, None)
        history.pop(ev.session, None)
        return
    sev = cast(SessionEvent, ev)  # the type check above is a set lookup mypy can't follow
    current = sessions.get(sev.session)
    if current is None:
        return
    update = session_changes(current, sev)
    update["updated_offset"] = env.offset
    history[sev.session] = _book(
        history.get(sev.session, _EMPTY_HISTORY), current, env, sev, update
    )
    sessions[sev.session] = current.model_copy(update=update)


def _created(ev: SessionCreated, offset: int) -> Session:
    # model_construct: the event was validated when decided; an odd value in an old
    # log must load rather than stop the hub.
    return Session.model_construct(
        id=ev.session,
        title=ev.title,
        tempo=ev.tempo,
        meter=ev.meter,
        key=ev.key,
        created_at=ev.created_at,
        updated_offset=offset,
    )


def _book(
    hist: UndoHistory, s: Session, env: Envelope, ev: SessionEvent, update: dict[str, Any]
) -> UndoHistory:
    """Undo/redo bookkeeping for one applied session event; mirrors the group ids
    into ``update`` for the session's ``undo_stack``/``redo_stack``.

    ``do`` events sharing a group form one step (a fresh group clears redo);
    ``undo``/``redo`` events carry the group they revert/replay: the first of
    them moves that step to the other stack and the rest of the same command
    join it there. ``system`` events are not undoable and keep redo.
    """
    undo, redo = hist.undo, hist.redo
    if env.cause == "do":
        group = env.group or f"@{env.offset}"
        if undo and undo[-1].group == group:
            return UndoHistory((*undo[:-1], _joined(undo[-1], ev)), redo)
        update["undo_stack"] = (*s.undo_stack, group)[-MAX_UNDO_GROUPS:]
        update["redo_stack"] = ()
        return UndoHistory((*undo, UndoStep(group, (ev,)))[-MAX_UNDO_GROUPS:], ())
    if env.cause == "undo":
        # The redo step is rebuilt from what undo actually applied (inverted, in the
        # original order), so redo restores the state undo found, e.g. with a take a
        # job added after the command.
        back = inverse(ev)
        if undo and undo[-1].group == env.group:
            update["undo_stack"] = s.undo_stack[:-1]
            update["redo_stack"] = (*s.redo_stack, undo[-1].group)
            return UndoHistory(undo[:-1], (*redo, UndoStep(undo[-1].group, (back,))))
        if redo and redo[-1].group == env.group:
            top = redo[-1]
            return UndoHistory(undo, (*redo[:-1], UndoStep(top.group, (back, *top.events))))
    if env.cause == "redo":
        if redo and redo[-1].group == env.group:
            update["undo_stack"] = (*s.undo_stack, redo[-1].group)
            update["redo_stack"] = s.redo_stack[:-1]
            return UndoHistory((*undo, UndoStep(redo[-1].group, (ev,))), redo[:-1])
        if undo and undo[-1].group == env.group:
            return UndoHistory((*undo[:-1], _joined(undo[-1], ev)), redo)
    return hist


def _joined(step: UndoStep, ev: SessionEvent) -> UndoStep:
    return UndoStep(step.group, (*step.events, ev))


# --- inverses -----------------------------------------------------------------------


def inverse(ev: SessionEvent) -> SessionEvent:
    """The event that undoes ``ev``, computed from ``ev`` alone.

    ``SessionDeleted`` has none (the session's content is not in the event, and
    a deleted session has no history to undo from): it raises ValueError.
    """
    s = ev.session
    if isinstance(ev, SessionCreated):
        return SessionDeleted(session=s)
    if isinstance(ev, SessionDeleted):
        raise ValueError("deleting a session cannot be undone; import its export instead")
    if isinstance(ev, SessionRenamed):
        return SessionRenamed(session=s, title=ev.old_title, old_title=ev.title)
    if isinstance(ev, TempoSet):
        return TempoSet(session=s, bpm=ev.old_bpm, old_bpm=ev.bpm)
    if isinstance(ev, MeterSet):
        return MeterSet(session=s, meter=ev.old_meter, old_meter=ev.meter)
    if isinstance(ev, KeySet):
        return KeySet(session=s, key=ev.old_key, old_key=ev.key)
    if isinstance(ev, SectionAdded):
        return SectionRemoved(session=s, section=ev.section, index=ev.index)
    if isinstance(ev, SectionRemoved):
        return SectionAdded(session=s, section=ev.section, index=ev.index)
    if isinstance(ev, SectionMoved):
        return SectionMoved(session=s, section=ev.section, index=ev.old_index, old_index=ev.index)
    if isinstance(ev, SectionRenamed):
        return SectionRenamed(session=s, section=ev.section, name=ev.old_name, old_name=ev.name)
    if isinstance(ev, SectionResized):
        return SectionResized(session=s, section=ev.section, bars=ev.old_bars, old_bars=ev.bars)
    if isinstance(ev, SectionPropsSet):
        return SectionPropsSet(
            session=s,
            section=ev.section,
            tempo=ev.old_tempo,
            key=ev.old_key,
            old_tempo=ev.tempo,
            old_key=ev.key,
        )
    if isinstance(ev, SectionLocked):
        return SectionLocked(session=s, section=ev.section, locked=not ev.locked)
    if isinstance(ev, TakeAdded):
        index = -1 if ev.index is None else ev.index  # informational; removal goes by id
        return TakeRemoved(
            session=s, section=ev.section, take=ev.take, index=index, was_chosen=ev.chosen
        )
    if isinstance(ev, TakeRemoved):
        return TakeAdded(
            session=s, section=ev.section, take=ev.take, index=ev.index, chosen=ev.was_chosen
        )
    if isinstance(ev, TakeStatusSet):
        return TakeStatusSet(
            session=s, section=ev.section, take=ev.take, status=ev.old_status, old_status=ev.status
        )
    return TakeChosen(session=s, section=ev.section, take=ev.old_take, old_take=ev.take)


# --- applying one session event to one session (also used by decide to look ahead) --


def apply_session_event(s: Session, ev: SessionEvent) -> Session:
    """``s`` after ``ev`` (events naming missing sections/takes leave it unchanged).

    Create and delete are not handled here: they add or remove whole sessions.
    """
    update = session_changes(s, ev)
    return s.model_copy(update=update) if update else s


def session_changes(s: Session, ev: SessionEvent) -> dict[str, Any]:
    """The fields of ``s`` that ``ev`` changes, as a ``model_copy`` update (one copy per event)."""
    if isinstance(ev, SessionRenamed):
        return {"title": ev.title}
    if isinstance(ev, TempoSet):
        return {"tempo": ev.bpm}
    if isinstance(ev, MeterSet):
        return {"meter": ev.meter}
    if isinstance(ev, KeySet):
        return {"key": ev.key}
    sections = s.sections
    if isinstance(ev, SectionAdded):
        if _find(sections, ev.section.id) >= 0:
            return {}
        at = _clamp(ev.index, len(sections))
        return {"sections": (*sections[:at], ev.section, *sections[at:])}
    if isinstance(ev, SectionRemoved | SectionMoved):
        i = _find(sections, ev.section.id if isinstance(ev, SectionRemoved) else ev.section)
        if i < 0:
            return {}
        rest = sections[:i] + sections[i + 1 :]
        if isinstance(ev, SectionRemoved):
            return {"sections": rest}
        at = _clamp(ev.index, len(rest))
        return {"sections": (*rest[:at], sections[i], *rest[at:])}
    section_id = getattr(ev, "section", None)
    i = _find(sections, section_id) if isinstance(section_id, str) else -1
    if i < 0:
        return {}
    change = _section_changes(sections[i], ev)
    if not change:
        return {}
    new = sections[i].model_copy(update=change)
    return {"sections": (*sections[:i], new, *sections[i + 1 :])}


def _section_changes(sec: Section, ev: SessionEvent) -> dict[str, Any]:
    if isinstance(ev, SectionRenamed):
        return {"name": ev.name}
    if isinstance(ev, SectionResized):
        return {"bars": ev.bars}
    if isinstance(ev, SectionPropsSet):
        return {"tempo": ev.tempo, "key": ev.key}
    if isinstance(ev, SectionLocked):
        return {"locked": ev.locked}
    takes = sec.takes
    if isinstance(ev, TakeAdded):
        if _find(takes, ev.take.id) >= 0:
            return {}
        at = len(takes) if ev.index is None else _clamp(ev.index, len(takes))
        update: dict[str, Any] = {"takes": (*takes[:at], ev.take, *takes[at:])}
        if ev.chosen:
            update["chosen_take"] = ev.take.id
        return update
    if isinstance(ev, TakeRemoved):
        i = _find(takes, ev.take.id)
        if i < 0:
            return {}
        update = {"takes": takes[:i] + takes[i + 1 :]}
        if sec.chosen_take == ev.take.id:
            update["chosen_take"] = None
        return update
    if isinstance(ev, TakeStatusSet):
        i = _find(takes, ev.take)
        if i < 0:
            return {}
        new = takes[i].model_copy(update={"status": ev.status})
        return {"takes": (*takes[:i], new, *takes[i + 1 :])}
    if isinstance(ev, TakeChosen):
        if ev.take is not None and _find(takes, ev.take) < 0:
            return {}
        return {"chosen_take": ev.take}
    return {}


_ID = attrgetter("id")


def _find(items: tuple[Section, ...] | tuple[Take, ...], item_id: str) -> int:
    """Index of the item with this id, or -1 (the scan runs in C: replay stays fast)."""
    try:
        return list(map(_ID, items)).index(item_id)
    except ValueError:
        return -1


def _clamp(index: int, length: int) -> int:
    return max(0, min(index, length))
