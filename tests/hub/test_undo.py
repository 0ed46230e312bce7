"""Undo/redo as compensating events: sequences, properties, and survival across rebuilds."""

from __future__ import annotations

from typing import Any

from decidekit import DecideHarness
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.decide import decide
from hub.errors import ErrorCode, HubError
from hub.events import SectionAdded, TakeAdded
from hub.model import Section, Take
from hub.protocol import (
    AddSection,
    AddTake,
    ApproveTake,
    ChooseTake,
    CreateSession,
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
from hub.state import EMPTY, replay


class Hub(DecideHarness):
    def run(self, cmd: SessionCommand) -> bool:
        """Apply a command; False when it was refused."""
        try:
            self.apply(cmd)
        except HubError:
            return False
        return True

    def content(self, sid: str) -> dict[str, Any]:
        """The session without bookkeeping (offset, undo/redo stacks)."""
        s = self.state.sessions[sid]
        return s.model_dump(exclude={"updated_offset", "undo_stack", "redo_stack"})

    def undo_depth(self, sid: str) -> int:
        return len(self.state.undo_history(sid).undo)


def c(cls: type[SessionCommand], **kw: Any) -> SessionCommand:
    return cls.model_validate({"op_id": "op", **kw})


def new_session(hub: Hub) -> str:
    """A session with two sections and takes, set up by system events (not undoable)."""
    known = set(hub.state.sessions)
    assert hub.run(c(CreateSession, title="Song"))
    (sid,) = set(hub.state.sessions) - known
    for i, name in enumerate(("verse", "chorus")):
        sec = Section(id=f"sec_{name}", name=name, bars=4 + i)
        hub.append(SectionAdded(session=sid, section=sec, index=i), "system", "setup")
        for k in range(2):
            take = Take(id=f"take_{name}{k}", artifact_id=f"art_{name}{k}")
            hub.append(TakeAdded(session=sid, section=sec.id, take=take), "system", "setup")
    assert hub.undo_depth(sid) == 0
    return sid


@st.composite
def a_command(draw: st.DrawFn, hub: Hub, sid: str) -> SessionCommand:
    s = hub.state.sessions[sid]
    sections = [x.id for x in s.sections] + ["sec_missing"]
    sec_id = draw(st.sampled_from(sections))
    sec = s.section(sec_id)
    takes = [t.id for t in sec.takes] if sec else []
    take_id = draw(st.sampled_from([*takes, "take_missing"]))
    index = draw(st.integers(0, len(s.sections) + 1))
    kind = draw(st.integers(0, 25))
    kind = kind if kind < 18 else 18 + kind % 2  # undo and redo come up often
    base = {"session": sid}
    on_sec = {**base, "section": sec_id}
    choices: list[SessionCommand] = [
        c(RenameSession, **base, title=draw(st.sampled_from(["Song", "B", "C"]))),
        c(SetTempo, **base, bpm=draw(st.sampled_from([90, 120, 140]))),
        c(SetMeter, **base, meter={"numerator": draw(st.sampled_from([3, 4, 7]))}),
        c(SetKey, **base, key=draw(st.sampled_from([None, "C", "Am"]))),
        c(AddSection, **base, name="new", bars=draw(st.integers(1, 16)), index=index),
        c(AddSection, **base, name="end"),
        c(RemoveSection, **on_sec),
        c(MoveSection, **on_sec, index=index),
        c(RenameSection, **on_sec, name=draw(st.sampled_from(["verse", "hook"]))),
        c(ResizeSection, **on_sec, bars=draw(st.integers(1, 16))),
        c(
            SetSectionProps,
            **on_sec,
            tempo=draw(st.sampled_from([None, 100])),
            key=draw(st.sampled_from([None, "D"])),
        ),
        c(LockSection, **on_sec, locked=draw(st.booleans())),
        c(AddTake, **on_sec, artifact=draw(st.sampled_from(["art_x", "art_y", "art_verse0"]))),
        c(RemoveTake, **on_sec, take=take_id),
        c(ApproveTake, **on_sec, take=take_id),
        c(RejectTake, **on_sec, take=take_id),
        c(ChooseTake, **on_sec, take=take_id),
        c(ChooseTake, **on_sec, take=None),
        c(Undo, **base),
        c(Redo, **base),
    ]
    return choices[kind]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_undo_all_restores_before_and_redo_all_restores_after(data: st.DataObject) -> None:
    hub = Hub()
    sid = new_session(hub)
    before = hub.content(sid)
    for _ in range(data.draw(st.integers(1, 25), label="commands")):
        hub.run(data.draw(a_command(hub, sid)))
    after = hub.content(sid)
    live = hub.state

    # survives a restart: the state rebuilt from the log is the live one, history included
    hub.state = replay(EMPTY, hub.envs)
    assert hub.state == live

    undone = 0
    while hub.run(c(Undo, session=sid)):
        undone += 1
    assert hub.content(sid) == before
    assert hub.undo_depth(sid) == 0

    hub.state = replay(EMPTY, hub.envs)  # and again, mid-way through the history
    for _ in range(undone):
        assert hub.run(c(Redo, session=sid))
    assert hub.content(sid) == after


def test_sequence_of_undos_and_redos() -> None:
    hub = Hub()
    sid = new_session(hub)
    s0 = hub.content(sid)
    assert hub.run(c(SetTempo, session=sid, bpm=90))
    s1 = hub.content(sid)
    assert hub.run(c(RemoveSection, session=sid, section="sec_verse"))
    s2 = hub.content(sid)
    assert hub.run(c(ChooseTake, session=sid, section="sec_chorus", take="take_chorus1"))
    s3 = hub.content(sid)

    assert hub.run(c(Undo, session=sid)) and hub.content(sid) == s2
    assert hub.run(c(Undo, session=sid)) and hub.content(sid) == s1
    assert hub.run(c(Redo, session=sid)) and hub.content(sid) == s2
    assert hub.run(c(Redo, session=sid)) and hub.content(sid) == s3
    assert not hub.run(c(Redo, session=sid))
    assert hub.run(c(Undo, session=sid)) and hub.run(c(Undo, session=sid))
    assert hub.run(c(Undo, session=sid)) and hub.content(sid) == s0
    assert [x.id for x in hub.state.sessions[sid].sections] == ["sec_verse", "sec_chorus"]

    # a new command after undo drops the redo history
    assert hub.run(c(SetKey, session=sid, key="Eb"))
    assert hub.state.sessions[sid].redo_stack == ()
    err = decide(hub.state, c(Undo, session=sid), now=0, ids=hub.ids)
    assert err.events and err.cause == "undo"
    try:
        decide(hub.state, c(Redo, session=sid), now=0, ids=hub.ids)
    except HubError as e:
        assert e.code == ErrorCode.nothing_to_redo
    else:
        raise AssertionError("redo after a new command must fail")


def test_removed_chosen_take_comes_back_in_place_and_chosen() -> None:
    hub = Hub()
    sid = new_session(hub)
    assert hub.run(c(ChooseTake, session=sid, section="sec_verse", take="take_verse0"))
    before = hub.content(sid)
    assert hub.run(c(RemoveTake, session=sid, section="sec_verse", take="take_verse0"))
    assert hub.state.sessions[sid].sections[0].chosen_take is None
    assert hub.run(c(Undo, session=sid))
    assert hub.content(sid) == before
    verse = hub.state.sessions[sid].sections[0]
    assert [t.id for t in verse.takes] == [
        "take_verse0",
        "take_verse1",
    ] and verse.chosen_take == "take_verse0"


def test_system_events_neither_undo_nor_clear_redo() -> None:
    hub = Hub()
    sid = new_session(hub)
    assert hub.run(c(SetTempo, session=sid, bpm=90))
    assert hub.run(c(Undo, session=sid))
    job_take = Take(id="take_job", artifact_id="art_job")
    hub.append(TakeAdded(session=sid, section="sec_chorus", take=job_take), "system", "grp_job")
    assert hub.state.sessions[sid].redo_stack != ()
    assert hub.run(c(Redo, session=sid)) and hub.state.sessions[sid].tempo == 90
    assert hub.run(c(Undo, session=sid)) and not hub.run(
        c(Undo, session=sid)
    )  # the job's take is no step
    assert hub.state.sessions[sid].sections[1].take("take_job") == job_take


def test_undo_history_is_per_session() -> None:
    hub = Hub()
    a = new_session(hub)
    b = new_session(hub)
    assert a != b
    assert hub.run(c(SetTempo, session=a, bpm=90))
    assert not hub.run(c(Undo, session=b))
    assert hub.run(c(Undo, session=a)) and hub.state.sessions[a].tempo == 120
