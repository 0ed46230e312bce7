// Audio playback: the arrangement in step with the transport, and one-shot auditions of
// takes. A look-ahead scheduler creates voices 250 ms ahead of the audio clock, so a
// long arrangement never builds thousands of nodes at once.

import { localNow } from "./clock.js";
import { createOutput, scheduleNote } from "./synth.js";

const LOOKAHEAD = 0.25;
const TICK_MS = 50;

export class Player {
  ctx = null;
  #out = null;
  #timer = 0;
  #job = null; // {notes (sorted by time), index, ctxStart, t0, voices}

  #ensure() {
    if (!this.ctx) {
      this.ctx = new AudioContext({ latencyHint: "interactive" });
      this.#out = createOutput(this.ctx);
    }
    if (this.ctx.state === "suspended") this.ctx.resume();
    return this.ctx;
  }

  get active() {
    return this.#job !== null;
  }

  /**
   * Play notes given in seconds ({time, duration}) starting at `fromTime`. `onEnd` runs
   * when the last note has sounded. Returns a function mapping local clock -> seconds played.
   */
  start(notes, { fromTime = 0, onEnd = null } = {}) {
    this.stop();
    const ctx = this.#ensure();
    const sorted = notes.filter((n) => n.time + n.duration > fromTime).sort((a, b) => a.time - b.time);
    const end = sorted.reduce((m, n) => Math.max(m, n.time + n.duration), fromTime);
    const ctxStart = ctx.currentTime + 0.06;
    const startedAt = localNow() + 0.06;
    this.#job = { notes: sorted, index: 0, ctxStart, t0: fromTime, end, onEnd, startedAt };
    this.#pump();
    this.#timer = setInterval(() => this.#pump(), TICK_MS);
    return () => fromTime + (localNow() - startedAt);
  }

  #pump() {
    const job = this.#job;
    if (!job) return;
    const ctx = this.ctx;
    const horizon = ctx.currentTime + LOOKAHEAD;
    while (job.index < job.notes.length) {
      const n = job.notes[job.index];
      const when = job.ctxStart + (n.time - job.t0);
      if (when > horizon) break;
      const skip = Math.max(0, job.ctxStart - when);
      if (n.duration - skip > 0.005) scheduleNote(this.#ctxTarget(), this.#out, n, Math.max(when, ctx.currentTime), n.duration - skip);
      job.index += 1;
    }
    if (job.index >= job.notes.length && ctx.currentTime > job.ctxStart + (job.end - job.t0) + 0.3) {
      const onEnd = job.onEnd;
      this.stop();
      onEnd?.();
    }
  }

  #ctxTarget() {
    return this.ctx;
  }

  stop() {
    clearInterval(this.#timer);
    if (this.#job && this.ctx) {
      // fade out whatever is still sounding by swapping the output chain
      const old = this.#out;
      const now = this.ctx.currentTime;
      old.gain.setTargetAtTime(0, now, 0.02);
      setTimeout(() => old.disconnect(), 300);
      this.#out = createOutput(this.ctx);
    }
    this.#job = null;
  }
}
