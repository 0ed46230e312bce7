"""`tutti plugin`: a headless DAW bridge.

It follows one session, mirrors every ready or exported MIDI file into a folder the
DAW watches (atomically: the DAW never sees a partial file), optionally drives the
session's transport from a steady internal clock or a MIDI clock input, and prints
live job progress. Run it as ``tutti plugin`` or ``python -m plugins.bridge``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import TextIO

from hub.events import FileReady, JobCancelled, JobCompleted, JobFailed, JobQueued
from hub.protocol import EventMessage, JobProgress
from plugins.client import (
    Backoff,
    ClientClosed,
    CommandFailed,
    Connected,
    Disconnected,
    NotesGap,
    ProtocolError,
    TransferError,
    TuttiClient,
)
from plugins.mirror import mirror_name, partial_name, wanted
from plugins.progress import Reporter
from plugins.sendpolicy import SendPolicy
from plugins.sources import InternalClock, MidiClockInput, TransportSource

EPILOG = """\
examples:
  tutti plugin --session ses_123 --folder ~/Music/Tutti
      mirror every MIDI file of the session into ~/Music/Tutti
  tutti plugin --session ses_123 --folder midi --bpm 96
      ... and play the session's transport at 96 bpm from an internal clock
  tutti plugin --session ses_123 --folder midi --midi-clock "IAC Driver Bus 1"
      ... and follow a MIDI clock input instead (needs: pip install 'tutti[midi-io]')
  tutti plugin --session ses_123 --upload riff.mid --section sec_9 --folder midi
      add riff.mid as a take of section sec_9, then keep mirroring

Files appear only once complete and verified (sha256). Ctrl-C stops the bridge.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Headless DAW bridge: follow a session, mirror every ready or exported MIDI file into a "
        "folder the DAW watches, optionally drive the transport, and show live job progress."
    )
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--hub", default="ws://127.0.0.1:8765/ws", metavar="URL",
                        help="hub WebSocket URL (default: %(default)s)")
    parser.add_argument("--token", default=None, help="the hub's shared secret, if it has one")
    parser.add_argument("--session", default=None, metavar="ID",
                        help="session to follow (default: the only session on the hub)")
    parser.add_argument("--folder", type=Path, default=Path("tutti-midi"), metavar="DIR",
                        help="folder the DAW watches; created if missing (default: %(default)s)")
    parser.add_argument("--name", default="tutti-bridge", help="name shown to other clients (default: %(default)s)")
    parser.add_argument("--skip-existing", action="store_true",
                        help="mirror only files that become ready from now on, not the session's earlier ones")
    clock = parser.add_mutually_exclusive_group()
    clock.add_argument("--bpm", type=float, default=None,
                       help="drive the session's transport from a steady internal clock at this tempo")
    clock.add_argument("--midi-clock", default=None, metavar="PORT",
                       help="drive the transport from this MIDI clock input port (start/stop/continue, "
                            "24 PPQN clock, song position)")
    parser.add_argument("--force", action="store_true",
                        help="take transport control over from another client that holds it")
    parser.add_argument("--refresh", type=float, default=1.0, metavar="SECONDS",
                        help="re-send the unchanged transport this often (default: %(default)s)")
    parser.add_argument("--upload", type=Path, default=None, metavar="FILE.mid",
                        help="upload a MIDI file as a take of --section first")
    parser.add_argument("--section", default=None, metavar="ID", help="section for --upload")
    parser.add_argument("--progress", choices=["auto", "bars", "lines"], default="auto",
                        help="progress display (default: bars on a terminal, lines otherwise)")
    parser.add_argument("--max-files", type=int, default=None, metavar="N",
                        help="exit after mirroring N files (for scripts)")
    parser.add_argument("--list-midi-ports", action="store_true", help="list MIDI input ports and exit")


class Bridge:
    def __init__(self, args: argparse.Namespace, out: TextIO | None = None) -> None:
        self.args = args
        bars = {"auto": None, "bars": True, "lines": False}[args.progress]
        self.report = Reporter(out, bars=bars)
        topics = [f"session:{args.session}", f"transport:{args.session}"] if args.session else []
        self.client = TuttiClient(args.hub, name=args.name, kind="daw-plugin", token=args.token,
                                  topics=topics, backoff=Backoff(base=0.25, cap=10.0))
        self.session: str | None = args.session
        self.mirrored: list[Path] = []
        self.open_jobs: set[str] = set()  # jobs whose files we mirrored and that have not ended
        self.done = asyncio.Event()

    async def run(self) -> int:
        args = self.args
        try:
            await self.client.start(timeout=30.0)
        except (TimeoutError, ClientClosed) as exc:
            self.report.line(f"cannot reach the hub at {args.hub}: {exc}")
            return 1
        try:
            if self.session is None:
                self.session = self._only_session()
                if self.session is None:
                    return 2
                # resume=True: nothing published since the welcome is missed.
                await self.client.subscribe(f"session:{self.session}", f"transport:{self.session}", resume=True)
            self.report.line(f"following session {self.session}; mirroring into {args.folder.resolve()}")
            args.folder.mkdir(parents=True, exist_ok=True)
            tasks = [asyncio.create_task(self._follow())]
            if not args.skip_existing:
                await self._mirror_existing()
            if args.upload is not None:
                await self._upload()
            source = self._source()
            if source is not None:
                tasks.append(asyncio.create_task(self._drive(source)))
            await self.done.wait()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            return 0
        except CommandFailed as exc:
            self.report.line(f"the hub refused: {exc.error.code}: {exc.error.message}")
            for hint in exc.error.suggestions:
                self.report.line(f"  hint: {hint}")
            return 1
        finally:
            self.report.close()
            await self.client.close()

    def _only_session(self) -> str | None:
        welcome = self.client.core.welcome
        sessions = welcome.sessions if welcome else []
        if len(sessions) == 1:
            return sessions[0].id
        if not sessions:
            self.report.line("the hub has no sessions yet: create one, then pass --session ID")
        else:
            self.report.line("several sessions: pass --session with one of")
            for s in sessions:
                self.report.line(f"  {s.id}  {s.title}")
        return None

    def _source(self) -> TransportSource | None:
        if self.args.bpm is not None:
            return InternalClock(self.args.bpm, clock=self.client.clock)
        if self.args.midi_clock is not None:
            return MidiClockInput(self.args.midi_clock, clock=self.client.clock)
        return None

    # --- files ---------------------------------------------------------------------------

    async def _mirror(self, ev: FileReady, *, live: bool = True) -> None:
        if not wanted(ev):
            return
        name, replace = mirror_name(ev)
        try:
            path = await self.client.download(ev, self.args.folder, name=name, replace=replace)
        except (TransferError, OSError) as exc:
            self.report.line(f"could not mirror {name}: {exc}")
            return
        self.mirrored.append(path)
        self.report.line(f"ready: {path.name} ({ev.size} bytes)")
        if live and ev.job is not None:
            self.open_jobs.add(ev.job)
        self._maybe_finish()

    def _drop_partial(self, job: str) -> None:
        """A completed job's partial file has served its purpose; a cancelled or failed
        job's stays, as it is all there is."""
        path = self.args.folder / partial_name(job)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            self.report.line(f"could not remove {path.name}: {exc}")

    def _maybe_finish(self) -> None:
        """With --max-files, stop once enough files are mirrored and their jobs have ended."""
        if self.args.max_files is not None and len(self.mirrored) >= self.args.max_files and not self.open_jobs:
            self.done.set()

    def _job_ended(self, job: str, text: str) -> None:
        self.report.job_done(job, text)
        self.open_jobs.discard(job)
        self._maybe_finish()

    async def _mirror_existing(self) -> None:
        resp = await self.client.http.get("/artifacts", params={"session": self.session, "limit": 1000})
        if not resp.is_success:
            self.report.line(f"could not list earlier files: HTTP {resp.status_code}")
            return
        for a in resp.json().get("artifacts", []):
            ev = FileReady(artifact=a["id"], hash=a["hash"], url=a["url"], mime=a["mime"], size=a["size"],
                           filename=a.get("filename"), kind=a.get("kind", "midi"), session=self.session,
                           job=a.get("job"), metadata=a.get("metadata") or {})
            # Earlier files belong to jobs that may have ended long ago: don't wait for them.
            await self._mirror(ev, live=False)

    async def _upload(self) -> None:
        if self.args.section is None or self.session is None:
            self.report.line("--upload needs --section")
            return
        artifact, take = await self.client.upload_take(self.args.upload, session=self.session,
                                                       section=self.args.section)
        self.report.line(f"uploaded {self.args.upload.name} as take {take} (artifact {artifact})")

    # --- the delivery loop -------------------------------------------------------------------

    async def _follow(self) -> None:
        async for item in self.client.deliveries():
            if isinstance(item, EventMessage):
                ev = item.event
                if isinstance(ev, FileReady):
                    await self._mirror(ev)
                elif isinstance(ev, JobQueued):
                    self.report.line(f"job {ev.job}: queued ({ev.engine}/{ev.task})")
                elif isinstance(ev, JobCompleted):
                    self._drop_partial(ev.job)  # its results are mirrored by now
                    self._job_ended(ev.job, f"completed, {len(ev.artifacts)} file(s)")
                elif isinstance(ev, JobFailed):
                    self._job_ended(ev.job, f"failed: {ev.code}: {ev.message}")
                elif isinstance(ev, JobCancelled):
                    self._job_ended(ev.job, "cancelled")
            elif isinstance(item, JobProgress):
                self.report.progress(item)
            elif isinstance(item, Connected):
                how = "resumed" if item.resumed else "connected"
                self.report.line(f"{how}: hub {item.welcome.server_version} at {self.args.hub}")
            elif isinstance(item, Disconnected):
                retry = "reconnecting" if item.will_retry else "giving up"
                self.report.line(f"disconnected ({item.code} {item.reason}); {retry}")
                if not item.will_retry:
                    self.done.set()
            elif isinstance(item, ProtocolError | NotesGap):
                self.report.line(f"warning: {item}")

    async def _drive(self, source: TransportSource) -> None:
        session = self.session
        assert session is not None
        await self.client.take_transport(session, force=self.args.force)
        self.report.line(f"holding transport of {session}")
        policy = SendPolicy(refresh=self.args.refresh)
        async for tl in source.timelines():
            now = self.client.clock()
            if not policy.due(tl, now):
                continue
            await self.client.connected.wait()
            policy.sent(tl, now)
            try:
                await self.client.send_transport(session, tl)
            except CommandFailed as exc:
                if exc.error.code != "transport_not_held":
                    raise
                # Lost control (e.g. after a reconnect someone else took it): take it back only if asked.
                self.report.line("transport is held by another client" + ("; taking it back" if self.args.force else ""))
                if not self.args.force:
                    return
                await self.client.take_transport(session, force=True)


def run(args: argparse.Namespace) -> int:
    """Entry point for ``tutti plugin`` (hub/cli.py wires it)."""
    if args.list_midi_ports:
        try:
            ports = MidiClockInput.ports()
        except ImportError:
            print("MIDI input needs the midi-io extra: pip install 'tutti[midi-io]'", file=sys.stderr)
            return 1
        print("\n".join(ports) if ports else "(no MIDI input ports)")
        return 0
    if args.upload is not None and args.section is None:
        print("tutti plugin: --upload needs --section", file=sys.stderr)
        return 2
    return asyncio.run(_main(args))


async def _main(args: argparse.Namespace) -> int:
    bridge = Bridge(args)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, bridge.done.set)
    return await bridge.run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tutti plugin")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
