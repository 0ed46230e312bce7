"""Entry points behind ``tutti tokens`` and ``tutti detokenize`` (wired up by hub.cli).

Both return a process exit status: 0 on success, 1 when the input cannot be read or
converted (the reason goes to stderr as one line), so scripts can rely on the status.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from engines.amt.codec import events_to_midi, midi_to_bytes, midi_to_events
from engines.amt.errors import CodecError


def tokens_main(path: Path) -> int:
    """Print the arrival-time events of a MIDI file as one JSON list (absolute ticks).

    No flag token and no RESTs: exactly the fixtures' ``events`` list.
    """
    try:
        events = midi_to_events(path)
    except CodecError as exc:
        print(f"tutti tokens: {path}: {exc.message}", file=sys.stderr)
        return 1
    sys.stdout.write(json.dumps(events) + "\n")
    return 0


def read_tokens_json(path: Path) -> list[int]:
    """A JSON token list, or an object holding one under ``"events"`` (a fixture file)."""
    try:
        data: object = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CodecError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CodecError(f"{path} is not valid JSON: {exc}") from exc
    if isinstance(data, dict) and "events" in data:
        data = data["events"]
    if not isinstance(data, list) or not all(
        isinstance(tok, int) and not isinstance(tok, bool) for tok in data
    ):
        raise CodecError(f"{path} must hold a JSON list of integer tokens")
    return list(data)


def detokenize_main(tokens_json: Path, out_mid: Path) -> int:
    """Write the reference-format MIDI (50 ticks/beat, no tempo) for a JSON token list."""
    try:
        tokens = read_tokens_json(tokens_json)
        data = midi_to_bytes(events_to_midi(tokens))
    except CodecError as exc:
        print(f"tutti detokenize: {exc.message}", file=sys.stderr)
        return 1
    try:
        out_mid.write_bytes(data)
    except OSError as exc:
        print(f"tutti detokenize: cannot write {out_mid}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0
