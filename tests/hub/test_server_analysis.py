"""Metadata on every MIDI artifact, POST /analyze, the WebSocket `analyze` command and `tutti analyze`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
from serverkit import HubProcess, ws_client

MIDI_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "midi"


def _upload(hub: HubProcess, name: str) -> dict[str, object]:
    resp = httpx.post(f"{hub.url}/cas", content=(MIDI_DIR / name).read_bytes(),
                      headers={"content-type": "audio/midi"}, params={"filename": name}, timeout=30)
    assert resp.status_code == 201, resp.text
    body: dict[str, object] = resp.json()
    return body


async def test_uploads_carry_metadata_and_analyses_run_over_http_and_ws(hub: HubProcess) -> None:
    up = _upload(hub, "mozart_k545_mv1.mid")
    meta = up["metadata"]
    assert isinstance(meta, dict)
    assert meta["key"] == "C major" and meta["note_count"] > 100
    assert meta["density"]["label"] in ("low", "medium", "high")
    listed = httpx.get(f"{hub.url}/artifacts", params={"kind": "midi"}, timeout=10).json()["artifacts"]
    assert any(a["id"] == up["artifact"] and a["metadata"]["key"] == "C major" for a in listed)

    report = httpx.post(f"{hub.url}/analyze", json={"artifact": up["artifact"],
                                                    "analyses": ["harmony", "structure"]}, timeout=30).json()
    assert report["harmony"]["chords"] and report["structure"]["form"]
    async with ws_client(hub.ws_url) as client:
        ack = await client.request({"type": "analyze", "artifact": up["artifact"], "analyses": ["rhythm"]})
        assert ack["result"]["rhythm"]["meter"]["time_signature"] == "4/4"
        err = await client.call({"type": "analyze", "artifact": "art_missing", "analyses": []})
        assert err["type"] == "error" and err["code"] == "unknown_artifact"


def test_invalid_midi_upload_is_a_structured_error(hub: HubProcess) -> None:
    data = (MIDI_DIR / "bach_bwv66.6.mid").read_bytes()[:40]
    resp = httpx.post(f"{hub.url}/cas", content=data, headers={"content-type": "audio/midi"}, timeout=30)
    assert resp.status_code == 400
    body = resp.json()
    assert body["code"] == "invalid_midi" and body["details"]


def test_cli_analyze_prints_json() -> None:
    out = subprocess.run([sys.executable, "-m", "hub.cli", "analyze", str(MIDI_DIR / "joplin_maple_leaf_rag.mid"),
                          "motifs"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["metadata"]["instruments"][0]["name"]
    assert report["motifs"] is not None


def test_cli_analyze_without_analyses_prints_the_metadata_alone() -> None:
    # argparse's choices with nargs="*" used to reject this (Python 3.11)
    out = subprocess.run([sys.executable, "-m", "hub.cli", "analyze", str(MIDI_DIR / "bach_bwv66.6.mid")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["metadata"]["duration_seconds"] > 0 and report["motifs"] is None


def test_cli_analyze_names_the_analyses_it_knows() -> None:
    from engines.analysis import ANALYSES

    out = subprocess.run([sys.executable, "-m", "hub.cli", "analyze", str(MIDI_DIR / "bach_bwv66.6.mid"),
                          "chords"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and not out.stdout
    assert out.stderr.strip() == f"tutti analyze: unknown analysis 'chords' (choose from {', '.join(ANALYSES)})"
    helptext = subprocess.run([sys.executable, "-m", "hub.cli", "analyze", "--help"], capture_output=True,
                              text=True, timeout=60).stdout
    assert ", ".join(ANALYSES) in " ".join(helptext.split())
