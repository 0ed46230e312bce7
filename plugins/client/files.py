"""Moving bytes over HTTP: atomic, verified downloads from the CAS and uploads to it.

A download is written to a hidden temp file in the destination folder, hashed while
it streams, fsynced, checked against the sha256 the hub announced and only then moved
to its name: a folder watcher (a DAW) never sees a partial or corrupt file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx


class TransferError(Exception):
    def __init__(self, message: str, *, code: str = "transfer_failed", details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.details = details or {}


def http_base(ws_url: str) -> str:
    """ws://host:port/ws -> http://host:port (wss -> https)."""
    parts = urlsplit(ws_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, "", "", ""))


def _raise_for(resp: httpx.Response) -> None:
    if resp.is_success:
        return
    try:
        body = resp.json()
    except ValueError:
        body = {}
    code = body.get("code", f"http_{resp.status_code}") if isinstance(body, dict) else f"http_{resp.status_code}"
    message = body.get("message", resp.reason_phrase) if isinstance(body, dict) else resp.reason_phrase
    raise TransferError(f"{resp.request.method} {resp.request.url.path}: {message}", code=str(code),
                        details={"status": resp.status_code})


def _fsync_dir(folder: Path) -> None:
    # The rename is only durable once the directory entry is; not possible on every OS.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _same_bytes(path: Path, sha256: str) -> bool:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() == sha256
    except OSError:
        return False


def _publish(tmp: Path, final: Path, sha256: str, *, replace: bool) -> Path:
    """Give the verified temp file its name; never clobber a different file unless asked."""
    if replace:
        os.replace(tmp, final)
        return final
    stem, suffix = final.stem, final.suffix
    n = 0
    while True:
        candidate = final if n == 0 else final.with_name(f"{stem}-{n}{suffix}")
        if candidate.exists() and _same_bytes(candidate, sha256):
            tmp.unlink()
            return candidate  # already mirrored: keep the one file
        try:
            os.link(tmp, candidate)  # fails instead of overwriting a file that appeared meanwhile
        except FileExistsError:
            n += 1
            continue
        tmp.unlink()
        return candidate


async def download_verified(
    http: httpx.AsyncClient,
    url: str,
    dest: Path,
    *,
    sha256: str,
    size: int | None = None,
    replace: bool = False,
) -> Path:
    """Fetch ``url`` into ``dest`` atomically; returns the final path (maybe ``name-1.mid``)."""
    folder = dest.parent
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".tutti-{secrets.token_hex(6)}.part"
    digest = hashlib.sha256()
    written = 0
    try:
        with tmp.open("wb") as fh:
            async with http.stream("GET", url) as resp:
                _raise_for(resp)
                async for chunk in resp.aiter_bytes():
                    fh.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        if digest.hexdigest() != sha256 or (size is not None and written != size):
            raise TransferError(
                f"downloaded bytes do not match the announced hash for {dest.name}",
                code="hash_mismatch",
                details={"expected": sha256, "got": digest.hexdigest(), "size": written},
            )
        final = _publish(tmp, dest, sha256, replace=replace)
        _fsync_dir(folder)
        return final
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


async def upload_bytes(
    http: httpx.AsyncClient,
    data: bytes,
    *,
    mime: str = "audio/midi",
    session: str | None = None,
    section: str | None = None,
    filename: str | None = None,
) -> dict[str, Any]:
    """POST /cas: returns {hash, size, mime, artifact, url, ...} for the stored bytes."""
    params = {k: v for k, v in (("session", session), ("section", section), ("filename", filename)) if v}
    resp = await http.post("/cas", content=data, params=params, headers={"content-type": mime})
    _raise_for(resp)
    body: dict[str, Any] = resp.json()
    if body.get("hash") != hashlib.sha256(data).hexdigest():
        raise TransferError("the hub stored different bytes than were sent", code="hash_mismatch")
    return body
