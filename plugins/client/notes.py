"""Per-job ``job.notes`` sequence tracking: chunks are numbered 0, 1, 2 ... per job.

A gap means notes were lost (a bug, or history replaced by a snapshot); a repeat is a
duplicate. Jobs first seen mid-stream (joined late) start from the first chunk seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SeqCheck:
    fresh: bool  # deliver it
    gap: tuple[int, int] | None = None  # (expected, got) when chunks are missing


@dataclass
class NotesTracker:
    expected: dict[str, int] = field(default_factory=dict)
    gaps: int = 0

    def begin(self, job: str) -> None:
        """The job's start was seen (queued, started, or submitted by us): expect chunk 0."""
        self.expected.setdefault(job, 0)

    def check(self, job: str, seq: int) -> SeqCheck:
        want = self.expected.get(job)
        if want is not None and seq < want:
            return SeqCheck(fresh=False)
        self.expected[job] = seq + 1
        if want is not None and seq > want:
            self.gaps += 1
            return SeqCheck(fresh=True, gap=(want, seq))
        return SeqCheck(fresh=True)

    def end(self, job: str) -> None:
        self.expected.pop(job, None)

    def reset(self) -> None:
        """After a snapshot resync no earlier expectation holds."""
        self.expected.clear()
