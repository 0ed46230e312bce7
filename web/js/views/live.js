// Live generation: one row per job (progress bar, state, cancel) and the big piano roll
// that draws notes as job.notes chunks arrive, or a take's notes when one is opened.

import { h, replaceChildren, fmt } from "../dom.js";
import { PianoRoll } from "../pianoroll.js";
import { beatsPerBar } from "../session-model.js";

const FINAL = new Set(["completed", "failed", "cancelled"]);
const STATE_TEXT = { queued: "Waiting", running: "Generating", completed: "Done", failed: "Failed", cancelled: "Cancelled" };

export class LiveView {
  source = null; // {kind: "job" | "take" | "empty", id, label}
  #rows = new Map();

  constructor({ store, app }) {
    this.store = store;
    this.app = app;
    this.canvas = h("canvas", { id: "roll", class: "roll" });
    this.roll = new PianoRoll(this.canvas, { label: "Piano roll" });
    this.caption = h("p", { class: "roll-caption", "aria-live": "polite" }, "Run a task to watch notes arrive.");
    this.list = h("ul", { class: "jobs", "aria-label": "Jobs" });
    this.element = h(
      "section",
      { class: "live", "aria-label": "Live piano roll and jobs" },
      h("div", { class: "roll-head" }, h("h3", {}, "Piano roll"), this.caption,
        h("div", { class: "roll-zoom" },
          h("button", { type: "button", class: "icon-btn", "aria-label": "Zoom out piano roll", onclick: () => this.roll.zoom(1.5) }, "−"),
          h("button", { type: "button", class: "icon-btn", "aria-label": "Zoom in piano roll", onclick: () => this.roll.zoom(1 / 1.5) }, "+"),
          h("button", { type: "button", class: "icon-btn", "aria-label": "Fit piano roll", onclick: () => this.roll.fit() }, "⤢"),
        )),
      this.canvas,
      this.list,
    );
    store.on("notes", (job, notes) => {
      if (this.source?.kind === "job" && this.source.id === job.id) this.roll.addNotes(notes);
      else if (!this.source || (this.source.kind === "job" && FINAL.has(this.store.jobs.get(this.source.id)?.state))) this.showJob(job.id);
    });
  }

  /** True while the roll follows a job that is still queued or running. */
  get followingLiveJob() {
    if (this.source?.kind !== "job") return false;
    const job = this.store.jobs.get(this.source.id);
    return Boolean(job) && !FINAL.has(job.state);
  }

  /** An empty roll with a caption saying why (a section without takes). */
  showEmpty(key, text) {
    this.source = { kind: "empty", id: key };
    this.roll.clear();
    this.caption.textContent = text;
  }

  /** A new caption for the take on the roll (it was chosen, or its number changed). */
  relabel(label) {
    if (this.source?.kind !== "take") return;
    this.source = { ...this.source, label };
    this.#caption();
  }

  showJob(jobId) {
    const job = this.store.jobs.get(jobId);
    this.source = { kind: "job", id: jobId };
    this.roll.clear();
    if (job) this.roll.addNotes(job.notes);
    this.#caption();
  }

  async showTake(take, label) {
    this.source = { kind: "take", id: take.id, label };
    this.caption.textContent = `Loading ${label}…`;
    try {
      const midi = await this.store.midiOf(take.artifact_id);
      if (this.source?.id !== take.id) return;
      this.roll.follow = false;
      this.roll.setNotes(midi.notes);
      this.#caption();
    } catch (err) {
      this.app.toasts.error(err);
    }
  }

  #caption() {
    const src = this.source;
    if (!src) return;
    if (src.kind === "take") {
      this.caption.textContent = `${src.label}: ${this.roll.notes.length} notes`;
      return;
    }
    const job = this.store.jobs.get(src.id);
    if (!job) return;
    const gap = job.gap ? " (some chunks missed)" : "";
    this.caption.textContent = `${job.task} · ${job.engine}: ${job.notes.length} notes, ${STATE_TEXT[job.state] || job.state}${gap}`;
  }

  update() {
    const s = this.store.session;
    if (s) this.roll.setBeatsPerBar(beatsPerBar(s.meter));
    const jobs = [...this.store.jobs.values()].sort((a, b) => b.createdAt - a.createdAt).slice(0, 12);
    const seen = new Set();
    for (const job of jobs) {
      seen.add(job.id);
      let row = this.#rows.get(job.id);
      if (!row) {
        row = this.#makeRow(job);
        this.#rows.set(job.id, row);
      }
      this.#fillRow(row, job);
    }
    for (const [id, row] of this.#rows) if (!seen.has(id)) this.#rows.delete(id) && row.el.remove();
    replaceChildren(this.list, jobs.map((j) => this.#rows.get(j.id).el));
    this.#caption();
  }

  #makeRow(job) {
    const progress = h("progress", { max: 100, value: 0 });
    const state = h("span", { class: "job-state" });
    const cancel = h("button", { type: "button", class: "btn btn-ghost small", onclick: () => this.app.cancelJob(job.id) }, "Cancel");
    const show = h("button", { type: "button", class: "btn btn-ghost small", onclick: () => this.showJob(job.id) }, "Show");
    const title = h("span", { class: "job-title" });
    const el = h("li", { class: "job", dataset: { job: job.id } }, title, progress, state, show, cancel);
    return { el, progress, state, cancel, show, title };
  }

  #fillRow(row, job) {
    const sec = this.store.session?.sections.find((x) => x.id === job.section);
    const name = `${job.task || "job"}${sec ? ` · ${sec.name}` : ""}`;
    row.title.textContent = name;
    row.progress.value = job.state === "completed" ? 100 : job.percent || 0;
    row.progress.setAttribute("aria-label", `Progress of ${name}`);
    row.el.dataset.state = job.state;
    const eta = job.state === "running" && job.eta ? `, ${fmt.num(job.eta, 0)} s left` : "";
    row.state.textContent = job.state === "failed" ? `Failed: ${job.error?.message || job.error?.code}` : `${STATE_TEXT[job.state] || job.state} ${Math.round(row.progress.value)}%${eta}`;
    row.cancel.hidden = FINAL.has(job.state);
    row.cancel.setAttribute("aria-label", `Cancel ${name}`);
    row.show.setAttribute("aria-label", `Show notes of ${name} in the piano roll`);
  }
}
