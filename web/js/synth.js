// WebAudio synthesis of MIDI notes: a few General-MIDI-like timbres and a drum kit.
//
// Works on an AudioContext (live playback) or an OfflineAudioContext (rendering for
// checks and previews). Each note is a short-lived graph of oscillators / noise,
// a filter and an envelope; nothing is sampled, nothing is downloaded.

const noiseBuffers = new WeakMap();

function noise(ctx) {
  let buf = noiseBuffers.get(ctx);
  if (!buf) {
    buf = ctx.createBuffer(1, ctx.sampleRate, ctx.sampleRate);
    const d = buf.getChannelData(0);
    let seed = 22222;
    for (let i = 0; i < d.length; i++) {
      seed = (seed * 16807) % 2147483647;
      d[i] = (seed / 2147483647) * 2 - 1;
    }
    noiseBuffers.set(ctx, buf);
  }
  return buf;
}

const hz = (pitch) => 440 * 2 ** ((pitch - 69) / 12);

/** Timbre of a GM program: oscillator type, filter, envelope. */
export function timbre(program) {
  const family = Math.floor(program / 8);
  switch (family) {
    case 0: return { name: "piano", wave: "triangle", partial: 0.35, cutoff: 4200, attack: 0.004, decay: 1.6, sustain: 0.0, release: 0.12 };
    case 1: return { name: "mallet", wave: "sine", partial: 0.5, cutoff: 6000, attack: 0.002, decay: 0.7, sustain: 0.0, release: 0.1 };
    case 2: return { name: "organ", wave: "sine", partial: 0.6, cutoff: 5000, attack: 0.01, decay: 0.1, sustain: 0.85, release: 0.06 };
    case 3: return { name: "guitar", wave: "sawtooth", partial: 0, cutoff: 2400, attack: 0.003, decay: 0.9, sustain: 0.0, release: 0.1 };
    case 4: return { name: "bass", wave: "sawtooth", partial: 0.4, cutoff: 700, attack: 0.005, decay: 0.5, sustain: 0.5, release: 0.08 };
    case 5: case 6: return { name: "strings", wave: "sawtooth", partial: 0, cutoff: 2600, attack: 0.07, decay: 0.3, sustain: 0.8, release: 0.25 };
    case 7: return { name: "brass", wave: "sawtooth", partial: 0, cutoff: 1800, attack: 0.03, decay: 0.2, sustain: 0.75, release: 0.12 };
    case 8: case 9: return { name: "reed", wave: "square", partial: 0, cutoff: 2200, attack: 0.02, decay: 0.2, sustain: 0.7, release: 0.1 };
    case 10: return { name: "lead", wave: "square", partial: 0, cutoff: 3500, attack: 0.005, decay: 0.2, sustain: 0.7, release: 0.08 };
    case 11: return { name: "pad", wave: "triangle", partial: 0.5, cutoff: 2000, attack: 0.25, decay: 0.5, sustain: 0.8, release: 0.5 };
    default: return { name: "synth", wave: "triangle", partial: 0.25, cutoff: 3000, attack: 0.01, decay: 0.4, sustain: 0.5, release: 0.1 };
  }
}

/** A master chain (gain + limiter) to schedule notes into. */
export function createOutput(ctx, destination = ctx.destination) {
  const gain = ctx.createGain();
  gain.gain.value = 0.35;
  const comp = ctx.createDynamicsCompressor();
  comp.threshold.value = -10;
  comp.ratio.value = 8;
  gain.connect(comp).connect(destination);
  return gain;
}

/** Schedule one note at context time `when` lasting `duration` seconds. Returns its end time. */
export function scheduleNote(ctx, out, note, when, duration) {
  const vel = Math.max(1, Math.min(127, note.velocity ?? 90)) / 127;
  if (note.drum) return drum(ctx, out, note.pitch, when, vel);
  const t = timbre(note.program ?? 0);
  const f = hz(note.pitch);
  const env = ctx.createGain();
  const filter = ctx.createBiquadFilter();
  filter.type = "lowpass";
  filter.frequency.value = Math.min(t.cutoff + f * 2, ctx.sampleRate / 2 - 100);
  filter.connect(env).connect(out);
  const osc = ctx.createOscillator();
  osc.type = t.wave;
  osc.frequency.value = f;
  osc.connect(filter);
  const oscs = [osc];
  if (t.partial > 0) {
    const o2 = ctx.createOscillator();
    o2.type = "sine";
    o2.frequency.value = f * 2;
    const g2 = ctx.createGain();
    g2.gain.value = t.partial;
    o2.connect(g2).connect(filter);
    oscs.push(o2);
  }
  const peak = 0.6 * vel;
  const hold = Math.max(duration, 0.02);
  const g = env.gain;
  g.setValueAtTime(0, when);
  g.linearRampToValueAtTime(peak, when + t.attack);
  const sustainLevel = Math.max(peak * t.sustain, 0.0001);
  g.setTargetAtTime(sustainLevel, when + t.attack, t.decay / 3);
  const off = when + Math.max(hold, t.attack);
  g.setTargetAtTime(0, off, t.release / 3);
  const end = off + t.release * 2;
  for (const o of oscs) {
    o.start(when);
    o.stop(end);
  }
  return end;
}

function drum(ctx, out, pitch, when, vel) {
  const env = ctx.createGain();
  env.connect(out);
  const g = env.gain;
  if (pitch === 35 || pitch === 36) {
    const osc = ctx.createOscillator();
    osc.frequency.setValueAtTime(150, when);
    osc.frequency.exponentialRampToValueAtTime(45, when + 0.12);
    osc.connect(env);
    g.setValueAtTime(vel * 1.2, when);
    g.exponentialRampToValueAtTime(0.001, when + 0.35);
    osc.start(when);
    osc.stop(when + 0.4);
    return when + 0.4;
  }
  if ([41, 43, 45, 47, 48, 50].includes(pitch)) {
    const osc = ctx.createOscillator();
    const base = 80 + (pitch - 41) * 12;
    osc.frequency.setValueAtTime(base * 1.6, when);
    osc.frequency.exponentialRampToValueAtTime(base, when + 0.1);
    osc.connect(env);
    g.setValueAtTime(vel * 0.9, when);
    g.exponentialRampToValueAtTime(0.001, when + 0.3);
    osc.start(when);
    osc.stop(when + 0.35);
    return when + 0.35;
  }
  // noise-based: snare, hats, cymbals, everything else
  let type = "bandpass";
  let freq = 1800;
  let decay = 0.18;
  let level = 0.9;
  if (pitch === 42 || pitch === 44) [type, freq, decay, level] = ["highpass", 7000, 0.05, 0.5];
  else if (pitch === 46) [type, freq, decay, level] = ["highpass", 7000, 0.3, 0.5];
  else if ([49, 51, 52, 55, 57, 59].includes(pitch)) [type, freq, decay, level] = ["highpass", 5000, 0.9, 0.45];
  else if (pitch !== 38 && pitch !== 40 && pitch !== 37 && pitch !== 39) [type, freq, decay, level] = ["bandpass", 3000, 0.08, 0.6];
  const src = ctx.createBufferSource();
  src.buffer = noise(ctx);
  const filter = ctx.createBiquadFilter();
  filter.type = type;
  filter.frequency.value = freq;
  src.connect(filter).connect(env);
  g.setValueAtTime(vel * level, when);
  g.exponentialRampToValueAtTime(0.001, when + decay);
  src.start(when, Math.random() * 0.5);
  src.stop(when + decay + 0.02);
  if (pitch === 38 || pitch === 40) {
    const body = ctx.createOscillator();
    body.type = "triangle";
    body.frequency.value = 185;
    const bg = ctx.createGain();
    bg.gain.setValueAtTime(vel * 0.5, when);
    bg.gain.exponentialRampToValueAtTime(0.001, when + 0.1);
    body.connect(bg).connect(out);
    body.start(when);
    body.stop(when + 0.12);
  }
  return when + decay + 0.02;
}

/**
 * Render notes (times in seconds, `time`/`duration`) offline. `lead` seconds of
 * silence come first. Resolves with the AudioBuffer.
 */
export async function renderOffline(notes, { lead = 0.5, tail = 1.0, sampleRate = 22050 } = {}) {
  const last = notes.reduce((m, n) => Math.max(m, n.time + n.duration), 0);
  const length = Math.ceil((lead + last + tail) * sampleRate);
  const ctx = new OfflineAudioContext(1, Math.max(length, 1), sampleRate);
  const out = createOutput(ctx);
  for (const n of notes) scheduleNote(ctx, out, n, lead + n.time, n.duration);
  return ctx.startRendering();
}

/** RMS of a mono buffer over [from, to) seconds. */
export function rms(buffer, from, to) {
  const d = buffer.getChannelData(0);
  const a = Math.max(0, Math.floor(from * buffer.sampleRate));
  const b = Math.min(d.length, Math.ceil(to * buffer.sampleRate));
  let sum = 0;
  for (let i = a; i < b; i++) sum += d[i] * d[i];
  return b > a ? Math.sqrt(sum / (b - a)) : 0;
}
