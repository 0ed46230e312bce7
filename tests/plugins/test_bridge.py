"""`tutti plugin` end to end: the real CLI mirrors an earlier file, a job's partial file
while it runs, and its result (the partial file goes once the job completes)."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
from pathlib import Path

import httpx

from plugins.client import Backoff, TuttiClient
from tests.engines.slow_engine import chunk_notes, notes_to_midi
from tests.plugins.hubproc import REPO, Hub


async def test_bridge_mirrors_files_into_the_folder(hub: Hub, tmp_path: Path) -> None:
    folder = tmp_path / "daw"
    async with TuttiClient(hub.ws_url, name="driver", backoff=Backoff(base=0.05)) as c:
        sid = await c.create_session("Bridge")
        sec = await c.add_section(sid, "verse")
        earlier = notes_to_midi(list(chunk_notes(3, 4)))
        async with httpx.AsyncClient(base_url=hub.url) as http:
            resp = await http.post("/cas", content=earlier, params={"session": sid, "filename": "earlier.mid"},
                                   headers={"content-type": "audio/midi"})
            assert resp.status_code == 201
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "plugins.bridge", "--hub", hub.ws_url, "--session", sid, "--folder", str(folder),
            "--bpm", "120", "--progress", "lines", "--max-files", "3",
            cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        assert proc.stdout is not None
        lines: list[str] = []
        while not any("holding transport" in line for line in lines):
            lines.append((await asyncio.wait_for(proc.stdout.readline(), 30)).decode())
            assert lines[-1], "".join(lines)
        job = await c.submit_job("slow", "stream", {"chunks": 4, "interval": 0.05, "partial_every": 2},
                                 session=sid, section=sec)
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        lines += out.decode().splitlines(keepends=True)
        text = "".join(lines)
        assert proc.returncode == 0, text
        assert "job " in text and "completed" in text and "ready: slow.mid" in text
        assert f"ready: {job}.partial.mid" in text, text  # mirrored mid-generation, then removed
        names = sorted(p.name for p in folder.iterdir())
        assert names == ["earlier.mid", "slow.mid"], names  # no temp files left behind
        assert (folder / "earlier.mid").read_bytes() == earlier
        mirrored = (folder / "slow.mid").read_bytes()
        async with httpx.AsyncClient(base_url=hub.url) as http:
            cas = await http.get(f"/cas/{hashlib.sha256(mirrored).hexdigest()}")
        assert cas.status_code == 200 and cas.content == mirrored


def test_bridge_help_explains_itself() -> None:
    out = subprocess.run([sys.executable, "-m", "plugins.bridge", "--help"], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    for flag in ("--session", "--folder", "--bpm", "--midi-clock", "--upload", "examples:"):
        assert flag in out
