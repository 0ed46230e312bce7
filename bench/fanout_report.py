#!/usr/bin/env python3
"""Fan-out benchmark of the hub against the ``websockets`` broadcast() relay, as one table.

Runs bench/ws_fanout.py with the built-in ``websockets`` baseline and bench/hub_relay.py
(the real hub app; ``--stock`` adds the hub on uvicorn's stock protocol, i.e. without
pre-framed direct writes), interleaved per N, saves the raw output, and prints the table.

    python bench/fanout_report.py                          # N = 100, 500, 1000
    python bench/fanout_report.py --repeat 2 --stock --out fanout.txt
    python bench/fanout_report.py --from fanout.txt        # re-print a saved run
Extra arguments after ``--`` go to ws_fanout.py (e.g. ``-- --lat-seconds 10 --no-pin``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def result(text: str) -> list[dict[str, Any]]:
    for line in reversed(text.splitlines()):
        if line.startswith("RESULT "):
            rows: list[dict[str, Any]] = json.loads(line[7:])
            return rows
    raise SystemExit("no RESULT line")


def table(rows: list[dict[str, Any]]) -> str:
    groups: dict[tuple[int, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["n"], r["server"])].append(r)
    out = [
        "| N | server | delivered msg/s at 60 Hz | share delivered at 60 Hz | p50 ms | p99 ms | max ms "
        "| staleness (held-value age) p50 / p99 ms | behind p99 ms | saturation delivered msg/s "
        "(share) | RSS/idle conn KiB | srv / cli / other CPU at 60 Hz | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (n, server), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        ok = [r for r in rs if "error" not in r]
        if not ok:
            out.append(f"| {n} | {server} | ERROR {rs[0]['error'][:80]} |" + " |" * 11)
            continue

        def med(key: str, rows: list[dict[str, Any]] = ok) -> float:
            vals = [r[key] for r in rows if r.get(key) is not None]
            return statistics.median(vals) if vals else float("nan")

        rate_share = med("lat_share")
        delivered = rate_share * n * 60.0
        errors = sum(r.get("errors", 0) for r in ok) + len(rs) - len(ok)
        reps = f" ({len(ok)} reps)" if len(ok) > 1 else ""
        out.append(
            f"| {n} | {server}{reps} | {delivered:,.0f} | {rate_share:.1%} | {med('lat_p50_ms'):.1f} | "
            f"{med('lat_p99_ms'):.1f} | {max(r.get('lat_max_ms', float('nan')) for r in ok):.1f} | "
            f"{med('age_p50_ms'):.1f} / {med('age_p99_ms'):.1f} | {med('behind_p99_ms'):.1f} | "
            f"{med('tput_msgs_s'):,.0f} ({med('tput_share'):.1%}) | {med('rss_per_conn_kib'):.1f} | "
            f"{med('lat_srv_cpu'):.2f} / {med('lat_cli_cpu'):.2f} / {med('lat_other_cpu'):.2f} | {errors} |"
        )
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ns", default="100,500,1000")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--stock", action="store_true", help="also run the hub without pre-framed writes")
    ap.add_argument("--out", type=Path, default=None, help="save ws_fanout's raw output here")
    ap.add_argument("--from", dest="from_file", type=Path, default=None, help="tabulate a saved run")
    ap.add_argument("rest", nargs=argparse.REMAINDER, help="-- extra ws_fanout.py arguments")
    a = ap.parse_args()
    if a.from_file is not None:
        print(table(result(a.from_file.read_text())))
        return 0
    cmd = [sys.executable, str(HERE / "ws_fanout.py"), "--ns", a.ns, "--repeat", str(a.repeat),
           "--servers", "websockets", "--sub-path", "/bench/sub", "--pub-path", "/bench/pub",
           "--server-cmd", "{python} hub_relay.py --port {port}", "--server-label", "hub"]
    if a.stock:
        cmd += ["--server-cmd", "{python} hub_relay.py --no-direct --port {port}", "--server-label", "hub-stock"]
    cmd += [x for x in a.rest if x != "--"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    text = proc.stdout
    if a.out is not None:
        a.out.write_text(text + proc.stderr)
    sys.stderr.write(proc.stderr)
    print(table(result(text)))
    return proc.returncode


if __name__ == "__main__":
    raise SystemExit(main())
