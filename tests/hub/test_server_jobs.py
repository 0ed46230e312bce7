"""Jobs against a real server and the slow streaming test engine: the lifecycle and its
events, streaming note chunks, artifacts in the CAS, takes, cancellation, unknown and
expired ids, batches, priorities, op_id idempotency, and the MIDI transform engine."""

from __future__ import annotations

import asyncio
import hashlib
import io
import time
from collections.abc import Callable
from typing import Any

import mido
import pytest
from serverkit import (
    HubProcess,
    is_event,
    job_frames,
    jobs_frames,
    new_session,
    op,
    slow_job,
    wait_frame,
    ws_client,
)

from engines.protocol import Note
from tests.engines.slow_engine import chunk_notes, notes_to_midi


def _types(frames: list[dict[str, Any]]) -> list[str]:
    return [f["event"]["type"] if f["type"] == "event" else f["type"] for f in frames]


def _midi_notes(data: bytes) -> list[tuple[int, int]]:
    """(absolute tick, pitch) of every sounding note_on."""
    out = []
    for track in mido.MidiFile(file=io.BytesIO(data)).tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "note_on" and msg.velocity > 0:
                out.append((tick, msg.note))
    return sorted(out)


async def test_streaming_job_lifecycle_artifacts_and_take(hub: HubProcess) -> None:
    async with ws_client(hub.ws_url, name="streamer") as c:
        sid, (sec,) = await new_session(c, "Streaming", ("verse",))
        await c.request({"type": "subscribe", "topics": [f"session:{sid}"]})
        t0 = time.monotonic()
        ack = await c.request(slow_job(sid, sec, chunks=24, interval=0.1))
        job = ack["result"]["job"]
        assert ack["result"]["state"] == "queued" and job.startswith("job_")
        frames = await job_frames(c, job, timeout=60)
        elapsed = time.monotonic() - t0
        # the take arrives with (right after) job.completed
        take_ev = await wait_frame(c, is_event("take.added", session=sid, section=sec), 15)

    events = [f for f in frames if f["type"] == "event"]
    kinds = [e["event"]["type"] for e in events]
    assert kinds[0] == "job.queued" and kinds[1] == "job.started", kinds[:3]
    assert kinds[-1] == "job.completed", kinds[-3:]
    offsets = [e["offset"] for e in events]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    notes = [e["event"] for e in events if e["event"]["type"] == "job.notes"]
    assert len(notes) >= 20
    assert [n["seq"] for n in notes] == list(range(len(notes))), "note chunks numbered 0..n-1, no gaps"
    for i, n in enumerate(notes):
        expected = chunk_notes(i, 4)
        assert n["session"] == sid
        assert n["notes"]["pitch"] == [x.pitch for x in expected]
        assert n["notes"]["onset"] == pytest.approx([x.onset for x in expected], abs=1e-3)
        # the session runs at 120 bpm: beats are seconds * 2
        assert n["notes"]["onset_beats"] == pytest.approx([x.onset * 2 for x in expected], abs=1e-3)
        assert len(n["notes"]["duration_beats"]) == len(n["notes"]["velocity"]) == 4
    # every note chunk comes before the ending; the ending comes once
    assert kinds.count("job.completed") == 1 and not {"job.failed", "job.cancelled"} & set(kinds)

    progress = [f for f in frames if f["type"] == "job.progress"]
    percents = [p["percent"] for p in progress]
    assert progress, "job.progress frames arrive"
    assert percents == sorted(percents), f"progress never goes back: {percents}"
    assert len(percents) < 2 or percents[-1] > percents[0]
    assert all(0 < p <= 100 for p in percents)

    completed = events[-1]["event"]
    assert completed["session"] == sid and completed["section"] == sec
    (art,) = completed["artifacts"]
    assert art["id"].startswith("art_") and len(art["hash"]) == 64
    assert art["url"] == f"/cas/{art['hash']}" and art["mime"] == "audio/midi" and art["size"] > 0
    meta = art["metadata"]
    assert meta["note_count"] == 24 * 4
    assert "key" in meta and "key_confidence" in meta  # chromatic notes: the key may be None
    assert meta["notes"] == 96 and meta["chunks"] == 24  # the engine's own metadata is kept

    ready = [e["event"] for e in events if e["event"]["type"] == "file.ready"]
    assert len(ready) == 1
    assert ready[0]["artifact"] == art["id"] and ready[0]["hash"] == art["hash"]
    assert ready[0]["session"] == sid and ready[0]["section"] == sec and ready[0]["job"] == job
    assert ready[0]["url"] == art["url"] and ready[0]["size"] == art["size"]

    take = take_ev["event"]["take"]
    assert take["artifact_id"] == art["id"] and take["status"] == "pending" and take["job_id"] == job

    with hub.http() as http:
        r = http.get(art["url"])
        assert r.status_code == 200 and r.headers["content-type"].startswith("audio/midi")
        assert r.headers["etag"] == f'"{art["hash"]}"'
        assert hashlib.sha256(r.content).hexdigest() == art["hash"] and len(r.content) == art["size"]
        assert len(_midi_notes(r.content)) == 96
        again = http.get(art["url"], headers={"if-none-match": r.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == r.headers["etag"]
        record = http.get(f"/jobs/{job}").json()
        assert record["state"] == "completed" and record["artifacts"][0]["id"] == art["id"]
        session = http.get(f"/sessions/{sid}").json()
    (section,) = session["sections"]
    assert [(t["artifact_id"], t["status"]) for t in section["takes"]] == [(art["id"], "pending")]
    print(f"\nstreamed {len(notes)} chunks + {len(progress)} progress frames in {elapsed:.2f} s")


async def test_cancel_mid_run_keeps_partial_notes_as_a_take(hub: HubProcess) -> None:
    async with ws_client(hub.ws_url, name="canceller") as c:
        sid, (sec,) = await new_session(c, "Cancel", ("chorus",))
        await c.request({"type": "subscribe", "topics": [f"session:{sid}"]})
        job = (await c.request(slow_job(sid, sec, chunks=400, interval=0.05)))["result"]["job"]
        seen: list[dict[str, Any]] = []
        seen.append(await wait_frame(c, is_event("job.notes", job=job, seq=4), 30, seen))
        t_cancel = time.monotonic()
        ack = await c.request({"type": "job.cancel", "job": job})
        t_ack = time.monotonic()
        assert ack["result"] == {"job": job, "state": "cancelling"}
        rest = await job_frames(c, job, timeout=30)
        t_stop = time.monotonic()
        take_ev = await wait_frame(c, is_event("take.added", session=sid, section=sec), 15)
        again = await c.call({"type": "job.cancel", "job": job})
        assert again["type"] == "error" and again["code"] == "job_finished"

    frames = seen + rest
    events = [f["event"] for f in frames if f["type"] == "event" and f["event"].get("job") == job]
    kinds = [e["type"] for e in events]
    assert kinds[-1] == "job.cancelled" and kinds.count("job.cancelled") == 1
    assert "job.completed" not in kinds and "job.failed" not in kinds
    seqs = [e["seq"] for e in events if e["type"] == "job.notes"]
    assert seqs == list(range(len(seqs))) and 5 <= len(seqs) < 400
    (partial,) = events[-1]["partial_artifacts"]
    assert partial["metadata"]["partial"] is True
    assert partial["metadata"]["note_count"] == 4 * len(seqs), "the partial take holds every streamed note"
    take = take_ev["event"]["take"]
    assert take["artifact_id"] == partial["id"] and take["status"] == "pending"
    with hub.http() as http:
        record = http.get(f"/jobs/{job}").json()
        assert record["state"] == "cancelled"
        data = http.get(partial["url"]).content
    assert len(_midi_notes(data)) == 4 * len(seqs)
    print(f"\ncancel -> job.cancelled: {1000 * (t_stop - t_cancel):.0f} ms "
          f"(ack {1000 * (t_ack - t_cancel):.0f} ms); {len(seqs)} chunks kept")


async def test_partial_files_while_running_leave_only_the_result(hub: HubProcess) -> None:
    """An engine writes the MIDI so far every few chunks: each partial file is announced
    (a DAW can play it mid-generation) and replaces the previous one; the final result
    replaces the last, so a completed job leaves one artifact and one take."""
    async with ws_client(hub.ws_url, name="partials") as c:
        sid, (sec,) = await new_session(c, "Partials", ("verse",))
        await c.request({"type": "subscribe", "topics": [f"session:{sid}"]})
        job = (await c.request(slow_job(sid, sec, chunks=6, interval=0.02, partial_every=2)))["result"]["job"]
        frames = await job_frames(c, job, timeout=30)
    events = [f["event"] for f in frames if f["type"] == "event"]
    ready = [e for e in events if e["type"] == "file.ready"]
    assert [e["metadata"].get("partial", False) for e in ready] == [True, True, False]
    assert [e["metadata"]["note_count"] for e in ready] == [8, 16, 24]  # chunks 2, 4 and the end
    (done,) = [e for e in events if e["type"] == "job.completed"]
    assert [a["id"] for a in done["artifacts"]] == [ready[-1]["artifact"]]
    with hub.http() as http:
        listed = http.get("/artifacts", params={"session": sid}).json()["artifacts"]
        session = http.get(f"/sessions/{sid}").json()
        record = http.get(f"/jobs/{job}").json()
    assert [a["id"] for a in listed] == [ready[-1]["artifact"]], "superseded partial files are deleted"
    assert [t["artifact_id"] for t in session["sections"][0]["takes"]] == [ready[-1]["artifact"]]
    assert [a["id"] for a in record["artifacts"]] == [ready[-1]["artifact"]]


async def test_cancel_keeps_the_newest_partial_file_only(hub: HubProcess) -> None:
    async with ws_client(hub.ws_url, name="partial-cancel") as c:
        sid, (sec,) = await new_session(c, "Partial cancel", ("verse",))
        await c.request({"type": "subscribe", "topics": [f"session:{sid}"]})
        job = (await c.request(slow_job(sid, sec, chunks=400, interval=0.02, partial_every=2)))["result"]["job"]
        seen: list[dict[str, Any]] = []
        seen.append(await wait_frame(c, is_event("file.ready", job=job), 30, seen))
        await c.request({"type": "job.cancel", "job": job})
        frames = seen + await job_frames(c, job, timeout=30)
    events = [f["event"] for f in frames if f["type"] == "event"]
    ready = [e for e in events if e["type"] == "file.ready"]
    assert len(ready) >= 2 and all(e["metadata"]["partial"] for e in ready)
    (cancelled,) = [e for e in events if e["type"] == "job.cancelled"]
    (kept,) = cancelled["partial_artifacts"]
    assert kept["id"] == ready[-1]["artifact"]  # the one cancel wrote, with every streamed note
    notes = sum(len(e["notes"]["pitch"]) for e in events if e["type"] == "job.notes")
    assert kept["metadata"]["note_count"] == notes
    with hub.http() as http:
        listed = http.get("/artifacts", params={"session": sid}).json()["artifacts"]
        session = http.get(f"/sessions/{sid}").json()
    assert [a["id"] for a in listed] == [kept["id"]]
    assert [t["artifact_id"] for t in session["sections"][0]["takes"]] == [kept["id"]]


async def test_cancel_over_http_and_a_queued_job(make_hub: Callable[..., HubProcess]) -> None:
    proc = make_hub("[tutti.engine_concurrency]\nslow = 1\n")
    async with ws_client(proc.ws_url, name="http-cancel") as c:
        await c.request({"type": "subscribe", "topics": ["jobs"]})
        running = (await c.request(slow_job(chunks=400, interval=0.05)))["result"]["job"]
        queued = (await c.request(slow_job(chunks=2, interval=0.0)))["result"]["job"]
        await wait_frame(c, is_event("job.notes", job=running, seq=1), 30)
        with proc.http() as http:
            r = http.post(f"/jobs/{queued}/cancel")
            assert r.status_code == 200 and r.json() == {"job": queued, "state": "cancelled"}
            t0 = time.monotonic()
            r = http.post(f"/jobs/{running}/cancel")
            t_post = time.monotonic() - t0
            assert r.status_code == 200 and r.json()["state"] == "cancelling"
        both = await jobs_frames(c, [queued, running], timeout=30)
        assert _types(both[queued]) == ["job.cancelled"], "a queued job ends without starting"
        frames = both[running]
        print(f"\nHTTP cancel -> job.cancelled: {1000 * (time.monotonic() - t0):.0f} ms"
              f" (the POST itself {1000 * t_post:.0f} ms)")
        assert _types(frames)[-1] == "job.cancelled"
        with proc.http() as http:
            assert http.get(f"/jobs/{queued}").json()["state"] == "cancelled"
            assert http.get(f"/jobs/{queued}").json()["started_at"] is None


async def test_unknown_and_expired_job_ids(make_hub: Callable[..., HubProcess], monkeypatch: Any) -> None:
    monkeypatch.setenv("TUTTI_COMPACT_INTERVAL", "0.2")
    monkeypatch.setenv("TUTTI_RETENTION_SKEW", "3600")  # every finished job is past 60 s
    proc = make_hub("[tutti.retention]\njob_keep_seconds = 60\n")
    async with ws_client(proc.ws_url, name="expiry") as c:
        await c.request({"type": "subscribe", "topics": ["jobs"]})
        missing = "job_00000000deadbeef"
        err = await c.call({"type": "job.get", "job": missing})
        assert err["type"] == "error" and err["code"] == "job_not_found"
        err = await c.call({"type": "job.cancel", "job": missing})
        assert err["type"] == "error" and err["code"] == "job_not_found"

        job = (await c.request(slow_job(chunks=1, interval=0.0)))["result"]["job"]
        frames = await job_frames(c, job, timeout=30)
        assert _types(frames)[-1] == "job.completed"
        deadline = time.monotonic() + 20
        while True:
            reply = await c.call({"type": "job.get", "job": job})
            if reply["type"] == "error":
                break
            assert reply["result"]["state"] == "completed"
            assert time.monotonic() < deadline, "the finished job record never expired"
            await asyncio.sleep(0.1)
        assert reply["code"] == "job_expired", reply
        assert reply["details"]["job"] == job and reply["details"]["keep_seconds"] == 60
        err = await c.call({"type": "job.cancel", "job": job})
        assert err["type"] == "error" and err["code"] == "job_expired"
    with proc.http() as http:
        r = http.get(f"/jobs/{missing}")
        assert r.status_code == 404 and r.json()["code"] == "job_not_found"
        r = http.get(f"/jobs/{job}")
        assert r.status_code == 410 and r.json()["code"] == "job_expired"
    # the expiry went to the tombstone table: it holds across a restart
    proc.stop()
    proc.start()
    with proc.http() as http:
        assert http.get(f"/jobs/{job}").json()["code"] == "job_expired"
        assert http.get(f"/jobs/{missing}").json()["code"] == "job_not_found"


async def test_batch_results_in_request_order(hub: HubProcess) -> None:
    async with ws_client(hub.ws_url, name="batcher") as c:
        sid, (sec,) = await new_session(c, "Batch", ("verse",))
        await c.request({"type": "subscribe", "topics": ["jobs"]})
        specs: list[dict[str, Any]] = [
            {"engine": "slow", "task": "stream", "params": {"chunks": 1 + i, "interval": 0.0},
             "client_job_id": f"mine-{i}", "priority": p}
            for i, p in enumerate((-3, 5, 0, 2))
        ]
        specs[2] |= {"session": sid, "section": sec}
        ack = await c.request({"type": "job.batch", "jobs": specs})
        jobs = ack["result"]["jobs"]
        assert [j["client_job_id"] for j in jobs] == [f"mine-{i}" for i in range(4)]
        assert all(j["state"] == "queued" for j in jobs) and len({j["job"] for j in jobs}) == 4
        done = await jobs_frames(c, [j["job"] for j in jobs], timeout=60)
        assert all(_types(f)[-1] == "job.completed" for f in done.values())
        with hub.http() as http:
            r = http.post("/batch", json={"jobs": specs[::-1]})
            assert r.status_code == 202, r.text
            by_http = r.json()["jobs"]
            assert [j["client_job_id"] for j in by_http] == [f"mine-{i}" for i in (3, 2, 1, 0)]
            for j, spec in zip(by_http, specs[::-1], strict=True):
                record = http.get(f"/jobs/{j['job']}").json()
                assert record["client_job_id"] == spec["client_job_id"]
                assert record["params"]["chunks"] == spec["params"]["chunks"]
        # a batch is accepted whole or refused whole
        bad = await c.call({"type": "job.batch", "jobs": [specs[0], {"engine": "nope", "task": "x"}]})
        assert bad["type"] == "error" and bad["code"] == "unknown_engine"


async def test_priority_beats_submission_order(make_hub: Callable[..., HubProcess]) -> None:
    proc = make_hub("[tutti.engine_concurrency]\nslow = 1\n")
    async with ws_client(proc.ws_url, name="prio") as c:
        await c.request({"type": "subscribe", "topics": ["jobs"]})
        blocker = (await c.request(slow_job(chunks=10, interval=0.1)))["result"]["job"]
        await wait_frame(c, is_event("job.started", job=blocker), 30)
        low1 = (await c.request(slow_job(chunks=2, interval=0.01, priority=-5)))["result"]["job"]
        low2 = (await c.request(slow_job(chunks=2, interval=0.01, priority=-5)))["result"]["job"]
        high = (await c.request(slow_job(chunks=2, interval=0.01, priority=5)))["result"]["job"]
        started: list[str] = []
        ended: list[str] = []
        while len(ended) < 4:
            f = await wait_frame(c, lambda f: f.get("type") == "event"
                                 and f["event"]["type"] in ("job.started", "job.completed"), 60)
            (started if f["event"]["type"] == "job.started" else ended).append(f["event"]["job"])
        assert started == [high, low1, low2], "high priority first, then submission order"
        assert ended == [blocker, high, low1, low2], "concurrency 1: one at a time"


async def test_same_op_id_is_one_job_even_across_a_reconnect(hub: HubProcess) -> None:
    op_id = op()
    async with ws_client(hub.ws_url, name="retry") as c:
        sid, _ = await new_session(c, "Idempotent")
        msg = {**slow_job(sid, chunks=2, interval=0.0), "op_id": op_id}
        # twice back to back on one socket: two replies (one per message), one job
        await c.send(msg)
        await c.send(msg)
        first = await wait_frame(c, lambda f: f.get("op_id") == op_id, 15)
        second = await wait_frame(c, lambda f: f.get("op_id") == op_id, 15)
        assert first["type"] == second["type"] == "ack", (first, second)
        third = await c.request(dict(msg))
    async with ws_client(hub.ws_url, name="retry-again") as c:
        fourth = await c.request(dict(msg))
    jobs = {a["result"]["job"] for a in (first, second, third, fourth)}
    assert len(jobs) == 1, (first, second, third, fourth)
    with hub.http() as http:
        listed = http.get("/jobs", params={"session": sid}).json()["jobs"]
        assert [j["id"] for j in listed] == list(jobs)
        # HTTP's Idempotency-Key is the same op_id
        body = {"engine": "slow", "task": "stream", "params": {"chunks": 1, "interval": 0.0}, "session": sid}
        key = op()
        a = http.post("/jobs", json=body, headers={"idempotency-key": key}).json()
        b = http.post("/jobs", json=body, headers={"idempotency-key": key}).json()
        assert a["job"] == b["job"]
        assert len(http.get("/jobs", params={"session": sid}).json()["jobs"]) == 2


async def test_transform_engine_transposes_an_upload(hub: HubProcess) -> None:
    scale = (60, 62, 64, 65, 67, 69, 71, 72, 67, 64, 62, 60)  # C major, up and down
    source = notes_to_midi([Note(variation=0, onset=0.25 * i, duration=0.25, pitch=p, velocity=90,
                                 instrument=0) for i, p in enumerate(scale)])
    with hub.http() as http:
        r = http.post("/cas", content=source, headers={"content-type": "audio/midi"})
        assert r.status_code == 201, r.text
        upload = r.json()
    assert upload["mime"] == "audio/midi" and upload["hash"] == hashlib.sha256(source).hexdigest()
    async with ws_client(hub.ws_url, name="transformer") as c:
        await c.request({"type": "subscribe", "topics": ["jobs"]})
        ack = await c.request({"type": "job.submit", "engine": "transform", "task": "transpose",
                               "params": {"artifact": upload["artifact"], "semitones": 2}})
        frames = await job_frames(c, ack["result"]["job"], timeout=60)
    assert _types(frames)[0] == "job.queued" and _types(frames)[-1] == "job.completed", _types(frames)
    (art,) = frames[-1]["event"]["artifacts"]
    with hub.http() as http:
        out = http.get(art["url"]).content
    before, after = _midi_notes(source), _midi_notes(out)
    assert len(after) == len(before) == 12
    assert [p for _, p in after] == [p + 2 for _, p in before]
    assert art["metadata"]["note_count"] == 12
    assert upload["metadata"]["key"].startswith("C") and art["metadata"]["key"].startswith("D"), (
        upload["metadata"]["key"], art["metadata"]["key"])


async def test_fast_streams_stay_ordered_and_exactly_once(hub: HubProcess) -> None:
    """Note chunks are pipelined into the log (no fsync wait per chunk): two fast jobs at
    once still give every chunk exactly once, in order, all before the job's ending."""
    n = 800
    async with ws_client(hub.ws_url, name="firehose") as c:
        await c.request({"type": "subscribe", "topics": ["jobs"]})
        t0 = time.monotonic()
        jobs = [(await c.request(slow_job(chunks=n, interval=0.0)))["result"]["job"] for _ in range(2)]
        frames = await jobs_frames(c, jobs, timeout=120)
        elapsed = time.monotonic() - t0
    for job in jobs:
        events = [f for f in frames[job] if f["type"] == "event"]
        kinds = [e["event"]["type"] for e in events]
        assert kinds[-1] == "job.completed" and kinds.count("job.completed") == 1
        assert kinds.index("job.started") < kinds.index("job.notes")
        seqs = [e["event"]["seq"] for e in events if e["event"]["type"] == "job.notes"]
        assert seqs == list(range(n))
        offsets = [e["offset"] for e in events]
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
        assert events[-1]["event"]["artifacts"][0]["metadata"]["note_count"] == 4 * n
    print(f"\n2 x {n} chunks streamed in {elapsed:.2f} s ({2 * n / elapsed:.0f} durable chunks/s)")
