"""When a transport holder should send ``transport.update``: on any change, plus a slow
refresh (the hub keeps the timeline; followers extrapolate it). Pure."""

from __future__ import annotations

from dataclasses import dataclass

from plugins.client.hosttimeline import HostTimeline

# A jump smaller than this (1/96 beat = a 384th note) is clock jitter, not a relocate.
BEAT_TOLERANCE = 1.0 / 96
BPM_TOLERANCE = 0.05


@dataclass
class SendPolicy:
    refresh: float = 1.0
    last: HostTimeline | None = None
    last_at: float = float("-inf")

    def due(self, tl: HostTimeline, now: float) -> bool:
        last = self.last
        if last is None or tl.playing != last.playing:
            return True
        if abs(tl.bpm - last.bpm) > BPM_TOLERANCE:
            return True
        if abs(tl.beat_at(now) - last.beat_at(now)) > BEAT_TOLERANCE:
            return True
        return now - self.last_at >= self.refresh

    def sent(self, tl: HostTimeline, now: float) -> None:
        self.last = tl
        self.last_at = now
