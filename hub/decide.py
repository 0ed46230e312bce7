"""Commands to events: ``decide(state, command) -> Decision``, pure and total.

Ids and time are injected, so the same inputs always give the same events.
A command that changes nothing is acknowledged with no events. Every event
carries the old values it replaces, so ``inverse`` is a function of the event
alone; undo emits the inverses of the session's last command group (newest
first) and redo replays the group, both *rebased* on the current state (their
``old_*`` fields re-read) so a system event in between, such as a take added
by a finished job, never leaves a stale value in the log.

Rules worth knowing:
- A locked section refuses changes to its name, bars, tempo/key, takes and
  choice, and refuses removal; unlocking it and moving it are allowed.
- Choosing a take approves it, and rejecting the chosen take clears the choice,
  so the chosen take is always an approved one.
- Creating and deleting a session are not undoable: the history lives in the session.
- Undo/redo events carry the group id they revert or replay (``cause`` says which).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from hub import ids as idp
from hub.errors import ErrorCode, HubError
from hub.events import (
    Cause,
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
from hub.model import Section, Session, Take, TakeStatus
from hub.protocol import (
    AddSection,
    AddTake,
    ApproveTake,
    ChooseTake,
    CreateSession,
    DeleteSession,
    LockSection,
    MoveSection,
    Redo,
    RejectTake,
    RemoveSection,
    RemoveTake,
    RenameSection,
    RenameSession,
    ResizeSection,
    SessionCommand,
    SetKey,
    SetMeter,
    SetSectionProps,
    SetTempo,
    Undo,
)
from hub.state import HubState, UndoStep, apply_session_event, inverse

__all__ = ["Decision", "decide", "inverse", "rebase"]


@dataclass(frozen=True, slots=True)
class Decision:
    """What a command does: events to append (in order) under one cause and group."""

    events: list[SessionEvent]
    cause: Cause = "do"
    group: str | None = None  # None when there are no events
    session: str | None = None
    result: dict[str, Any] = field(default_factory=dict)  # the ack's result


def _any_artifact(_artifact_id: str) -> bool:
    return True


def decide(
    state: HubState,
    command: SessionCommand,
    *,
    now: float,
    ids: Callable[[str], str],
    artifact_exists: Callable[[str], bool] = _any_artifact,
) -> Decision:
    """Validate ``command`` against ``state``; raise HubError or return its events."""
    if isinstance(command, CreateSession):
        sid = ids(idp.SESSION)
        created = SessionCreated(
            session=sid,
            title=command.title,
            tempo=command.tempo,
            meter=command.meter,
            key=command.key,
            created_at=now,
        )
        return _do([created], sid, ids, {"session": sid})
    s = _session(state, command.session)
    if isinstance(command, Undo | Redo):
        return _undo_redo(state, s, command)
    events, result = _session_command(s, command, ids, artifact_exists)
    return _do(events, s.id, ids, result)


def _do(
    events: list[SessionEvent], sid: str, ids: Callable[[str], str], result: dict[str, Any]
) -> Decision:
    group = ids(idp.GROUP) if events else None
    return Decision(events=events, cause="do", group=group, session=sid, result=result)


def _session_command(
    s: Session,
    c: SessionCommand,
    ids: Callable[[str], str],
    artifact_exists: Callable[[str], bool],
) -> tuple[list[SessionEvent], dict[str, Any]]:
    sid = s.id
    if isinstance(c, RenameSession):
        return _if(
            c.title != s.title, SessionRenamed(session=sid, title=c.title, old_title=s.title)
        )
    if isinstance(c, DeleteSession):
        return [SessionDeleted(session=sid)], {"session": sid}
    if isinstance(c, SetTempo):
        return _if(c.bpm != s.tempo, TempoSet(session=sid, bpm=c.bpm, old_bpm=s.tempo))
    if isinstance(c, SetMeter):
        return _if(c.meter != s.meter, MeterSet(session=sid, meter=c.meter, old_meter=s.meter))
    if isinstance(c, SetKey):
        return _if(c.key != s.key, KeySet(session=sid, key=c.key, old_key=s.key))
    if isinstance(c, AddSection):
        index = len(s.sections) if c.index is None else c.index
        if index > len(s.sections):
            _invalid_index(index, len(s.sections), "section.add")
        sec = Section(id=ids(idp.SECTION), name=c.name, bars=c.bars, tempo=c.tempo, key=c.key)
        return [SectionAdded(session=sid, section=sec, index=index)], {"section": sec.id}
    if isinstance(c, MoveSection):
        i = _index(s, c.section)
        if c.index >= len(s.sections):
            _invalid_index(c.index, len(s.sections) - 1, "section.move")
        return _if(
            c.index != i, SectionMoved(session=sid, section=c.section, index=c.index, old_index=i)
        )
    if isinstance(c, LockSection):
        sec = _section(s, c.section)
        return _if(
            c.locked != sec.locked, SectionLocked(session=sid, section=sec.id, locked=c.locked)
        )
    if isinstance(c, RemoveSection | RenameSection | ResizeSection | SetSectionProps):
        return _section_command(s, c)
    return _take_command(s, c, ids, artifact_exists)


def _section_command(
    s: Session, c: RemoveSection | RenameSection | ResizeSection | SetSectionProps
) -> tuple[list[SessionEvent], dict[str, Any]]:
    sid, sec = s.id, _unlocked(s, c.section)
    if isinstance(c, RemoveSection):
        return [SectionRemoved(session=sid, section=sec, index=_index(s, sec.id))], {}
    if isinstance(c, RenameSection):
        return _if(
            c.name != sec.name,
            SectionRenamed(session=sid, section=sec.id, name=c.name, old_name=sec.name),
        )
    if isinstance(c, ResizeSection):
        return _if(
            c.bars != sec.bars,
            SectionResized(session=sid, section=sec.id, bars=c.bars, old_bars=sec.bars),
        )
    same = (c.tempo, c.key) == (sec.tempo, sec.key)
    props = SectionPropsSet(
        session=sid, section=sec.id, tempo=c.tempo, key=c.key, old_tempo=sec.tempo, old_key=sec.key
    )
    return _if(not same, props)


def _take_command(
    s: Session,
    c: SessionCommand,
    ids: Callable[[str], str],
    artifact_exists: Callable[[str], bool],
) -> tuple[list[SessionEvent], dict[str, Any]]:
    if not isinstance(c, AddTake | RemoveTake | ApproveTake | RejectTake | ChooseTake):
        raise HubError(ErrorCode.invalid_message, f"not a session command: {type(c).__name__}")
    sid, sec = s.id, _unlocked(s, c.section)
    if isinstance(c, AddTake):
        if not artifact_exists(c.artifact):
            raise HubError(
                ErrorCode.unknown_artifact,
                f"no artifact {c.artifact}",
                details={"artifact": c.artifact},
            )
        dup = next((t for t in sec.takes if t.artifact_id == c.artifact), None)
        if dup is not None:
            raise HubError(
                ErrorCode.conflict,
                f"artifact {c.artifact} is already take {dup.id} of this section",
                details={"take": dup.id, "artifact": c.artifact},
            )
        take = Take(id=ids(idp.TAKE), artifact_id=c.artifact, label=c.label)
        return [TakeAdded(session=sid, section=sec.id, take=take)], {"take": take.id}
    if isinstance(c, ChooseTake) and c.take is None:
        return _if(
            sec.chosen_take is not None,
            TakeChosen(session=sid, section=sec.id, take=None, old_take=sec.chosen_take),
        )
    take = _take(sec, c.take or "")
    chosen = sec.chosen_take == take.id
    if isinstance(c, RemoveTake):
        index = sec.takes.index(take)
        return [
            TakeRemoved(session=sid, section=sec.id, take=take, index=index, was_chosen=chosen)
        ], {}
    events: list[SessionEvent] = []
    if isinstance(c, RejectTake) and chosen:  # the chosen take stays an approved one
        events.append(TakeChosen(session=sid, section=sec.id, take=None, old_take=take.id))
    status: TakeStatus = "rejected" if isinstance(c, RejectTake) else "approved"
    if take.status != status:
        events.append(
            TakeStatusSet(
                session=sid, section=sec.id, take=take.id, status=status, old_status=take.status
            )
        )
    if isinstance(c, ChooseTake) and not chosen:
        events.append(
            TakeChosen(session=sid, section=sec.id, take=take.id, old_take=sec.chosen_take)
        )
    return events, {}


def _if(changed: bool, event: SessionEvent) -> tuple[list[SessionEvent], dict[str, Any]]:
    return ([event] if changed else []), {}


# --- undo / redo -------------------------------------------------------------------


def _undo_redo(state: HubState, s: Session, c: Undo | Redo) -> Decision:
    hist = state.undo_history(s.id)
    if isinstance(c, Undo):
        if not hist.undo:
            raise HubError(ErrorCode.nothing_to_undo, f"nothing to undo in session {s.id}")
        step: UndoStep = hist.undo[-1]
        planned = [inverse(e) for e in reversed(step.events)]
        cause: Cause = "undo"
    else:
        if not hist.redo:
            raise HubError(ErrorCode.nothing_to_redo, f"nothing to redo in session {s.id}")
        step = hist.redo[-1]
        planned = list(step.events)
        cause = "redo"
    events = _rebase_all(s, planned)
    key = "undone" if cause == "undo" else "redone"
    return Decision(
        events=events, cause=cause, group=step.group, session=s.id, result={key: step.group}
    )


def _rebase_all(s: Session, planned: Sequence[SessionEvent]) -> list[SessionEvent]:
    """Refresh each event's old values from the state it will actually apply to."""
    out: list[SessionEvent] = []
    for ev in planned:
        ev = rebase(s, ev)
        out.append(ev)
        s = apply_session_event(s, ev)
    return out


def rebase(s: Session, ev: SessionEvent) -> SessionEvent:
    """``ev`` with its ``old_*`` fields read from ``s``; unchanged if its target is gone."""
    if isinstance(ev, SessionRenamed):
        return ev.model_copy(update={"old_title": s.title})
    if isinstance(ev, TempoSet):
        return ev.model_copy(update={"old_bpm": s.tempo})
    if isinstance(ev, MeterSet):
        return ev.model_copy(update={"old_meter": s.meter})
    if isinstance(ev, KeySet):
        return ev.model_copy(update={"old_key": s.key})
    if isinstance(ev, SectionAdded | SessionCreated | SessionDeleted):
        return ev
    if isinstance(ev, SectionRemoved | SectionMoved):
        target = ev.section.id if isinstance(ev, SectionRemoved) else ev.section
        i = s.section_index(target)
        if i < 0:
            return ev
        if isinstance(ev, SectionRemoved):
            return ev.model_copy(update={"section": s.sections[i], "index": i})
        return ev.model_copy(update={"old_index": i})
    sec = s.section(ev.section)
    if sec is None:
        return ev
    if isinstance(ev, SectionRenamed):
        return ev.model_copy(update={"old_name": sec.name})
    if isinstance(ev, SectionResized):
        return ev.model_copy(update={"old_bars": sec.bars})
    if isinstance(ev, SectionPropsSet):
        return ev.model_copy(update={"old_tempo": sec.tempo, "old_key": sec.key})
    if isinstance(ev, TakeChosen):
        return ev.model_copy(update={"old_take": sec.chosen_take})
    if isinstance(ev, TakeRemoved | TakeStatusSet):
        take = sec.take(ev.take.id if isinstance(ev, TakeRemoved) else ev.take)
        if take is None:
            return ev
        if isinstance(ev, TakeStatusSet):
            return ev.model_copy(update={"old_status": take.status})
        current = {
            "take": take,
            "index": sec.takes.index(take),
            "was_chosen": sec.chosen_take == take.id,
        }
        return ev.model_copy(update=current)
    return ev  # SectionLocked, TakeAdded: nothing old to refresh


# --- lookups that raise the documented errors ---------------------------------------


def _session(state: HubState, session_id: str) -> Session:
    s = state.sessions.get(session_id)
    if s is None:
        raise HubError(
            ErrorCode.unknown_session,
            f"no session {session_id}",
            details={"session": session_id},
            suggestions=["session.list shows the live sessions"],
        )
    return s


def _section(s: Session, section_id: str) -> Section:
    sec = s.section(section_id)
    if sec is None:
        raise HubError(
            ErrorCode.unknown_section,
            f"session {s.id} has no section {section_id}",
            details={"session": s.id, "section": section_id},
        )
    return sec


def _index(s: Session, section_id: str) -> int:
    return s.sections.index(_section(s, section_id))


def _unlocked(s: Session, section_id: str) -> Section:
    sec = _section(s, section_id)
    if sec.locked:
        raise HubError(
            ErrorCode.section_locked,
            f"section {sec.name!r} is locked",
            details={"session": s.id, "section": sec.id},
            suggestions=["send section.lock with locked=false first"],
        )
    return sec


def _take(sec: Section, take_id: str) -> Take:
    take = sec.take(take_id)
    if take is None:
        raise HubError(
            ErrorCode.unknown_take,
            f"section {sec.id} has no take {take_id}",
            details={"section": sec.id, "take": take_id},
        )
    return take


def _invalid_index(index: int, highest: int, command: str) -> NoReturn:
    raise HubError(
        ErrorCode.validation_failed,
        f"{command}: index {index} is out of range (0..{highest})",
        details={"errors": [{"loc": ["index"], "msg": f"must be between 0 and {highest}"}]},
    )
