"""The protocol guide for plugin authors (docs/protocol.md), generated from the JSON Schema.

Message lists, field tables and event types come from the schema; examples are pydantic
instances (plugins/examples.py); error and close codes come from hub/docs.py. The prose
around them lives here. ``write_protocol_guide`` is what ``tutti docs`` runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from hub.docs import errors_markdown
from hub.events import topic_of
from hub.protocol import CLIENT_TYPES, PROTOCOL_VERSION, SERVER_TYPES, encode, json_schema
from plugins.examples import CLIENT_EXAMPLES, EVENT_EXAMPLES, SERVER_EXAMPLES

GUIDE_PATH = Path("docs/protocol.md")

# How each server message is delivered (see DESIGN §2); a test checks every type is here.
DELIVERY: dict[str, tuple[str, str]] = {
    "welcome": ("control", "once per connection, first frame after hello"),
    "resumed": ("control", "answer to a resume, before the replayed events"),
    "event": ("lossless", "every durable event once, in log order, with (epoch, offset)"),
    "ack": ("lossless", "exactly one ack or error per command op_id"),
    "error": ("lossless", "exactly one per failed command; also for bad frames (no op_id)"),
    "job.progress": ("latest-value", "conflated per job: a slow client sees the newest value"),
    "transport.state": ("latest-value", "conflated per session; on change plus refresh"),
    "presence": ("latest-value", "conflated per session"),
    "clock.pong": ("control", "answer to clock.ping"),
    "ping": ("control", "heartbeat from the hub; answer with pong"),
    "pong": ("control", "answer to the client's ping"),
    "goodbye": ("control", "sent before the hub closes a socket on purpose"),
}


def _examples() -> dict[tuple[str, str], BaseModel]:
    out: dict[tuple[str, str], BaseModel] = {}
    for side, items in (("client", CLIENT_EXAMPLES), ("server", SERVER_EXAMPLES)):
        for item in items:
            out[(side, str(getattr(item, "type")))] = item  # noqa: B009 - every message has a type
    return out


def _json(model: BaseModel) -> str:
    return json.dumps(json.loads(encode(model)), indent=2)


def _type_of(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        return str(prop["$ref"]).rsplit("/", 1)[-1]
    if "const" in prop:
        return f'"{prop["const"]}"'
    if "enum" in prop:
        return " \\| ".join(f'"{v}"' for v in prop["enum"])
    if "anyOf" in prop:
        return " \\| ".join(_type_of(p) for p in prop["anyOf"])
    if "oneOf" in prop:
        return "Event" if "discriminator" in prop else " \\| ".join(_type_of(p) for p in prop["oneOf"])
    kind = prop.get("type", "any")
    if kind == "array":
        return f"{_type_of(prop.get('items', {}))}[]"
    if kind == "object":
        return "object"
    return str(kind)


def _limits(prop: dict[str, Any]) -> str:
    parts = []
    for key, label in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="),
                       ("minLength", "len >="), ("maxLength", "len <="), ("maxItems", "items <=")):
        if key in prop:
            parts.append(f"{label} {prop[key]}")
    return ", ".join(parts)


def _field_table(definition: dict[str, Any]) -> list[str]:
    props: dict[str, Any] = definition.get("properties", {})
    required = set(definition.get("required", []))
    rows = ["| field | type | required | default | limits |", "| --- | --- | --- | --- | --- |"]
    for name, prop in props.items():
        if name == "type":
            continue
        default = json.dumps(prop["default"]) if "default" in prop else ""
        rows.append(f"| `{name}` | {_type_of(prop)} | {'yes' if name in required else ''} | "
                    f"{default} | {_limits(prop)} |")
    return rows if len(rows) > 2 else ["(no fields besides `type`)"]


def _message_section(side: str, types: list[str], defs: dict[str, Any], mapping: dict[str, str],
                     examples: dict[tuple[str, str], BaseModel]) -> list[str]:
    lines: list[str] = []
    for kind in types:
        name = mapping[kind].rsplit("/", 1)[-1]
        definition = defs[name]
        lines += [f"### `{kind}`", ""]
        if side == "server":
            cls, how = DELIVERY[kind]
            lines += [f"Delivery: **{cls}** ({how}).", ""]
        if "description" in definition:
            lines += [" ".join(definition["description"].split()), ""]
        lines += _field_table(definition)
        lines += ["", "Example:", "", "```json", _json(examples[(side, kind)]), "```", ""]
    return lines


def _event_section(defs: dict[str, Any]) -> list[str]:
    mapping: dict[str, str] = defs["EventMessage"]["properties"]["event"]["discriminator"]["mapping"]
    lines = ["| event type | topic | class | fields |", "| --- | --- | --- | --- |"]
    for kind in sorted(mapping):
        definition = defs[mapping[kind].rsplit("/", 1)[-1]]
        fields = ", ".join(f"`{f}`" for f in definition.get("properties", {}) if f != "type")
        topic = _event_topic(kind)
        lines.append(f"| `{kind}` | {topic} | lossless | {fields} |")
    lines += ["", "Job and file events tied to a session are also delivered on `session:<id>`.", ""]
    for example in EVENT_EXAMPLES:
        lines += ["```json", _json(example), "```", ""]
    return lines


def _event_topic(kind: str) -> str:
    class _Probe(BaseModel):
        type: str
        session: str = "<id>"

    return f"`{topic_of(_Probe(type=kind))}`"


def _codes_section() -> list[str]:
    # hub/docs.py owns the tables; demote its headings under ours.
    body = errors_markdown().splitlines()
    start = next(i for i, line in enumerate(body) if line.startswith("Every error"))
    return [("#" + line if line.startswith("## ") else line) for line in body[start:]]


def protocol_markdown() -> str:
    schema = json_schema()
    defs: dict[str, Any] = schema["$defs"]
    client_map: dict[str, str] = defs["ClientMessage"]["discriminator"]["mapping"]
    server_map: dict[str, str] = defs["ServerMessage"]["discriminator"]["mapping"]
    examples = _examples()
    lines = [
        f"# Tutti WebSocket protocol v{PROTOCOL_VERSION}: a guide for plugin authors",
        "",
        "Generated by `tutti docs` (plugins/docs.py) from the JSON Schema in",
        "`plugins/schema/protocol.schema.json`; do not edit by hand. The Python reference",
        "client in `plugins/client/` implements everything described here: `ClientCore` is",
        "the protocol without I/O (a good model for a C++ or JavaScript port), `TuttiClient`",
        "runs it over `websockets`.",
        "",
        *_PROSE.strip("\n").splitlines(),
        "",
        "## Delivery classes",
        "",
        "| server message | class | how |",
        "| --- | --- | --- |",
        *[f"| `{k}` | {DELIVERY[k][0]} | {DELIVERY[k][1]} |" for k in sorted(server_map)],
        "",
        "**lossless**: never dropped, never reordered; durable events survive hub restarts and",
        "are replayed on resume. **latest-value**: conflated per key; after a reconnect the",
        "current value is sent again (transport on subscribe), older values are gone.",
        "",
        *_CLOCK.strip("\n").splitlines(),
        "",
        "## Messages from the client",
        "",
        *_message_section("client", sorted(client_map), defs, client_map, examples),
        "## Messages from the hub",
        "",
        *_message_section("server", sorted(server_map), defs, server_map, examples),
        "## Event types",
        "",
        "Durable events arrive inside `event` frames (field `event`, discriminated by its `type`).",
        "",
        *_event_section(defs),
        "## Errors and close codes",
        "",
        *_codes_section(),
        *_CPP.strip("\n").splitlines(),
        "",
    ]
    return "\n".join(lines)


def write_protocol_guide(path: Path = GUIDE_PATH) -> Path:
    """Regenerate the guide at ``path`` (``tutti docs`` wires this)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(protocol_markdown(), encoding="utf-8")
    return path


# Types a test checks against the schema's unions.
ALL_TYPES = CLIENT_TYPES | SERVER_TYPES

_PROSE = """
## Connecting

Open a WebSocket to `ws://HOST:8765/ws` (the hub's default port). Every frame is one JSON
object (a text frame) with a `type`. The first frame must be `hello`; the hub answers
`welcome` with its clock, the log position (`epoch`, `offset`), the engines and the
heartbeat timings. Browsers must be served by the hub (Origin check); everything else may
connect from anywhere the hub listens, with `token` if the hub has one.

```
client                                   hub
  | hello {client, name, topics, resume?} |
  |-------------------------------------->|
  |        welcome {epoch, offset, ...}   |
  |<--------------------------------------|
  |   [resumed {recovered, offset}]       |  only when hello carried resume
  |   [event ... replayed: true]          |  missed events, in order
  |<--------------------------------------|
  |   event / job.progress / transport... |  live
```

Topics: `session:<id>` (session events, and job/file events of that session, and
presence), `transport:<id>` (transport.state), `jobs`, `files`, `sessions`.

## Commands

Every command carries a client-chosen `op_id` (unique per client; the reference client
uses a random prefix plus a counter) and gets exactly one `ack` or `error` with that
`op_id`. Session commands are de-duplicated by `op_id` in the durable log, so resending
one after a reconnect has one effect; `job.submit` and transport commands are not, so a
client reports those as "outcome unknown" when the socket drops before the answer.

## Resume rules

1. Remember the `(epoch, offset)` of the last `event` you handed to your user. Before
   any event, use the `welcome`'s `epoch` and `offset` (the hello's topics are subscribed
   at that position).
2. Offsets are global: a client sees only its topics' offsets, so they increase with
   holes. Drop any event whose offset is not above the last one (a duplicate).
3. On reconnect send `hello` with `resume: {epoch, offset}` and the same `topics`. The hub
   answers `resumed`:
   - `recovered: true`: every event after your offset on your topics follows, once, in
     order, flagged `replayed: true`, then live events. Never a partial replay.
   - `recovered: false` (history compacted, or `epoch` changed because the log was
     lost): `snapshot` holds the sessions' state valid at `offset`; replace your state
     and continue from `(epoch, offset)`.
4. `job.notes` chunks are numbered per job (`seq` 0, 1, 2 ...): a jump is a gap.
5. Reconnect with exponential backoff and jitter (the reference client: delay =
   c/2 + uniform(0, c/2) with c = min(15 s, 0.25 s * 2^attempt), reset after a welcome).
   Do not reconnect after close code 4001 (token) or 1008 (origin) without a fix.
6. Latest-value messages are not replayed: after a reconnect the hub sends the current
   transport.state on subscribe; progress resumes with the next update.

## Heartbeats

The hub sends `ping` every `heartbeat_interval` seconds and drops a client that sent no
frame for `heartbeat_timeout` seconds (close 4002, reconnect with resume). Answer `ping`
with `pong` (echo `t`) and send your own `ping` every interval; treat a hub that is silent
for `heartbeat_timeout` as dead.

## Files

`file.ready` announces a stored file (`hash` = sha256 hex, `url` = `/cas/<hash>`, `size`,
`mime`). Fetch it with HTTP `GET http://HOST:8765/cas/<hash>` (immutable; `ETag` is the
hash) into a temp file in the target folder, fsync, compare the sha256, then rename:
a folder-watching DAW must never see a partial file. Upload a MIDI file with
`POST /cas?session=<id>&section=<id>&filename=<name>` (raw body, `Content-Type:
audio/midi`); the answer `{hash, size, mime, artifact, url}` names the artifact to pass to
`take.add`. With a token, send `Authorization: Bearer <token>`.

A long generation also announces the MIDI written so far, every few seconds, as a
`file.ready` whose `metadata.partial` is true: a DAW can play what exists while the rest is
generated. Each partial file replaces the job's previous one (the hub deletes the older
record, `artifact.deleted`); the results replace the last. Mirror partial files of one job
under one name, replaced atomically (the reference bridge: `<job>.partial.mid`, removed
once the job completes). A cancelled job keeps its newest partial file as a take
(`job.cancelled.partial_artifacts`).
"""

_CLOCK = """
## Transport and clock sync

The hub keeps each session's transport as a timeline on its own monotonic clock:
`transport.state {playing, bpm, beat_origin, time_origin, meter, holder, seq}`. While
playing, `beat(T) = beat_origin + (T - time_origin) * bpm / 60` for hub time `T`; stopped,
the beat is `beat_origin`. It is sent on every change plus a low-rate refresh; ignore a
state whose `seq` is lower than the last one seen on this connection.

**Clock offset.** Send `clock.ping {t0}` with your clock; the hub answers `clock.pong {t0,
server_time}`; read your clock again on arrival as `t1`. Then

    rtt    = t1 - t0
    offset = server_time - (t0 + t1) / 2        # hub_time = local_time + offset
    error <= rtt / 2                            # the hub read its clock inside the round trip

Take a burst of samples (the reference client: 12, 20 ms apart) and use the median
offset of the samples whose round trip is within 1.5x the best one plus 0.1 ms (slow
round trips are the asymmetric ones); that median's error is at most half the slowest
round trip it uses. Where that bound matters, keep pinging until it is small enough (the
reference client's `measure_clock(target_uncertainty=...)`). Repeat every 30 s, because
clocks drift, and start over after every reconnect (a restarted hub has a new clock
origin). The `welcome`'s `server_time` minus your clock on arrival is a rough
first guess (error: the one-way latency).

**Following.** `local_beat(t) = beat_origin + (t + offset - time_origin) * bpm / 60`.
To schedule beat `b`: `t = time_origin + (b - beat_origin) * 60 / bpm - offset`.

**Leading.** One client holds transport control: send `transport.take` (with `force:
true` to take it over), then `transport.update {playing, bpm, beat}` with the beat your
host is at *now*; the hub stamps it with its clock on arrival, so the one-way latency is
the error (sub-millisecond on loopback). Send on play, stop, relocate and tempo change,
plus about once a second. `at_next_bar: true` makes a tempo change take effect at the
next bar line. Others get `transport_not_held`.
"""

_CPP = """
## A C++ sketch of the handshake (JUCE)

JUCE has no WebSocket class; use any client library (IXWebSocket is shown) and
`juce::JSON` for the frames. Keep the protocol logic out of the socket callback the way
`ClientCore` does, and never touch it from the audio thread: hand beats to the audio
thread through an atomic snapshot of `(beat_origin, time_origin, bpm, playing, offset)`.

```cpp
#include <juce_core/juce_core.h>
#include <ixwebsocket/IXWebSocket.h>

struct TuttiLink {
    ix::WebSocket ws;
    juce::String epoch;          // resume point: last delivered event
    juce::int64 offset = -1;     // -1: nothing delivered yet
    juce::StringArray topics { "session:ses_4f1c2a9e", "transport:ses_4f1c2a9e" };

    static double now() { return juce::Time::getMillisecondCounterHiRes() / 1000.0; }

    void start (const std::string& url) {
        ws.setUrl (url);                                   // ws://127.0.0.1:8765/ws
        ws.enableAutomaticReconnection();                  // add jitter: setMin/MaxWaitBetweenReconnectionRetries
        ws.setOnMessageCallback ([this] (const ix::WebSocketMessagePtr& m) {
            if (m->type == ix::WebSocketMessageType::Open)    sendHello();
            if (m->type == ix::WebSocketMessageType::Message) onFrame (juce::JSON::parse (m->str), now());
        });
        ws.start();
    }

    void sendHello() {
        auto* hello = new juce::DynamicObject();
        hello->setProperty ("type", "hello");
        hello->setProperty ("protocol", 1);
        hello->setProperty ("client", "daw-plugin");
        hello->setProperty ("name", "My JUCE plugin");
        juce::Array<juce::var> t; for (auto& s : topics) t.add (s);
        hello->setProperty ("topics", t);
        if (offset >= 0) {                                  // exact resume after a reconnect
            auto* resume = new juce::DynamicObject();
            resume->setProperty ("epoch", epoch);
            resume->setProperty ("offset", offset);
            hello->setProperty ("resume", juce::var (resume));
        }
        ws.send (juce::JSON::toString (juce::var (hello), true).toStdString());
    }

    void onFrame (const juce::var& f, double t1) {
        auto type = f["type"].toString();
        if (type == "welcome" && offset < 0) { epoch = f["epoch"]; offset = (juce::int64) f["offset"]; }
        else if (type == "event") {
            auto off = (juce::int64) f["offset"];
            if (f["epoch"].toString() == epoch && off <= offset) return;   // duplicate
            epoch = f["epoch"]; offset = off;
            // ... apply f["event"] (check job.notes "seq" per job for gaps)
        }
        else if (type == "resumed" && ! (bool) f["recovered"]) { offset = (juce::int64) f["offset"]; /* load f["snapshot"] */ }
        else if (type == "ping")  ws.send ("{\\"type\\":\\"pong\\",\\"t\\":" + juce::String ((double) f["t"]).toStdString() + "}");
        else if (type == "clock.pong") {
            double t0 = f["t0"], server = f["server_time"];
            addClockSample (server - (t0 + t1) / 2.0, t1 - t0);  // median of the near-best-RTT samples
        }
        else if (type == "transport.state") { /* publish to the audio thread atomically */ }
    }

    void addClockSample (double offset, double rtt);
};
```
"""
