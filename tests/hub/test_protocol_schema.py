"""The checked-in JSON Schema is exactly what the wire models generate."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from hub.protocol import CLIENT_TYPES, SERVER_TYPES, json_schema

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "plugins" / "schema" / "protocol.schema.json"


def test_checked_in_schema_equals_generated() -> None:
    checked_in = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert checked_in == json.loads(json.dumps(json_schema())), (
        "plugins/schema/protocol.schema.json is stale: run `tutti schema`"
    )


def test_schema_is_valid_and_covers_every_type() -> None:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    text = json.dumps(schema)
    for kind in CLIENT_TYPES | SERVER_TYPES:
        assert f'"const": "{kind}"' in text, kind


def test_schema_accepts_a_real_hello_and_rejects_a_bad_one() -> None:
    validator = jsonschema.Draft202012Validator(json_schema())
    assert validator.is_valid({"type": "hello", "protocol": 1, "client": "daw-plugin", "name": "Live"})
    assert not validator.is_valid({"type": "hello", "protocol": 1, "client": "toaster", "name": "x"})
