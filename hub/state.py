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
from typing import Any, get_args

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
from hub.model import Section, Session, SessionSummary

MAX_UNDO_GROUPS = 200  # per session; the oldest steps fall off

SESSION_EVENT_TYPES: tuple[type[Any], ...] = get_args(get_args(SessionEvent)[0])


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
    if not isinstance(ev, SESSION_EVENT_TYPES):
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
    current = sessions.get(ev.session)
    if current is None:
        return
    changed = apply_session_event(current, ev)
    before = history.get(ev.session, _EMPTY_HISTORY)
    hist = _book(before, env, ev)
    update: dict[str, Any] = {"updated_offset": env.offset}
    if hist.undo is not before.undo or hist.redo is not before.redo:  # cheap when unchanged
        history[ev.session] = hist
        update["undo_stack"] = tuple([step.group for step in hist.undo])
        update["redo_stack"] = tuple([step.group for step in hist.redo])
    sessions[ev.session] = changed.model_copy(update=update)


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


def _book(hist: UndoHistory, env: Envelope, ev: SessionEvent) -> UndoHistory:
    """Undo/redo bookkeeping for one applied session event.

    ``do`` events sharing a group form one step (a fresh group clears redo);
    ``undo``/``redo`` events carry the group they revert/replay: the first of
    them moves that step to the other stack and the rest of the same command
    join it there. ``system`` events are not undoable and keep redo.
    """
    if env.cause == "do":
        group = env.group or f"@{env.offset}"
        if hist.undo and hist.undo[-1].group == group:
            top = hist.undo[-1]
            return UndoHistory((*hist.undo[:-1], UndoStep(group, (*top.events, ev))), hist.redo)
        undo = (*hist.undo, UndoStep(group, (ev,)))[-MAX_UNDO_GROUPS:]
        return UndoHistory(undo, ())
    if env.cause == "undo":
        # The redo step is rebuilt from what undo actually applied (inverted, original
        # order), so redo restores state as undo found it, e.g. with a take a job
        # added after the command.
        back = inverse(ev)
        if hist.undo and hist.undo[-1].group == env.group:
            step = UndoStep(hist.undo[-1].group, (back,))
            return UndoHistory(hist.undo[:-1], (*hist.redo, step))
        if hist.redo and hist.redo[-1].group == env.group:
            top = hist.redo[-1]
            return UndoHistory(
                hist.undo, (*hist.redo[:-1], UndoStep(top.group, (back, *top.events)))
            )
    if env.cause == "redo":
        if hist.redo and hist.redo[-1].group == env.group:
            step = UndoStep(hist.redo[-1].group, (ev,))
            return UndoHistory((*hist.undo, step), hist.redo[:-1])
        if hist.undo and hist.undo[-1].group == env.group:
            top = hist.undo[-1]
            return UndoHistory((*hist.undo[:-1], UndoStep(top.group, (*top.events, ev))), hist.redo)
    return hist


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
    if isinstance(ev, SessionRenamed):
        return s.model_copy(update={"title": ev.title})
    if isinstance(ev, TempoSet):
        return s.model_copy(update={"tempo": ev.bpm})
    if isinstance(ev, MeterSet):
        return s.model_copy(update={"meter": ev.meter})
    if isinstance(ev, KeySet):
        return s.model_copy(update={"key": ev.key})
    if isinstance(ev, SectionAdded):
        if s.section(ev.section.id) is not None:
            return s
        at = _clamp(ev.index, len(s.sections))
        return _with_sections(s, (*s.sections[:at], ev.section, *s.sections[at:]))
    if isinstance(ev, SectionRemoved):
        return _with_sections(s, tuple(x for x in s.sections if x.id != ev.section.id))
    if isinstance(ev, SectionMoved):
        i = s.section_index(ev.section)
        if i < 0:
            return s
        rest = s.sections[:i] + s.sections[i + 1 :]
        at = _clamp(ev.index, len(rest))
        return _with_sections(s, (*rest[:at], s.sections[i], *rest[at:]))
    return _apply_to_section(s, ev)


def _apply_to_section(s: Session, ev: SessionEvent) -> Session:
    section_id = getattr(ev, "section", None)
    i = s.section_index(section_id) if isinstance(section_id, str) else -1
    if i < 0:
        return s
    sec = s.sections[i]
    new = _section_after(sec, ev)
    if new is sec:
        return s
    return _with_sections(s, (*s.sections[:i], new, *s.sections[i + 1 :]))


def _section_after(sec: Section, ev: SessionEvent) -> Section:
    if isinstance(ev, SectionRenamed):
        return sec.model_copy(update={"name": ev.name})
    if isinstance(ev, SectionResized):
        return sec.model_copy(update={"bars": ev.bars})
    if isinstance(ev, SectionPropsSet):
        return sec.model_copy(update={"tempo": ev.tempo, "key": ev.key})
    if isinstance(ev, SectionLocked):
        return sec.model_copy(update={"locked": ev.locked})
    if isinstance(ev, TakeAdded):
        if sec.take(ev.take.id) is not None:
            return sec
        at = len(sec.takes) if ev.index is None else _clamp(ev.index, len(sec.takes))
        update: dict[str, Any] = {"takes": (*sec.takes[:at], ev.take, *sec.takes[at:])}
        if ev.chosen:
            update["chosen_take"] = ev.take.id
        return sec.model_copy(update=update)
    if isinstance(ev, TakeRemoved):
        if sec.take(ev.take.id) is None:
            return sec
        update = {"takes": tuple(t for t in sec.takes if t.id != ev.take.id)}
        if sec.chosen_take == ev.take.id:
            update["chosen_take"] = None
        return sec.model_copy(update=update)
    if isinstance(ev, TakeStatusSet):
        takes = tuple(
            t.model_copy(update={"status": ev.status}) if t.id == ev.take else t for t in sec.takes
        )
        return sec.model_copy(update={"takes": takes})
    if isinstance(ev, TakeChosen):
        if ev.take is not None and sec.take(ev.take) is None:
            return sec
        return sec.model_copy(update={"chosen_take": ev.take})
    return sec


def _with_sections(s: Session, sections: tuple[Section, ...]) -> Session:
    return s.model_copy(update={"sections": sections})


def _clamp(index: int, length: int) -> int:
    return max(0, min(index, length))
