"""Digest convention, mime validation and the verifying reader."""

from __future__ import annotations

import hashlib
import io
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cas import (
    CorruptObject,
    InvalidDigest,
    InvalidMime,
    is_valid_digest,
    sha256_hex,
    validate_digest,
)
from cas.mime import validate_mime
from cas.reader import open_verified

HEX = string.digits + "abcdef"


def test_sha256_hex_known_vector() -> None:
    assert sha256_hex(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@given(st.text(alphabet=HEX, min_size=64, max_size=64))
def test_every_lowercase_hex_string_of_64_is_valid(digest: str) -> None:
    assert validate_digest(digest) == digest


@given(st.text(max_size=80))
def test_validity_is_exactly_64_lowercase_hex(text: str) -> None:
    expected = len(text) == 64 and all(c in HEX for c in text)
    assert is_valid_digest(text) is expected
    if not expected:
        with pytest.raises(InvalidDigest):
            validate_digest(text)


@given(st.binary())
def test_sha256_hex_matches_hashlib_and_is_valid(data: bytes) -> None:
    digest = sha256_hex(data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert is_valid_digest(digest)


def test_invalid_digest_details_are_truncated() -> None:
    with pytest.raises(InvalidDigest) as info:
        validate_digest("../" * 100)
    assert len(info.value.details["digest"]) == 80
    assert "64 lowercase hex" in info.value.message


@pytest.mark.parametrize(
    ("mime", "expected"),
    [
        ("audio/midi", "audio/midi"),
        ("AUDIO/X-MIDI", "audio/x-midi"),
        ("application/vnd.tutti+json", "application/vnd.tutti+json"),
        ("text/plain; charset=UTF-8", "text/plain; charset=UTF-8"),
    ],
)
def test_valid_mime(mime: str, expected: str) -> None:
    assert validate_mime(mime) == expected


@pytest.mark.parametrize("mime", ["midi", "audio/midi\n", "a/b;\x7f", 42, "audio /midi", "*/*x"])
def test_invalid_mime(mime: object) -> None:
    with pytest.raises(InvalidMime):
        validate_mime(mime)


def test_reader_verifies_and_keeps_failing_at_eof() -> None:
    data = b"hello world" * 100
    good = open_verified(io.BytesIO(data), sha256_hex(data))
    assert good.read(5) == b"hello"
    assert good.read() == data[5:]
    assert good.read() == b""
    bad = open_verified(io.BytesIO(data), sha256_hex(b"other"))
    with pytest.raises(CorruptObject, match="sha256"):
        bad.read()
    with pytest.raises(CorruptObject, match="sha256"):
        bad.read()


def test_reader_checks_expected_size() -> None:
    data = b"x" * 10
    longer = open_verified(io.BytesIO(data), sha256_hex(data), expected_size=5)
    with pytest.raises(CorruptObject, match="longer"):
        longer.read()
    shorter = open_verified(io.BytesIO(data), sha256_hex(data), expected_size=20)
    with pytest.raises(CorruptObject, match="length"):
        shorter.read()
