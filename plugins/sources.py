"""Transport sources for the bridge: a steady internal clock, or a MIDI clock input.

Each yields the host's current timeline (``HostTimeline`` on ``time.monotonic``) at
a steady poll rate; the bridge decides with ``SendPolicy`` what to send.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from plugins.client.hosttimeline import HostTimeline
from plugins.midiclock import MidiClockParser

POLL = 0.005  # seconds between looks at the source: bounds how late a change is noticed


class TransportSource(Protocol):
    def timelines(self) -> AsyncIterator[HostTimeline]: ...


class InternalClock:
    """Plays from ``start_beat`` at ``bpm`` on a monotonic clock, forever."""

    def __init__(self, bpm: float, *, start_beat: float = 0.0, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.timeline = HostTimeline(bpm=bpm).play(clock(), start_beat)

    async def timelines(self) -> AsyncIterator[HostTimeline]:
        while True:
            yield self.timeline
            await asyncio.sleep(POLL)


class MidiClockInput:
    """Follows a MIDI clock input port (needs the ``midi-io`` extra: python-rtmidi)."""

    def __init__(self, port: str, *, clock: Callable[[], float] = time.monotonic):
        self.port = port
        self.clock = clock
        self.parser = MidiClockParser()

    @staticmethod
    def ports() -> list[str]:
        import mido

        names: list[str] = mido.get_input_names()
        return names

    async def timelines(self) -> AsyncIterator[HostTimeline]:
        import mido

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[Any, float]] = asyncio.Queue()

        def on_message(msg: Any) -> None:  # rtmidi's thread: stamp at once, hand to the loop
            stamp = self.clock()
            loop.call_soon_threadsafe(queue.put_nowait, (msg, stamp))

        port = mido.open_input(self.port, callback=on_message)
        try:
            while True:
                try:
                    msg, stamp = await asyncio.wait_for(queue.get(), POLL * 20)
                    self.parser.feed(msg, stamp)
                except TimeoutError:
                    pass
                s = self.parser.state()
                yield HostTimeline(playing=s.playing, bpm=s.bpm or 120.0, beat_origin=s.beat, time_origin=s.at)
        finally:
            port.close()
