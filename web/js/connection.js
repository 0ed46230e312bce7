// The hub WebSocket: hello/welcome, exact resume, heartbeats, reconnect with backoff,
// commands matched to their ack/error by op_id. No UI in here.
//
// Resume (docs/protocol.md): remember the (epoch, offset) of the last event handed on;
// reconnect with hello.resume and the same topics; a non-recovered resume carries a
// snapshot that replaces the state. Session commands are de-duplicated by op_id in the
// hub's log, so they are resent after a reconnect; job and transport commands are not,
// so their outcome is reported as unknown when the socket drops before the answer.

import { ClockSync, localNow } from "./clock.js";
import { Emitter } from "./emitter.js";

const RESENDABLE = /^(session\.|section\.|take\.)/;
const NO_RETRY_CLOSE = new Set([1008, 4001]);

export class HubError extends Error {
  constructor(frame) {
    super(frame.message || frame.code || "error");
    this.code = frame.code || "error";
    this.details = frame.details || {};
    this.suggestions = frame.suggestions || [];
    this.opId = frame.op_id ?? null;
  }
}

export class Connection extends Emitter {
  status = "idle"; // idle | connecting | open | reconnecting | closed
  welcome = null;
  clientId = null;
  resume = null; // {epoch, offset}
  topics = new Set();
  attempt = 0;
  #ws = null;
  #pending = new Map(); // op_id -> {msg, resolve, reject, sent}
  #opCounter = 0;
  #opPrefix = Math.random().toString(36).slice(2, 8);
  #lastFrameAt = 0;
  #heartbeat = 0;
  #retryTimer = 0;
  #stopped = false;

  constructor({ url, name, client = "browser" }) {
    super();
    this.url = url;
    this.name = name;
    this.client = client;
    this.clock = new ClockSync((frame) => this.sendRaw(frame));
  }

  connect() {
    this.#stopped = false;
    this.#open();
  }

  close() {
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    this.#stopHeartbeat();
    this.clock.stop();
    this.#ws?.close(1000);
  }

  /** Drop the socket as a network failure would (used by tests and by the dead-hub check). */
  dropForTest() {
    this.#ws?.close(4000, "client reconnect");
  }

  #setStatus(status, detail = "") {
    this.status = status;
    this.emit("status", status, detail);
  }

  #open() {
    clearTimeout(this.#retryTimer);
    this.#setStatus(this.attempt === 0 ? "connecting" : "reconnecting");
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (err) {
      this.#scheduleRetry(String(err));
      return;
    }
    this.#ws = ws;
    ws.onopen = () => {
      const hello = { type: "hello", protocol: 1, client: this.client, name: this.name, topics: [...this.topics] };
      if (this.resume) hello.resume = { ...this.resume };
      ws.send(JSON.stringify(hello));
      this.#lastFrameAt = localNow();
    };
    ws.onmessage = (msg) => {
      if (ws !== this.#ws) return;
      this.#lastFrameAt = localNow();
      let frame;
      try {
        frame = JSON.parse(msg.data);
      } catch {
        return;
      }
      this.#onFrame(frame);
    };
    ws.onclose = (ev) => {
      if (ws !== this.#ws) return;
      this.#ws = null;
      this.#stopHeartbeat();
      this.clock.stop();
      this.#failUnresendable();
      if (this.#stopped) return this.#setStatus("closed");
      if (NO_RETRY_CLOSE.has(ev.code)) {
        const why = ev.code === 1008 ? "this page's origin is not allowed by the hub" : "the hub needs a valid token";
        this.#setStatus("closed", why);
        return;
      }
      this.#scheduleRetry(ev.reason || `connection closed (${ev.code})`);
    };
  }

  #scheduleRetry(reason) {
    const c = Math.min(15, 0.25 * 2 ** this.attempt);
    const delay = c / 2 + Math.random() * (c / 2);
    this.attempt += 1;
    this.#setStatus("reconnecting", reason);
    this.#retryTimer = setTimeout(() => this.#open(), delay * 1000);
  }

  #onFrame(frame) {
    switch (frame.type) {
      case "welcome":
        return this.#onWelcome(frame);
      case "resumed":
        if (!frame.recovered) this.resume = { epoch: frame.epoch, offset: frame.offset };
        this.emit("resumed", frame);
        return;
      case "event": {
        const r = this.resume;
        if (r && r.epoch === frame.epoch && frame.offset <= r.offset) return; // duplicate
        this.resume = { epoch: frame.epoch, offset: frame.offset };
        this.emit("event", frame);
        return;
      }
      case "ack":
      case "error":
        return this.#onReply(frame);
      case "ping":
        this.sendRaw({ type: "pong", t: frame.t ?? null });
        return;
      case "pong":
        return;
      case "clock.pong":
        this.clock.onPong(frame);
        this.emit("clock", this.clock);
        return;
      case "goodbye":
        if (frame.resume) this.resume = frame.resume;
        return;
      case "job.progress":
        return this.emit("progress", frame);
      case "transport.state":
        return this.emit("transport", frame);
      case "presence":
        return this.emit("presence", frame);
      default:
        return;
    }
  }

  #onWelcome(frame) {
    performance.mark("tutti:welcome");
    this.welcome = frame;
    this.clientId = frame.client_id;
    this.attempt = 0;
    if (!this.resume) this.resume = { epoch: frame.epoch, offset: frame.offset };
    this.clock.roughGuess(frame.server_time, localNow());
    this.clock.start();
    this.#startHeartbeat(frame.heartbeat_interval, frame.heartbeat_timeout);
    this.#setStatus("open");
    this.emit("welcome", frame);
    for (const p of this.#pending.values()) {
      if (p.msg.type === "subscribe" || p.msg.type === "unsubscribe") {
        // the hello carried the current topics already
        this.#pending.delete(p.msg.op_id);
        p.resolve({ topics: [...this.topics], offset: frame.offset });
      } else {
        this.sendRaw(p.msg);
        p.sent = true;
      }
    }
  }

  #onReply(frame) {
    const p = frame.op_id ? this.#pending.get(frame.op_id) : null;
    if (!p) {
      if (frame.type === "error") this.emit("error", new HubError(frame));
      return;
    }
    this.#pending.delete(frame.op_id);
    if (frame.type === "ack") {
      if (p.msg.type === "subscribe" && Number.isInteger(frame.result?.offset)) this.bumpOffset(frame.result.offset);
      p.resolve(frame.result || {});
    } else p.reject(new HubError(frame));
  }

  /** After a subscribe: every event on the old topics up to `offset` has been delivered. */
  bumpOffset(offset) {
    if (this.resume && offset > this.resume.offset) this.resume = { ...this.resume, offset };
  }

  #failUnresendable() {
    for (const [opId, p] of this.#pending) {
      if (!p.sent || RESENDABLE.test(p.msg.type) || p.msg.type.endsWith("subscribe")) continue;
      this.#pending.delete(opId);
      p.reject(
        new HubError({
          code: "outcome_unknown",
          message: `the connection dropped before the hub answered ${p.msg.type}; check whether it took effect`,
          op_id: opId,
        }),
      );
    }
  }

  #startHeartbeat(interval, timeout) {
    this.#stopHeartbeat();
    const every = Math.max(1, interval || 10) * 1000;
    this.#heartbeat = setInterval(() => {
      if (localNow() - this.#lastFrameAt > (timeout || 30)) {
        this.#ws?.close(4000, "hub silent");
        return;
      }
      this.sendRaw({ type: "ping", t: localNow() });
    }, every);
  }

  #stopHeartbeat() {
    clearInterval(this.#heartbeat);
  }

  sendRaw(frame) {
    if (this.#ws && this.#ws.readyState === WebSocket.OPEN) {
      this.#ws.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  nextOpId() {
    this.#opCounter += 1;
    return `op_${this.#opPrefix}_${this.#opCounter}`;
  }

  /** Send a command; resolves with the ack's result, rejects with a HubError. */
  request(msg) {
    const full = { ...msg, op_id: msg.op_id || this.nextOpId() };
    return new Promise((resolve, reject) => {
      const entry = { msg: full, resolve, reject, sent: false };
      this.#pending.set(full.op_id, entry);
      if (this.status === "open") entry.sent = this.sendRaw(full);
    });
  }

  async subscribe(topics) {
    topics.forEach((t) => this.topics.add(t));
    return this.request({ type: "subscribe", topics });
  }

  async unsubscribe(topics) {
    const present = topics.filter((t) => this.topics.has(t));
    present.forEach((t) => this.topics.delete(t));
    if (!present.length) return {};
    return this.request({ type: "unsubscribe", topics: present }).catch(() => ({}));
  }
}
