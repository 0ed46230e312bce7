// A Standard MIDI File reader: notes with their times in beats and seconds.
//
// Notes come out as {beat, beats, time, duration, pitch, velocity, program, drum,
// channel}; `program` is the General MIDI program of the channel when the note began,
// `drum` is true on channel 10. Times in seconds follow the file's tempo map.

export class MidiError extends Error {}

export function parseMidi(buffer) {
  const data = new Uint8Array(buffer);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let pos = 0;
  const str4 = () => String.fromCharCode(...data.subarray(pos, pos + 4));
  if (data.length < 14 || str4() !== "MThd") throw new MidiError("not a Standard MIDI File (no MThd header)");
  const headerLen = view.getUint32(4);
  const ntracks = view.getUint16(10);
  const division = view.getUint16(12);
  if (division & 0x8000) throw new MidiError("SMPTE time division is not supported");
  const ppq = division || 480;
  pos = 8 + headerLen;

  const tempos = [{ tick: 0, usPerBeat: 500000 }];
  const timeSigs = [];
  const raw = []; // {tick, endTick, pitch, velocity, channel, program}
  for (let t = 0; t < ntracks && pos + 8 <= data.length; t++) {
    if (str4() !== "MTrk") throw new MidiError(`track ${t} has no MTrk header`);
    const len = view.getUint32(pos + 4);
    const end = Math.min(pos + 8 + len, data.length);
    pos += 8;
    readTrack(data, view, pos, end, { tempos, timeSigs, raw });
    pos = end;
  }
  tempos.sort((a, b) => a.tick - b.tick);
  const toSeconds = tempoMap(tempos, ppq);
  const notes = raw
    .map((n) => {
      const time = toSeconds(n.tick);
      return {
        beat: n.tick / ppq,
        beats: Math.max(n.endTick - n.tick, 1) / ppq,
        time,
        duration: Math.max(toSeconds(n.endTick) - time, 0.001),
        pitch: n.pitch,
        velocity: n.velocity,
        program: n.program,
        drum: n.channel === 9,
        channel: n.channel,
      };
    })
    .sort((a, b) => a.beat - b.beat || a.pitch - b.pitch);
  const bpm = 60_000_000 / tempos[0].usPerBeat;
  return { ppq, bpm, tempos, timeSigs, notes };
}

function readTrack(data, view, pos, end, out) {
  let tick = 0;
  let status = 0;
  const programs = new Array(16).fill(0);
  const open = new Map(); // channel*128+pitch -> stack of raw notes
  const vlq = () => {
    let v = 0;
    for (let i = 0; i < 4 && pos < end; i++) {
      const b = data[pos++];
      v = (v << 7) | (b & 0x7f);
      if (!(b & 0x80)) break;
    }
    return v;
  };
  const close = (channel, pitch) => {
    const stack = open.get(channel * 128 + pitch);
    const note = stack?.shift();
    if (note) note.endTick = tick;
  };
  while (pos < end) {
    tick += vlq();
    let b = data[pos];
    if (b & 0x80) {
      pos++;
      if (b < 0xf0) status = b;
    } else {
      b = status; // running status
      if (!b) throw new MidiError("data byte without a status byte");
    }
    if (b === 0xff) {
      const type = data[pos++];
      const len = vlq();
      if (type === 0x51 && len === 3) {
        out.tempos.push({ tick, usPerBeat: (data[pos] << 16) | (data[pos + 1] << 8) | data[pos + 2] });
      } else if (type === 0x58 && len >= 2) {
        out.timeSigs.push({ tick, numerator: data[pos], denominator: 2 ** data[pos + 1] });
      }
      pos += len;
      if (type === 0x2f) break;
      continue;
    }
    if (b === 0xf0 || b === 0xf7) {
      pos += vlq();
      continue;
    }
    const kind = b & 0xf0;
    const channel = b & 0x0f;
    const a1 = data[pos++];
    const a2 = kind === 0xc0 || kind === 0xd0 ? 0 : data[pos++];
    if (kind === 0x90 && a2 > 0) {
      const note = { tick, endTick: tick, pitch: a1, velocity: a2, channel, program: programs[channel] };
      out.raw.push(note);
      const key = channel * 128 + a1;
      if (!open.has(key)) open.set(key, []);
      open.get(key).push(note);
    } else if (kind === 0x80 || kind === 0x90) {
      close(channel, a1);
    } else if (kind === 0xc0) {
      programs[channel] = a1;
    }
  }
  for (const stack of open.values()) for (const n of stack) n.endTick = Math.max(n.endTick, tick, n.tick + 1);
}

function tempoMap(tempos, ppq) {
  // cumulative seconds at each tempo change
  const points = [];
  let seconds = 0;
  let prev = { tick: 0, usPerBeat: tempos[0]?.usPerBeat ?? 500000 };
  for (const t of tempos) {
    seconds += ((t.tick - prev.tick) / ppq) * (prev.usPerBeat / 1e6);
    points.push({ tick: t.tick, seconds, usPerBeat: t.usPerBeat });
    prev = t;
  }
  return (tick) => {
    let lo = 0;
    let hi = points.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (points[mid].tick <= tick) lo = mid;
      else hi = mid - 1;
    }
    const p = points[lo];
    return p.seconds + ((tick - p.tick) / ppq) * (p.usPerBeat / 1e6);
  };
}

/** Notes from a job.notes chunk (parallel arrays) in the same shape as parsed files. */
export function notesFromChunk(chunk) {
  const out = [];
  const n = chunk.pitch.length;
  for (let i = 0; i < n; i++) {
    const program = chunk.instrument[i];
    out.push({
      beat: chunk.onset_beats[i],
      beats: chunk.duration_beats[i],
      time: chunk.onset[i],
      duration: chunk.duration[i],
      pitch: chunk.pitch[i],
      velocity: chunk.velocity[i],
      program: program === 128 ? 0 : program,
      drum: program === 128,
      variation: chunk.variation[i],
    });
  }
  return out;
}
