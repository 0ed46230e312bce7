"""REST surface: health, models, metrics, OpenAPI, sessions, SSE with Last-Event-ID resume."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import orjson
import pytest
from serverkit import HubProcess


@pytest.fixture(scope="module")
def api(hub: HubProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hub.url, timeout=20) as client:
        yield client


def _sse_events(api: httpx.Client, params: dict[str, str], headers: dict[str, str], count: int) -> list[dict[str, str]]:
    """Read ``count`` SSE `event` records (id, event, data) from /events."""
    out: list[dict[str, str]] = []
    with api.stream("GET", "/events", params=params, headers=headers) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        record: dict[str, str] = {}
        for line in resp.iter_lines():
            if not line:
                if record.get("event") == "event":
                    out.append(record)
                    if len(out) == count:
                        return out
                record = {}
                continue
            if line.startswith(":"):
                continue
            key, _, value = line.partition(": ")
            record[key] = value
    return out


def test_health_models_metrics_openapi(api: httpx.Client) -> None:
    health = api.get("/health").json()
    assert health["status"] == "ok" and health["epoch"]
    engines = {e["name"]: e for e in api.get("/models").json()["engines"]}
    assert engines["transform"]["available"] is True
    assert any(t["name"] == "transpose" for t in engines["transform"]["tasks"])
    assert "properties" in engines["transform"]["tasks"][0]["params_schema"]
    metrics = api.get("/metrics").text
    for name in ("tutti_connections", "tutti_log_head", "tutti_jobs", "tutti_fanout_seconds", "tutti_slow_consumers_total"):
        assert f"# TYPE {name} " in metrics
    doc = api.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.") and "/jobs/{job}" in doc["paths"]


def test_rest_session_commands_and_errors(api: httpx.Client) -> None:
    created = api.post("/sessions", json={"title": "REST song", "tempo": 96})
    assert created.status_code == 201
    sid = created.json()["id"]
    ack = api.post(f"/sessions/{sid}/commands", json={"type": "section.add", "name": "intro", "bars": 4}).json()
    assert ack["type"] == "ack" and ack["result"]["section"].startswith("sec_")
    session = api.get(f"/sessions/{sid}").json()
    assert session["tempo"] == 96 and [s["name"] for s in session["sections"]] == ["intro"]
    missing = api.get("/sessions/ses_nope")
    assert missing.status_code == 404 and missing.json()["code"] == "unknown_session"
    bad = api.post(f"/sessions/{sid}/commands", json={"type": "section.add", "name": "x", "bars": 0})
    assert bad.status_code == 400 and bad.json()["code"] == "validation_failed"
    assert api.post("/sessions", content=b"{nope").json()["code"] == "invalid_json"


def test_sse_stream_and_last_event_id_resume(api: httpx.Client) -> None:
    sid = api.post("/sessions", json={"title": "SSE"}).json()["id"]
    for i in range(3):
        api.post(f"/sessions/{sid}/commands", json={"type": "session.rename", "title": f"SSE {i}"})
    first = _sse_events(api, {"topics": f"session:{sid}"}, {"last-event-id": f"{api.get('/health').json()['epoch']}:0"}, 4)
    kinds = [orjson.loads(r["data"])["event"]["type"] for r in first]
    assert kinds == ["session.created", "session.renamed", "session.renamed", "session.renamed"]
    offsets = [int(r["id"].rsplit(":", 1)[1]) for r in first]
    assert offsets == sorted(offsets) and len(set(offsets)) == 4
    # Resume after the second event: exactly the two that follow, in order.
    resumed = _sse_events(api, {"topics": f"session:{sid}"}, {"last-event-id": first[1]["id"]}, 2)
    assert [r["id"] for r in resumed] == [first[2]["id"], first[3]["id"]]
    assert all(orjson.loads(r["data"])["replayed"] for r in resumed)


def test_render_writes_whole_and_per_section_files(api: httpx.Client, hub: HubProcess) -> None:
    import io
    from pathlib import Path

    import mido

    midi_dir = Path(__file__).resolve().parents[1] / "fixtures" / "midi"
    sid = api.post("/sessions", json={"title": "Render me", "tempo": 100}).json()["id"]
    sections = []
    for name, bars in (("intro", 2), ("verse", 4)):
        ack = api.post(f"/sessions/{sid}/commands", json={"type": "section.add", "name": name, "bars": bars}).json()
        sections.append(ack["result"]["section"])
    for sec, fixture in zip(sections, ("oneills1850_tune.mid", "mozart_k545_mv1.mid"), strict=True):
        up = api.post("/cas", content=(midi_dir / fixture).read_bytes(),
                      headers={"content-type": "audio/midi"}, params={"session": sid, "filename": fixture}).json()
        take = api.post(f"/sessions/{sid}/commands",
                        json={"type": "take.add", "section": sec, "artifact": up["artifact"]}).json()["result"]["take"]
        api.post(f"/sessions/{sid}/commands", json={"type": "take.choose", "section": sec, "take": take})
    out = api.post(f"/sessions/{sid}/render", json={})
    assert out.status_code == 201
    body = out.json()
    whole = mido.MidiFile(file=io.BytesIO(api.get(body["artifact"]["url"]).content))
    assert whole.type == 1
    assert [s["section"] for s in body["sections"]] == sections
    for ref in body["sections"]:
        part = mido.MidiFile(file=io.BytesIO(api.get(ref["url"]).content))
        assert any(m.type == "note_on" and m.velocity > 0 for t in part.tracks for m in t)
    exports = sorted(p.name for p in (hub.data / "exports" / sid).glob("*.mid"))
    # Choosing a take exported it; rendering adds the whole piece and one file per section.
    assert exports == ["Render-me-intro.mid", "Render-me-render.mid", "Render-me-verse.mid",
                       "intro-take1.mid", "verse-take1.mid"]
    assert Path(body["export_path"]).read_bytes() == api.get(body["artifact"]["url"]).content
