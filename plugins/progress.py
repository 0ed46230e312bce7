"""Live progress for the bridge: tqdm bars on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from hub.protocol import JobProgress

LINE_EVERY = 1.0  # seconds between plain progress lines per job


class Reporter:
    def __init__(self, out: TextIO | None = None, *, bars: bool | None = None) -> None:
        self.out = out or sys.stdout
        self.bars = self.out.isatty() if bars is None else bars
        self._bars: dict[str, Any] = {}
        self._last_line: dict[str, float] = {}

    def line(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        message = f"{stamp} {text}"
        if self._bars:
            from tqdm import tqdm

            tqdm.write(message, file=self.out)
        else:
            print(message, file=self.out, flush=True)

    def progress(self, p: JobProgress) -> None:
        if self.bars:
            from tqdm import tqdm

            bar = self._bars.get(p.job)
            if bar is None:
                bar = self._bars[p.job] = tqdm(total=100, desc=p.job[-10:], unit="%", file=self.out, leave=False)
            bar.update(p.percent - bar.n)
            return
        now = time.monotonic()
        if p.percent < 100 and now - self._last_line.get(p.job, float("-inf")) < LINE_EVERY:
            return
        self._last_line[p.job] = now
        eta = f", ~{p.eta_seconds:.0f}s left" if p.eta_seconds is not None and p.percent < 100 else ""
        total = f"/{p.total}" if p.total else ""
        self.line(f"job {p.job}: {p.percent:5.1f}% ({p.tokens}{total}){eta}")

    def job_done(self, job: str, outcome: str) -> None:
        bar = self._bars.pop(job, None)
        if bar is not None:
            bar.close()
        self._last_line.pop(job, None)
        self.line(f"job {job}: {outcome}")

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()
