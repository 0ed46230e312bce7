// Where the playhead is. Follows the hub's transport timeline when another client (the
// DAW plugin) holds transport: beat = beat_origin + (hub_now - time_origin) * bpm / 60,
// with hub_now = local clock + offset from clock.ping/pong. Runs on its own otherwise.

import { localNow } from "./clock.js";
import { Emitter } from "./emitter.js";

export class Transport extends Emitter {
  timeline = null; // latest transport.state
  myClientId = null;
  local = { playing: false, beat: 0, startBeat: 0, startAt: 0 };
  #beatAtElapsed = (startBeat, seconds) => startBeat + (seconds * 120) / 60;

  constructor(clock) {
    super();
    this.clock = clock;
  }

  /** How beats advance with seconds when running locally (follows section tempi). */
  setTempoMap(fn) {
    const beat = this.beat();
    this.#beatAtElapsed = fn;
    if (this.local.playing) Object.assign(this.local, { startBeat: beat, startAt: localNow() });
  }

  get holder() {
    return this.timeline?.holder ?? null;
  }

  get following() {
    return Boolean(this.holder && this.holder !== this.myClientId);
  }

  get playing() {
    return this.following ? Boolean(this.timeline.playing) : this.local.playing;
  }

  onState(state) {
    if (this.timeline && state.session === this.timeline.session && state.seq < this.timeline.seq) return;
    const wasFollowing = this.following;
    this.timeline = state;
    if (this.following && this.local.playing) this.local.playing = false;
    this.emit("change", { following: this.following, wasFollowing });
  }

  reset() {
    this.timeline = null;
    this.local = { playing: false, beat: 0, startBeat: 0, startAt: 0 };
    this.emit("change", { following: false });
  }

  /** The current beat (quarter notes from the start of the arrangement). */
  beat(now = localNow()) {
    if (this.following) {
      const tl = this.timeline;
      if (!tl.playing) return tl.beat_origin;
      return tl.beat_origin + ((now + this.clock.offset - tl.time_origin) * tl.bpm) / 60;
    }
    const l = this.local;
    return l.playing ? this.#beatAtElapsed(l.startBeat, now - l.startAt) : l.beat;
  }

  play(fromBeat = this.local.beat) {
    if (this.following) return false;
    this.local = { playing: true, beat: fromBeat, startBeat: fromBeat, startAt: localNow() };
    this.emit("change", { following: false });
    return true;
  }

  stop() {
    if (this.following) return false;
    this.local = { ...this.local, playing: false, beat: this.beat() };
    this.emit("change", { following: false });
    return true;
  }

  seek(beat) {
    if (this.following) return false;
    const playing = this.local.playing;
    this.local = { playing, beat, startBeat: beat, startAt: localNow() };
    this.emit("change", { following: false, seek: true });
    return true;
  }
}
