"""A table of bad inputs against a real server: each gets one structured error, the
socket stays usable, and another connected client sees nothing odd."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from serverkit import HubProcess, WsClient, new_session, op, ws_client

ERROR_KEYS = {"type", "code", "message", "details", "suggestions", "op_id"}


@pytest.fixture
async def bystander(hub: HubProcess) -> AsyncIterator[tuple[WsClient, str]]:
    """A healthy client subscribed to a session, to prove bad input disturbs nobody else."""
    async with ws_client(hub.ws_url, name="bystander") as c:
        sid, _ = await new_session(c, "Bystander")
        await c.request({"type": "subscribe", "topics": [f"session:{sid}", "jobs", "files"]})
        await asyncio.sleep(0.05)
        c.drain()
        yield c, sid
        await c.ping()
        odd = [f for f in c.drain() if f.get("type") not in ("presence", "pong")]
        assert odd == [], f"the bystander saw {odd}"


def _check_error(frame: dict[str, Any], code: str, op_id: str | None = None) -> None:
    assert frame["type"] == "error", frame
    assert set(frame) == ERROR_KEYS, frame
    assert frame["code"] == code, frame
    assert frame["message"]
    assert frame["op_id"] == op_id


def _frames(sid: str, limit: int) -> list[tuple[str, str | bytes, str, str | None]]:
    """(case, raw frame, expected code, expected op_id)."""
    return [
        ("invalid JSON", "{not json", "invalid_json", None),
        ("binary garbage", b"\xff\xfe\x00garbage", "invalid_json", None),
        ("empty frame", "", "invalid_json", None),
        ("a JSON array", "[1, 2, 3]", "invalid_message", None),
        ("a number", "42", "invalid_message", None),
        ("a string", '"hello"', "invalid_message", None),
        ("null", "null", "invalid_message", None),
        ("no type", '{"op_id": "op_notype"}', "invalid_message", "op_notype"),
        ("non-string type", '{"type": 7, "op_id": "op_t7"}', "invalid_message", "op_t7"),
        ("unknown type", '{"type": "session.explode", "op_id": "op_unk"}', "unknown_type", "op_unk"),
        ("schema violation: bad bpm",
         orjson.dumps({"type": "session.set_tempo", "session": sid, "bpm": -5, "op_id": "op_bpm"}).decode(),
         "validation_failed", "op_bpm"),
        ("schema violation: extra field",
         orjson.dumps({"type": "session.rename", "session": sid, "title": "t", "bogus": 1, "op_id": "op_x"}).decode(),
         "validation_failed", "op_x"),
        ("missing op_id", orjson.dumps({"type": "session.rename", "session": sid, "title": "t"}).decode(),
         "validation_failed", None),
        ("unknown session", '{"type": "session.rename", "session": "ses_nope", "title": "t", "op_id": "op_us"}',
         "unknown_session", "op_us"),
        ("subscribe to unknown session",
         '{"type": "subscribe", "topics": ["session:ses_nope"], "op_id": "op_sub"}', "unknown_session", "op_sub"),
        ("unknown topic", '{"type": "subscribe", "topics": ["weather"], "op_id": "op_top"}',
         "unknown_topic", "op_top"),
        ("unknown section",
         orjson.dumps({"type": "section.resize", "session": sid, "section": "sec_nope", "bars": 4,
                       "op_id": "op_sec"}).decode(), "unknown_section", "op_sec"),
        ("unknown job", '{"type": "job.get", "job": "job_nope", "op_id": "op_job"}', "job_not_found", "op_job"),
        ("unknown engine",
         '{"type": "job.submit", "engine": "nope", "task": "x", "op_id": "op_eng"}', "unknown_engine", "op_eng"),
        ("second hello", '{"type": "hello", "protocol": 1, "client": "cli", "name": "again"}',
         "invalid_message", None),
    ]


async def test_bad_frames_get_structured_errors(hub: HubProcess, bystander: tuple[WsClient, str]) -> None:
    _, sid = bystander
    async with ws_client(hub.ws_url, name="fuzzer") as c:
        limit = c.welcome["max_frame_bytes"]
        for case, raw, code, op_id in _frames(sid, limit):
            await c.send(raw)
            frame = await c.expect("error", timeout=10)
            try:
                _check_error(frame, code, op_id)
            except AssertionError as exc:
                raise AssertionError(f"{case}: {exc}") from exc
            await c.ping()  # the same socket still works
        # ... and still executes commands
        ack = await c.request({"type": "session.rename", "session": sid, "title": "still fine"})
        assert ack["type"] == "ack"
    # the rename is the one legitimate event; the bystander fixture checks the rest
    by, _ = bystander
    ev = await by.event("session.renamed")
    assert ev["event"]["title"] == "still fine"


async def test_frame_over_the_limit_gets_payload_too_large(
    hub: HubProcess, bystander: tuple[WsClient, str]
) -> None:
    """Just over max_frame_bytes: a structured error, and the socket stays open (issue §9)."""
    _, sid = bystander
    async with ws_client(hub.ws_url, name="big") as c:
        limit = c.welcome["max_frame_bytes"]
        big = orjson.dumps({"type": "session.rename", "session": sid, "title": "x" * (limit + 1024),
                            "op_id": "op_big"}).decode()
        await c.send(big)
        frame = await c.expect("error", timeout=10)
        _check_error(frame, "payload_too_large", None)
        assert frame["details"]["limit"] == limit
        await c.ping()


async def test_huge_frame_closes_cleanly_with_1009(hub: HubProcess, bystander: tuple[WsClient, str]) -> None:
    """Far over the limit the hub will not even read the frame: a clean 1009 close, nothing else hurt."""
    async with ws_client(hub.ws_url, name="huge") as c:
        await c.send("x" * (64 << 20))
        frame = await c.expect("_closed", timeout=20)
        assert frame["code"] == 1009, frame
    async with ws_client(hub.ws_url, name="after") as c:
        await c.ping()


async def test_frames_before_hello_and_wrong_version(hub: HubProcess, bystander: tuple[WsClient, str]) -> None:
    c = await WsClient.open(hub.ws_url, hello=False)
    try:
        for raw in ('{"type": "ping"}', '{"type": "session.list", "op_id": "op_early"}', "{broken"):
            await c.send(raw)
            frame = await c.expect("error")
            expected = "invalid_json" if raw == "{broken" else "hello_required"
            assert frame["code"] == expected, frame
            if expected == "hello_required":
                assert frame["suggestions"], frame
        assert frame is not None
        early = await c.expect(lambda f: True, timeout=0.3) if not c.inbox.empty() else None
        assert early is None
        await c.send({"type": "hello", "protocol": 99, "client": "cli", "name": "future"})
        frame = await c.expect("error")
        _check_error(frame, "unsupported_version", None)
        assert frame["details"]["supported"] == [1]
        await c.send({"type": "hello", "protocol": 1, "client": "cli", "name": "fixed"})
        welcome = await c.expect("welcome")
        assert welcome["protocol"] == 1
        await c.ping()
    finally:
        await c.close()


async def _raw_http(hub: HubProcess, target: str) -> tuple[int, bytes]:
    """Send a request line exactly as written (httpx would normalise the dots away)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.parametrize(
    "target",
    [
        "/cas/../../etc/passwd",
        "/cas/..%2F..%2Fetc%2Fpasswd",
        "/cas/%2e%2e/%2e%2e/etc/passwd",
        "/../../../../etc/passwd",
        "/cas/..",
    ],
)
async def test_path_traversal_is_refused(hub: HubProcess, bystander: tuple[WsClient, str], target: str) -> None:
    status, body = await _raw_http(hub, target)
    assert status in (400, 404), (status, body[:200])
    assert b"root:" not in body
    err = orjson.loads(body)
    assert set(err) == ERROR_KEYS and err["type"] == "error", err
    assert err["code"] in ("not_found", "invalid_digest", "path_traversal"), err


@pytest.mark.parametrize(
    ("digest", "status", "code"),
    [
        ("not-hex", 400, "invalid_digest"),
        ("ABCDEF" + "0" * 58, 400, "invalid_digest"),
        ("g" * 64, 400, "invalid_digest"),
        ("0" * 63, 400, "invalid_digest"),
        ("0" * 64, 404, "not_found"),
    ],
)
async def test_bad_cas_digests(hub: HubProcess, bystander: tuple[WsClient, str], digest: str, status: int,
                               code: str) -> None:
    async with httpx.AsyncClient(base_url=hub.url) as http:
        r = await http.get(f"/cas/{digest}")
    assert r.status_code == status, r.text
    assert r.json()["code"] == code and set(r.json()) == ERROR_KEYS


@pytest.mark.parametrize(
    "body",
    [b"", b"not midi at all", b"MThd\x00\x00\x00\x06\x00\x01", b"MThd" + b"\xff" * 64],
    ids=["empty", "text", "truncated header", "garbage header"],
)
async def test_invalid_midi_upload(hub: HubProcess, bystander: tuple[WsClient, str], body: bytes) -> None:
    async with httpx.AsyncClient(base_url=hub.url) as http:
        r = await http.post("/cas", content=body, headers={"content-type": "audio/midi"})
        assert r.status_code == 400, r.text
        assert r.json()["code"] == "invalid_midi" and set(r.json()) == ERROR_KEYS
        assert (await http.get("/health")).json()["status"] == "ok"


async def test_bad_http_json(hub: HubProcess, bystander: tuple[WsClient, str]) -> None:
    _, sid = bystander
    async with httpx.AsyncClient(base_url=hub.url) as http:
        r = await http.post(f"/sessions/{sid}/commands", content=b"{nope")
        assert r.status_code == 400 and r.json()["code"] == "invalid_json"
        r = await http.post(f"/sessions/{sid}/commands", content=b"[1]")
        assert r.status_code == 400 and r.json()["code"] == "invalid_message"
        r = await http.post(f"/sessions/{sid}/commands", json={"type": "session.set_tempo", "bpm": 0})
        assert r.status_code == 400 and r.json()["code"] == "validation_failed"
        r = await http.get("/sessions/ses_nope")
        assert r.status_code == 404 and r.json()["code"] == "unknown_session"
        r = await http.get("/jobs/job_nope")
        assert r.status_code == 404 and r.json()["code"] == "job_not_found"
        r = await http.post("/jobs", json={"engine": "slow", "task": "stream", "params": {"chunks": -1}})
        assert r.status_code == 400 and r.json()["code"] == "validation_failed"


async def test_bad_input_does_not_disturb_a_busy_session(hub: HubProcess) -> None:
    """Interleave garbage with real commands from the same socket: every command still gets its ack."""
    async with ws_client(hub.ws_url) as c:
        sid, (sec,) = await new_session(c, "Interleaved")
        acks = 0
        for i in range(20):
            await c.send("{garbage")
            reply = await c.call({"type": "section.resize", "session": sid, "section": sec, "bars": 1 + i,
                                  "op_id": op()})
            assert reply["type"] == "ack"
            acks += 1
            assert (await c.expect("error"))["code"] == "invalid_json"
        assert acks == 20
