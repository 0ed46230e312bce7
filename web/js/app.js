// The application controller: routes, wires the store to the views, and owns the
// actions the views call (commands, uploads, playback, keyboard shortcuts).

import { localNow } from "./clock.js";
import { Connection } from "./connection.js";
import { h, replaceChildren, debounce } from "./dom.js";
import { Toasts } from "./errors.js";
import { Player } from "./player.js";
import { arrangementLayout, beatAtTime, timeAtBeat } from "./session-model.js";
import { Store } from "./store.js";
import { renderOffline, rms } from "./synth.js";
import { Transport } from "./transport.js";
import { Actions } from "./views/actions.js";
import { LiveView } from "./views/live.js";
import { PresenceView } from "./views/presence.js";
import { SectionPanel } from "./views/section-panel.js";
import { SessionList } from "./views/session-list.js";
import { TakesView } from "./views/takes.js";
import { Timeline } from "./views/timeline.js";
import { Toolbar } from "./views/toolbar.js";

const STATUS_TEXT = { idle: "Offline", connecting: "Connecting…", open: "Connected", reconnecting: "Reconnecting…", closed: "Disconnected" };

function clientName() {
  const q = new URLSearchParams(location.search).get("name");
  if (q) return q.slice(0, 60);
  const saved = localStorage.getItem("tutti.name");
  if (saved) return saved;
  const ua = navigator.userAgent;
  const browser = /Firefox\//.test(ua) ? "Firefox" : /Edg\//.test(ua) ? "Edge" : /Chrom(e|ium)\//.test(ua) ? "Chromium" : /Safari\//.test(ua) ? "Safari" : "Browser";
  return `${browser} ${Math.random().toString(36).slice(2, 5)}`;
}

export class App {
  selectedSection = null;
  auditioning = null;
  #audition = null; // {take, bpm, elapsed()}
  #pendingKeys = new Set();
  #frame = 0;
  #deleteArmed = null;
  #rollKey = null; // "section:take:chosen" the roll last showed by default

  constructor(root) {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    this.conn = new Connection({ url: `${proto}://${location.host}/ws`, name: clientName() });
    this.store = new Store(this.conn);
    this.transport = new Transport(this.conn.clock);
    this.player = new Player();
    this.toasts = new Toasts(root.querySelector("#toasts"));
    this.statusEl = root.querySelector("#conn-status");
    this.viewEl = root.querySelector("#view");
    this.presence = new PresenceView({ store: this.store, conn: this.conn });
    root.querySelector("#presence").append(this.presence.element);

    this.list = new SessionList({ store: this.store, app: this });
    this.toolbar = new Toolbar({ store: this.store, app: this });
    this.timeline = new Timeline({ store: this.store, app: this });
    this.sectionPanel = new SectionPanel({ store: this.store, app: this });
    this.actions = new Actions({ store: this.store, app: this });
    this.live = new LiveView({ store: this.store, app: this });
    this.takes = new TakesView({ store: this.store, app: this });
    this.sessionView = h(
      "div",
      { class: "session-view" },
      this.toolbar.element,
      this.timeline.element,
      h("div", { class: "workspace" },
        h("section", { class: "card section-card", "aria-label": "Selected section" }, this.sectionPanel.element, this.actions.element),
        h("div", { class: "card live-card" }, this.live.element),
      ),
      h("div", { class: "card takes-card" }, this.takes.element),
    );
    this.loadingView = h("p", { class: "loading", role: "status" }, "Loading session…");

    this.conn.on("status", (status, detail) => this.#onStatus(status, detail));
    this.conn.on("error", (err) => this.toasts.error(err));
    this.conn.on("transport", (state) => {
      if (state.session === this.store.sessionId) this.transport.onState(state);
    });
    this.conn.on("welcome", (w) => {
      this.transport.myClientId = w.client_id;
    });
    this.transport.on("change", ({ following, wasFollowing }) => {
      if (following && !wasFollowing) this.player.stop();
    });
    this.store.on("change", (keys) => this.#schedule(keys));
    this.store.on("job-failed", (job) => this.toasts.error({ code: job.error?.code, message: `${job.task} failed: ${job.error?.message || ""}` }));
    const refreshHistory = debounce(() => this.store.refreshHistory(), 250);
    this.store.on("session-event", (ev) => {
      refreshHistory();
      if (ev.type === "section.added" && !this.selectedSection) this.selectSection(ev.section.id);
    });
    window.addEventListener("hashchange", () => this.route());
    document.addEventListener("keydown", (e) => this.#onKey(e));
    this.conn.connect();
    this.route();
    this.#tick();
  }

  // --- plumbing -----------------------------------------------------------------------

  /** Await a command; show its error in plain words. Resolves with the result or undefined. */
  async run(promise) {
    try {
      return await promise;
    } catch (err) {
      this.toasts.error(err);
      return undefined;
    }
  }

  #onStatus(status, detail) {
    this.statusEl.textContent = STATUS_TEXT[status] || status;
    this.statusEl.dataset.status = status;
    this.statusEl.title = detail || "";
    document.body.dataset.connection = status;
    if (status === "closed" && detail) this.toasts.error({ message: detail });
  }

  #schedule(keys) {
    for (const k of keys) this.#pendingKeys.add(k);
    if (this.#frame) return;
    this.#frame = requestAnimationFrame(() => {
      this.#frame = 0;
      const pending = this.#pendingKeys;
      this.#pendingKeys = new Set();
      this.#render(pending);
    });
  }

  #render(keys) {
    if (keys.has("sessions")) this.list.update();
    if (keys.has("presence")) this.presence.update();
    if (keys.has("deleted")) {
      this.toasts.info("This session was deleted.");
      location.hash = "#/";
      return;
    }
    const s = this.store.session;
    if (!this.store.sessionId) return;
    if (!s) {
      if (this.viewEl.firstChild !== this.loadingView) replaceChildren(this.viewEl, this.loadingView);
      return;
    }
    if (this.viewEl.firstChild !== this.sessionView) {
      replaceChildren(this.viewEl, this.sessionView);
      performance.mark("tutti:session-view");
    }
    if (!s.sections.some((x) => x.id === this.selectedSection)) this.selectedSection = s.sections[0]?.id ?? null;
    document.title = `${s.title} · Tutti`;
    this.toolbar.update();
    this.timeline.update();
    this.sectionPanel.update();
    if (keys.has("session") || keys.has("engines") || keys.has("select")) this.actions.update();
    if (keys.has("jobs") || keys.has("progress") || keys.has("session")) this.live.update();
    if (keys.has("select") || keys.has("session")) this.#rollDefault(s, keys.has("select"));
    if (keys.has("session") || keys.has("artifacts") || keys.has("select") || keys.has("audition")) this.takes.update();
    this.transport.setTempoMap(this.#tempoMap());
    this.viewEl.dataset.ready = "true";
  }

  /** The roll shows the selected section: its chosen take, else its last take, else an
   * empty roll that says so. A job being watched keeps the roll (a finished one until
   * another section is picked), and a take opened by hand stays until the section's
   * default take changes. */
  #rollDefault(s, selecting) {
    const src = this.live.source;
    if (src?.kind === "job" && (!selecting || this.live.followingLiveJob)) return;
    const sec = s.sections.find((x) => x.id === this.selectedSection);
    if (!sec) return;
    const chosen = sec.takes.find((t) => t.id === sec.chosen_take);
    const take = chosen ?? sec.takes.at(-1);
    const key = `${sec.id}:${take?.id ?? ""}:${chosen ? "chosen" : ""}`;
    if (!selecting && key === this.#rollKey) return;
    this.#rollKey = key;
    if (!take) {
      this.live.showEmpty(sec.id, `${sec.name} has no takes yet: run a task on it to fill the roll.`);
    } else {
      const label = `${sec.name}, take ${sec.takes.indexOf(take) + 1}${chosen ? "" : " (none chosen yet)"}`;
      if (src?.id === take.id) this.live.relabel(label);
      else this.live.showTake(take, label);
    }
  }

  route() {
    const m = location.hash.match(/^#\/s\/([\w-]+)/);
    this.player.stop();
    this.auditioning = null;
    if (m) {
      const id = m[1];
      if (this.store.sessionId === id) return;
      this.selectedSection = null;
      this.live.source = null;
      this.#rollKey = null;
      this.live.roll.clear();
      this.transport.reset();
      this.viewEl.dataset.ready = "false";
      replaceChildren(this.viewEl, this.loadingView);
      this.store.open(id).catch((err) => {
        this.toasts.error(err);
        location.hash = "#/";
      });
    } else {
      document.title = "Tutti";
      this.store.close();
      this.transport.reset();
      replaceChildren(this.viewEl, this.list.element);
      this.list.update();
      if (this.conn.status === "open") this.run(this.store.refreshSessions());
    }
  }

  // --- session and section actions --------------------------------------------------------

  selectSection(id) {
    this.selectedSection = id;
    this.#schedule(["select", "session"]);
  }

  async addSection() {
    const n = (this.store.session?.sections.length ?? 0) + 1;
    const ack = await this.run(this.store.command("section.add", { name: `Section ${n}`, bars: 8 }));
    if (ack?.section) this.selectSection(ack.section);
  }

  moveSection(id, index) {
    return this.run(this.store.command("section.move", { section: id, index }));
  }

  resizeSection(id, bars) {
    return this.run(this.store.command("section.resize", { section: id, bars }));
  }

  undo() {
    return this.run(this.store.command("session.undo"));
  }

  redo() {
    return this.run(this.store.command("session.redo"));
  }

  chooseTake(takeId) {
    const sec = this.store.session?.sections.find((s) => s.takes.some((t) => t.id === takeId));
    if (!sec) return undefined;
    const next = sec.chosen_take === takeId ? null : takeId;
    return this.run(this.store.command("take.choose", { section: sec.id, take: next }));
  }

  takeCommand(type, takeId) {
    const sec = this.store.session?.sections.find((s) => s.takes.some((t) => t.id === takeId));
    if (!sec) return undefined;
    return this.run(this.store.command(type, { section: sec.id, take: takeId }));
  }

  cancelJob(jobId) {
    return this.run(this.conn.request({ type: "job.cancel", job: jobId }));
  }

  showJob(jobId) {
    this.live.showJob(jobId);
  }

  openTakeInRoll(take, label) {
    this.live.showTake(take, label);
  }

  async deleteSession(s) {
    if (this.#deleteArmed !== s.id) {
      this.#deleteArmed = s.id;
      this.toasts.info(`Press Delete again to delete “${s.title}”.`);
      setTimeout(() => this.#deleteArmed === s.id && (this.#deleteArmed = null), 4000);
      return;
    }
    this.#deleteArmed = null;
    await this.run(this.conn.request({ type: "session.delete", session: s.id }));
    await this.run(this.store.refreshSessions());
  }

  async uploadTake(sectionId, file) {
    const sid = this.store.sessionId;
    if (!sid || !sectionId) return;
    const q = new URLSearchParams({ session: sid, section: sectionId, filename: file.name || "dropped.mid" });
    let body;
    try {
      const res = await fetch(`/cas?${q}`, { method: "POST", headers: { "content-type": "audio/midi" }, body: file });
      body = await res.json().catch(() => ({ code: "network", message: `upload failed (${res.status})` }));
      if (!res.ok) throw body;
    } catch (err) {
      this.toasts.error(err.code ? err : { code: "network", message: String(err.message || err) });
      return;
    }
    const ack = await this.run(this.store.command("take.add", { section: sectionId, artifact: body.artifact, label: file.name || null }));
    if (ack) this.toasts.info(`Added ${file.name} as a take.`);
  }

  async renderSession() {
    const ack = await this.run(this.store.command("session.render", {}));
    if (ack?.artifact) {
      this.toolbar.showRender(ack.artifact);
      this.toasts.info("Arrangement rendered. Download it with the MIDI button.");
    }
  }

  // --- playback -----------------------------------------------------------------------------

  #tempoMap() {
    const s = this.store.session;
    const layout = s ? arrangementLayout(s) : [];
    const bpm = s?.tempo ?? 120;
    return (startBeat, seconds) => beatAtTime(layout, timeAtBeat(layout, startBeat, bpm) + seconds, bpm);
  }

  async arrangementNotes() {
    const s = this.store.session;
    const layout = arrangementLayout(s);
    const out = [];
    for (const item of layout) {
      const take = item.section.takes.find((t) => t.id === item.section.chosen_take);
      if (!take) continue;
      const midi = await this.store.midiOf(take.artifact_id);
      for (const n of midi.notes) {
        const beat = item.startBeat + n.beat;
        if (beat >= item.endBeat) break;
        const endBeat = Math.min(beat + n.beats, item.endBeat);
        const time = timeAtBeat(layout, beat, s.tempo);
        out.push({ ...n, beat, beats: endBeat - beat, time, duration: timeAtBeat(layout, endBeat, s.tempo) - time });
      }
    }
    return { layout, notes: out };
  }

  async togglePlay() {
    const t = this.transport;
    if (t.following) {
      this.toasts.info("The DAW holds the transport; the playhead follows it.");
      return;
    }
    if (t.playing) {
      t.stop();
      this.player.stop();
      return;
    }
    this.#stopAudition();
    const s = this.store.session;
    if (!s) return;
    let arranged;
    try {
      arranged = await this.arrangementNotes();
    } catch (err) {
      this.toasts.error(err);
      return;
    }
    const total = arranged.layout.at(-1)?.endBeat ?? 0;
    let from = t.beat();
    if (from >= total) from = 0;
    this.player.start(arranged.notes, { fromTime: timeAtBeat(arranged.layout, from, s.tempo) });
    t.setTempoMap(this.#tempoMap());
    t.play(from);
  }

  seek(beat) {
    if (this.transport.following) return;
    const wasPlaying = this.transport.playing;
    if (wasPlaying) {
      this.transport.stop();
      this.player.stop();
    }
    this.transport.seek(beat);
    if (wasPlaying) this.togglePlay();
  }

  async audition(take) {
    if (this.auditioning === take.id) {
      this.#stopAudition();
      return;
    }
    if (this.transport.playing && !this.transport.following) {
      this.transport.stop();
    }
    let midi;
    try {
      midi = await this.store.midiOf(take.artifact_id);
    } catch (err) {
      this.toasts.error(err);
      return;
    }
    this.auditioning = take.id;
    const elapsed = this.player.start(midi.notes, { onEnd: () => this.#stopAudition() });
    this.#audition = { take, bpm: midi.bpm, elapsed };
    this.#schedule(["audition"]);
  }

  #stopAudition() {
    if (!this.auditioning) return;
    this.player.stop();
    this.takes.setAuditionPlayhead(null, null);
    if (this.live.source?.kind === "take") this.live.roll.setPlayhead(null);
    this.auditioning = null;
    this.#audition = null;
    this.#schedule(["audition"]);
  }

  #tick() {
    const loop = () => {
      requestAnimationFrame(loop);
      const s = this.store.session;
      if (!s || this.viewEl.firstChild !== this.sessionView) return;
      const t = this.transport;
      const layout = this.timeline.layout;
      const total = layout.at(-1)?.endBeat ?? 0;
      let beat = t.beat();
      if (!t.following && t.playing && beat >= total) {
        t.stop();
        this.player.stop();
        t.seek(0);
        beat = 0;
      }
      this.timeline.setPlayhead(beat);
      this.toolbar.updateTransport(t, beat, timeAtBeat(layout, Math.max(beat, 0), s.tempo), this.presence.holderName());
      const a = this.#audition;
      if (a) {
        const b = (a.elapsed() * a.bpm) / 60;
        this.takes.setAuditionPlayhead(a.take.id, b);
        if (this.live.source?.kind === "take" && this.live.source.id === a.take.id) this.live.roll.setPlayhead(b);
      }
    };
    requestAnimationFrame(loop);
  }

  #onKey(e) {
    const tag = e.target?.tagName;
    const typing = tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA" || e.target?.isContentEditable;
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "z" && !typing && this.store.session) {
      e.preventDefault();
      if (e.shiftKey) this.redo();
      else this.undo();
      return;
    }
    if (typing || e.ctrlKey || e.metaKey || e.altKey || !this.store.session) return;
    if (e.key === " " || e.code === "Space") {
      if (tag === "BUTTON" || tag === "A") return; // Space activates the focused control
      e.preventDefault();
      this.togglePlay();
    } else if (e.key === "g" || e.key === "G") {
      e.preventDefault();
      this.actions.run();
    }
  }

  // --- checks exposed to tests and tools -------------------------------------------------------

  /** Render notes ({time, duration, pitch, velocity, program, drum}) offline; summarise the signal. */
  async renderNotesOffline(notes, { lead = 0.5, windowMs = 10 } = {}) {
    const buffer = await renderOffline(notes, { lead });
    const win = windowMs / 1000;
    const windows = [];
    for (let t = 0; t < buffer.duration; t += win) windows.push(rms(buffer, t, t + win));
    const at = (from, to) => rms(buffer, from, to);
    return {
      sampleRate: buffer.sampleRate,
      duration: buffer.duration,
      lead,
      windowMs,
      windows,
      onsets: notes.map((n) => lead + n.time),
      beforeFirst: at(0, lead + Math.min(...notes.map((n) => n.time)) - 0.002),
      atOnsets: notes.map((n) => at(lead + n.time, lead + n.time + 0.04)),
    };
  }

  async renderTakeOffline(artifactId, opts = {}) {
    const midi = await this.store.midiOf(artifactId);
    return this.renderNotesOffline(midi.notes, opts);
  }

  now() {
    return localNow();
  }
}
