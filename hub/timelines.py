"""The live transport of every session: who holds control, the timeline subscribers
follow, and the tempo and meter it makes durable.

``hub.transport`` holds the pure timeline arithmetic; this is its stateful adapter in the
running hub. Timelines live in memory (a restarted hub starts stopped, at the stored tempo
and meter); tempo and meter changes become session events once they hold still for
``transport_debounce`` seconds, so a ramp is one event, and pending ones are written at
shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from hub.errors import HubError
from hub.ids import new_id
from hub.protocol import (
    ReleaseTransport,
    SetMeter,
    SetTempo,
    TakeTransport,
    TransportState,
    TransportUpdate,
    encode,
)
from hub.transport import Timeline, apply_update, drop_holder, release_control, take_control

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger("tutti.hub")

# A sender's hub-clock stamp further off than this is ignored (bad clock estimate).
MAX_STAMP_SKEW = 1.0

TransportCommand = TakeTransport | ReleaseTransport | TransportUpdate


class Timelines:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._timelines: dict[str, Timeline] = {}
        self._tempo_timers: dict[str, asyncio.TimerHandle] = {}
        self._commits: set[asyncio.Future[None]] = set()

    def get(self, session_id: str) -> Timeline | None:
        """The session's live timeline, if any client has touched its transport."""
        return self._timelines.get(session_id)

    def holder(self, session_id: str) -> str | None:
        tl = self._timelines.get(session_id)
        return tl.holder if tl else None

    def current(self, session_id: str) -> Timeline:
        """The live timeline, or a stopped one at the session's stored tempo and meter."""
        tl = self._timelines.get(session_id)
        if tl is None:
            s = self.hub.session(session_id)
            tl = Timeline(session=session_id, bpm=s.tempo, meter=s.meter, time_origin=self.hub.clock())
        return tl

    def handle(self, client_id: str, cmd: TransportCommand) -> dict[str, Any]:
        """Apply a transport command from ``client_id``; the ack's result."""
        tl = self.current(cmd.session)
        holder_before = tl.holder
        if isinstance(cmd, TakeTransport):
            tl = take_control(tl, client_id, force=cmd.force)
        elif isinstance(cmd, ReleaseTransport):
            tl = release_control(tl, client_id)
        else:
            now = self.hub.clock()
            if cmd.hub_time is not None and abs(cmd.hub_time - now) <= MAX_STAMP_SKEW:
                now = cmd.hub_time
            tl = apply_update(
                tl,
                client_id,
                now=now,
                playing=cmd.playing,
                bpm=cmd.bpm,
                beat=cmd.beat,
                meter=cmd.meter,
                at_next_bar=cmd.at_next_bar,
            )
            self._schedule_tempo_commit(cmd.session)
        self._publish(tl)
        if not isinstance(cmd, TransportUpdate) or holder_before != tl.holder:
            self.hub.publish_presence(cmd.session)
        return {"seq": tl.seq, "holder": tl.holder}

    def drop_client(self, client_id: str) -> set[str]:
        """A client left: it holds control nowhere now. Returns the sessions it held."""
        dropped = set()
        for sid, tl in list(self._timelines.items()):
            if tl.holder == client_id:
                self._publish(drop_holder(tl, client_id))
                dropped.add(sid)
        return dropped

    def send_current(self, client_id: str, session_id: str) -> None:
        """A new ``transport:`` subscriber gets the live timeline at once, if there is one."""
        tl = self._timelines.get(session_id)
        if tl is not None:
            self.hub.fanout.send_to(client_id, encode(state_message(tl)).decode())

    async def flush(self) -> None:
        """Store every tempo or meter change still waiting out its debounce (shutdown)."""
        for session_id, timer in list(self._tempo_timers.items()):
            timer.cancel()
            await self._commit_tempo(session_id)
        if self._commits:
            await asyncio.gather(*self._commits, return_exceptions=True)

    def _publish(self, tl: Timeline) -> None:
        self._timelines[tl.session] = tl
        frame = encode(state_message(tl)).decode()
        topic = f"transport:{tl.session}"
        self.hub.fanout.publish_latest(topic, topic, frame)

    def _schedule_tempo_commit(self, session_id: str) -> None:
        """Make tempo/meter changes durable once they stop moving (a ramp is one event)."""
        timer = self._tempo_timers.pop(session_id, None)
        if timer is not None:
            timer.cancel()
        loop = asyncio.get_running_loop()
        self._tempo_timers[session_id] = loop.call_later(
            self.hub.config.transport_debounce, self._start_commit, session_id
        )

    def _start_commit(self, session_id: str) -> None:
        task = asyncio.ensure_future(self._commit_tempo(session_id))
        self._commits.add(task)
        task.add_done_callback(self._commits.discard)

    async def _commit_tempo(self, session_id: str) -> None:
        self._tempo_timers.pop(session_id, None)
        tl = self._timelines.get(session_id)
        core = self.hub.core
        s = core.state.sessions.get(session_id)
        if tl is None or s is None:
            return
        try:
            if abs(s.tempo - tl.bpm) > 1e-6:
                await core.execute(
                    SetTempo(op_id=new_id("op_"), session=session_id, bpm=round(tl.bpm, 3)),
                    op_id=None,
                    client=tl.holder,
                )
            if s.meter != tl.meter:
                await core.execute(
                    SetMeter(op_id=new_id("op_"), session=session_id, meter=tl.meter),
                    op_id=None,
                    client=tl.holder,
                )
        except HubError as err:
            log.warning("transport tempo commit for %s failed: %s", session_id, err.message)


def state_message(tl: Timeline) -> TransportState:
    """The wire form of a timeline."""
    return TransportState(
        session=tl.session,
        playing=tl.playing,
        bpm=tl.bpm,
        beat_origin=tl.beat_origin,
        time_origin=tl.time_origin,
        meter=tl.meter,
        holder=tl.holder,
        seq=tl.seq,
    )
