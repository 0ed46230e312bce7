// The section timeline: blocks sized by bars, select, drag to reorder, drag the edge
// to resize, drop a MIDI file to add a take, click the lane to move the playhead. The
// chosen take of each section is drawn inside its block.

import { h, replaceChildren } from "../dom.js";
import { arrangementLayout, beatsPerBar } from "../session-model.js";

const DRAG_TYPE = "application/x-tutti-section";

export class Timeline {
  #blocks = new Map(); // section id -> {el, canvas, drawnFor}
  #layout = [];
  #totalBeats = 1;

  constructor({ store, app }) {
    this.store = store;
    this.app = app;
    this.lane = h("div", { class: "lane" });
    this.ruler = h("div", { class: "ruler", title: "Click to move the playhead", onclick: (e) => this.#seek(e) });
    this.playhead = h("div", { class: "playhead", "aria-hidden": "true" });
    this.addBtn = h("button", { type: "button", class: "btn add-section", onclick: () => app.addSection() }, "+ Add section");
    this.empty = h("p", { class: "empty" }, "No sections yet. Add one to start.");
    this.element = h(
      "section",
      { class: "timeline", "aria-label": "Arrangement timeline" },
      h("div", { class: "lane-wrap" }, this.ruler, this.lane, this.playhead),
      h("div", { class: "timeline-foot" }, this.addBtn, h("small", { class: "hint" }, "Drag a section to reorder, drag its right edge to resize, drop a MIDI file on it to add a take.")),
    );
  }

  update() {
    const s = this.store.session;
    if (!s) return;
    this.#layout = arrangementLayout(s);
    this.#totalBeats = Math.max(1, this.#layout.at(-1)?.endBeat ?? 1);
    const seen = new Set();
    const ordered = [];
    for (const item of this.#layout) {
      const sec = item.section;
      seen.add(sec.id);
      let block = this.#blocks.get(sec.id);
      if (!block) {
        block = this.#makeBlock(sec.id);
        this.#blocks.set(sec.id, block);
      }
      this.#fill(block, sec, item);
      ordered.push(block.el);
    }
    for (const [id, block] of this.#blocks) if (!seen.has(id)) this.#blocks.delete(id) && block.el.remove();
    const perBar = beatsPerBar(s.meter);
    replaceChildren(
      this.ruler,
      this.#layout.map((item) =>
        h("span", { class: "tick", style: { left: `${((item.startBeat / this.#totalBeats) * 100).toFixed(3)}%` } }, String(Math.round(item.startBeat / perBar) + 1)),
      ),
    );
    // Touch the lane only when its blocks changed: re-inserting a block between the
    // mousedown and mouseup of a click would lose the click.
    const want = ordered.length ? ordered : [this.empty];
    const have = [...this.lane.children];
    if (have.length !== want.length || have.some((el, i) => el !== want[i])) replaceChildren(this.lane, want);
  }

  get layout() {
    return this.#layout;
  }

  setPlayhead(beat) {
    const x = Math.max(0, Math.min(1, beat / this.#totalBeats));
    this.playhead.style.left = `${(x * 100).toFixed(3)}%`;
  }

  #makeBlock(id) {
    const name = h("span", { class: "block-name" });
    const bars = h("span", { class: "block-bars" });
    const select = h("button", { type: "button", class: "block-select", onclick: (e) => {
      e.stopPropagation();
      this.app.selectSection(id);
    } }, name, bars);
    const canvas = h("canvas", { class: "block-notes", "aria-hidden": "true" });
    const handle = h("div", { class: "resize-handle", role: "slider", tabindex: 0, "aria-orientation": "horizontal", "aria-valuemin": 1, "aria-valuemax": 1024 });
    const el = h("div", { class: "block", draggable: "true", dataset: { section: id } }, canvas, select, handle);
    const block = { el, select, nameEl: name, barsEl: bars, canvas, handle, drawnFor: null, id };
    this.#bindDrag(block);
    this.#bindResize(block);
    return block;
  }

  #fill(block, sec, item) {
    const selected = this.app.selectedSection === sec.id;
    block.el.style.flexGrow = String(sec.bars);
    block.el.classList.toggle("selected", selected);
    block.el.classList.toggle("locked", Boolean(sec.locked));
    block.el.classList.toggle("has-take", Boolean(sec.chosen_take));
    const takeIndex = sec.takes.findIndex((t) => t.id === sec.chosen_take);
    const label = `${sec.name}, ${sec.bars} bars${takeIndex >= 0 ? `, take ${takeIndex + 1} chosen` : ""}`;
    block.select.setAttribute("aria-label", `Section ${label}`);
    block.select.setAttribute("aria-pressed", String(selected));
    // text set in place (new nodes under the pointer mid-click would lose the click)
    setText(block.nameEl, sec.name);
    setText(block.barsEl, `${sec.bars} bars${takeIndex >= 0 ? ` · take ${takeIndex + 1}` : ""}`);
    block.handle.setAttribute("aria-label", `Length of ${sec.name} in bars`);
    block.handle.setAttribute("aria-valuenow", String(sec.bars));
    block.sectionBeats = item.endBeat - item.startBeat;
    block.bars = sec.bars;
    const key = `${sec.chosen_take}|${sec.bars}|${beatsPerBar(this.store.session.meter)}|${this.lane.clientWidth}|${this.store.session.sections.length}`;
    if (block.drawnFor !== key) {
      block.drawnFor = key;
      this.#drawTake(block, sec);
    }
  }

  async #drawTake(block, sec) {
    const ctx = block.canvas.getContext("2d");
    const take = sec.takes.find((t) => t.id === sec.chosen_take);
    const dpr = window.devicePixelRatio || 1;
    const w = (block.canvas.width = Math.max(40, Math.round(block.canvas.clientWidth * dpr) || 240));
    const hgt = (block.canvas.height = Math.max(16, Math.round(block.canvas.clientHeight * dpr) || 30));
    ctx.clearRect(0, 0, w, hgt);
    if (!take) return;
    let midi;
    try {
      midi = await this.store.midiOf(take.artifact_id);
    } catch {
      return;
    }
    const notes = midi.notes;
    if (!notes.length) return;
    let lo = 127;
    let hi = 0;
    for (const n of notes) {
      lo = Math.min(lo, n.pitch);
      hi = Math.max(hi, n.pitch);
    }
    const span = Math.max(hi - lo + 1, 12);
    ctx.fillStyle = "rgba(255, 214, 102, 0.75)";
    for (const n of notes) {
      if (n.beat >= block.sectionBeats) break;
      const x = (n.beat / block.sectionBeats) * w;
      const y = hgt - ((n.pitch - lo + 1) / span) * hgt;
      ctx.fillRect(x, y, Math.max((n.beats / block.sectionBeats) * w - 1, 1.5), Math.max(hgt / span, 2 * dpr));
    }
  }

  #bindDrag(block) {
    const el = block.el;
    el.addEventListener("dragstart", (e) => {
      if (e.target === block.handle) return e.preventDefault();
      e.dataTransfer.setData(DRAG_TYPE, block.id);
      e.dataTransfer.effectAllowed = "move";
      el.classList.add("dragging");
    });
    el.addEventListener("dragend", () => el.classList.remove("dragging"));
    el.addEventListener("dragover", (e) => {
      const types = [...e.dataTransfer.types];
      if (!types.includes(DRAG_TYPE) && !types.includes("Files")) return;
      e.preventDefault();
      const after = e.offsetX > el.clientWidth / 2;
      el.classList.toggle("drop-before", types.includes(DRAG_TYPE) && !after);
      el.classList.toggle("drop-after", types.includes(DRAG_TYPE) && after);
      el.classList.toggle("drop-file", types.includes("Files"));
    });
    el.addEventListener("dragleave", () => el.classList.remove("drop-before", "drop-after", "drop-file"));
    el.addEventListener("drop", (e) => {
      e.preventDefault();
      el.classList.remove("drop-before", "drop-after", "drop-file");
      const files = [...(e.dataTransfer.files || [])];
      if (files.length) {
        for (const f of files) this.app.uploadTake(block.id, f);
        return;
      }
      const moving = e.dataTransfer.getData(DRAG_TYPE);
      if (!moving || moving === block.id) return;
      const ids = this.store.session.sections.map((s) => s.id);
      const from = ids.indexOf(moving);
      const target = ids.indexOf(block.id);
      const after = e.offsetX > el.clientWidth / 2;
      let index = after ? target + 1 : target;
      if (from < index) index -= 1;
      if (index !== from) this.app.moveSection(moving, index);
    });
  }

  #bindResize(block) {
    const handle = block.handle;
    let startX = 0;
    let startBars = 0;
    let pxPerBar = 1;
    let bars = 0;
    handle.addEventListener("pointerdown", (e) => {
      e.preventDefault();
      e.stopPropagation();
      startX = e.clientX;
      startBars = bars = block.bars;
      const totalBars = this.store.session.sections.reduce((n, s) => n + s.bars, 0);
      pxPerBar = Math.max(this.lane.clientWidth / Math.max(totalBars, 1), 4);
      handle.setPointerCapture(e.pointerId);
      handle.classList.add("active");
    });
    handle.addEventListener("pointermove", (e) => {
      if (!handle.classList.contains("active")) return;
      bars = Math.max(1, Math.min(1024, Math.round(startBars + (e.clientX - startX) / pxPerBar)));
      block.el.style.flexGrow = String(bars);
      handle.setAttribute("aria-valuenow", String(bars));
    });
    handle.addEventListener("pointerup", () => {
      handle.classList.remove("active");
      if (bars !== startBars) this.app.resizeSection(block.id, bars);
    });
    handle.addEventListener("click", (e) => e.stopPropagation());
    handle.addEventListener("keydown", (e) => {
      const delta = { ArrowRight: 1, ArrowUp: 1, ArrowLeft: -1, ArrowDown: -1 }[e.key];
      if (!delta) return;
      e.preventDefault();
      e.stopPropagation();
      const next = Math.max(1, Math.min(1024, block.bars + delta));
      if (next !== block.bars) this.app.resizeSection(block.id, next);
    });
  }

  #seek(e) {
    const rect = this.ruler.getBoundingClientRect();
    const x = (e.clientX - rect.left) / Math.max(rect.width, 1);
    this.app.seek(x * this.#totalBeats);
  }
}

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}
