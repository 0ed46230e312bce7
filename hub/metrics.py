"""Prometheus text exposition of the hub's counters (no client library needed)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hub.runtime import Hub


def render_metrics(hub: Hub) -> str:
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP tutti_{name} {help_text}")
        lines.append(f"# TYPE tutti_{name} {kind}")
        for labels, value in samples:
            lines.append(f"tutti_{name}{labels} {value}")

    depths = hub.fanout.queue_depths()
    metric("connections", "gauge", "Open client connections.", [("", float(len(hub.connections)))])
    metric("client_queue_max", "gauge", "Largest per-client outbox.", [("", float(max(depths, default=0)))])
    metric(
        "slow_consumers_total",
        "counter",
        "Clients whose queue overflowed (closed with 4008; they resume).",
        [("", float(hub.fanout.slow_consumers))],
    )
    metric("log_head", "gauge", "Offset of the newest durable event.", [("", float(hub.fanout.published_offset))])
    metric("commits_total", "counter", "Group commits made.", [("", float(hub.core.commits))])
    metric("frames_out_total", "counter", "Frames queued to clients.", [("", float(hub.fanout.frames_out))])
    metric(
        "fanout_seconds",
        "gauge",
        "Time the last publish took to queue its frames for every recipient.",
        [("", hub.fanout.last_fanout_seconds)],
    )
    counts = hub.jobs.counts()
    metric("jobs", "gauge", "Jobs by state.", [(f'{{state="{k}"}}', float(v)) for k, v in sorted(counts.items())])
    depth = hub.jobs.queue_depths()
    metric("job_queue_depth", "gauge", "Queued jobs per engine.", [(f'{{engine="{k}"}}', float(v)) for k, v in sorted(depth.items())])
    return "\n".join(lines) + "\n"
