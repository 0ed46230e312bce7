"""Protocol round trips against a real server: hello/welcome, every session command,
acks with offsets, queries, undo/redo (also after a restart) and op_id idempotency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from serverkit import HubProcess, WsClient, new_session, op, ws_client

from tests.engines.slow_engine import chunk_notes, notes_to_midi


async def test_welcome_describes_the_hub(hub: HubProcess) -> None:
    async with ws_client(hub.ws_url, kind="daw-plugin", name="Live") as c:
        sid, _ = await new_session(c, "Welcome check")
    async with ws_client(hub.ws_url, kind="browser", name="tab") as c:
        w = c.welcome
        assert w["protocol"] == 1
        assert w["server_version"]
        assert w["client_id"].startswith("cli_")
        assert isinstance(w["server_time"], float) and w["server_time"] > 0
        assert isinstance(w["epoch"], str) and len(w["epoch"]) >= 16
        assert w["offset"] >= 2
        assert w["heartbeat_interval"] > 0 and w["heartbeat_timeout"] >= w["heartbeat_interval"]
        assert w["max_frame_bytes"] == 1 << 20
        engines = {e["name"]: e for e in w["engines"]}
        assert {"transform", "slow"} <= set(engines)
        for e in (engines["transform"], engines["slow"]):
            assert e["available"] is True
            assert e["tasks"], e
            for t in e["tasks"]:
                assert t["params_schema"]["type"] == "object"
        assert "stream" in {t["name"] for t in engines["slow"]["tasks"]}
        assert "transpose" in {t["name"] for t in engines["transform"]["tasks"]}
        assert sid in {s["id"] for s in w["sessions"]}


async def _upload_midi(hub: HubProcess) -> str:
    data = notes_to_midi(list(chunk_notes(0, 4)) + list(chunk_notes(1, 4)))
    with hub.http() as http:
        r = http.post("/cas", content=data, headers={"content-type": "audio/midi"})
    assert r.status_code == 201, r.text
    artifact: str = r.json()["artifact"]
    return artifact


async def test_every_session_command_round_trips(hub: HubProcess) -> None:
    async with ws_client(hub.ws_url, name="writer") as c, ws_client(hub.ws_url, name="watcher") as w:
        ack = await c.request({"type": "session.create", "title": "Round trip", "tempo": 100})
        sid = ack["result"]["session"]
        assert isinstance(ack["offset"], int)
        await w.request({"type": "subscribe", "topics": [f"session:{sid}"]})
        last = ack["offset"]

        async def step(msg: dict[str, object], event_type: str) -> dict[str, Any]:
            nonlocal last
            a = await c.request({**msg, "session": sid})
            assert a["offset"] is not None and a["offset"] > last, a
            last = a["offset"]
            ev = await w.event(event_type)
            assert ev["offset"] == a["offset"] and ev["op_id"] == a["op_id"]
            assert ev["event"]["session"] == sid and ev["topic"] == f"session:{sid}"
            return a

        await step({"type": "session.rename", "title": "Renamed"}, "session.renamed")
        await step({"type": "session.set_tempo", "bpm": 90}, "session.tempo_set")
        await step({"type": "session.set_meter", "meter": {"numerator": 3, "denominator": 4}},
                   "session.meter_set")
        await step({"type": "session.set_key", "key": "D minor"}, "session.key_set")
        a = await step({"type": "section.add", "name": "intro", "bars": 4}, "section.added")
        intro = a["result"]["section"]
        a = await step({"type": "section.add", "name": "verse", "bars": 8}, "section.added")
        verse = a["result"]["section"]
        await step({"type": "section.move", "section": verse, "index": 0}, "section.moved")
        await step({"type": "section.rename", "section": intro, "name": "Intro"}, "section.renamed")
        await step({"type": "section.resize", "section": intro, "bars": 2}, "section.resized")
        await step({"type": "section.set_props", "section": intro, "tempo": 80, "key": "A"},
                   "section.props_set")
        art1, art2 = await _upload_midi(hub), None
        a = await step({"type": "take.add", "section": verse, "artifact": art1, "label": "one"}, "take.added")
        take = a["result"]["take"]
        await step({"type": "take.approve", "section": verse, "take": take}, "take.status_set")
        await step({"type": "take.choose", "section": verse, "take": take}, "take.chosen")
        await step({"type": "take.reject", "section": verse, "take": take}, "take.status_set")
        await step({"type": "take.remove", "section": verse, "take": take}, "take.removed")
        await step({"type": "section.lock", "section": verse}, "section.locked")
        locked = await c.call({"type": "section.rename", "session": sid, "section": verse, "name": "x"})
        assert locked["type"] == "error" and locked["code"] == "section_locked"
        await step({"type": "section.lock", "section": verse, "locked": False}, "section.locked")
        await step({"type": "section.remove", "section": intro}, "section.removed")
        del art2

        got = (await c.request({"type": "session.get", "session": sid}))["result"]["session"]
        assert got["title"] == "Renamed" and got["tempo"] == 90 and got["key"] == "D minor"
        assert got["meter"] == {"numerator": 3, "denominator": 4}
        assert [s["name"] for s in got["sections"]] == ["verse"]
        assert got["sections"][0]["takes"] == [] and got["sections"][0]["locked"] is False
        listed = (await c.request({"type": "session.list"}))["result"]["sessions"]
        assert sid in {s["id"] for s in listed}

        # a no-op command: acked, no event, no offset
        a = await c.request({"type": "session.rename", "session": sid, "title": "Renamed"})
        assert a["offset"] is None

        await step({"type": "session.delete"}, "session.deleted")
        gone = await c.call({"type": "session.get", "session": sid})
        assert gone["type"] == "error" and gone["code"] == "unknown_session"


async def test_undo_redo_survive_a_restart(make_hub: object) -> None:
    assert callable(make_hub)
    proc: HubProcess = make_hub()
    async with ws_client(proc.ws_url) as c:
        sid, (sec,) = await new_session(c, "Undo", ("verse",))
        await c.request({"type": "session.set_tempo", "session": sid, "bpm": 140})
        await c.request({"type": "section.resize", "session": sid, "section": sec, "bars": 16})
        u = await c.request({"type": "session.undo", "session": sid})
        assert "undone" in u["result"]
        s = (await c.request({"type": "session.get", "session": sid}))["result"]["session"]
        assert s["sections"][0]["bars"] == 8 and s["tempo"] == 140
        r = await c.request({"type": "session.redo", "session": sid})
        assert r["result"]["redone"] == u["result"]["undone"]
        s = (await c.request({"type": "session.get", "session": sid}))["result"]["session"]
        assert s["sections"][0]["bars"] == 16
    proc.stop()
    proc.start()
    async with ws_client(proc.ws_url) as c:
        s = (await c.request({"type": "session.get", "session": sid}))["result"]["session"]
        assert s["sections"][0]["bars"] == 16 and s["tempo"] == 140
        await c.request({"type": "session.undo", "session": sid})  # the resize
        await c.request({"type": "session.undo", "session": sid})  # the tempo
        s = (await c.request({"type": "session.get", "session": sid}))["result"]["session"]
        assert s["sections"][0]["bars"] == 8 and s["tempo"] == 120
        await c.request({"type": "session.redo", "session": sid})
        s = (await c.request({"type": "session.get", "session": sid}))["result"]["session"]
        assert s["tempo"] == 140 and s["sections"][0]["bars"] == 8
        await c.request({"type": "session.undo", "session": sid})
        await c.request({"type": "session.undo", "session": sid})  # the section.add
        s = (await c.request({"type": "session.get", "session": sid}))["result"]["session"]
        assert s["sections"] == [] and s["tempo"] == 120
        err = await c.call({"type": "session.undo", "session": sid})
        assert err["type"] == "error" and err["code"] == "nothing_to_undo"
        await c.ping()


async def test_op_id_is_idempotent_across_reconnects(hub: HubProcess) -> None:
    async with ws_client(hub.ws_url) as c:
        sid, (sec,) = await new_session(c, "Idem")
        await c.request({"type": "subscribe", "topics": [f"session:{sid}"]})
        c.drain()
        oid = op()
        msg = {"type": "section.resize", "session": sid, "section": sec, "bars": 12, "op_id": oid}
        first = await c.request(msg)
        second = await c.request(msg)
        assert first["offset"] == second["offset"] and first["result"] == second["result"]
        ev = await c.event("section.resized")
        assert ev["offset"] == first["offset"]
        create_oid = op()
        made = await c.request({"type": "section.add", "session": sid, "name": "bridge", "op_id": create_oid})
    async with ws_client(hub.ws_url) as c2:
        again = await c2.request(msg)
        assert again["offset"] == first["offset"] and again["result"] == first["result"]
        made2 = await c2.request({"type": "section.add", "session": sid, "name": "bridge", "op_id": create_oid})
        assert made2["result"] == made["result"] and made2["offset"] == made["offset"]
        s = (await c2.request({"type": "session.get", "session": sid}))["result"]["session"]
        assert [x["name"] for x in s["sections"]] == ["verse", "bridge"]
        # the log holds exactly one resize with that op id
        await c2.request({"type": "subscribe", "topics": [f"session:{sid}"],
                          "resume": {"epoch": c2.welcome["epoch"], "offset": 0}})
        await c2.expect("resumed")
        frames = []
        while True:
            try:
                frames.append(await c2.expect("event", timeout=1.0))
            except TimeoutError:
                break
        mine = [f for f in frames if f["op_id"] == oid]
        assert len(mine) == 1 and mine[0]["event"]["type"] == "section.resized"
        assert sum(f["op_id"] == create_oid for f in frames) == 1


async def test_session_commands_over_http_share_the_log(hub: HubProcess, tmp_path: Path) -> None:
    async with ws_client(hub.ws_url) as c:
        sid, _ = await new_session(c, "HTTP")
        await c.request({"type": "subscribe", "topics": [f"session:{sid}"]})
        with hub.http() as http:
            r = http.post(f"/sessions/{sid}/commands", json={"type": "session.set_key", "key": "C"})
            assert r.status_code == 200, r.text
            assert r.json()["type"] == "ack"
            got = http.get(f"/sessions/{sid}").json()
            assert got["key"] == "C"
        ev = await c.event("session.key_set")
        assert ev["offset"] == r.json()["offset"]


@pytest.mark.parametrize("kind", ["daw-plugin", "browser", "agent", "cli"])
async def test_each_client_kind_is_welcomed(hub: HubProcess, kind: str) -> None:
    c = await WsClient.open(hub.ws_url, kind=kind, name=f"a {kind}")
    try:
        assert c.welcome["type"] == "welcome"
        await c.ping()
    finally:
        await c.close()
