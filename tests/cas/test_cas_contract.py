"""The blob-store contract: every implementation (disk, memory) must pass all of it."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from cas_testkit import INVALID_DIGESTS, Harness, split_into
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cas import (
    BlobStore,
    CasError,
    CorruptObject,
    InvalidDigest,
    InvalidMime,
    ObjectNotFound,
    PayloadTooLarge,
    StoredObject,
)

# Hypothesis reuses one store across examples on purpose: puts are idempotent, so a
# store that has seen earlier examples must still satisfy every property.
shared_store = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

MISSING = "0" * 64


def test_implements_the_protocol(blob_store: BlobStore) -> None:
    assert isinstance(blob_store, BlobStore)


def test_put_returns_sha256_address_size_and_mime(blob_store: BlobStore) -> None:
    stored = blob_store.put(b"MThd hello", mime="audio/midi")
    assert stored == StoredObject(
        digest=hashlib.sha256(b"MThd hello").hexdigest(), size=10, mime="audio/midi"
    )
    assert blob_store.get(stored.digest) == b"MThd hello"
    assert blob_store.has(stored.digest)
    assert blob_store.stat(stored.digest) == stored


def test_default_mime_is_octet_stream(blob_store: BlobStore) -> None:
    assert blob_store.put(b"x").mime == "application/octet-stream"


def test_empty_object_is_storable(blob_store: BlobStore) -> None:
    stored = blob_store.put(b"", mime="text/plain")
    assert stored.digest == hashlib.sha256(b"").hexdigest()
    assert stored.size == 0
    assert blob_store.get(stored.digest) == b""


def test_bytearray_and_memoryview_are_accepted(blob_store: BlobStore) -> None:
    a = blob_store.put(bytearray(b"abc"))
    b = blob_store.put(memoryview(b"abc"))
    assert a == b
    assert blob_store.get(a.digest) == b"abc"


def test_put_is_idempotent_and_first_mime_wins(blob_store: BlobStore) -> None:
    first = blob_store.put(b"same bytes", mime="audio/midi")
    again = blob_store.put(b"same bytes", mime="application/octet-stream")
    assert again == first
    assert blob_store.stat(first.digest).mime == "audio/midi"
    assert list(blob_store.iter_digests()) == [first.digest]
    assert blob_store.total_size() == len(b"same bytes")


def test_mime_type_and_subtype_are_lowercased(blob_store: BlobStore) -> None:
    assert blob_store.put(b"m", mime="Audio/MIDI").mime == "audio/midi"
    assert (
        blob_store.put(b"t", mime="Text/Plain; charset=utf-8").mime == "text/plain; charset=utf-8"
    )


@pytest.mark.parametrize(
    "mime", ["", "audio", "audio/", "/midi", "audio/midi\r\nX-Evil: 1", "a" * 300 + "/b", "ü/x"]
)
def test_invalid_mime_is_rejected_and_nothing_stored(blob_store: BlobStore, mime: str) -> None:
    with pytest.raises(InvalidMime) as info:
        blob_store.put(b"data", mime=mime)
    assert info.value.code == "validation_failed"
    assert list(blob_store.iter_digests()) == []


def test_missing_object(blob_store: BlobStore) -> None:
    assert not blob_store.has(MISSING)
    for call in (blob_store.get, blob_store.stat, blob_store.open):
        with pytest.raises(ObjectNotFound) as info:
            call(MISSING)
        assert info.value.code == "not_found"
        assert info.value.details == {"digest": MISSING}
    assert blob_store.delete(MISSING) is False


@pytest.mark.parametrize("bad", INVALID_DIGESTS)
def test_invalid_or_traversal_digest_is_refused_everywhere(
    blob_store: BlobStore, bad: object
) -> None:
    calls = (
        blob_store.get,
        blob_store.has,
        blob_store.stat,
        blob_store.open,
        blob_store.delete,
    )
    for call in calls:
        with pytest.raises(InvalidDigest) as info:
            call(bad)  # type: ignore[arg-type]  # non-str inputs are part of the contract
        assert isinstance(info.value, CasError)
        assert info.value.code == "invalid_digest"


def test_delete_removes_and_allows_re_put(blob_store: BlobStore) -> None:
    stored = blob_store.put(b"to delete", mime="audio/midi")
    keep = blob_store.put(b"to keep")
    assert blob_store.delete(stored.digest) is True
    assert not blob_store.has(stored.digest)
    with pytest.raises(ObjectNotFound):
        blob_store.get(stored.digest)
    assert blob_store.delete(stored.digest) is False
    assert list(blob_store.iter_digests()) == [keep.digest]
    assert blob_store.put(b"to delete", mime="text/plain") == StoredObject(
        stored.digest, stored.size, "text/plain"
    )


def test_iter_digests_is_sorted_and_total_size_sums(blob_store: BlobStore) -> None:
    payloads = [b"a", b"bb", b"ccc", b"dddd" * 100]
    digests = [blob_store.put(p).digest for p in payloads]
    assert list(blob_store.iter_digests()) == sorted(digests)
    assert blob_store.total_size() == sum(map(len, payloads))


def test_open_streams_the_bytes(blob_store: BlobStore) -> None:
    data = bytes(range(256)) * 1000
    stored = blob_store.put(data)
    with blob_store.open(stored.digest) as reader:
        parts = []
        while chunk := reader.read(4096):
            parts.append(chunk)
    assert b"".join(parts) == data


# -- size limits ------------------------------------------------------------------------


def test_object_at_the_limit_is_accepted_one_more_byte_is_not(harness: Harness) -> None:
    store = harness.make(100)
    assert store.max_object_size == 100
    assert store.put(b"x" * 100).size == 100
    with pytest.raises(PayloadTooLarge) as info:
        store.put(b"y" * 101)
    assert info.value.code == "payload_too_large"
    assert info.value.details["limit"] == 100
    assert list(store.iter_digests()) == [hashlib.sha256(b"x" * 100).hexdigest()]


def test_stream_limit_is_enforced_while_streaming(harness: Harness) -> None:
    store = harness.make(1000)
    pulled: list[int] = []

    def endless() -> Iterator[bytes]:
        for i in range(10_000):
            pulled.append(i)
            yield b"z" * 100

    with pytest.raises(PayloadTooLarge):
        store.put_stream(endless())
    # The 11th chunk crosses 1000 bytes; the store must stop pulling right there.
    assert len(pulled) == 11
    assert list(store.iter_digests()) == []
    assert store.total_size() == 0


def test_per_call_limit_is_capped_by_the_store_limit(harness: Harness) -> None:
    store = harness.make(50)
    with pytest.raises(PayloadTooLarge):
        store.put_stream([b"a" * 20, b"b" * 20], max_size=30)
    assert store.put_stream([b"a" * 20, b"b" * 20], max_size=40).size == 40
    with pytest.raises(PayloadTooLarge) as info:
        store.put_stream([b"c" * 60], max_size=10_000)
    assert info.value.details["limit"] == 50


# -- corruption -------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [b"", b"q", b"MThd" + bytes(range(200))])
def test_corruption_is_detected_on_read(harness: Harness, payload: bytes) -> None:
    store = harness.make(1 << 20)
    stored = store.put(payload, mime="audio/midi")
    harness.corrupt(store, stored.digest)
    with pytest.raises(CorruptObject) as info:
        store.get(stored.digest)
    assert info.value.code == "corrupt_object"
    assert info.value.details["digest"] == stored.digest
    with pytest.raises(CorruptObject), store.open(stored.digest) as reader:
        reader.read()


# -- properties -------------------------------------------------------------------------


@shared_store
@given(data=st.binary(max_size=4096), mime=st.sampled_from(["audio/midi", "audio/wav", "x/y"]))
def test_property_round_trip(blob_store: BlobStore, data: bytes, mime: str) -> None:
    stored = blob_store.put(data, mime=mime)
    assert stored.digest == hashlib.sha256(data).hexdigest()
    assert stored.size == len(data)
    assert blob_store.get(stored.digest) == data
    with blob_store.open(stored.digest) as reader:
        assert reader.read() == data


@shared_store
@given(data=st.binary(max_size=2048), repeats=st.integers(min_value=2, max_value=4))
def test_property_idempotent(blob_store: BlobStore, data: bytes, repeats: int) -> None:
    before = set(blob_store.iter_digests())
    results = {blob_store.put(data, mime="audio/midi") for _ in range(repeats)}
    assert len(results) == 1
    (stored,) = results
    after = set(blob_store.iter_digests())
    assert after - before <= {stored.digest}
    assert stored.digest in after


@shared_store
@given(data=st.binary(max_size=4096), cuts=st.lists(st.integers(0, 4096), max_size=8))
def test_property_stream_equals_put(blob_store: BlobStore, data: bytes, cuts: list[int]) -> None:
    streamed = blob_store.put_stream(split_into(data, cuts), mime="audio/midi")
    assert streamed.digest == hashlib.sha256(data).hexdigest()
    assert streamed.size == len(data)
    assert blob_store.get(streamed.digest) == data


# -- concurrency ------------------------------------------------------------------------


def test_concurrent_puts_of_the_same_and_different_content(blob_store: BlobStore) -> None:
    workers = 16
    barrier = threading.Barrier(workers)
    shared = bytes(range(256)) * 4096  # 1 MiB, so writes really overlap

    def work(i: int) -> tuple[StoredObject, StoredObject]:
        barrier.wait()
        same = (
            blob_store.put(shared, mime="audio/midi")
            if i % 2
            else blob_store.put_stream(split_into(shared, [1000, 70_000]), mime="audio/midi")
        )
        own = blob_store.put(b"own-%d" % i, mime="text/plain")
        return same, own

    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(work, range(workers)))

    sames = {same for same, _ in results}
    assert sames == {StoredObject(hashlib.sha256(shared).hexdigest(), len(shared), "audio/midi")}
    (same,) = sames
    assert blob_store.get(same.digest) == shared
    owns = {own.digest for _, own in results}
    assert len(owns) == workers
    assert set(blob_store.iter_digests()) == owns | {same.digest}
    assert blob_store.total_size() == len(shared) + sum(len(b"own-%d" % i) for i in range(workers))


def test_concurrent_readers_and_writer_see_whole_objects(blob_store: BlobStore) -> None:
    payloads = [bytes([i]) * 200_000 for i in range(8)]
    digests = [hashlib.sha256(p).hexdigest() for p in payloads]
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            for digest, payload in zip(digests, payloads, strict=True):
                try:
                    if blob_store.get(digest) != payload:
                        errors.append(AssertionError("partial object visible"))
                except ObjectNotFound:
                    pass  # not written yet: fine, a torn object is not
                except BaseException as exc:
                    errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for payload in payloads:
            blob_store.put(payload)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    assert list(blob_store.iter_digests()) == sorted(digests)
