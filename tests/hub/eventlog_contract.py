"""The EventLog contract: every implementation must pass these tests.

Use it by subclassing :class:`EventLogContract` in a ``Test*`` class that
provides a ``make_log`` fixture returning a :data:`LogFactory`
(see tests/hub/test_eventlog.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, cast

import pytest
from pydantic import ValidationError

from hub.eventlog import (
    Batch,
    DuplicateOp,
    EventLog,
    HistoryCompacted,
    OpAck,
    PendingEvent,
    Snapshot,
)
from hub.events import (
    SCHEMA_VERSION,
    ArtifactRef,
    Envelope,
    FileReady,
    JobCompleted,
    JobNotes,
    NoteChunkData,
    SectionAdded,
    SessionCreated,
    TempoSet,
    topic_of,
)
from hub.model import Meter, Section, Take


class FakeClock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


LogFactory = Callable[[FakeClock], EventLog]


def tempo(i: int, session: str = "s1") -> PendingEvent:
    """A small event whose content identifies it (bpm = i)."""
    return PendingEvent(TempoSet(session=session, bpm=float(i), old_bpm=float(i - 1)))


def bpms(envs: list[Envelope]) -> list[float]:
    return [cast(TempoSet, e.event).bpm for e in envs]


def offsets(envs: list[Envelope]) -> list[int]:
    return [e.offset for e in envs]


def rich_events() -> list[PendingEvent]:
    """Events with nested models, tuples, arrays and free-form dicts."""
    take = Take(id="t1", artifact_id="a1", job_id="j1", variation_index=2, label="take one")
    notes = NoteChunkData(
        variation=[0, 0],
        onset=[0.0, 0.5],
        duration=[0.25, 0.125],
        onset_beats=[0.0, 1.0],
        duration_beats=[0.5, 0.25],
        pitch=[60, 64],
        velocity=[90, 72],
        instrument=[0, 128],
    )
    art = ArtifactRef(
        id="a1",
        hash="ab" * 32,
        url="/cas/" + "ab" * 32,
        mime="audio/midi",
        size=123,
        kind="midi",
        metadata={"bars": 8, "tags": ["x", "y"], "ratio": 0.1},
    )
    return [
        PendingEvent(
            SessionCreated(session="s1", title="Song", meter=Meter(numerator=7, denominator=8))
        ),
        PendingEvent(
            SectionAdded(
                session="s1",
                section=Section(id="v", name="verse", bars=8, tempo=96.5, takes=(take,)),
                index=0,
            ),
            cause="undo",
            group="g1",
            op_id="op-1",
        ),
        PendingEvent(JobNotes(job="j1", session="s1", seq=0, notes=notes)),
        PendingEvent(JobCompleted(job="j1", artifacts=[art], result={"n": 2})),
        PendingEvent(
            FileReady(artifact="a1", hash="ab" * 32, url="/x", mime="audio/midi", size=1),
            topic="custom-topic",
        ),
    ]


class EventLogContract:
    """Tests every EventLog must pass. Subclasses provide ``make_log``."""

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def log(self, make_log: LogFactory, clock: FakeClock) -> EventLog:
        return make_log(clock)

    # --- appending ---------------------------------------------------------------------

    def test_empty_log(self, log: EventLog) -> None:
        assert isinstance(log.epoch, str) and len(log.epoch) >= 16
        assert log.head() == 0
        assert log.first_retained() == 1
        assert log.read(0) == []
        assert log.latest_snapshot() is None

    def test_offsets_start_at_one_and_are_consecutive(self, log: EventLog) -> None:
        first = log.append([tempo(1), tempo(2), tempo(3)])
        second = log.append([tempo(4)])
        assert offsets(first) == [1, 2, 3]
        assert offsets(second) == [4]
        assert log.head() == 4
        assert offsets(log.read(0)) == [1, 2, 3, 4]
        assert bpms(log.read(0)) == [1.0, 2.0, 3.0, 4.0]

    def test_envelope_fields(self, log: EventLog, clock: FakeClock) -> None:
        clock.now = 1234.5
        envs = log.append(rich_events())
        for env, pending in zip(envs, rich_events(), strict=True):
            assert env.epoch == log.epoch
            assert env.ts == 1234.5
            assert env.schema_version == SCHEMA_VERSION
            assert env.event == pending.event
            assert env.topic == (pending.topic or topic_of(pending.event))
            assert (env.cause, env.group, env.op_id) == (
                pending.cause,
                pending.group,
                pending.op_id,
            )
        assert envs[0].topic == "session:s1"
        assert envs[3].topic == "jobs"
        assert envs[4].topic == "custom-topic"

    def test_read_returns_what_was_appended(self, log: EventLog) -> None:
        envs = log.append(rich_events())
        assert log.read(0) == envs

    def test_append_many_numbers_across_batches(self, log: EventLog) -> None:
        log.append([tempo(0)])
        results = log.append_many(
            [Batch([tempo(1), tempo(2)]), Batch([]), ([tempo(3)], None), Batch([tempo(4)])]
        )
        assert [offsets(r) for r in results] == [[2, 3], [], [4], [5]]
        assert bpms(log.read(0)) == [0.0, 1.0, 2.0, 3.0, 4.0]

    def test_empty_append_changes_nothing(self, log: EventLog) -> None:
        assert log.append([]) == []
        assert log.append_many([]) == []
        assert log.head() == 0

    def test_failing_batch_writes_nothing(self, log: EventLog) -> None:
        log.append([tempo(1)])
        bad = PendingEvent(cast(Any, object()))
        with pytest.raises(ValidationError):
            log.append([tempo(2), tempo(3), bad, tempo(4)])
        with pytest.raises(ValidationError):
            log.append_many([Batch([tempo(5)], OpAck("op-x")), Batch([tempo(6), bad])])
        assert log.head() == 1
        assert offsets(log.read(0)) == [1]
        assert log.find_op("op-x") is None
        assert offsets(log.append([tempo(7)])) == [2]

    def test_many_events_in_batches(self, log: EventLog) -> None:
        for b in range(200):
            log.append([tempo(b * 100 + k) for k in range(100)])
        assert log.head() == 20_000
        everything = log.read(0)
        assert offsets(everything) == list(range(1, 20_001))
        assert bpms(everything) == [float(i) for i in range(20_000)]
        assert offsets(log.read(19_990)) == list(range(19_991, 20_001))

    def test_batches_become_visible_whole_while_another_thread_writes(self, log: EventLog) -> None:
        size, groups = 5, 120
        done = threading.Event()
        errors: list[BaseException] = []

        def writer() -> None:
            try:
                for g in range(0, groups, 2):
                    log.append_many(
                        [
                            Batch([tempo(i) for i in range(n * size, (n + 1) * size)])
                            for n in (g, g + 1)
                        ]
                    )
            except BaseException as exc:  # surfaced below
                errors.append(exc)
            finally:
                done.set()

        thread = threading.Thread(target=writer)
        thread.start()
        seen: list[Envelope] = []
        while True:
            finished = done.is_set()
            page = log.read(seen[-1].offset if seen else 0)
            seen.extend(page)
            # Each read ends on a batch boundary: no half-committed batch is visible.
            assert len(seen) % size == 0
            if finished and not page:
                break
        thread.join()
        assert not errors
        assert offsets(seen) == list(range(1, size * groups + 1))
        assert bpms(seen) == [float(i) for i in range(size * groups)]

    # --- reading -----------------------------------------------------------------------

    def test_read_after_limit_and_topics(self, log: EventLog) -> None:
        log.append([tempo(i, session="a" if i % 2 else "b") for i in range(1, 11)])
        assert offsets(log.read(7)) == [8, 9, 10]
        assert offsets(log.read(10)) == []
        assert offsets(log.read(25)) == []
        assert offsets(log.read(2, limit=3)) == [3, 4, 5]
        assert log.read(2, limit=0) == []
        only_a = log.read(0, topics=lambda t: t == "session:a")
        assert offsets(only_a) == [1, 3, 5, 7, 9]
        # The limit counts matching events, not scanned ones.
        assert offsets(log.read(1, topics=lambda t: t == "session:a", limit=2)) == [3, 5]
        assert log.read(0, topics=lambda t: False) == []

    def test_read_rejects_bad_arguments(self, log: EventLog) -> None:
        with pytest.raises(ValueError):
            log.read(-1)
        with pytest.raises(ValueError):
            log.read(0, limit=-1)

    # --- snapshots ---------------------------------------------------------------------

    def test_snapshots(self, log: EventLog) -> None:
        log.append([tempo(i) for i in range(5)])
        log.save_snapshot(2, b"state@2")
        assert log.latest_snapshot() == (2, b"state@2")
        log.save_snapshot(4, b"state@4")
        snap = log.latest_snapshot()
        assert snap is not None and snap.offset == 4 and snap.data == b"state@4"
        with pytest.raises(ValueError):
            log.save_snapshot(3, b"older than the latest")
        with pytest.raises(ValueError):
            log.save_snapshot(6, b"beyond the head")
        assert log.latest_snapshot() == (4, b"state@4")

    # --- retention ---------------------------------------------------------------------

    def _two_ages(self, log: EventLog, clock: FakeClock) -> None:
        """Offsets 1..10 written at t=1000, 11..20 at t=5000."""
        clock.now = 1000.0
        log.append([tempo(i) for i in range(1, 11)])
        clock.now = 5000.0
        log.append([tempo(i) for i in range(11, 21)])

    def test_compact_by_age_snapshots_first(self, log: EventLog, clock: FakeClock) -> None:
        self._two_ages(log, clock)
        asked: list[int] = []

        def snap(offset: int) -> bytes:
            asked.append(offset)
            assert offset == 10 and log.first_retained() == 1  # called before deleting
            return b"state@10"

        deleted = log.compact(keep_seconds=100, keep_events=5, now=5050, snapshot=snap)
        assert deleted == 10 and asked == [10]
        assert log.first_retained() == 11
        assert log.head() == 20
        assert log.latest_snapshot() == (10, b"state@10")
        assert offsets(log.read(10)) == list(range(11, 21))
        with pytest.raises(HistoryCompacted) as info:
            log.read(9)
        assert info.value.first_retained == 11
        with pytest.raises(HistoryCompacted):
            log.read(0, limit=1)
        assert offsets(log.append([tempo(21)])) == [21]

    def test_compact_keeps_newest_events(self, log: EventLog, clock: FakeClock) -> None:
        self._two_ages(log, clock)
        # Everything is old, but the newest 15 are kept.
        deleted = log.compact(
            keep_seconds=10, keep_events=15, now=99_999, snapshot=lambda o: b"s%d" % o
        )
        assert deleted == 5
        assert log.first_retained() == 6
        assert log.latest_snapshot() == (5, b"s5")

    def test_compact_needs_both_rules(self, log: EventLog, clock: FakeClock) -> None:
        self._two_ages(log, clock)

        def never(offset: int) -> bytes:
            raise AssertionError("nothing to compact, no snapshot needed")

        # Beyond the newest 5 but all young: nothing goes.
        assert log.compact(keep_seconds=10_000, keep_events=5, now=5050, snapshot=never) == 0
        # All old but within the newest 25: nothing goes.
        assert log.compact(keep_seconds=1, keep_events=25, now=99_999, snapshot=never) == 0
        assert log.first_retained() == 1
        assert log.latest_snapshot() is None

    def test_a_young_event_protects_later_ones(self, log: EventLog, clock: FakeClock) -> None:
        for t in (1000.0, 1000.0, 3000.0, 1000.0, 1000.0):  # the wall clock stepped back
            clock.now = t
            log.append([tempo(int(t))])
        deleted = log.compact(keep_seconds=500, keep_events=0, now=3100, snapshot=lambda o: b"")
        assert deleted == 2
        assert offsets(log.read(2)) == [3, 4, 5]

    def test_compact_reuses_a_newer_snapshot(self, log: EventLog, clock: FakeClock) -> None:
        self._two_ages(log, clock)
        log.save_snapshot(18, b"state@18")

        def never(offset: int) -> bytes:
            raise AssertionError("a snapshot at 18 already covers the cut")

        assert log.compact(keep_seconds=0, keep_events=3, now=99_999, snapshot=never) == 17
        assert log.first_retained() == 18
        assert log.latest_snapshot() == (18, b"state@18")

    def test_compact_everything(self, log: EventLog, clock: FakeClock) -> None:
        self._two_ages(log, clock)
        assert (
            log.compact(keep_seconds=0, keep_events=0, now=99_999, snapshot=lambda o: b"all") == 20
        )
        assert log.head() == 20
        assert log.first_retained() == 21
        assert log.read(20) == []
        with pytest.raises(HistoryCompacted):
            log.read(19)
        assert offsets(log.append([tempo(99)])) == [21]
        # A second pass with nothing new to delete is a no-op.
        assert log.compact(keep_seconds=0, keep_events=1, now=99_999, snapshot=lambda o: b"") == 0

    def test_snapshot_cannot_go_below_the_compacted_prefix(
        self, log: EventLog, clock: FakeClock
    ) -> None:
        self._two_ages(log, clock)
        log.compact(keep_seconds=100, keep_events=0, now=5050, snapshot=lambda o: b"x")
        with pytest.raises(ValueError):
            log.save_snapshot(5, b"inside the deleted range")

    # --- op records ----------------------------------------------------------------------

    def test_op_record_round_trip(self, log: EventLog, clock: FakeClock) -> None:
        clock.now = 42.0
        log.append([tempo(0)])
        log.append([tempo(1), tempo(2)], op=OpAck("op-1", "alice", {"session": "s1", "n": [1, 2]}))
        rec = log.find_op("op-1", "alice")
        assert rec is not None
        assert (rec.op_id, rec.client, rec.result) == (
            "op-1",
            "alice",
            {"session": "s1", "n": [1, 2]},
        )
        assert rec.last_offset == 3 and rec.head_offset == 3 and rec.ts == 42.0
        assert log.find_op("op-1") == rec  # any client
        assert log.find_op("op-1", "bob") is None
        assert log.find_op("op-2") is None

    def test_op_without_events(self, log: EventLog) -> None:
        log.append([tempo(0), tempo(1)])
        assert log.append([], op=OpAck("noop", result={"ok": True})) == []
        rec = log.find_op("noop", "")
        assert rec is not None and rec.last_offset is None and rec.head_offset == 2
        assert rec.result == {"ok": True}

    def test_repeated_op_is_refused_and_writes_nothing(self, log: EventLog) -> None:
        log.append([tempo(1)], op=OpAck("op-1", "alice"))
        with pytest.raises(DuplicateOp):
            log.append([tempo(2)], op=OpAck("op-1", "alice"))
        with pytest.raises(DuplicateOp):  # twice in one group commit
            log.append_many([Batch([tempo(3)], OpAck("op-2")), Batch([tempo(4)], OpAck("op-2"))])
        assert log.head() == 1
        assert log.find_op("op-2") is None
        # The same op id from another client is another op.
        assert offsets(log.append([tempo(5)], op=OpAck("op-1", "bob"))) == [2]

    def test_ops_in_group_commit(self, log: EventLog) -> None:
        log.append_many(
            [
                Batch([tempo(1), tempo(2)], OpAck("a", "c", {"i": 1})),
                Batch([], OpAck("b", "c", {"i": 2})),
                Batch([tempo(3)], OpAck("c", "c", {"i": 3})),
            ]
        )
        found = [log.find_op(o, "c") for o in ("a", "b", "c")]
        assert [(r.last_offset, r.head_offset, r.result) for r in found if r] == [
            (2, 2, {"i": 1}),
            (None, 2, {"i": 2}),
            (3, 3, {"i": 3}),
        ]

    def test_op_records_follow_retention(self, log: EventLog, clock: FakeClock) -> None:
        clock.now = 1000.0
        log.append([tempo(1), tempo(2)], op=OpAck("old"))
        clock.now = 5000.0
        log.append([tempo(3)], op=OpAck("new"))
        log.compact(keep_seconds=100, keep_events=0, now=5050, snapshot=lambda o: b"")
        assert log.first_retained() == 3
        assert log.find_op("old") is None
        assert log.find_op("new") is not None

    def test_compact_accepts_a_snapshot_at_the_head(self, log: EventLog, clock: FakeClock) -> None:
        self._two_ages(log, clock)

        def at_head(cut: int) -> Snapshot:
            assert cut == 10
            return Snapshot(log.head(), b"state@head")

        assert log.compact(keep_seconds=100, keep_events=0, now=5050, snapshot=at_head) == 10
        assert log.latest_snapshot() == (20, b"state@head")
        assert log.first_retained() == 11

    def test_compact_refuses_a_snapshot_below_the_cut(
        self, log: EventLog, clock: FakeClock
    ) -> None:
        self._two_ages(log, clock)
        with pytest.raises(ValueError):
            log.compact(
                keep_seconds=100, keep_events=0, now=5050, snapshot=lambda cut: Snapshot(3, b"")
            )
        assert log.first_retained() == 1 and log.latest_snapshot() is None
