#!/usr/bin/env python3
"""The real hub as a relay server for ``bench/ws_fanout.py`` (its ``--server-cmd`` hook).

Runs ``hub.app.create_app`` on a temporary data folder under uvicorn, configured like
``tutti serve`` (same uvicorn options, including the hub's WebSocket protocol class), plus
two bench-only WebSocket routes that exist only in this script:

  /bench/sub  registers the socket as a hub client (a ``Connection`` through ``Hub.connect``)
              subscribed to ``transport:bench`` and runs it with the hub's own reader/writer
              (``hub.ws.serve_connection``): the same Outbox, flusher and writer as ``/ws``.
  /bench/pub  publishes every text frame with
              ``fanout.publish_latest("transport:bench", "transport:bench", text)``,
              the call ``Timelines._publish`` (hub/timelines.py) makes for every transport update.

So the fan-out measured is exactly the path transport frames take (latest-value,
conflated per key); only the JSON is the harness's own rather than ``transport.state``.

    python bench/hub_relay.py --port 18765            # prints 'READY 18765'
    python bench/hub_relay.py --port 18765 --no-direct   # stock uvicorn protocol: send_text per frame
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import uvicorn  # noqa: E402
from starlette.routing import WebSocketRoute  # noqa: E402
from starlette.websockets import WebSocket  # noqa: E402

from hub.app import create_app  # noqa: E402
from hub.config import HubConfig, LimitsConfig  # noqa: E402
from hub.connection import Connection  # noqa: E402
from hub.runtime import Hub  # noqa: E402
from hub.ws import serve_connection  # noqa: E402
from hub.wsframes import TuttiWebSocketProtocol  # noqa: E402

TOPIC = "transport:bench"


async def bench_sub(ws: WebSocket) -> None:
    hub: Hub = ws.app.state.hub
    await ws.accept()
    conn = Connection(hub, peer=str(ws.client))
    conn.client_id = hub.connect(conn, None)
    hub.fanout.subscribe(conn.client_id, [TOPIC])
    await serve_connection(hub, ws, conn)


async def bench_pub(ws: WebSocket) -> None:
    hub: Hub = ws.app.state.hub
    await ws.accept()
    fanout = hub.fanout
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is not None:
            fanout.publish_latest(TOPIC, TOPIC, text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--no-direct", dest="direct", action="store_false",
                    help="use uvicorn's stock websockets-sansio protocol (no pre-framed writes)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="tutti-bench-") as tmp:
        # Hub heartbeats are JSON frames on the same socket; the bench subscribers never
        # answer, so push them out of the way (runs last well under a minute per N).
        config = HubConfig(
            port=a.port, data=Path(tmp) / "data", log_level="warning", watch_inbox=False,
            limits=LimitsConfig(heartbeat_interval=3600.0, heartbeat_timeout=7200.0),
        )
        app = create_app(config)
        # Before the static-files mount, which would otherwise claim every path.
        app.router.routes.insert(0, WebSocketRoute("/bench/sub", bench_sub))
        app.router.routes.insert(0, WebSocketRoute("/bench/pub", bench_pub))
        server = uvicorn.Server(uvicorn.Config(
            app, host="127.0.0.1", port=a.port, log_level="warning", lifespan="on",
            ws=TuttiWebSocketProtocol if a.direct else "websockets-sansio",
            ws_max_size=4 * config.limits.max_frame_bytes, ws_ping_interval=None, backlog=2048,
        ))

        async def run() -> None:
            task = asyncio.ensure_future(server.serve())
            while not server.started:
                await asyncio.sleep(0.02)
                if task.done():
                    task.result()
                    return
            print(f"READY {a.port}", flush=True)
            await task

        asyncio.run(run())


if __name__ == "__main__":
    main()
