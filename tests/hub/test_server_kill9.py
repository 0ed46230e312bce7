"""``kill -9`` of the server while the slow engine runs a job, then a restart on the same
data folder: every acknowledged command is there, the running job is reported failed
with code ``interrupted`` (record and replayed event), and queued jobs run after all."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from serverkit import (
    HubProcess,
    is_event,
    jobs_frames,
    new_session,
    slow_job,
    wait_frame,
    ws_client,
)


async def test_kill9_mid_job_then_restart(make_hub: Callable[..., HubProcess]) -> None:
    proc = make_hub("[tutti.engine_concurrency]\nslow = 1\n")
    async with ws_client(proc.ws_url, name="before") as c:
        sid, (verse,) = await new_session(c, "Crash test", ("verse",))
        await c.request({"type": "subscribe", "topics": ["jobs", f"session:{sid}"]})
        epoch = c.welcome["epoch"]
        running = (await c.request(slow_job(sid, verse, chunks=600, interval=0.05)))["result"]["job"]
        queued = [(await c.request(slow_job(sid, verse, chunks=3, interval=0.01)))["result"]["job"]
                  for _ in range(2)]
        seen: list[dict[str, Any]] = []
        seen.append(await wait_frame(c, is_event("job.notes", job=running, seq=3), 30, seen))
        # session commands while the job streams; each ack means "durable"
        acks = [
            await c.request({"type": "session.rename", "session": sid, "title": "Survivor"}),
            await c.request({"type": "session.set_tempo", "session": sid, "bpm": 133}),
            await c.request({"type": "session.set_key", "session": sid, "key": "E minor"}),
            await c.request({"type": "section.add", "session": sid, "name": "chorus", "bars": 4}),
            await c.request({"type": "section.resize", "session": sid, "section": verse, "bars": 12}),
        ]
        chorus = acks[3]["result"]["section"]
        last_acked = max(a["offset"] for a in acks)
        before_kill = [f for f in seen + c.drain() if f.get("type") == "event"]
        seen_offset = max([f["offset"] for f in before_kill] + [last_acked])
        proc.kill()

    proc.start()
    with proc.http() as http:
        record = http.get(f"/jobs/{running}").json()
        session = http.get(f"/sessions/{sid}").json()
    assert record["state"] == "failed" and record["code"] == "interrupted", record
    assert session["title"] == "Survivor" and session["tempo"] == 133 and session["key"] == "E minor"
    assert [(s["id"], s["name"], s["bars"]) for s in session["sections"]] == [
        (verse, "verse", 12), (chorus, "chorus", 4)]

    # Resume from before the kill: the failure is replayed from the log (once), and the
    # jobs that were still queued run now.
    async with ws_client(proc.ws_url, name="after", resume={"epoch": epoch, "offset": seen_offset},
                         topics=["jobs", f"session:{sid}"]) as c:
        resumed = await wait_frame(c, lambda f: f.get("type") == "resumed", 15)
        assert resumed["recovered"] is True, resumed
        got = (await c.request({"type": "session.get", "session": sid}))["result"]["session"]
        assert got["title"] == "Survivor" and got["tempo"] == 133
        frames = await jobs_frames(c, [running, *queued], timeout=60)
    events = [f for f in frames[running] if f["type"] == "event"]
    # Note chunks made durable after the client's last read and before the kill are
    # replayed too (lossless), continuing the seqs it saw; then exactly one failure.
    *late_notes, last = events
    seen_seqs = [f["event"]["seq"] for f in before_kill
                 if f["event"]["type"] == "job.notes" and f["event"]["job"] == running]
    assert all(f["event"]["type"] == "job.notes" and f["replayed"] for f in late_notes), late_notes
    assert [f["event"]["seq"] for f in late_notes] == list(
        range(max(seen_seqs) + 1, max(seen_seqs) + 1 + len(late_notes)))
    assert all(f["offset"] > seen_offset for f in late_notes)
    failed = [last]
    assert last["event"]["type"] == "job.failed", "one failure event, after the notes"
    assert failed[0]["replayed"] is True and failed[0]["event"]["code"] == "interrupted"
    assert failed[0]["offset"] > seen_offset and failed[0]["epoch"] == epoch
    for job in queued:
        kinds = [f["event"]["type"] for f in frames[job] if f["type"] == "event"]
        assert kinds[0] == "job.started" and kinds[-1] == "job.completed", kinds
        notes = [f["event"]["seq"] for f in frames[job] if f["type"] == "event"
                 and f["event"]["type"] == "job.notes"]
        assert notes == [0, 1, 2]
    with proc.http() as http:
        for job in queued:
            assert http.get(f"/jobs/{job}").json()["state"] == "completed"
        assert http.get(f"/jobs/{running}").json()["code"] == "interrupted"
        takes = http.get(f"/sessions/{sid}").json()["sections"][0]["takes"]
    assert len(takes) == 2 and all(t["status"] == "pending" for t in takes)
    assert {t["job_id"] for t in takes} == set(queued)
