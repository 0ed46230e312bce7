"""Artifact records in a real SQLite file: CRUD, filters, paging, lineage, transactions."""

from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.artifacts import (
    ARTIFACT_KINDS,
    Artifact,
    ArtifactNotFound,
    ArtifactStore,
)
from hub.errors import ErrorCode, HubError
from hub.sqlite import Database, connect

H1 = hashlib.sha256(b"one").hexdigest()
H2 = hashlib.sha256(b"two").hexdigest()
H3 = hashlib.sha256(b"three").hexdigest()
ID_RE = re.compile(r"art_[0-9a-f]{16}")

Opener = Callable[[], sqlite3.Connection]


def open_plain(path: Path) -> sqlite3.Connection:
    """A plain connection in Python's default (legacy implicit-transaction) mode, WAL on."""
    conn = sqlite3.connect(path, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    return conn


@pytest.fixture(params=["plain", "database"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    path = tmp_path / "tutti.db"
    opened: list[sqlite3.Connection] = []

    def open_conn() -> sqlite3.Connection:
        conn = open_plain(path) if request.param == "plain" else connect(path)
        opened.append(conn)
        return conn

    yield open_conn
    for conn in opened:
        conn.close()


@pytest.fixture
def conn(opener: Opener) -> sqlite3.Connection:
    return opener()


class FakeClock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def store(conn: sqlite3.Connection) -> ArtifactStore:
    return ArtifactStore(conn, clock=FakeClock())


def add(store: ArtifactStore, digest: str = H1, **fields: Any) -> Artifact:
    fields.setdefault("kind", "midi")
    return store.add(hash=digest, mime="audio/midi", size=10, **fields)


def other_connection_sees(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as other:
        return other.execute(sql).fetchall()


# -- records -------------------------------------------------------------------------------


def test_add_and_get_round_trip_every_field(store: ArtifactStore) -> None:
    parent = add(store)
    art = store.add(
        hash=H2,
        mime="audio/midi",
        size=1234,
        kind="midi",
        session_id="ses_1",
        section_id="sec_1",
        job_id="job_1",
        variation_index=2,
        variation_set="grp_1",
        parent_id=parent.id,
        tags=["verse", "take"],
        creator="amt",
        filename="verse take 2.mid",
        metadata={"bpm": 120.5, "notes": 42, "nested": {"a": [1, 2, None]}},
    )
    assert ID_RE.fullmatch(art.id)
    assert art.created_at == 1_700_000_002.0
    assert store.get(art.id) == art
    assert art.model_dump() == {
        "id": art.id,
        "hash": H2,
        "mime": "audio/midi",
        "size": 1234,
        "kind": "midi",
        "session_id": "ses_1",
        "section_id": "sec_1",
        "job_id": "job_1",
        "variation_index": 2,
        "variation_set": "grp_1",
        "parent_id": parent.id,
        "tags": ["verse", "take"],
        "creator": "amt",
        "filename": "verse take 2.mid",
        "metadata": {"bpm": 120.5, "notes": 42, "nested": {"a": [1, 2, None]}},
        "created_at": 1_700_000_002.0,
    }


def test_identical_bytes_get_distinct_artifacts(store: ArtifactStore) -> None:
    a = add(store, H1, job_id="job_a")
    b = add(store, H1, job_id="job_b")
    assert a.id != b.id
    assert a.id != H1 and H1 not in a.id
    assert store.referenced_hashes() == {H1}
    assert [x.id for x in store.list(hash=H1)] == [a.id, b.id]


def test_records_survive_reopening_the_database(opener: Opener) -> None:
    first = ArtifactStore(opener())
    art = add(first, tags=["keep"], metadata={"k": "v"})
    reopened = ArtifactStore(opener())  # CREATE TABLE IF NOT EXISTS on an existing schema
    assert reopened.get(art.id) == art
    assert [a.id for a in reopened.list(tag="keep")] == [art.id]


def test_unknown_id_is_a_clear_error(store: ArtifactStore) -> None:
    with pytest.raises(ArtifactNotFound) as info:
        store.get("art_0000000000000000")
    err = info.value
    assert isinstance(err, HubError) and isinstance(err, LookupError)
    assert err.code is ErrorCode.unknown_artifact
    assert err.details["artifact_id"] == "art_0000000000000000"
    assert "art_0000000000000000" in err.message
    for call in (
        store.delete,
        lambda i: store.update_metadata(i, {}),
        lambda i: store.set_tags(i, []),
    ):
        with pytest.raises(ArtifactNotFound):
            call("art_0000000000000000")


def test_explicit_id_for_archive_restore_and_duplicate_is_a_conflict(
    store: ArtifactStore,
) -> None:
    art = add(store, artifact_id="art_00112233445566ff")
    assert store.get("art_00112233445566ff") == art
    with pytest.raises(HubError) as info:
        add(store, H2, artifact_id="art_00112233445566ff")
    assert info.value.code is ErrorCode.conflict
    assert store.referenced_hashes() == {H1}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("hash", "../../etc/passwd"),
        ("hash", H1.upper()),
        ("size", -1),
        ("kind", "video"),
        ("mime", ""),
        ("filename", "../escape.mid"),
        ("filename", "a/b.mid"),
        ("filename", "..\\x.mid"),
        ("filename", ".."),
        ("filename", "nul\x00.mid"),
        ("tags", [" padded"]),
        ("tags", [""]),
        ("tags", ["x" * 65]),
        ("tags", [f"t{i}" for i in range(65)]),
        ("metadata", {"bad": float("nan")}),
        ("metadata", {"obj": object()}),
        ("metadata", {"big": "x" * 70_000}),
        ("variation_index", -1),
        ("parent_id", "not-an-artifact-id"),
        ("artifact_id", "art_XYZ"),
        ("session_id", ""),
    ],
)
def test_invalid_records_are_refused_and_nothing_is_stored(
    store: ArtifactStore, field: str, value: Any
) -> None:
    fields: dict[str, Any] = {"hash": H1, "mime": "audio/midi", "size": 1, "kind": "midi"}
    fields[field] = value
    with pytest.raises(HubError) as info:
        store.add(**fields)
    assert info.value.code is ErrorCode.validation_failed
    assert info.value.details["errors"]
    assert store.list() == []


def test_tags_are_deduplicated_in_order(store: ArtifactStore) -> None:
    art = add(store, tags=["b", "a", "b", "c", "a"])
    assert art.tags == ["b", "a", "c"]
    assert store.get(art.id).tags == ["b", "a", "c"]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    metadata=st.dictionaries(
        st.text(max_size=10),
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers(-(2**53), 2**53)
            | st.floats(allow_nan=False, allow_infinity=False)
            | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(st.text(max_size=5), inner, max_size=4)
            ),
            max_leaves=20,
        ),
        max_size=6,
    )
)
def test_property_metadata_round_trips(store: ArtifactStore, metadata: dict[str, Any]) -> None:
    art = add(store, metadata=metadata)
    assert art.metadata == metadata
    assert store.get(art.id).metadata == metadata


# -- listing ----------------------------------------------------------------------------


def test_filters_and_combinations(store: ArtifactStore) -> None:
    a = add(store, H1, session_id="s1", section_id="intro", job_id="j1", tags=["good"])
    b = add(store, H2, session_id="s1", section_id="verse", job_id="j1", kind="partial_midi")
    c = add(store, H3, session_id="s2", section_id="intro", job_id="j2", tags=["good", "loud"])
    d = store.add(hash=H1, mime="audio/wav", size=99, kind="audio", session_id="s2")

    def ids(**filters: Any) -> list[str]:
        return [x.id for x in store.list(**filters)]

    assert ids() == [a.id, b.id, c.id, d.id]
    assert ids(session_id="s1") == [a.id, b.id]
    assert ids(section_id="intro") == [a.id, c.id]
    assert ids(session_id="s2", section_id="intro") == [c.id]
    assert ids(job_id="j1") == [a.id, b.id]
    assert ids(kind="partial_midi") == [b.id]
    assert ids(kind="audio") == [d.id]
    assert ids(tag="good") == [a.id, c.id]
    assert ids(tag="loud", session_id="s2") == [c.id]
    assert ids(tag="good", session_id="s1", job_id="j2") == []
    assert ids(hash=H1) == [a.id, d.id]
    assert ids(session_id="nope") == []


def test_order_is_insertion_order_even_when_clocks_go_backwards(conn: sqlite3.Connection) -> None:
    times = iter([300.0, 100.0, 200.0])
    store = ArtifactStore(conn, clock=lambda: next(times))
    made = [add(store) for _ in range(3)]
    assert store.list() == made
    assert [a.created_at for a in store.list()] == [300.0, 100.0, 200.0]


def test_paging_with_after_visits_each_record_once_despite_deletes(store: ArtifactStore) -> None:
    made = [add(store, session_id="s") for _ in range(25)]
    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        page = store.list(session_id="s", limit=7, after=after)
        if not page:
            break
        pages += 1
        seen.extend(a.id for a in page)
        after = page[-1].id
        if pages == 1:
            store.delete(made[10].id)  # deleting ahead of the cursor never skips others
    expected = [a.id for a in made if a.id != made[10].id]
    assert seen == expected
    assert pages == 4


def test_unknown_cursor_and_bad_limits_or_kinds(store: ArtifactStore) -> None:
    add(store)
    with pytest.raises(ArtifactNotFound) as missing:
        store.list(after="art_ffffffffffffffff")
    assert missing.value.details["role"] == "cursor artifact"
    for bad in (0, -1, 1001):
        with pytest.raises(HubError) as info:
            store.list(limit=bad)
        assert info.value.code is ErrorCode.validation_failed
    with pytest.raises(HubError) as kind_info:
        store.list(kind="midii")
    assert kind_info.value.details["field"] == "kind"
    assert len(store.list(limit=1000)) == 1
    assert set(ARTIFACT_KINDS) >= {"midi", "embedding", "audio", "render", "upload"}


def test_a_foreign_row_factory_does_not_change_our_reads(conn: sqlite3.Connection) -> None:
    conn.row_factory = sqlite3.Row
    store = ArtifactStore(conn)
    art = add(store, tags=["x"])
    assert store.get(art.id) == art
    conn.row_factory = lambda cur, row: {"oops": row}
    assert store.list(tag="x") == [art]
    assert store.referenced_hashes() == {H1}


# -- changes --------------------------------------------------------------------------------


def test_delete_returns_the_record_and_frees_its_hash_only_when_unreferenced(
    store: ArtifactStore, conn: sqlite3.Connection
) -> None:
    a = add(store, H1, tags=["t"])
    b = add(store, H1)
    c = add(store, H2)
    assert store.delete(a.id) == a
    with pytest.raises(ArtifactNotFound):
        store.get(a.id)
    assert store.list(tag="t") == []
    assert conn.execute("SELECT COUNT(*) FROM artifact_tags").fetchone()[0] == 0
    assert store.referenced_hashes() == {H1, H2}  # b still holds H1
    store.delete(b.id)
    assert store.referenced_hashes() == {H2}
    assert store.list() == [c]
    with pytest.raises(ArtifactNotFound):
        store.delete(a.id)


def test_update_metadata_merges_or_replaces(store: ArtifactStore) -> None:
    art = add(store, metadata={"a": 1, "b": {"x": 1}})
    merged = store.update_metadata(art.id, {"b": {"y": 2}, "c": [1, 2]})
    assert merged.metadata == {"a": 1, "b": {"y": 2}, "c": [1, 2]}
    assert store.get(art.id) == merged
    assert merged.model_dump(exclude={"metadata"}) == art.model_dump(exclude={"metadata"})
    replaced = store.update_metadata(art.id, {"only": True}, replace=True)
    assert store.get(art.id).metadata == {"only": True} == replaced.metadata
    with pytest.raises(HubError) as info:
        store.update_metadata(art.id, {"bad": float("inf")})
    assert info.value.code is ErrorCode.validation_failed
    assert store.get(art.id).metadata == {"only": True}


def test_set_tags_replaces_and_reindexes(store: ArtifactStore) -> None:
    art = add(store, tags=["old", "shared"])
    other = add(store, H2, tags=["shared"])
    updated = store.set_tags(art.id, ["new", "shared", "new"])
    assert updated.tags == ["new", "shared"]
    assert store.list(tag="old") == []
    assert [a.id for a in store.list(tag="new")] == [art.id]
    assert [a.id for a in store.list(tag="shared")] == [art.id, other.id]


def test_lineage_parent_must_exist_and_children_outlive_it(store: ArtifactStore) -> None:
    with pytest.raises(ArtifactNotFound) as info:
        add(store, parent_id="art_0123456789abcdef")
    assert info.value.details["role"] == "parent artifact"
    assert store.list() == []
    parent = add(store, H1)
    child = add(store, H2, parent_id=parent.id, variation_set="grp_x", variation_index=0)
    store.delete(parent.id)
    assert store.get(child.id).parent_id == parent.id


def test_hashes_for_session(store: ArtifactStore) -> None:
    add(store, H1, session_id="s1")
    add(store, H2, session_id="s1")
    add(store, H2, session_id="s1")
    add(store, H3, session_id="s2")
    add(store, H3)
    assert store.hashes_for_session("s1") == {H1, H2}
    assert store.hashes_for_session("s2") == {H3}
    assert store.hashes_for_session("none") == set()
    assert store.referenced_hashes() == {H1, H2, H3}


# -- transactions ---------------------------------------------------------------------------


def db_path(conn: sqlite3.Connection) -> Path:
    return Path(conn.execute("PRAGMA database_list").fetchone()[2])


def test_each_write_is_committed_and_visible_to_other_connections(
    store: ArtifactStore, conn: sqlite3.Connection
) -> None:
    art = add(store, tags=["x"])
    assert not conn.in_transaction
    assert other_connection_sees(db_path(conn), "SELECT id FROM artifacts") == [(art.id,)]
    store.update_metadata(art.id, {"v": 2})
    assert other_connection_sees(db_path(conn), "SELECT metadata FROM artifacts") == [('{"v":2}',)]


def test_plain_connection_callers_transaction_is_joined_not_committed(tmp_path: Path) -> None:
    path = tmp_path / "tutti.db"
    conn = open_plain(path)
    store = ArtifactStore(conn)
    conn.execute("CREATE TABLE other (v TEXT)")
    conn.commit()

    conn.execute("INSERT INTO other VALUES ('pending')")  # opens an implicit transaction
    assert conn.in_transaction
    art = add(store)
    assert conn.in_transaction  # we did not commit the other module's work
    assert other_connection_sees(path, "SELECT * FROM other") == []
    assert other_connection_sees(path, "SELECT id FROM artifacts") == []
    conn.rollback()
    assert store.list() == []

    conn.execute("INSERT INTO other VALUES ('kept')")
    art = add(store)
    conn.commit()
    assert other_connection_sees(path, "SELECT * FROM other") == [("kept",)]
    assert other_connection_sees(path, "SELECT id FROM artifacts") == [(art.id,)]
    conn.close()


def test_failed_write_inside_callers_transaction_undoes_only_itself(tmp_path: Path) -> None:
    path = tmp_path / "tutti.db"
    conn = open_plain(path)
    store = ArtifactStore(conn)
    first = add(store, artifact_id="art_aaaaaaaaaaaaaaaa")
    conn.execute("CREATE TABLE other (v TEXT)")
    conn.execute("INSERT INTO other VALUES ('mine')")
    with pytest.raises(HubError):
        add(store, H2, artifact_id=first.id)  # conflict, rolled back to its savepoint
    assert conn.in_transaction
    conn.commit()
    assert other_connection_sees(path, "SELECT * FROM other") == [("mine",)]
    assert store.list() == [first]
    conn.close()


def test_hub_database_transaction_covers_artifact_and_other_work(tmp_path: Path) -> None:
    db = connect(tmp_path / "tutti.db")
    assert isinstance(db, Database)
    store = ArtifactStore(db)
    with db.transaction():
        db.execute("CREATE TABLE other (v TEXT)")
    with pytest.raises(RuntimeError), db.transaction():
        db.execute("INSERT INTO other VALUES ('event')")
        add(store)
        raise RuntimeError("the command failed after adding its artifact")
    assert store.list() == []
    assert db.execute("SELECT COUNT(*) FROM other").fetchone()[0] == 0
    committed: list[str] = []
    with db.transaction():
        art = add(store)
        db.after_commit(lambda: committed.append(art.id))
        assert committed == []
    assert committed == [art.id]
    db.close()


def test_concurrent_adds_from_threads(store: ArtifactStore) -> None:
    barrier = threading.Barrier(8)

    def work(i: int) -> list[str]:
        barrier.wait()
        return [add(store, session_id=f"s{i}", tags=[f"t{i}"]).id for _ in range(25)]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(8)))
    all_ids = [x for ids in results for x in ids]
    assert len(set(all_ids)) == 200
    assert len(store.list(limit=1000)) == 200
    for i, ids in enumerate(results):
        assert [a.id for a in store.list(session_id=f"s{i}")] == ids
        assert [a.id for a in store.list(tag=f"t{i}")] == ids
