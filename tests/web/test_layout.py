"""Layout, accessibility, file drop, engine availability and DAW transport following, in Chromium."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import mido
from playwright.sync_api import Browser, Page
from websockets.sync.client import connect

from tests.hub.serverkit import HubProcess
from tests.web.conftest import PageErrors
from tests.web.webkit import (
    OVERFLOW_JS,
    UNNAMED_CONTROLS_JS,
    open_page,
    open_session,
    section_names,
    wait_until,
)


def midi_bytes(drums: bool = False) -> bytes:
    midi = mido.MidiFile(type=1, ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
    channel = 9 if drums else 0
    for i, pitch in enumerate([60, 64, 67, 72, 67, 64, 60, 55]):
        note = [36, 42, 38, 42][i % 4] if drums else pitch
        track.append(mido.Message("note_on", note=note, velocity=90, channel=channel, time=0 if i == 0 else 240))
        track.append(mido.Message("note_off", note=note, velocity=0, channel=channel, time=240))
    out = io.BytesIO()
    midi.save(file=out)
    return out.getvalue()


def session_with_take(hub: HubProcess, title: str) -> tuple[str, list[str]]:
    with httpx.Client(base_url=hub.url, timeout=10) as http:
        sid = http.post("/sessions", json={"title": title, "key": "C major"}).json()["id"]
        secs = []
        for name in ("Intro with a long name", "Verse", "Chorus"):
            ack = http.post(f"/sessions/{sid}/commands", json={"type": "section.add", "name": name, "bars": 8}).json()
            secs.append(ack["result"]["section"])
        up = http.post("/cas", params={"session": sid, "section": secs[0], "filename": "riff.mid"},
                       content=midi_bytes(), headers={"content-type": "audio/midi"})
        assert up.status_code == 201, up.text
        art = up.json()["artifact"]
        ack = http.post(f"/sessions/{sid}/commands",
                        json={"type": "take.add", "section": secs[0], "artifact": art, "label": "riff"}).json()
        take = ack["result"]["take"]
        http.post(f"/sessions/{sid}/commands", json={"type": "take.choose", "section": secs[0], "take": take})
    return sid, secs


def assert_named(page: Page, where: str) -> None:
    unnamed = page.evaluate(UNNAMED_CONTROLS_JS)
    assert not unnamed, f"controls without an accessible name on {where}: {unnamed}"


def assert_no_overflow(page: Page, where: str) -> None:
    o: dict[str, Any] = page.evaluate(OVERFLOW_JS)
    assert o["scrollWidth"] <= o["clientWidth"], f"horizontal overflow on {where}: {o}"


def _chosen_take_shown(page: Page) -> Callable[[], bool]:
    return lambda: page.evaluate("tutti.store.session.sections[0].chosen_take") is not None


def test_narrow_and_wide_layouts_have_no_overflow_and_named_controls(
    hub: HubProcess, browser: Browser, shots: Path, page_errors: PageErrors
) -> None:
    sid, _ = session_with_take(hub, "Layout")
    for width, height, tag in ((390, 844, "narrow"), (1280, 800, "wide")):
        ctx, page = open_page(browser, f"{hub.url}/", width=width, height=height)
        page_errors.watch(page, tag)
        page.wait_for_selector(".session-item")
        assert_no_overflow(page, f"{tag} session list")
        assert_named(page, f"{tag} session list")
        page.screenshot(path=str(shots / f"10-{tag}-list.png"), full_page=True)
        open_session(page, sid)
        page.wait_for_selector(".take")
        wait_until(_chosen_take_shown(page), what="chosen")
        page.wait_for_timeout(300)
        assert_no_overflow(page, f"{tag} session view")
        assert_named(page, f"{tag} session view")
        page.screenshot(path=str(shots / f"11-{tag}-session.png"), full_page=True)
        # a job row and a toast must fit too
        page.evaluate("tutti.app.toasts.info('A message that is fairly long to check wrapping on small screens.')")
        assert_no_overflow(page, f"{tag} with a toast")
        ctx.close()
    assert not page_errors.errors, page_errors.errors


def test_drop_midi_file_adds_a_take(hub: HubProcess, browser: Browser, shots: Path) -> None:
    with httpx.Client(base_url=hub.url, timeout=10) as http:
        sid = http.post("/sessions", json={"title": "Drop"}).json()["id"]
        http.post(f"/sessions/{sid}/commands", json={"type": "section.add", "name": "beat", "bars": 4})
    ctx, page = open_page(browser, f"{hub.url}/")
    open_session(page, sid)
    wait_until(lambda: section_names(page) == ["beat"], what="section")
    data = list(midi_bytes(drums=True))
    # a real drop event carrying a File, on the section's block in the timeline
    page.evaluate(
        """bytes => {
          const dt = new DataTransfer();
          dt.items.add(new File([new Uint8Array(bytes)], 'drums.mid', {type: 'audio/midi'}));
          const block = document.querySelector('.lane .block');
          block.dispatchEvent(new DragEvent('dragover', {dataTransfer: dt, bubbles: true, cancelable: true}));
          block.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
        }""",
        data,
    )
    page.wait_for_selector(".take")
    assert "drums.mid" in (page.text_content(".take h4") or "")
    art = page.evaluate("tutti.store.session.sections[0].takes[0].artifact_id")
    wait_until(lambda: page.evaluate("id => Boolean(tutti.store.artifacts.get(id)?.metadata)", art), what="metadata")
    # drums are audible in the audition render
    report = page.evaluate("id => tutti.renderTakeOffline(id, {lead: 0.3})", art)
    assert report["beforeFirst"] < 1e-4
    assert min(report["atOnsets"]) > 0.01, report["atOnsets"]
    page.screenshot(path=str(shots / "12-dropped-take.png"), full_page=True)
    ctx.close()


def test_parameter_forms_follow_the_schema_and_show_availability(hub: HubProcess, browser: Browser, shots: Path) -> None:
    with httpx.Client(base_url=hub.url, timeout=10) as http:
        sid = http.post("/sessions", json={"title": "Schemas"}).json()["id"]
        http.post(f"/sessions/{sid}/commands", json={"type": "section.add", "name": "A", "bars": 4})
    ctx, page = open_page(browser, f"{hub.url}/")
    open_session(page, sid)
    # transform/quantize: the union grid field, the bounded number and the boolean all render
    page.select_option("#engine", "transform")
    page.select_option("#task", "quantize")
    for name in ("artifact", "grid", "strength", "swing", "quantize_ends"):
        page.wait_for_selector(f"[data-param={name}]")
    assert page.get_attribute("[data-param=strength] input", "max") == "1"
    # an engine that appears later with a new parameter and no weights: no UI change needed
    page.evaluate(
        """() => {
          tutti.store.engines = [...tutti.store.engines, {
            name: 'nextgen', version: '0.1', available: false, reason: 'model weights are not installed',
            model: 'nextgen-small', device: null,
            tasks: [{name: 'generate', description: 'generate new material', constraints: [],
                     params_schema: {type: 'object', properties: {
                       bars: {type: 'integer', minimum: 1, maximum: 64, default: 8, title: 'Length in bars'},
                       temperature: {type: 'number', minimum: 0.1, maximum: 2, default: 1.0},
                       top_p: {type: 'number', minimum: 0, maximum: 1, default: 0.95},
                       instruments: {type: 'array', items: {type: 'integer'}},
                       key_lock: {type: 'boolean', default: true},
                       brand_new_knob: {anyOf: [{type: 'string', enum: ['soft', 'hard']}, {type: 'null'}], default: null}}}}]}];
          tutti.store.changed('engines');
        }"""
    )
    page.select_option("#engine", "nextgen")
    for name in ("bars", "temperature", "top_p", "instruments", "key_lock", "brand_new_knob"):
        page.wait_for_selector(f"[data-param={name}]")
    assert "unavailable" in (page.text_content(".availability") or "")
    assert "weights are not installed" in (page.text_content(".availability") or "")
    assert page.is_disabled("#run-job")
    assert page.evaluate(UNNAMED_CONTROLS_JS) == []
    page.screenshot(path=str(shots / "13-schema-form.png"), full_page=True)
    ctx.close()


def test_playhead_follows_the_daw_transport(hub: HubProcess, browser: Browser, shots: Path) -> None:
    with httpx.Client(base_url=hub.url, timeout=10) as http:
        sid = http.post("/sessions", json={"title": "Follow"}).json()["id"]
        http.post(f"/sessions/{sid}/commands", json={"type": "section.add", "name": "A", "bars": 16})
    ctx, page = open_page(browser, f"{hub.url}/")
    open_session(page, sid)
    with connect(hub.ws_url, open_timeout=10) as daw:
        daw.send(json.dumps({"type": "hello", "client": "daw-plugin", "name": "Bitwig bridge", "topics": [f"session:{sid}"]}))
        daw.recv(timeout=10)  # welcome
        daw.send(json.dumps({"type": "transport.take", "op_id": "t1", "session": sid}))
        daw.send(json.dumps({"type": "transport.update", "op_id": "t2", "session": sid, "playing": True, "bpm": 120, "beat": 8}))
        started = time.monotonic()
        wait_until(lambda: "Following Bitwig bridge" in (page.text_content(".transport-mode") or ""), what="following")
        wait_until(lambda: page.is_visible(".peer.holder"), what="holder in presence")
        assert "Bitwig bridge" in (page.text_content(".peer.holder") or "")
        # the beat at a time read from the page's own clock: no round-trip latency between them
        read = "(() => { const t = performance.now() / 1000; return [tutti.transport.beat(t), t]; })()"
        b1, t1 = page.evaluate(read)
        waited = time.monotonic() - started
        page.wait_for_timeout(600)
        b2, t2 = page.evaluate(read)
        # 120 bpm = 2 beats a second from beat 8 at the update
        assert 8 <= b1 <= 8 + waited * 2 + 0.3, b1
        assert t2 - t1 >= 0.5 and abs((b2 - b1) - (t2 - t1) * 2) < 0.05, (b1, b2, t2 - t1)
        assert page.is_disabled(".play-btn")
        page.screenshot(path=str(shots / "14-following-daw.png"))
        daw.send(json.dumps({"type": "transport.update", "op_id": "t3", "session": sid, "playing": False, "bpm": 120, "beat": 4}))
        wait_until(lambda: abs(page.evaluate("tutti.transport.beat()") - 4) < 1e-6, what="stopped at beat 4")
    # the DAW left: presence drops it and the browser runs its own transport again
    wait_until(lambda: "Local transport" in (page.text_content(".transport-mode") or ""), timeout=20, what="local again")
    ctx.close()
