// Application state fed by the hub connection: the session list, the open session (kept
// equal to the hub's by applying its durable events), artifacts, jobs with their
// streamed notes, presence and transport. Views subscribe to "change" with a set of keys.

import { Emitter } from "./emitter.js";
import { notesFromChunk, parseMidi } from "./midi.js";
import { applySessionEvent, SESSION_EVENT } from "./session-model.js";

export class Store extends Emitter {
  sessions = [];
  engines = [];
  session = null;
  sessionId = null;
  loading = false;
  artifacts = new Map(); // id -> {id, hash, url, filename, kind, metadata, section, job}
  jobs = new Map(); // id -> {id, engine, task, section, state, percent, eta, notes, nextSeq, gap, error, artifacts}
  presence = null;
  #midi = new Map(); // artifact id -> Promise<parsed midi>
  #buffered = null; // session events that arrived while session.get was in flight

  constructor(conn) {
    super();
    this.conn = conn;
    conn.on("welcome", (w) => {
      this.engines = w.engines;
      this.sessions = w.sessions;
      this.changed("engines", "sessions", "connection");
    });
    conn.on("event", (frame) => this.#onEvent(frame));
    conn.on("resumed", (r) => this.#onResumed(r));
    conn.on("progress", (p) => this.#onProgress(p));
    conn.on("presence", (p) => {
      if (p.session !== this.sessionId) return;
      this.presence = p;
      this.changed("presence");
    });
  }

  changed(...keys) {
    this.emit("change", new Set(keys));
  }

  // --- session list --------------------------------------------------------------

  async refreshSessions() {
    const r = await this.conn.request({ type: "session.list" });
    this.sessions = r.sessions || [];
    this.changed("sessions");
  }

  // --- the open session ------------------------------------------------------------

  async open(sessionId) {
    if (this.sessionId && this.sessionId !== sessionId) await this.close();
    this.sessionId = sessionId;
    this.session = null;
    this.loading = true;
    this.jobs = new Map();
    this.presence = null;
    this.#buffered = [];
    this.changed("session", "jobs", "presence");
    // Paint early from HTTP while the socket subscribes; the session.get below (after the
    // subscribe, so no event can fall between) is authoritative and replaces it.
    fetch(`/sessions/${encodeURIComponent(sessionId)}`)
      .then((r) => (r.ok ? r.json() : null))
      .then((early) => {
        if (early && this.sessionId === sessionId && !this.session) {
          this.#setSession(early);
          this.changed("session");
        }
      })
      .catch(() => {});
    await this.conn.subscribe([`session:${sessionId}`, `transport:${sessionId}`]);
    // artifacts (take metadata) and running jobs load beside the session; the view shows first
    const extras = Promise.all([this.#loadArtifacts(sessionId), this.#loadJobs(sessionId)]).then(() => {
      if (this.sessionId === sessionId) this.changed("artifacts", "jobs");
    });
    const got = await this.conn.request({ type: "session.get", session: sessionId });
    if (this.sessionId !== sessionId) return;
    void extras;
    this.#setSession(got.session);
    const pending = this.#buffered || [];
    this.#buffered = null;
    this.loading = false;
    for (const frame of pending) this.#onEvent(frame);
    this.changed("session", "artifacts", "jobs");
  }

  async close() {
    const id = this.sessionId;
    this.sessionId = null;
    this.session = null;
    this.presence = null;
    if (id) await this.conn.unsubscribe([`session:${id}`, `transport:${id}`]);
    this.changed("session", "presence");
  }

  #setSession(s) {
    this.session = s;
    this.undo = { undo: s?.undo_stack?.length ?? 0, redo: s?.redo_stack?.length ?? 0 };
  }

  /** Re-read the undo/redo stacks (they are not in the events). */
  async refreshHistory() {
    if (!this.sessionId) return;
    const id = this.sessionId;
    try {
      const got = await this.conn.request({ type: "session.get", session: id });
      if (id !== this.sessionId || !this.session) return;
      this.undo = { undo: got.session.undo_stack.length, redo: got.session.redo_stack.length };
      this.changed("history");
    } catch {
      /* a deleted session shows up through its event */
    }
  }

  async #loadArtifacts(sessionId) {
    try {
      const res = await fetch(`/artifacts?session=${encodeURIComponent(sessionId)}&limit=1000`);
      if (!res.ok) return;
      const body = await res.json();
      for (const a of body.artifacts || []) this.#putArtifact(a);
    } catch {
      /* the artifacts arrive again with file.ready */
    }
  }

  async #loadJobs(sessionId) {
    try {
      const res = await fetch(`/jobs?session=${encodeURIComponent(sessionId)}`);
      if (!res.ok) return;
      const body = await res.json();
      for (const r of body.jobs || []) {
        if (!["queued", "running"].includes(r.state)) continue;
        const spec = r.spec || r;
        this.#job(r.id || r.job, { engine: spec.engine, task: spec.task, section: spec.section, state: r.state });
      }
    } catch {
      /* running jobs show up with their next event */
    }
  }

  #putArtifact(a) {
    const id = a.id || a.artifact;
    const prev = this.artifacts.get(id) || {};
    this.artifacts.set(id, { ...prev, ...a, id });
  }

  midiOf(artifactId) {
    let p = this.#midi.get(artifactId);
    if (!p) {
      p = (async () => {
        let art = this.artifacts.get(artifactId);
        if (!art?.url) {
          const res = await fetch(`/artifacts/${encodeURIComponent(artifactId)}`);
          if (!res.ok) throw Object.assign(new Error("artifact not found"), { code: "unknown_artifact" });
          this.#putArtifact(await res.json());
          art = this.artifacts.get(artifactId);
        }
        const res = await fetch(art.url);
        if (!res.ok) throw Object.assign(new Error(`download failed (${res.status})`), { code: "network" });
        return parseMidi(await res.arrayBuffer());
      })();
      p.catch(() => this.#midi.delete(artifactId));
      this.#midi.set(artifactId, p);
    }
    return p;
  }

  // --- events ----------------------------------------------------------------------

  #onResumed(r) {
    if (r.recovered || !this.sessionId) return;
    const s = (r.snapshot || []).find((x) => x.id === this.sessionId) || null;
    this.#setSession(s);
    if (!s) this.sessionId = null;
    this.changed("session", "history");
  }

  #onEvent(frame) {
    const ev = frame.event;
    if (ev.session !== this.sessionId || !this.sessionId) return;
    if (this.#buffered) {
      this.#buffered.push(frame);
      return;
    }
    if (SESSION_EVENT.test(ev.type)) {
      if (!this.session || frame.offset <= this.session.updated_offset) return;
      const next = applySessionEvent(this.session, ev);
      if (next === null) {
        this.session = null;
        this.changed("session", "deleted");
        return;
      }
      this.session = { ...next, updated_offset: frame.offset };
      if (frame.cause === "do") this.undo = { undo: (this.undo?.undo ?? 0) + 1, redo: 0 };
      this.changed("session", "history", ev.type);
      this.emit("session-event", ev, frame);
      return;
    }
    switch (ev.type) {
      case "job.queued":
        this.#job(ev.job, { engine: ev.engine, task: ev.task, section: ev.section, state: "queued", params: ev.params, variations: ev.num_variations });
        break;
      case "job.started":
        this.#job(ev.job, { state: "running" });
        break;
      case "job.notes": {
        const job = this.#job(ev.job, {});
        if (ev.seq < job.nextSeq) return; // seen
        if (ev.seq > job.nextSeq) job.gap = true;
        job.nextSeq = ev.seq + 1;
        const notes = notesFromChunk(ev.notes);
        job.notes.push(...notes);
        this.emit("notes", job, notes);
        this.changed("jobs");
        return;
      }
      case "job.completed":
        for (const a of ev.artifacts) this.#putArtifact({ ...a, section: ev.section, job: ev.job });
        this.#job(ev.job, { state: "completed", percent: 100, artifacts: ev.artifacts.map((a) => a.id) });
        this.changed("artifacts");
        break;
      case "job.failed":
        this.#job(ev.job, { state: "failed", error: { code: ev.code, message: ev.message } });
        this.emit("job-failed", this.jobs.get(ev.job));
        break;
      case "job.cancelled":
        this.#job(ev.job, { state: "cancelled" });
        break;
      case "file.ready":
        this.#putArtifact({ id: ev.artifact, hash: ev.hash, url: ev.url, mime: ev.mime, size: ev.size, filename: ev.filename, kind: ev.kind, section: ev.section, job: ev.job, metadata: ev.metadata });
        this.changed("artifacts");
        return;
      case "artifact.deleted":
        this.artifacts.delete(ev.artifact);
        this.changed("artifacts");
        return;
      default:
        return;
    }
    this.changed("jobs");
  }

  #job(id, fields) {
    let job = this.jobs.get(id);
    if (!job) {
      job = { id, engine: "", task: "", section: null, state: "queued", percent: 0, eta: null, notes: [], nextSeq: 0, gap: false, error: null, artifacts: [], createdAt: Date.now() };
      this.jobs.set(id, job);
    }
    Object.assign(job, fields);
    return job;
  }

  #onProgress(p) {
    if (p.session !== this.sessionId) return;
    const job = this.jobs.get(p.job);
    if (!job || ["completed", "failed", "cancelled"].includes(job.state)) return;
    job.percent = p.percent;
    job.eta = p.eta_seconds;
    if (job.state === "queued") job.state = "running";
    this.changed("progress");
  }

  // --- commands ----------------------------------------------------------------------

  command(type, fields = {}) {
    return this.conn.request({ type, session: this.sessionId, ...fields });
  }
}
