"""The inbox folder: MIDI files dropped into ``<data>/inbox/`` become artifacts.

watchdog reports created/moved/modified files; a file is ingested only once its
size and mtime have been stable for a short settle time, so a file still being
written is never taken early. Accepted files move to ``inbox/done/``, rejected
ones to ``inbox/rejected/`` beside a ``.reason.txt`` saying why.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from hub.errors import HubError

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger("tutti.inbox")

MIDI_SUFFIXES = frozenset({".mid", ".midi", ".smf"})


class _Handler(FileSystemEventHandler):
    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        path = getattr(event, "dest_path", "") or event.src_path
        self.inbox.notify(Path(os.fsdecode(path)))


class Inbox:
    def __init__(self, hub: Hub, *, settle: float = 0.5) -> None:
        self.hub = hub
        self.folder = hub.data / "inbox"
        self.done = self.folder / "done"
        self.rejected = self.folder / "rejected"
        self.settle = settle
        self._loop: asyncio.AbstractEventLoop | None = None
        self._observer: Observer | None = None  # type: ignore[valid-type]
        self._pending: dict[Path, asyncio.Task[None]] = {}

    async def start(self) -> None:
        for folder in (self.folder, self.done, self.rejected):
            folder.mkdir(parents=True, exist_ok=True)
        self._loop = asyncio.get_running_loop()
        observer = Observer()
        observer.schedule(_Handler(self), str(self.folder), recursive=False)
        observer.start()
        self._observer = observer
        for path in sorted(self.folder.iterdir()):  # files dropped while the hub was down
            if path.is_file():
                self.notify(path)

    async def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            await asyncio.to_thread(self._observer.join, 5.0)
        for task in self._pending.values():
            task.cancel()

    def notify(self, path: Path) -> None:
        """Called from watchdog's thread (or at start): (re)arm the settle timer for a file."""
        if path.parent != self.folder or path.name.startswith("."):
            return
        loop = self._loop
        if loop is None:
            return
        loop.call_soon_threadsafe(self._arm, path)

    def _arm(self, path: Path) -> None:
        task = self._pending.get(path)
        if task is not None and not task.done():
            return  # the running watcher re-checks stability itself
        self._pending[path] = asyncio.ensure_future(self._ingest_when_stable(path))

    async def _ingest_when_stable(self, path: Path) -> None:
        try:
            last: tuple[int, int] | None = None
            while True:
                try:
                    st = path.stat()
                except FileNotFoundError:
                    return
                if not path.is_file():
                    return  # folders (done/, rejected/) are not files to ingest
                sig = (st.st_size, st.st_mtime_ns)
                if sig == last and st.st_size > 0:
                    break
                last = sig
                await asyncio.sleep(self.settle)
            await self._ingest(path)
        finally:
            self._pending.pop(path, None)

    async def _ingest(self, path: Path) -> None:
        from hub.media import MIDI_MIME, Provenance, store_artifact

        if path.suffix.lower() not in MIDI_SUFFIXES:
            await self._reject(path, f"not a MIDI file name (expected {', '.join(sorted(MIDI_SUFFIXES))})")
            return
        data = await asyncio.to_thread(path.read_bytes)
        try:
            artifact = await store_artifact(
                self.hub, data, mime=MIDI_MIME, kind="midi",
                origin=Provenance(filename=path.name, creator="inbox"),
            )
        except HubError as err:
            await self._reject(path, f"{err.code.value}: {err.message}")
            return
        await asyncio.to_thread(self._move, path, self.done)
        log.info("inbox: %s -> %s", path.name, artifact.id)

    async def _reject(self, path: Path, reason: str) -> None:
        target = await asyncio.to_thread(self._move, path, self.rejected)
        if target is not None:
            reason_file = target.with_name(target.name + ".reason.txt")
            await asyncio.to_thread(reason_file.write_text, reason + "\n", "utf-8")
        log.warning("inbox: rejected %s: %s", path.name, reason)

    @staticmethod
    def _move(path: Path, folder: Path) -> Path | None:
        target = folder / path.name
        n = 1
        while target.exists():
            target = folder / f"{path.stem}-{n}{path.suffix}"
            n += 1
        try:
            shutil.move(str(path), target)
        except FileNotFoundError:
            return None
        return target
