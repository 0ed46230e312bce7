"""End to end in headless Chromium: compose with two browsers against a real hub.

One browser creates a session, adds sections, streams a generation from the slow test
engine and watches the piano roll fill before the job completes, chooses a take,
renders and downloads the MIDI; a second browser on the same session sees every
change live. Playback is checked for sound by rendering through an OfflineAudioContext.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
import mido
from playwright.sync_api import Browser

from tests.hub.serverkit import HubProcess
from tests.web.conftest import PageErrors
from tests.web.webkit import open_page, open_session, section_names, wait_until

CHUNKS = 24
NOTES_PER_CHUNK = 4


def note_ons(data: bytes) -> list[tuple[int, int]]:
    """(absolute tick, pitch) of every sounding note_on in a MIDI file."""
    midi = mido.MidiFile(file=io.BytesIO(data))
    out = []
    for track in midi.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "note_on" and msg.velocity > 0:
                out.append((tick, msg.note))
    return sorted(out)


def test_compose_generate_choose_render_two_browsers(
    hub: HubProcess, browser: Browser, shots: Path, page_errors: PageErrors, tmp_path: Path
) -> None:
    ctx_a, a = open_page(browser, f"{hub.url}/?name=Alice")
    page_errors.watch(a, "A")
    a.screenshot(path=str(shots / "01-session-list.png"))

    # create a session from the list view
    a.fill("#new-title", "Night drive")
    a.fill("#new-tempo", "120")
    a.fill("#new-key", "C major")
    a.click("#create-session")
    a.wait_for_selector("#view[data-ready=true]")
    session_id = a.evaluate("tutti.store.sessionId")
    assert session_id and session_id.startswith("ses_")
    assert a.input_value(".title-input") == "Night drive"

    # a second browser on the same session
    ctx_b, b = open_page(browser, f"{hub.url}/?name=Bob")
    page_errors.watch(b, "B")
    open_session(b, session_id)

    # two sections, seen live by the other browser
    a.click("button.add-section")
    wait_until(lambda: len(section_names(a)) == 1, what="first section in A")
    a.click("button.add-section")
    wait_until(lambda: section_names(a) == ["Section 1", "Section 2"], what="two sections in A")
    wait_until(lambda: section_names(b) == ["Section 1", "Section 2"], what="two sections in B")

    # rename and resize the second section; B follows
    a.click(".block:nth-child(2) .block-select")
    a.fill("#sec-name", "Chorus")
    a.press("#sec-name", "Enter")
    a.fill("#sec-bars", "12")
    a.press("#sec-bars", "Enter")
    wait_until(lambda: section_names(b) == ["Section 1", "Chorus"], what="rename seen by B")
    wait_until(lambda: "12 bars" in (b.text_content(".block:nth-child(2) .block-bars") or ""), what="resize seen by B")

    # presence: B sees both browsers
    wait_until(lambda: b.eval_on_selector_all(".peer-name", "els => els.map(e => e.textContent).join('|')").count("Alice") == 1,
               what="Alice in B's presence list")

    # generate on the chorus with the slow streaming engine; parameters come from its schema
    a.select_option("#engine", "slow")
    a.wait_for_selector("[data-param=chunks] input")
    a.fill("[data-param=chunks] input", str(CHUNKS))
    a.fill("[data-param=interval] input", "0.2")
    a.fill("[data-param=notes_per_chunk] input", str(NOTES_PER_CHUNK))
    a.click("#run-job")

    # the roll's note count grows while the job is still running
    samples: list[tuple[int, str]] = []

    def sample() -> bool:
        state = a.evaluate(
            """() => ({ n: Number(document.querySelector('#roll').dataset.noteCount),
                       s: document.querySelector('.job')?.dataset.state || 'none' })"""
        )
        samples.append((state["n"], state["s"]))
        return bool(state["s"] == "completed")

    wait_until(sample, timeout=30, what="job completed")
    before_done = [n for n, s in samples if s != "completed"]
    growing = sorted({n for n in before_done if 0 < n < CHUNKS * NOTES_PER_CHUNK})
    assert len(growing) >= 3, f"the roll did not grow while streaming: {samples}"
    assert before_done == sorted(before_done), "the drawn note count went down while streaming"
    assert int(a.get_attribute("#roll", "data-note-count") or 0) == CHUNKS * NOTES_PER_CHUNK
    assert int(a.get_attribute("#roll", "data-drawn-count") or 0) > 0
    a.screenshot(path=str(shots / "02-generated.png"), full_page=True)

    # the take appears in both browsers, with metadata from the artifact
    a.wait_for_selector(".take")
    b.click(".block:nth-child(2) .block-select")
    b.wait_for_selector(".take")
    arts = httpx.get(f"{hub.url}/artifacts", params={"session": session_id, "kind": "midi"}).json()["artifacts"]
    metadata = next(x for x in arts if x["job"])["metadata"]
    wait_until(lambda: "/s" in (a.text_content(".take .meta") or ""), what="take metadata")
    meta = a.inner_text(".take .meta")
    assert f"Notes\n{CHUNKS * NOTES_PER_CHUNK}" in meta, meta
    assert f"{metadata['density']['label']}, " in meta, meta
    assert f"{metadata['energy']['peak']:.2f}".rstrip("0").rstrip(".") in meta, meta
    assert (metadata["key"] or "\u2013") in meta, meta  # an en dash stands for "no key"

    # choose it; the timeline shows the chosen take in both browsers
    a.click(".take button[aria-label^='Choose']")
    wait_until(lambda: "take 1" in (a.text_content(".block:nth-child(2) .block-bars") or ""), what="chosen in A")
    wait_until(lambda: "take 1" in (b.text_content(".block:nth-child(2) .block-bars") or ""), what="chosen in B")
    assert a.get_attribute(".take button[aria-label^='Choose']", "aria-pressed") == "true"

    # undo / redo the choice
    a.click("button[aria-label=Undo]")
    wait_until(lambda: "take 1" not in (b.text_content(".block:nth-child(2) .block-bars") or ""), what="undo seen by B")
    wait_until(lambda: a.is_enabled("button[aria-label=Redo]"), what="redo enabled")
    a.click("button[aria-label=Redo]")
    wait_until(lambda: "take 1" in (b.text_content(".block:nth-child(2) .block-bars") or ""), what="redo seen by B")

    # audition: the take rendered offline has sound at its note onsets and silence before
    take_artifact = a.evaluate(
        "() => tutti.store.session.sections[1].takes[0].artifact_id"
    )
    report: dict[str, Any] = a.evaluate("id => tutti.renderTakeOffline(id, {lead: 0.5})", take_artifact)
    assert report["beforeFirst"] < 1e-4, f"not silent before the first note: {report['beforeFirst']}"
    assert len(report["atOnsets"]) == CHUNKS * NOTES_PER_CHUNK
    quiet = [i for i, e in enumerate(report["atOnsets"]) if e < 0.01]
    assert not quiet, f"no signal at the onsets of notes {quiet[:10]}"

    # download the take as MIDI
    with a.expect_download() as dl:
        a.click(".take .download-take")
    take_path = tmp_path / "take.mid"
    dl.value.save_as(take_path)
    take_notes = note_ons(take_path.read_bytes())
    assert len(take_notes) == CHUNKS * NOTES_PER_CHUNK
    assert {p for _, p in take_notes} == {48 + (i % 24) for i in range(CHUNKS)}

    # render the arrangement and download it
    a.click(".render button")
    a.wait_for_selector(".download-render:not([hidden])")
    with a.expect_download() as dl:
        a.click(".download-render")
    render_path = tmp_path / "render.mid"
    dl.value.save_as(render_path)
    rendered = mido.MidiFile(str(render_path))
    notes = note_ons(render_path.read_bytes())
    assert len(notes) == CHUNKS * NOTES_PER_CHUNK
    # the chorus starts after the 8 silent bars of section 1 (4/4: 32 beats)
    assert notes[0][0] == 32 * rendered.ticks_per_beat, notes[:3]

    # play the arrangement: the playhead moves
    a.keyboard.press("Escape")
    a.evaluate("document.activeElement && document.activeElement.blur()")
    a.keyboard.press("Space")
    wait_until(lambda: a.evaluate("tutti.transport.playing"), what="playing")
    first = a.evaluate("tutti.transport.beat()")
    a.wait_for_timeout(400)
    second = a.evaluate("tutti.transport.beat()")
    assert second > first + 0.3, (first, second)
    left = a.evaluate("parseFloat(document.querySelector('.playhead').style.left)")
    assert left > 0
    a.screenshot(path=str(shots / "03-playing.png"))
    a.keyboard.press("Space")
    wait_until(lambda: not a.evaluate("tutti.transport.playing"), what="stopped")

    # reorder by dragging: the chorus goes first, in both browsers
    a.drag_and_drop(".block:nth-child(2)", ".block:nth-child(1)", target_position={"x": 5, "y": 20})
    wait_until(lambda: section_names(b) == ["Chorus", "Section 1"], what="drag reorder seen by B")
    b.screenshot(path=str(shots / "04-second-browser.png"), full_page=True)

    # delete a section, then undo it
    a.click(".block:nth-child(2) .block-select")
    a.click("button[aria-label='Delete section']")
    wait_until(lambda: section_names(b) == ["Chorus"], what="delete seen by B")
    a.click("button[aria-label=Undo]")
    wait_until(lambda: section_names(b) == ["Chorus", "Section 1"], what="undo delete seen by B")

    assert not page_errors.errors, page_errors.errors
    ctx_a.close()
    ctx_b.close()


def test_drums_audible_offline(hub: HubProcess, browser: Browser) -> None:
    ctx, page = open_page(browser, f"{hub.url}/")
    notes = [
        {"time": 0.0, "duration": 0.2, "pitch": 36, "velocity": 100, "drum": True},
        {"time": 0.5, "duration": 0.2, "pitch": 38, "velocity": 100, "drum": True},
        {"time": 1.0, "duration": 0.1, "pitch": 42, "velocity": 100, "drum": True},
        {"time": 1.5, "duration": 0.5, "pitch": 60, "velocity": 90, "program": 33, "drum": False},
        {"time": 2.0, "duration": 0.5, "pitch": 67, "velocity": 90, "program": 48, "drum": False},
    ]
    report = page.evaluate("notes => tutti.renderNotesOffline(notes, {lead: 0.4})", notes)
    assert report["beforeFirst"] < 1e-4
    for note, energy in zip(notes, report["atOnsets"], strict=True):
        assert energy > 0.01, f"silent at {note}"
    # and the gaps between percussive hits decay towards silence
    windows = report["windows"]
    hat_end = int((0.4 + 1.0 + 0.35) / 0.01)
    assert windows[hat_end] < max(report["atOnsets"]) / 4
    ctx.close()


def test_reconnect_resumes_without_losing_events(hub: HubProcess, browser: Browser, page_errors: PageErrors) -> None:
    with httpx.Client(base_url=hub.url, timeout=10) as http:
        sid = http.post("/sessions", json={"title": "Resume"}).json()["id"]
        http.post(f"/sessions/{sid}/commands", json={"type": "section.add", "name": "intro", "bars": 4})
        ctx, page = open_page(browser, f"{hub.url}/")
        page_errors.watch(page, "R")
        open_session(page, sid)
        wait_until(lambda: section_names(page) == ["intro"], what="intro")
        # drop the socket; while it is down, three changes happen
        page.evaluate("tutti.conn.dropForTest()")
        for name in ("verse", "chorus", "outro"):
            r = http.post(f"/sessions/{sid}/commands", json={"type": "section.add", "name": name, "bars": 8})
            assert r.status_code == 200, r.text
        wait_until(lambda: page.evaluate("tutti.conn.status") == "open", what="reconnected")
        wait_until(lambda: section_names(page) == ["intro", "verse", "chorus", "outro"], what="missed events replayed")
        # a change made right after reconnecting arrives once
        http.post(f"/sessions/{sid}/commands", json={"type": "section.rename", "section": page.evaluate(
            "tutti.store.session.sections[1].id"), "name": "verse A"})
        wait_until(lambda: section_names(page) == ["intro", "verse A", "chorus", "outro"], what="live after resume")
        assert page.evaluate("tutti.conn.resume.offset") >= page.evaluate("tutti.store.session.updated_offset")
    assert not page_errors.errors, page_errors.errors
    ctx.close()


def test_errors_shown_in_plain_words(hub: HubProcess, browser: Browser) -> None:
    with httpx.Client(base_url=hub.url, timeout=10) as http:
        sid = http.post("/sessions", json={"title": "Errors"}).json()["id"]
    ctx, page = open_page(browser, f"{hub.url}/")
    open_session(page, sid)
    page.click("button.add-section")
    wait_until(lambda: section_names(page) == ["Section 1"], what="section")
    # redo with nothing undone: the hub's error becomes a plain sentence
    page.evaluate("tutti.app.redo()")
    toast = page.wait_for_selector(".toast[role=alert]")
    assert toast is not None and "Nothing to redo" in (toast.text_content() or "")
    # a file that is not MIDI dropped as a take
    page.evaluate(
        """sec => tutti.app.uploadTake(sec, new File([new Uint8Array([1, 2, 3, 4])], 'junk.mid', {type: 'audio/midi'}))""",
        page.evaluate("tutti.store.session.sections[0].id"),
    )
    wait_until(lambda: "not a valid MIDI file" in (page.text_content("#toasts") or ""), what="invalid MIDI message")
    ctx.close()


def test_roll_shows_the_selected_sections_take(
    hub: HubProcess, browser: Browser, page_errors: PageErrors, shots: Path
) -> None:
    """Picking a section puts its take on the roll (the chosen one, else the last), or an
    empty roll that says the section has none; a job being watched keeps the roll."""
    ctx, page = open_page(browser, f"{hub.url}/?name=Roll")
    page_errors.watch(page, "roll")
    page.fill("#new-title", "Roll follows sections")
    page.click("#create-session")
    page.wait_for_selector("#view[data-ready=true]")
    page.click("button.add-section")
    page.click("button.add-section")
    wait_until(lambda: section_names(page) == ["Section 1", "Section 2"], what="two sections")

    def roll() -> tuple[int, str]:
        count = int(page.get_attribute("#roll", "data-note-count") or 0)
        return count, page.text_content(".roll-caption") or ""

    def wait_roll(want: tuple[int, str], what: str) -> None:
        seen = [roll()]

        def check() -> bool:
            seen.append(roll())
            return seen[-1] == want

        try:
            wait_until(check, what=what)
        except AssertionError as exc:
            page.screenshot(path=str(shots / "roll-failure.png"))
            state = page.evaluate("({source: tutti.app.live.source, selected: tutti.app.selectedSection,"
                                  " takes: tutti.store.session.sections.map((s) => s.takes.length)})")
            raise AssertionError(f"{exc}: the roll showed {seen[-1]!r}; app state {state!r}") from None

    page.click(".block:nth-child(2) .block-select")
    wait_until(lambda: "Section 2 has no takes yet" in roll()[1], what="empty caption for section 2")
    assert roll()[0] == 0

    page.select_option("#engine", "slow")
    page.wait_for_selector("[data-param=chunks] input")
    page.fill("[data-param=chunks] input", "3")
    page.fill("[data-param=interval] input", "0.05")
    page.fill("[data-param=notes_per_chunk] input", "5")
    page.click("#run-job")
    wait_until(lambda: page.get_attribute(".job", "data-state") == "completed", timeout=30, what="job completed")
    page.wait_for_selector(".take")
    assert roll()[0] == 15 and "slow" in roll()[1], roll()  # the watched job keeps the roll

    page.click(".block:nth-child(1) .block-select")
    wait_roll((0, "Section 1 has no takes yet: run a task on it to fill the roll."), "section 1's empty roll")
    page.click(".block:nth-child(2) .block-select")
    wait_roll((15, "Section 2, take 1 (none chosen yet): 15 notes"), "section 2's last take")
    page.click(".take button[aria-label^='Choose']")
    wait_roll((15, "Section 2, take 1: 15 notes"), "the caption after choosing")
    ctx.close()
