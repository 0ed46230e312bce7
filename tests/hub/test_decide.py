"""decide(): every command's events and ack result, every refusal's error code, purity."""

from __future__ import annotations

from typing import Any

import pytest
from decidekit import DecideHarness

from hub.decide import decide, inverse, rebase
from hub.errors import ErrorCode, HubError
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
    SessionRenamed,
    TakeAdded,
    TakeChosen,
    TakeRemoved,
    TakeStatusSet,
    TempoSet,
    topic_of,
)
from hub.ids import new_id
from hub.model import Meter, Section, Session, Take
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
from hub.state import reduce

Hub = DecideHarness


OP = {"op_id": "op"}


def cmd(cls: type[SessionCommand], **kw: Any) -> SessionCommand:
    return cls.model_validate({**OP, **kw})


@pytest.fixture
def hub() -> Hub:
    return DecideHarness()


@pytest.fixture
def sid(hub: Hub) -> str:
    return str(hub.apply(cmd(CreateSession, title="Song", tempo=100, key="C")).result["session"])


def add_section(hub: Hub, sid: str, name: str = "verse", **kw: Any) -> str:
    return str(hub.apply(cmd(AddSection, session=sid, name=name, **kw)).result["section"])


def add_take(hub: Hub, sid: str, sec: str, artifact: str) -> str:
    return str(hub.apply(cmd(AddTake, session=sid, section=sec, artifact=artifact)).result["take"])


def expect_refused(hub: Hub, c: SessionCommand, code: ErrorCode, **kw: Any) -> HubError:
    before = hub.state
    with pytest.raises(HubError) as info:
        hub.apply(c, **kw)
    assert info.value.code == code, info.value
    assert hub.state is before
    return info.value


# --- each command ---------------------------------------------------------------------


def test_create_session(hub: Hub) -> None:
    d = hub.apply(cmd(CreateSession, title="Song", tempo=90, meter={"numerator": 3}, key="Am"))
    assert d.result == {"session": "ses_1"} and d.cause == "do" and d.group == "grp_2"
    assert d.events == [
        SessionCreated(
            session="ses_1",
            title="Song",
            tempo=90,
            meter=Meter(numerator=3),
            key="Am",
            created_at=42.0,
        )
    ]
    s = hub.session("ses_1")
    assert (s.title, s.tempo, s.meter.numerator, s.key, s.created_at) == ("Song", 90, 3, "Am", 42.0)


def test_session_level_commands(hub: Hub, sid: str) -> None:
    assert hub.apply(cmd(RenameSession, session=sid, title="B")).events == [
        SessionRenamed(session=sid, title="B", old_title="Song")
    ]
    assert hub.apply(cmd(SetTempo, session=sid, bpm=80)).events == [
        TempoSet(session=sid, bpm=80, old_bpm=100)
    ]
    m = Meter(numerator=7, denominator=8)
    assert hub.apply(cmd(SetMeter, session=sid, meter=m)).events == [
        MeterSet(session=sid, meter=m, old_meter=Meter())
    ]
    assert hub.apply(cmd(SetKey, session=sid, key=None)).events == [
        KeySet(session=sid, key=None, old_key="C")
    ]
    s = hub.session(sid)
    assert (s.title, s.tempo, s.meter, s.key) == ("B", 80, m, None)


def test_unchanged_commands_ack_without_events(hub: Hub, sid: str) -> None:
    sec = add_section(hub, sid, bars=8)
    t = add_take(hub, sid, sec, "art_a")
    hub.apply(cmd(ChooseTake, session=sid, section=sec, take=t))
    before = hub.state
    for c in [
        cmd(RenameSession, session=sid, title="Song"),
        cmd(SetTempo, session=sid, bpm=100),
        cmd(SetMeter, session=sid, meter={}),
        cmd(SetKey, session=sid, key="C"),
        cmd(MoveSection, session=sid, section=sec, index=0),
        cmd(RenameSection, session=sid, section=sec, name="verse"),
        cmd(ResizeSection, session=sid, section=sec, bars=8),
        cmd(SetSectionProps, session=sid, section=sec),
        cmd(LockSection, session=sid, section=sec, locked=False),
        cmd(ApproveTake, session=sid, section=sec, take=t),
        cmd(ChooseTake, session=sid, section=sec, take=t),
    ]:
        d = hub.apply(c)
        assert d.events == [] and d.group is None, c.type
    assert hub.state is before


def test_add_section_positions(hub: Hub, sid: str) -> None:
    a = add_section(hub, sid, "verse", bars=4)
    d = hub.apply(cmd(AddSection, session=sid, name="intro", bars=2, index=0, tempo=90, key="G"))
    b = d.result["section"]
    assert d.events == [
        SectionAdded(
            session=sid, section=Section(id=b, name="intro", bars=2, tempo=90, key="G"), index=0
        )
    ]
    c = add_section(hub, sid, "outro")
    assert [x.id for x in hub.session(sid).sections] == [b, a, c]
    assert hub.session(sid).sections[2].bars == 8  # the protocol default


def test_section_commands(hub: Hub, sid: str) -> None:
    a, b = add_section(hub, sid, "a"), add_section(hub, sid, "b")
    assert hub.apply(cmd(MoveSection, session=sid, section=a, index=1)).events == [
        SectionMoved(session=sid, section=a, index=1, old_index=0)
    ]
    assert [x.id for x in hub.session(sid).sections] == [b, a]
    assert hub.apply(cmd(RenameSection, session=sid, section=a, name="hook")).events == [
        SectionRenamed(session=sid, section=a, name="hook", old_name="a")
    ]
    assert hub.apply(cmd(ResizeSection, session=sid, section=a, bars=3)).events == [
        SectionResized(session=sid, section=a, bars=3, old_bars=8)
    ]
    assert hub.apply(cmd(SetSectionProps, session=sid, section=a, tempo=140, key="E")).events == [
        SectionPropsSet(session=sid, section=a, tempo=140, key="E", old_tempo=None, old_key=None)
    ]
    assert hub.apply(cmd(LockSection, session=sid, section=a)).events == [
        SectionLocked(session=sid, section=a, locked=True)
    ]
    sec_b = hub.session(sid).section(b)
    assert hub.apply(cmd(RemoveSection, session=sid, section=b)).events == [
        SectionRemoved(session=sid, section=sec_b, index=0)
    ]
    only = hub.session(sid).sections
    assert len(only) == 1 and (
        only[0].name,
        only[0].bars,
        only[0].tempo,
        only[0].key,
        only[0].locked,
    ) == (
        "hook",
        3,
        140,
        "E",
        True,
    )


def test_take_commands(hub: Hub, sid: str) -> None:
    sec = add_section(hub, sid)
    d = hub.apply(cmd(AddTake, session=sid, section=sec, artifact="art_1", label="v1"))
    t1 = d.result["take"]
    assert d.events == [
        TakeAdded(session=sid, section=sec, take=Take(id=t1, artifact_id="art_1", label="v1"))
    ]
    t2 = add_take(hub, sid, sec, "art_2")
    assert hub.apply(cmd(ApproveTake, session=sid, section=sec, take=t2)).events == [
        TakeStatusSet(session=sid, section=sec, take=t2, status="approved", old_status="pending")
    ]
    # choosing a pending take approves it, so the chosen take is always approved
    assert hub.apply(cmd(ChooseTake, session=sid, section=sec, take=t1)).events == [
        TakeStatusSet(session=sid, section=sec, take=t1, status="approved", old_status="pending"),
        TakeChosen(session=sid, section=sec, take=t1, old_take=None),
    ]
    assert hub.apply(cmd(ChooseTake, session=sid, section=sec, take=t2)).events == [
        TakeChosen(session=sid, section=sec, take=t2, old_take=t1)
    ]
    # rejecting the chosen take clears the choice first
    assert hub.apply(cmd(RejectTake, session=sid, section=sec, take=t2)).events == [
        TakeChosen(session=sid, section=sec, take=None, old_take=t2),
        TakeStatusSet(session=sid, section=sec, take=t2, status="rejected", old_status="approved"),
    ]
    hub.apply(cmd(ChooseTake, session=sid, section=sec, take=t1))
    assert hub.apply(cmd(ChooseTake, session=sid, section=sec, take=None)).events == [
        TakeChosen(session=sid, section=sec, take=None, old_take=t1)
    ]
    hub.apply(cmd(ChooseTake, session=sid, section=sec, take=t1))
    take1 = hub.session(sid).sections[0].take(t1)
    assert take1 is not None
    assert hub.apply(cmd(RemoveTake, session=sid, section=sec, take=t1)).events == [
        TakeRemoved(session=sid, section=sec, take=take1, index=0, was_chosen=True)
    ]
    s = hub.session(sid).sections[0]
    assert (
        [t.id for t in s.takes] == [t2]
        and s.chosen_take is None
        and s.takes[0].status == "rejected"
    )


def test_delete_session(hub: Hub, sid: str) -> None:
    d = hub.apply(cmd(DeleteSession, session=sid))
    assert d.events == [SessionDeleted(session=sid)] and d.result == {"session": sid}
    assert sid not in hub.state.sessions
    expect_refused(hub, cmd(Undo, session=sid), ErrorCode.unknown_session)


# --- refusals -------------------------------------------------------------------------


def test_unknown_session_for_every_session_command(hub: Hub) -> None:
    for c in [
        cmd(RenameSession, session="nope", title="x"),
        cmd(DeleteSession, session="nope"),
        cmd(SetTempo, session="nope", bpm=90),
        cmd(AddSection, session="nope", name="x"),
        cmd(AddTake, session="nope", section="s", artifact="a"),
        cmd(Undo, session="nope"),
        cmd(Redo, session="nope"),
    ]:
        err = expect_refused(hub, c, ErrorCode.unknown_session)
        assert err.details == {"session": "nope"}


def test_unknown_section_and_take(hub: Hub, sid: str) -> None:
    for c in [
        cmd(RemoveSection, session=sid, section="nope"),
        cmd(MoveSection, session=sid, section="nope", index=0),
        cmd(RenameSection, session=sid, section="nope", name="x"),
        cmd(ResizeSection, session=sid, section="nope", bars=2),
        cmd(SetSectionProps, session=sid, section="nope"),
        cmd(LockSection, session=sid, section="nope"),
        cmd(AddTake, session=sid, section="nope", artifact="a"),
        cmd(ChooseTake, session=sid, section="nope", take=None),
    ]:
        expect_refused(hub, c, ErrorCode.unknown_section)
    sec = add_section(hub, sid)
    for cls in (RemoveTake, ApproveTake, RejectTake, ChooseTake):
        expect_refused(hub, cmd(cls, session=sid, section=sec, take="nope"), ErrorCode.unknown_take)


def test_locked_section_refuses_changes_but_unlocks_and_moves(hub: Hub, sid: str) -> None:
    sec = add_section(hub, sid)
    other = add_section(hub, sid, "chorus")
    t = add_take(hub, sid, sec, "art_1")
    hub.apply(cmd(LockSection, session=sid, section=sec))
    for c in [
        cmd(RenameSection, session=sid, section=sec, name="x"),
        cmd(ResizeSection, session=sid, section=sec, bars=2),
        cmd(SetSectionProps, session=sid, section=sec, tempo=90),
        cmd(RemoveSection, session=sid, section=sec),
        cmd(AddTake, session=sid, section=sec, artifact="art_2"),
        cmd(RemoveTake, session=sid, section=sec, take=t),
        cmd(ApproveTake, session=sid, section=sec, take=t),
        cmd(RejectTake, session=sid, section=sec, take=t),
        cmd(ChooseTake, session=sid, section=sec, take=t),
    ]:
        err = expect_refused(hub, c, ErrorCode.section_locked)
        assert err.details["section"] == sec and err.suggestions
    assert hub.apply(
        cmd(MoveSection, session=sid, section=sec, index=1)
    ).events  # arrangement, not content
    assert hub.apply(
        cmd(RenameSection, session=sid, section=other, name="hook")
    ).events  # others unaffected
    assert hub.apply(cmd(LockSection, session=sid, section=sec, locked=False)).events == [
        SectionLocked(session=sid, section=sec, locked=False)
    ]
    assert hub.apply(cmd(ResizeSection, session=sid, section=sec, bars=2)).events


def test_invalid_indexes(hub: Hub, sid: str) -> None:
    a = add_section(hub, sid)
    add_section(hub, sid)
    err = expect_refused(
        hub, cmd(MoveSection, session=sid, section=a, index=2), ErrorCode.validation_failed
    )
    assert err.details["errors"][0]["loc"] == ["index"]
    expect_refused(hub, cmd(AddSection, session=sid, name="x", index=3), ErrorCode.validation_failed)
    assert hub.apply(cmd(AddSection, session=sid, name="x", index=2)).events  # appending is fine


def test_take_conflicts_and_unknown_artifacts(hub: Hub, sid: str) -> None:
    sec = add_section(hub, sid)
    other = add_section(hub, sid)
    t = add_take(hub, sid, sec, "art_1")
    err = expect_refused(hub, cmd(AddTake, session=sid, section=sec, artifact="art_1"), ErrorCode.conflict)
    assert err.details == {"take": t, "artifact": "art_1"}
    assert hub.apply(
        cmd(AddTake, session=sid, section=other, artifact="art_1")
    ).events  # another section
    known = {"art_1", "art_2"}
    expect_refused(
        hub,
        cmd(AddTake, session=sid, section=sec, artifact="art_9"),
        ErrorCode.unknown_artifact,
        artifact_exists=known.__contains__,
    )
    assert hub.apply(
        cmd(AddTake, session=sid, section=sec, artifact="art_2"), artifact_exists=known.__contains__
    ).events


def test_nothing_to_undo_or_redo(hub: Hub, sid: str) -> None:
    expect_refused(hub, cmd(Undo, session=sid), ErrorCode.nothing_to_undo)  # creation is not undoable
    expect_refused(hub, cmd(Redo, session=sid), ErrorCode.nothing_to_redo)
    hub.apply(cmd(SetTempo, session=sid, bpm=90))
    expect_refused(hub, cmd(Redo, session=sid), ErrorCode.nothing_to_redo)
    hub.apply(cmd(Undo, session=sid))
    expect_refused(hub, cmd(Undo, session=sid), ErrorCode.nothing_to_undo)


# --- undo decisions and inverses -----------------------------------------------------------


def test_undo_emits_inverses_newest_first_and_redo_replays(hub: Hub, sid: str) -> None:
    sec = add_section(hub, sid)
    t = add_take(hub, sid, sec, "art_1")
    do = hub.apply(cmd(ChooseTake, session=sid, section=sec, take=t))
    undo = hub.apply(cmd(Undo, session=sid))
    assert undo.cause == "undo" and undo.group == do.group and undo.result == {"undone": do.group}
    assert undo.events == [inverse(e) for e in reversed(do.events)]
    assert hub.session(sid).sections[0].chosen_take is None
    assert hub.session(sid).sections[0].takes[0].status == "pending"
    redo = hub.apply(cmd(Redo, session=sid))
    assert redo.cause == "redo" and redo.group == do.group and redo.result == {"redone": do.group}
    assert redo.events == do.events


def test_undo_rebases_on_system_events(hub: Hub, sid: str) -> None:
    """A take a job adds after a command survives undo and redo of that command."""
    sec = add_section(hub, sid)
    hub.apply(cmd(ResizeSection, session=sid, section=sec, bars=4))
    system = TakeAdded(session=sid, section=sec, take=Take(id="take_job", artifact_id="art_job"))
    env = Envelope(
        epoch="ep", offset=99, ts=0, topic=topic_of(system), cause="system", event=system
    )
    hub.state = reduce(hub.state, env)
    hub.apply(cmd(Undo, session=sid))  # the resize
    undo = hub.apply(cmd(Undo, session=sid))  # the add: removes the section as it is now
    removed = undo.events[0]
    assert isinstance(removed, SectionRemoved) and [t.id for t in removed.section.takes] == [
        "take_job"
    ]
    hub.apply(cmd(Redo, session=sid))
    assert [t.id for t in hub.session(sid).sections[0].takes] == ["take_job"]


def test_decide_is_pure_and_deterministic(hub: Hub, sid: str) -> None:
    add_section(hub, sid)
    state = hub.state
    c = cmd(AddSection, session=sid, name="x")
    first = decide(state, c, now=1.0, ids=lambda p: p + "fixed")
    second = decide(state, c, now=1.0, ids=lambda p: p + "fixed")
    assert first == second and hub.state is state and len(state.sessions[sid].sections) == 1


def test_rebase_refreshes_old_values() -> None:
    s = Session(
        id="s",
        title="Now",
        tempo=130,
        sections=(
            Section(
                id="a",
                name="cur",
                bars=5,
                takes=(Take(id="t", artifact_id="x", status="approved"),),
            ),
        ),
    )
    assert rebase(s, TempoSet(session="s", bpm=90, old_bpm=1)) == TempoSet(
        session="s", bpm=90, old_bpm=130
    )
    assert (
        rebase(s, SectionResized(session="s", section="a", bars=2, old_bars=1)).model_dump()[
            "old_bars"
        ]
        == 5
    )
    st = rebase(
        s,
        TakeStatusSet(session="s", section="a", take="t", status="rejected", old_status="pending"),
    )
    assert isinstance(st, TakeStatusSet) and st.old_status == "approved"
    gone = SectionRenamed(session="s", section="zz", name="n", old_name="o")
    assert rebase(s, gone) is gone  # its target is gone: passes through, the reducer ignores it


def test_new_id_shape() -> None:
    a, b = new_id("ses_"), new_id("ses_")
    assert a != b and a.startswith("ses_") and len(a) == 4 + 16
    assert all(c in "0123456789abcdef" for c in a[4:])
