"""The inbox folder and the exports folder, on an in-process hub with real files."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import mido
import pytest

from hub.config import HubConfig
from hub.events import FileReady
from hub.ids import new_id
from hub.protocol import AddSection, AddTake, ChooseTake, CreateSession
from hub.runtime import Hub

MIDI_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "midi"


@pytest.fixture
async def ihub(tmp_path: Path) -> AsyncIterator[Hub]:
    hub = Hub(HubConfig(data=tmp_path / "data", disabled_engines=["amt"]))
    await hub.start()
    try:
        yield hub
    finally:
        await hub.stop()


async def _wait_for(predicate: object, timeout: float = 20.0) -> None:
    assert callable(predicate)
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def _file_ready_names(hub: Hub) -> list[str | None]:
    events = hub.core.log.read(0)
    return [e.event.filename for e in events if isinstance(e.event, FileReady)]


async def test_dropped_midi_is_ingested_and_moved_to_done(ihub: Hub) -> None:
    src = (MIDI_DIR / "mozart_k545_mv1.mid").read_bytes()
    inbox = ihub.data / "inbox"
    # Written under a dot-name, then renamed: how careful writers publish a file.
    tmp = inbox / ".partial"
    tmp.write_bytes(src)
    tmp.rename(inbox / "mozart.mid")
    await _wait_for(lambda: (inbox / "done" / "mozart.mid").exists())
    assert "mozart.mid" in _file_ready_names(ihub)
    [artifact] = ihub.artifacts.list(kind="midi")
    assert ihub.cas.get(artifact.hash) == src
    assert artifact.metadata["note_count"] > 100
    assert artifact.creator == "inbox"


async def test_a_file_still_being_written_is_not_taken_early(ihub: Hub) -> None:
    src = (MIDI_DIR / "bach_bwv66.6.mid").read_bytes()
    path = ihub.data / "inbox" / "slow.mid"
    with path.open("wb") as fh:
        for i in range(0, len(src), 200):
            fh.write(src[i : i + 200])
            fh.flush()
            await asyncio.sleep(0.1)  # shorter than the settle time: still "being written"
            assert not (ihub.data / "inbox" / "rejected" / "slow.mid").exists()
    await _wait_for(lambda: (ihub.data / "inbox" / "done" / "slow.mid").exists())
    [artifact] = ihub.artifacts.list(kind="midi")
    assert ihub.cas.get(artifact.hash) == src


async def test_invalid_file_is_rejected_with_a_reason(ihub: Hub) -> None:
    (ihub.data / "inbox" / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01")
    reason = ihub.data / "inbox" / "rejected" / "broken.mid.reason.txt"
    await _wait_for(reason.exists)
    assert "invalid_midi" in reason.read_text()
    (ihub.data / "inbox" / "notes.txt").write_text("hello")
    await _wait_for((ihub.data / "inbox" / "rejected" / "notes.txt.reason.txt").exists)
    assert ihub.artifacts.list() == []


async def test_choosing_a_take_exports_it_with_a_stable_name(ihub: Hub, tmp_path: Path) -> None:
    ack = await ihub.core.execute(CreateSession(op_id=new_id("op_"), title="Song"), op_id=None, client="t")
    sid = ack.result["session"]
    ack = await ihub.core.execute(AddSection(op_id="s1", session=sid, name="verse", bars=4), op_id=None, client="t")
    sec = ack.result["section"]
    takes = []
    for name in ("mozart_k545_mv1.mid", "bach_bwv66.6.mid"):
        path = ihub.data / "inbox" / name
        path.write_bytes((MIDI_DIR / name).read_bytes())
    await _wait_for(lambda: len(ihub.artifacts.list(kind="midi")) == 2)
    for artifact in ihub.artifacts.list(kind="midi"):
        ack = await ihub.core.execute(
            AddTake(op_id=new_id("op_"), session=sid, section=sec, artifact=artifact.id), op_id=None, client="t"
        )
        takes.append(ack.result["take"])
    folder = ihub.data / "exports" / sid
    for take in takes:
        await ihub.core.execute(ChooseTake(op_id=new_id("op_"), session=sid, section=sec, take=take),
                                op_id=None, client="t")
    await _wait_for(lambda: folder.exists() and len(list(folder.glob("*.mid"))) == 2)
    names = sorted(p.name for p in folder.glob("*.mid"))
    assert names == ["verse-take1.mid", "verse-take2.mid"]
    for p in folder.glob("*.mid"):
        assert len(mido.MidiFile(p).tracks) >= 1
    assert not list(folder.glob(".tmp-*"))
