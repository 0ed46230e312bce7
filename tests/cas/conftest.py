"""Blob-store fixtures: every contract test runs once per implementation."""

from __future__ import annotations

from pathlib import Path

import pytest
from cas_testkit import Harness, disk_harness, memory_harness

from cas import DEFAULT_MAX_OBJECT_SIZE, BlobStore


@pytest.fixture(params=["disk", "memory"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    if request.param == "disk":
        return disk_harness(tmp_path)
    return memory_harness()


@pytest.fixture
def blob_store(harness: Harness) -> BlobStore:
    return harness.make(DEFAULT_MAX_OBJECT_SIZE)
