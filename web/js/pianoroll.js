// A canvas piano roll: draws only the notes in view, so 20,000 notes scroll smoothly.
//
// Notes are kept sorted by onset (beats); a frame binary-searches the first note that can
// reach the view (onset >= viewStart - longest note) and stops at the first note past its
// end. Rectangles are batched per colour. The canvas carries data-note-count (notes held)
// and data-drawn-count (notes drawn in the last frame) for tests and tools.

const KEY_BLACK = new Set([1, 3, 6, 8, 10]);

function colourOf(note) {
  if (note.drum) return "#9aa3b5";
  const family = Math.floor((note.program ?? 0) / 8);
  const hue = (200 + family * 37 + (note.variation ?? 0) * 55) % 360;
  return `hsl(${hue} 70% 62%)`;
}

export class PianoRoll {
  notes = [];
  maxBeats = 0;
  viewStart = 0; // beats
  viewBeats = 16;
  follow = true; // widen the view as streamed notes arrive, until the user scrolls
  beatsPerBar = 4;
  playhead = null;
  lastDrawMs = 0;
  #dirty = false;
  #unsorted = false;
  #raf = 0;
  #pitchLo = 48;
  #pitchHi = 72;

  constructor(canvas, { beatsPerBar = 4, label = "Piano roll", interactive = true } = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d", { alpha: false });
    this.beatsPerBar = beatsPerBar;
    this.label = label;
    canvas.dataset.noteCount = "0";
    canvas.dataset.drawnCount = "0";
    canvas.setAttribute("role", "img");
    this.#updateLabel();
    this.resizeObserver = new ResizeObserver(() => this.invalidate());
    this.resizeObserver.observe(canvas);
    if (interactive) this.#bindInput();
  }

  destroy() {
    this.resizeObserver.disconnect();
    cancelAnimationFrame(this.#raf);
  }

  #bindInput() {
    const c = this.canvas;
    c.tabIndex = 0;
    c.addEventListener(
      "wheel",
      (e) => {
        e.preventDefault();
        if (e.ctrlKey || e.metaKey) {
          this.zoom(e.deltaY > 0 ? 1.2 : 1 / 1.2);
        } else {
          const d = Math.abs(e.deltaX) > Math.abs(e.deltaY) ? e.deltaX : e.deltaY;
          this.scrollBy((d / Math.max(c.clientWidth, 1)) * this.viewBeats);
        }
      },
      { passive: false },
    );
    c.addEventListener("keydown", (e) => {
      const step = this.viewBeats / 8;
      if (e.key === "ArrowRight") this.scrollBy(step);
      else if (e.key === "ArrowLeft") this.scrollBy(-step);
      else if (e.key === "+" || e.key === "=") this.zoom(1 / 1.25);
      else if (e.key === "-") this.zoom(1.25);
      else return;
      e.preventDefault();
      e.stopPropagation();
    });
    let dragX = null;
    c.addEventListener("pointerdown", (e) => {
      dragX = e.clientX;
      c.setPointerCapture(e.pointerId);
    });
    c.addEventListener("pointermove", (e) => {
      if (dragX === null) return;
      const dx = e.clientX - dragX;
      dragX = e.clientX;
      this.scrollBy((-dx / Math.max(c.clientWidth, 1)) * this.viewBeats);
    });
    c.addEventListener("pointerup", () => (dragX = null));
  }

  #updateLabel() {
    this.canvas.setAttribute("aria-label", `${this.label}: ${this.notes.length} notes`);
  }

  get totalBeats() {
    let end = 0;
    // notes are sorted by onset; the end is near the tail
    for (let i = this.notes.length - 1, seen = 0; i >= 0 && seen < 64; i--, seen++) {
      end = Math.max(end, this.notes[i].beat + this.notes[i].beats);
    }
    return end;
  }

  setNotes(notes, { fit = true } = {}) {
    this.notes = [...notes].sort((a, b) => a.beat - b.beat);
    this.maxBeats = this.notes.reduce((m, n) => Math.max(m, n.beats), 0);
    this.#unsorted = false;
    this.#fitPitch();
    if (fit) this.fit();
    this.canvas.dataset.noteCount = String(this.notes.length);
    this.#updateLabel();
    this.invalidate();
  }

  addNotes(notes) {
    if (!notes.length) return;
    const last = this.notes.length ? this.notes[this.notes.length - 1].beat : -Infinity;
    for (const n of notes) {
      if (n.beat < last) this.#unsorted = true;
      this.notes.push(n);
      if (n.beats > this.maxBeats) this.maxBeats = n.beats;
      if (n.pitch < this.#pitchLo + 2 || n.pitch > this.#pitchHi - 2) this.#fitPitchFor(n.pitch);
    }
    if (this.follow) this.fit(Math.max(this.totalBeats, this.beatsPerBar * 4));
    this.canvas.dataset.noteCount = String(this.notes.length);
    this.#updateLabel();
    this.invalidate();
  }

  clear() {
    this.setNotes([]);
    this.follow = true;
  }

  #fitPitch() {
    if (!this.notes.length) {
      this.#pitchLo = 48;
      this.#pitchHi = 72;
      return;
    }
    let lo = 127;
    let hi = 0;
    for (const n of this.notes) {
      if (n.pitch < lo) lo = n.pitch;
      if (n.pitch > hi) hi = n.pitch;
    }
    this.#setPitchRange(lo, hi);
  }

  #fitPitchFor(p) {
    this.#setPitchRange(Math.min(this.#pitchLo + 2, p), Math.max(this.#pitchHi - 2, p));
  }

  #setPitchRange(lo, hi) {
    const span = Math.max(hi - lo, 20);
    const mid = (lo + hi) / 2;
    this.#pitchLo = Math.max(0, Math.floor(mid - span / 2) - 2);
    this.#pitchHi = Math.min(127, Math.ceil(mid + span / 2) + 2);
  }

  fit(beats = this.totalBeats) {
    const bars = Math.max(1, Math.ceil(beats / this.beatsPerBar));
    this.viewStart = 0;
    this.viewBeats = bars * this.beatsPerBar;
    this.invalidate();
  }

  scrollTo(beat) {
    const maxStart = Math.max(0, this.totalBeats - this.viewBeats * 0.5);
    this.viewStart = Math.max(0, Math.min(beat, maxStart));
    this.follow = false;
    this.invalidate();
  }

  scrollBy(beats) {
    this.scrollTo(this.viewStart + beats);
  }

  zoom(factor) {
    const centre = this.viewStart + this.viewBeats / 2;
    this.viewBeats = Math.max(1, Math.min(this.viewBeats * factor, 4096));
    this.follow = false;
    this.scrollTo(centre - this.viewBeats / 2);
  }

  setBeatsPerBar(bpb) {
    if (bpb !== this.beatsPerBar) {
      this.beatsPerBar = bpb;
      this.invalidate();
    }
  }

  setPlayhead(beat) {
    if (beat === this.playhead) return;
    this.playhead = beat;
    this.invalidate();
  }

  invalidate() {
    if (this.#dirty) return;
    this.#dirty = true;
    this.#raf = requestAnimationFrame(() => this.draw());
  }

  /** Draw now (called on animation frames; public for benchmarks). */
  draw() {
    this.#dirty = false;
    const t0 = performance.now();
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(c.clientWidth * dpr));
    const hgt = Math.max(1, Math.round(c.clientHeight * dpr));
    if (c.width !== w || c.height !== hgt) {
      c.width = w;
      c.height = hgt;
    }
    if (this.#unsorted) {
      this.notes.sort((a, b) => a.beat - b.beat);
      this.#unsorted = false;
    }
    const ctx = this.ctx;
    const lo = this.#pitchLo;
    const hi = this.#pitchHi;
    const rows = hi - lo + 1;
    const rowH = hgt / rows;
    const pxPerBeat = w / this.viewBeats;
    const start = this.viewStart;
    const end = start + this.viewBeats;

    ctx.fillStyle = "#141821";
    ctx.fillRect(0, 0, w, hgt);
    ctx.fillStyle = "#1a1f2b";
    for (let p = lo; p <= hi; p++) {
      if (KEY_BLACK.has(p % 12)) ctx.fillRect(0, (hi - p) * rowH, w, rowH);
    }
    // beat and bar lines
    const firstBeat = Math.floor(start);
    const beatStep = pxPerBeat < 6 ? this.beatsPerBar : 1;
    for (let b = firstBeat - (firstBeat % beatStep); b <= end; b += beatStep) {
      const x = Math.round((b - start) * pxPerBeat) + 0.5;
      const isBar = Math.abs(b / this.beatsPerBar - Math.round(b / this.beatsPerBar)) < 1e-6;
      ctx.fillStyle = isBar ? "#313a4d" : "#212736";
      ctx.fillRect(x, 0, isBar ? Math.max(1, dpr) : 1, hgt);
    }

    // visible notes, batched by colour
    const notes = this.notes;
    let i = lowerBound(notes, start - this.maxBeats);
    const batches = new Map();
    const rowEnd = new Float64Array(128).fill(-Infinity); // px already covered per pitch row
    let drawn = 0;
    for (; i < notes.length; i++) {
      const n = notes[i];
      if (n.beat > end) break;
      if (n.beat + n.beats < start || n.pitch < lo || n.pitch > hi) continue;
      // zoomed far out, many notes fall inside pixels already painted on their row: skip them
      const x1 = (n.beat - start) * pxPerBeat + Math.max(n.beats * pxPerBeat - 1, 1.5);
      if (x1 <= rowEnd[n.pitch] + 0.5) continue;
      rowEnd[n.pitch] = x1;
      const colour = colourOf(n);
      let list = batches.get(colour);
      if (!list) batches.set(colour, (list = []));
      list.push(n);
    }
    const gap = rowH > 4 ? 1 : 0;
    for (const [colour, list] of batches) {
      ctx.fillStyle = colour;
      for (const n of list) {
        const x = (n.beat - start) * pxPerBeat;
        const width = Math.max(n.beats * pxPerBeat - 1, 1.5);
        ctx.globalAlpha = 0.55 + 0.45 * ((n.velocity ?? 100) / 127);
        ctx.fillRect(x, (hi - n.pitch) * rowH + gap, width, Math.max(rowH - gap * 2, 1));
      }
      drawn += list.length;
    }
    ctx.globalAlpha = 1;
    if (this.playhead !== null && this.playhead >= start && this.playhead <= end) {
      ctx.fillStyle = "#ffcc4d";
      ctx.fillRect(Math.round((this.playhead - start) * pxPerBeat), 0, Math.max(2, dpr * 1.5), hgt);
    }
    c.dataset.drawnCount = String(drawn);
    this.lastDrawMs = performance.now() - t0;
  }
}

function lowerBound(notes, beat) {
  let lo = 0;
  let hi = notes.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (notes[mid].beat < beat) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
