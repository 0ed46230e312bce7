"""docs/protocol.md: generated, current, and every message type has a schema-valid example."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema

from hub.protocol import CLIENT_TYPES, SERVER_TYPES, json_schema
from plugins.docs import DELIVERY, protocol_markdown, write_protocol_guide
from plugins.examples import CLIENT_EXAMPLES, EVENT_EXAMPLES, SERVER_EXAMPLES

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "plugins" / "schema" / "protocol.schema.json"


def validator(side: str) -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator({"$defs": schema["$defs"], "$ref": f"#/$defs/{side}"})


def sections(text: str, heading: str) -> dict[str, dict[str, Any]]:
    """type -> first JSON example under each `### \\`type\\`` heading of one part of the guide."""
    part = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    found: dict[str, dict[str, Any]] = {}
    for block in re.split(r"^### ", part, flags=re.M)[1:]:
        kind = block.split("`")[1]
        example = re.search(r"```json\n(.*?)\n```", block, flags=re.S)
        assert example is not None, f"no example for {kind}"
        found[kind] = json.loads(example.group(1))
    return found


def test_checked_in_guide_is_current() -> None:
    text = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    assert text == protocol_markdown(), "docs/protocol.md is stale: regenerate it (tutti docs)"


def test_every_schema_message_type_has_a_valid_example_in_the_guide() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    text = protocol_markdown()
    for side, heading, types in (("ClientMessage", "Messages from the client", CLIENT_TYPES),
                                 ("ServerMessage", "Messages from the hub", SERVER_TYPES)):
        in_schema = set(schema["$defs"][side]["discriminator"]["mapping"])
        assert in_schema == set(types)
        found = sections(text, heading)
        assert set(found) == in_schema, f"{heading}: missing {in_schema - set(found)}"
        check = validator(side)
        for kind, example in found.items():
            assert example["type"] == kind
            errors = list(check.iter_errors(example))
            assert not errors, f"{kind}: {errors[0].message}"


def test_examples_and_delivery_classes_cover_the_protocol() -> None:
    assert {e.type for e in CLIENT_EXAMPLES} == set(CLIENT_TYPES)  # type: ignore[attr-defined]
    assert {e.type for e in SERVER_EXAMPLES} == set(SERVER_TYPES)  # type: ignore[attr-defined]
    assert set(DELIVERY) == set(SERVER_TYPES)
    check = validator("ServerMessage")
    for example in EVENT_EXAMPLES:
        assert not list(check.iter_errors(json.loads(example.model_dump_json())))


def test_guide_covers_rules_codes_and_the_cpp_sketch() -> None:
    text = protocol_markdown()
    for needle in ("## Resume rules", "recovered: false", "## Delivery classes", "offset = server_time - (t0 + t1) / 2",
                   "4008", "4001", "`transport_not_held`", "`job_expired`", "```cpp", "## Event types",
                   "`job.notes`", "`file.ready`"):
        assert needle in text, needle
    assert json_schema()["$defs"].keys() >= {"ClientMessage", "ServerMessage"}


def test_write_protocol_guide_writes_the_generated_text(tmp_path: Path) -> None:
    path = write_protocol_guide(tmp_path / "docs" / "protocol.md")
    assert path.read_text(encoding="utf-8") == protocol_markdown()
