// Clock offset to the hub's monotonic clock, from clock.ping / clock.pong samples.
//
// offset = server_time - (t0 + t1) / 2, so hub_time = local_time + offset. A burst of
// samples; the median offset of the lower-RTT half is used (slow round trips are the
// asymmetric ones). Re-measured every 30 s and after every reconnect.

export const localNow = () => performance.now() / 1000;

export class ClockSync {
  offset = 0;
  rtt = Infinity;
  samples = [];
  #timer = 0;
  #burst = 0;

  constructor(send) {
    this.send = send; // (frame) => void
  }

  /** A rough first guess from welcome.server_time (error: one-way latency). */
  roughGuess(serverTime, arrivedAt) {
    this.offset = serverTime - arrivedAt;
    this.samples = [];
  }

  start() {
    this.stop();
    this.#runBurst();
    this.#timer = setInterval(() => this.#runBurst(), 30_000);
  }

  stop() {
    clearInterval(this.#timer);
    clearInterval(this.#burst);
  }

  #runBurst(count = 12, gapMs = 20) {
    clearInterval(this.#burst);
    this.samples = [];
    let sent = 0;
    this.#burst = setInterval(() => {
      if (sent++ >= count) return clearInterval(this.#burst);
      this.send({ type: "clock.ping", t0: localNow() });
    }, gapMs);
  }

  onPong(frame, t1 = localNow()) {
    const rtt = t1 - frame.t0;
    if (!(rtt >= 0)) return;
    this.samples.push({ offset: frame.server_time - (frame.t0 + t1) / 2, rtt });
    const best = [...this.samples].sort((a, b) => a.rtt - b.rtt);
    const half = best.slice(0, Math.max(1, Math.ceil(best.length / 2)));
    const offsets = half.map((s) => s.offset).sort((a, b) => a - b);
    this.offset = offsets[Math.floor(offsets.length / 2)];
    this.rtt = half[0].rtt;
  }

  hubNow() {
    return localNow() + this.offset;
  }
}
