"""Browser piano roll benchmark: frame times while scrolling 20,000 notes, and first paint.

Starts a local hub (serving web/), stores a 20,000-note MIDI file as the chosen take of
a section, and opens the session in Debian's headless Chromium (Playwright, no
download). Frame timing is measured in the page with requestAnimationFrame, with the
frame-rate cap off (--disable-gpu-vsync --disable-frame-rate-limit) so the interval
between frames is the real cost of a frame rather than the 60 Hz tick. Prints a table.

    .venv/bin/python -m bench.web_pianoroll [--notes 20000] [--runs 5]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mido
from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-gpu-vsync", "--disable-frame-rate-limit",
]
TARGET_FRAME_MS = 16.0
TARGET_PAINT_MS = 1000.0

SCROLL_JS = """
async ({frames, viewBars}) => {
  const roll = tutti.app.live.roll;
  roll.follow = false;
  roll.viewBeats = viewBars * roll.beatsPerBar;
  roll.viewStart = 0;
  const total = roll.totalBeats;
  const step = Math.max((total - roll.viewBeats) / frames, 0.05);
  const intervals = [];
  const draws = [];
  const drawn = [];
  let last = null;
  await new Promise((done) => {
    let n = 0;
    const frame = (ts) => {
      if (last !== null) intervals.push(ts - last);
      last = ts;
      roll.viewStart = (roll.viewStart + step) % Math.max(total - roll.viewBeats, 1);
      const t0 = performance.now();
      roll.draw();
      draws.push(performance.now() - t0);
      drawn.push(Number(roll.canvas.dataset.drawnCount));
      if (++n < frames) requestAnimationFrame(frame); else done();
    };
    requestAnimationFrame(frame);
  });
  return {intervals, draws, drawn};
}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def local_hub() -> Iterator[str]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="tutti-bench-web-") as data:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--data", data, "--log-level", "warning"],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                time.sleep(0.1)
            else:
                raise RuntimeError("hub did not start")
            yield url
        finally:
            proc.terminate()
            proc.wait(15)


def many_notes_midi(count: int, seed: int = 7) -> bytes:
    """A four-track file (piano, bass, strings, drums) of `count` notes at 120 bpm, 16ths."""
    rng = random.Random(seed)
    tpb = 480
    midi = mido.MidiFile(type=1, ticks_per_beat=tpb)
    per_track = count // 4
    for k, (program, channel, lo, hi) in enumerate([(0, 0, 60, 84), (33, 1, 36, 52), (48, 2, 55, 76), (0, 9, 36, 46)]):
        track = mido.MidiTrack()
        if k == 0:
            track.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
        if channel != 9:
            track.append(mido.Message("program_change", program=program, channel=channel, time=0))
        events: list[tuple[int, int, mido.Message]] = []
        for i in range(per_track if k < 3 else count - 3 * per_track):
            start = i * tpb // 4
            dur = tpb // 4 * rng.choice([1, 1, 2, 3])
            pitch = rng.randint(lo, hi)
            events.append((start, 1, mido.Message("note_on", note=pitch, velocity=rng.randint(50, 120), channel=channel)))
            events.append((start + dur, 0, mido.Message("note_off", note=pitch, velocity=0, channel=channel)))
        now = 0
        for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
            track.append(msg.copy(time=tick - now))
            now = tick
        midi.tracks.append(track)
    out = io.BytesIO()
    midi.save(file=out)
    return out.getvalue()


def prepare(url: str, notes: int) -> str:
    with httpx.Client(base_url=url, timeout=60) as http:
        sid: str = http.post("/sessions", json={"title": "Bench"}).json()["id"]
        sec = http.post(f"/sessions/{sid}/commands", json={"type": "section.add", "name": "long", "bars": 1024}).json()
        section = sec["result"]["section"]
        up = http.post("/cas", params={"session": sid, "section": section, "filename": "bench.mid"},
                       content=many_notes_midi(notes), headers={"content-type": "audio/midi"})
        up.raise_for_status()
        take = http.post(f"/sessions/{sid}/commands",
                         json={"type": "take.add", "section": section, "artifact": up.json()["artifact"]}).json()
        http.post(f"/sessions/{sid}/commands",
                  json={"type": "take.choose", "section": section, "take": take["result"]["take"]})
    return sid


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def measure(url: str, sid: str, notes: int, runs: int, frames: int) -> dict[str, Any]:
    paint: list[float] = []
    fcp: list[float] = []
    roll_ready: list[float] = []
    scroll: dict[str, Any] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            for run in range(runs):
                ctx = browser.new_context(viewport={"width": 1280, "height": 800})
                page = ctx.new_page()
                page.goto(f"{url}/#/s/{sid}")
                page.wait_for_selector("#view[data-ready=true]", timeout=60_000)
                page.wait_for_function(f"document.querySelector('#roll').dataset.noteCount == '{notes}'", timeout=60_000)
                t: dict[str, float] = page.evaluate(
                    """() => ({
                      view: performance.getEntriesByName('tutti:session-view')[0]?.startTime ?? NaN,
                      fcp: performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? NaN,
                      now: performance.now(),
                    })"""
                )
                paint.append(t["view"])
                fcp.append(t["fcp"])
                roll_ready.append(t["now"])
                if run == runs - 1:
                    for label, bars in (("16 bars in view", 16), ("64 bars in view", 64), ("whole piece in view", 1024)):
                        scroll[label] = page.evaluate(SCROLL_JS, {"frames": frames, "viewBars": bars})
                ctx.close()
        finally:
            browser.close()
    return {"paint": paint, "fcp": fcp, "roll_ready": roll_ready, "scroll": scroll}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notes", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--frames", type=int, default=240)
    args = ap.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} is missing (apt-get install chromium)")
    with local_hub() as url:
        sid = prepare(url, args.notes)
        r = measure(url, sid, args.notes, args.runs, args.frames)
    print(f"\nweb piano roll: {args.notes} notes, Chromium headless (software), 1280x800, {args.runs} page loads\n")
    print(f"{'measure':<44}{'median':>10}{'p95':>10}{'target':>10}{'ok':>5}")
    print("-" * 79)

    def row(name: str, values: list[float], target: float | None) -> None:
        med = statistics.median(values)
        ok = "" if target is None else ("yes" if med <= target else "NO")
        tgt = "" if target is None else f"{target:.0f}"
        print(f"{name:<44}{med:>10.2f}{pct(values, 0.95):>10.2f}{tgt:>10}{ok:>5}")

    row("first paint of session view (ms)", r["paint"], TARGET_PAINT_MS)
    row("first contentful paint (ms)", r["fcp"], None)
    row("roll holds all notes, from navigation (ms)", r["roll_ready"], None)
    for label, s in r["scroll"].items():
        row(f"scroll, {label}: frame interval (ms)", s["intervals"], TARGET_FRAME_MS)
        row(f"scroll, {label}: draw cost (ms)", s["draws"], None)
        print(f"{'':<4}notes drawn per frame: median {statistics.median(s['drawn']):.0f}, max {max(s['drawn'])}")


if __name__ == "__main__":
    main()
