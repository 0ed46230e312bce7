"""Convert one corpus file (licence check, parse, every piece in it), cached as JSON.

The cache makes a long conversion resumable: a file already in the cache is never parsed
again, failures included (delete the cache entry to retry it).
"""

from __future__ import annotations

import json
import os
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

from engines.amt.data.convert import score_to_piece
from engines.amt.data.licences import read_licence
from engines.amt.data.sources import collection_of

CACHE_VERSION = 1  # bump when the conversion changes, so stale entries are not reused


def cache_path(cache_dir: Path, rel_path: str) -> Path:
    return cache_dir / f"v{CACHE_VERSION}" / (rel_path.replace("/", "__") + ".json")


def convert_file(root: Path, rel_path: str, expand_repeats: bool = True) -> dict[str, Any]:
    """The cache record for one file: licence decision, pieces or the error."""
    from music21 import converter, stream  # local import: training machines have no music21

    path = root / rel_path
    licence = read_licence(path)
    record: dict[str, Any] = {
        "path": rel_path,
        "collection": collection_of(rel_path),
        "licence": asdict(licence),
        "pieces": [],
        "error": None,
    }
    if not licence.allowed:
        return record
    try:
        parsed = converter.parse(str(path))
        if isinstance(parsed, stream.Opus):
            scores = [(f"{rel_path}#{i}", s) for i, s in enumerate(parsed.scores)]
        else:
            scores = [(rel_path, parsed)]
        for piece_id, score in scores:
            try:
                piece = score_to_piece(score, piece_id, rel_path, expand_repeats)
            except Exception as exc:  # one bad tune of an opus must not lose the others
                record.setdefault("piece_errors", []).append(f"{piece_id}: {exc!r}")
                continue
            record["pieces"].append(asdict(piece))
    except Exception as exc:  # music21 raises many kinds of errors on odd encodings
        record["error"] = f"{exc!r}\n{traceback.format_exc(limit=3)}"
    return record


def load_cached(cache_dir: Path, rel_path: str) -> dict[str, Any] | None:
    path = cache_path(cache_dir, rel_path)
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def store(cache_dir: Path, record: dict[str, Any]) -> None:
    """Write atomically so an interrupted run never leaves a half-written entry."""
    path = cache_path(cache_dir, str(record["path"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(record, separators=(",", ":")))
    tmp.replace(path)


def convert_cached(
    root: Path, cache_dir: Path, rel_path: str, expand_repeats: bool = True
) -> dict[str, Any]:
    """Cached record for a file, converting it first if needed."""
    cached = load_cached(cache_dir, rel_path)
    if cached is not None:
        return cached
    record = convert_file(root, rel_path, expand_repeats)
    store(cache_dir, record)
    return record
