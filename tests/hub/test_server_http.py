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
    for name in ("tutti_connections", "tutti_log_head", "tutti_jobs", "tutti_fanout_seconds"):
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
