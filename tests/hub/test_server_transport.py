"""Transport sync against a real server: control, timelines to subscribers, hub_time
stamping, presence, debounced durable tempo/meter events and clock.ping/clock.pong."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from serverkit import (
    HubProcess,
    WsClient,
    clock_offset,
    is_event,
    new_session,
    wait_frame,
    ws_client,
)


def _state(seq: int) -> Any:
    return lambda f: f.get("type") == "transport.state" and f.get("seq") == seq


def _presence(holder: str | None) -> Any:
    return lambda f: f.get("type") == "presence" and f.get("transport_holder") == holder


async def _update(client: WsClient, sid: str, **fields: Any) -> dict[str, Any]:
    msg = {"type": "transport.update", "session": sid, "playing": True, "bpm": 120.0, "beat": 0.0, **fields}
    return await client.call(msg)


def _op_is(op_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda f: f.get("op_id") == op_id


async def test_transport_control_timeline_and_tempo(hub: HubProcess) -> None:
    async with (
        ws_client(hub.ws_url, kind="daw-plugin", name="Live") as daw,
        ws_client(hub.ws_url, kind="browser", name="tab") as browser,
        ws_client(hub.ws_url, kind="daw-plugin", name="Other DAW") as other,
    ):
        daw_id, other_id = daw.welcome["client_id"], other.welcome["client_id"]
        sid, _ = await new_session(daw, "Transport")
        await daw.request({"type": "subscribe", "topics": [f"session:{sid}"]})
        await browser.request({"type": "subscribe", "topics": [f"transport:{sid}", f"session:{sid}"]})

        # clock.ping / clock.pong: both clients estimate the hub clock
        daw_off, daw_rtt = await clock_offset(daw)
        tab_off, tab_rtt = await clock_offset(browser)
        print(f"\nclock.ping round trip (median): daw {1000 * daw_rtt:.2f} ms, browser {1000 * tab_rtt:.2f} ms;"
              f" offset estimates differ by {1000 * abs(daw_off - tab_off):.3f} ms")

        # the DAW takes control; presence shows the holder
        ack = await daw.request({"type": "transport.take", "session": sid})
        assert ack["result"]["holder"] == daw_id
        pres = await wait_frame(browser, _presence(daw_id), 10)
        peers = {(p["kind"], p["name"]) for p in pres["peers"]}
        assert {("daw-plugin", "Live"), ("browser", "tab")} <= peers

        # an update stamped with the sender's hub-clock estimate becomes the timeline origin
        t_local = time.monotonic()
        stamp = t_local + daw_off
        ack = await daw.request({"type": "transport.update", "session": sid, "playing": True, "bpm": 120.0,
                                 "beat": 16.0, "hub_time": stamp, "host_time": 1234.5})
        assert ack["result"]["holder"] == daw_id
        state = await wait_frame(browser, _state(ack["result"]["seq"]), 10)
        assert state["session"] == sid and state["playing"] is True and state["holder"] == daw_id
        assert state["bpm"] == 120.0 and state["beat_origin"] == 16.0
        assert abs(state["time_origin"] - stamp) < 1e-9, "hub_time is used as the origin"
        assert state["meter"] == {"numerator": 4, "denominator": 4}
        # the browser extrapolates with its own clock estimate; the DAW knows the truth
        await asyncio.sleep(0.3)
        now = time.monotonic()
        extrapolated = state["beat_origin"] + (now + tab_off - state["time_origin"]) * state["bpm"] / 60
        truth = 16.0 + (now - t_local) * 120.0 / 60
        print(f"extrapolated beat {extrapolated:.4f} vs DAW {truth:.4f}: "
              f"error {abs(extrapolated - truth):.5f} beats ({1000 * abs(extrapolated - truth) / 2:.3f} ms)")
        assert abs(extrapolated - truth) < 0.5, (extrapolated, truth)

        # without hub_time (or with one that is far off) the hub stamps on arrival
        before = time.monotonic() + daw_off
        ack = await daw.request({"type": "transport.update", "session": sid, "playing": True, "bpm": 120.0,
                                 "beat": 32.0})
        after = time.monotonic() + daw_off
        state = await wait_frame(browser, _state(ack["result"]["seq"]), 10)
        assert before - 0.5 <= state["time_origin"] <= after + 0.5 and state["beat_origin"] == 32.0
        bogus = time.monotonic() + daw_off - 30.0
        ack = await daw.request({"type": "transport.update", "session": sid, "playing": True, "bpm": 120.0,
                                 "beat": 40.0, "hub_time": bogus})
        state = await wait_frame(browser, _state(ack["result"]["seq"]), 10)
        assert abs(state["time_origin"] - bogus) > 20, "a stamp far off the hub clock is ignored"

        # a second client is refused until it takes control explicitly
        err = await _update(other, sid, beat=1.0)
        assert err["type"] == "error" and err["code"] == "transport_not_held"
        assert err["details"]["holder"] == daw_id and err["suggestions"]
        err = await other.call({"type": "transport.take", "session": sid})
        assert err["type"] == "error" and err["code"] == "transport_not_held"
        err = await other.call({"type": "transport.release", "session": sid})
        assert err["type"] == "error" and err["code"] == "transport_not_held"
        ack = await other.request({"type": "transport.take", "session": sid, "force": True})
        assert ack["result"]["holder"] == other_id
        state = await wait_frame(browser, _state(ack["result"]["seq"]), 10)
        assert state["holder"] == other_id
        await wait_frame(browser, _presence(other_id), 10)
        err = await _update(daw, sid, beat=2.0)
        assert err["type"] == "error" and err["code"] == "transport_not_held"

        # a tempo change becomes one durable session.tempo_set after the debounce
        t0 = time.monotonic()
        assert (await _update(other, sid, bpm=100.0))["type"] == "ack"
        ev = await wait_frame(browser, is_event("session.tempo_set", session=sid), 10)
        print(f"tempo change -> durable session.tempo_set: {1000 * (time.monotonic() - t0):.0f} ms")
        assert ev["event"]["bpm"] == 100.0 and ev["event"]["old_bpm"] == 120.0

        # a ramp (many updates inside the debounce) is ONE event, with the final tempo
        ramp = [101.0 + i for i in range(30)]
        for bpm in ramp:
            await other.send({"type": "transport.update", "session": sid, "playing": True, "bpm": bpm,
                              "beat": 4.0, "op_id": f"ramp-{sid}-{bpm}"})
        replies = [await wait_frame(other, _op_is(f"ramp-{sid}-{bpm}"), 10) for bpm in ramp]
        assert all(r["type"] == "ack" for r in replies)
        ev = await wait_frame(browser, is_event("session.tempo_set", session=sid), 10)
        assert ev["event"]["bpm"] == ramp[-1] and ev["event"]["old_bpm"] == 100.0
        # nothing else follows: wait well past the debounce
        await asyncio.sleep(1.0)
        extra = [f for f in browser.drain() if is_event("session.tempo_set")(f)]
        assert extra == [], extra
        got = (await browser.request({"type": "session.get", "session": sid}))["result"]["session"]
        assert got["tempo"] == ramp[-1]

        # a meter change is durable too
        await _update(other, sid, bpm=ramp[-1], meter={"numerator": 3, "denominator": 4})
        ev = await wait_frame(browser, is_event("session.meter_set", session=sid), 10)
        assert ev["event"]["meter"] == {"numerator": 3, "denominator": 4}

        # the holder leaving frees control (the timeline keeps running)
        await other.close()
        pres = await wait_frame(browser, _presence(None), 10)
        assert ("daw-plugin", "Other DAW") not in {(p["kind"], p["name"]) for p in pres["peers"]}
        ack = await daw.request({"type": "transport.take", "session": sid})
        assert ack["result"]["holder"] == daw_id

    # a late subscriber gets the current timeline at once
    async with ws_client(hub.ws_url, kind="browser", name="late") as late:
        await late.request({"type": "subscribe", "topics": [f"transport:{sid}"]})
        state = await wait_frame(late, lambda f: f.get("type") == "transport.state", 10)
        assert state["session"] == sid and state["bpm"] == ramp[-1] and state["playing"] is True
        assert state["meter"] == {"numerator": 3, "denominator": 4}
