"""The sender's own transport: a timeline on the client's clock that play / stop /
tempo / locate edit. The bridge's steady internal clock is exactly this. Pure."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class HostTimeline:
    playing: bool = False
    bpm: float = 120.0
    beat_origin: float = 0.0
    time_origin: float = 0.0

    def beat_at(self, now: float) -> float:
        if not self.playing:
            return self.beat_origin
        return self.beat_origin + (now - self.time_origin) * self.bpm / 60.0

    def play(self, now: float, beat: float | None = None) -> HostTimeline:
        start = self.beat_at(now) if beat is None else beat
        return replace(self, playing=True, beat_origin=start, time_origin=now)

    def stop(self, now: float) -> HostTimeline:
        return replace(self, playing=False, beat_origin=self.beat_at(now), time_origin=now)

    def tempo(self, now: float, bpm: float) -> HostTimeline:
        return replace(self, bpm=bpm, beat_origin=self.beat_at(now), time_origin=now)

    def locate(self, now: float, beat: float) -> HostTimeline:
        return replace(self, beat_origin=beat, time_origin=now)
