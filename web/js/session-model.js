// The session state as the hub's reducer computes it (hub/state.py), mirrored for the
// browser: `applySessionEvent` returns a new session for one durable session event.

export function beatsPerBar(meter) {
  return (meter.numerator * 4) / meter.denominator;
}

const clamp = (i, n) => Math.max(0, Math.min(i, n));
const findIndex = (items, id) => items.findIndex((x) => x.id === id);

/** The session after `ev`, or `null` when the event deletes it. Unknown ids leave it alone. */
export function applySessionEvent(s, ev) {
  switch (ev.type) {
    case "session.deleted":
      return null;
    case "session.renamed":
      return { ...s, title: ev.title };
    case "session.tempo_set":
      return { ...s, tempo: ev.bpm };
    case "session.meter_set":
      return { ...s, meter: ev.meter };
    case "session.key_set":
      return { ...s, key: ev.key };
    case "section.added": {
      if (findIndex(s.sections, ev.section.id) >= 0) return s;
      const sections = [...s.sections];
      sections.splice(clamp(ev.index, sections.length), 0, ev.section);
      return { ...s, sections };
    }
    case "section.removed":
    case "section.moved": {
      const id = ev.type === "section.removed" ? ev.section.id : ev.section;
      const i = findIndex(s.sections, id);
      if (i < 0) return s;
      const rest = s.sections.filter((_, k) => k !== i);
      if (ev.type === "section.removed") return { ...s, sections: rest };
      rest.splice(clamp(ev.index, rest.length), 0, s.sections[i]);
      return { ...s, sections: rest };
    }
    default:
      return applySectionEvent(s, ev);
  }
}

function applySectionEvent(s, ev) {
  const i = typeof ev.section === "string" ? findIndex(s.sections, ev.section) : -1;
  if (i < 0) return s;
  const sec = s.sections[i];
  const next = sectionAfter(sec, ev);
  if (next === sec) return s;
  const sections = [...s.sections];
  sections[i] = next;
  return { ...s, sections };
}

function sectionAfter(sec, ev) {
  const takes = sec.takes;
  switch (ev.type) {
    case "section.renamed":
      return { ...sec, name: ev.name };
    case "section.resized":
      return { ...sec, bars: ev.bars };
    case "section.props_set":
      return { ...sec, tempo: ev.tempo, key: ev.key };
    case "section.locked":
      return { ...sec, locked: ev.locked };
    case "take.added": {
      if (findIndex(takes, ev.take.id) >= 0) return sec;
      const list = [...takes];
      list.splice(ev.index === null || ev.index === undefined ? list.length : clamp(ev.index, list.length), 0, ev.take);
      return { ...sec, takes: list, chosen_take: ev.chosen ? ev.take.id : sec.chosen_take };
    }
    case "take.removed": {
      if (findIndex(takes, ev.take.id) < 0) return sec;
      return {
        ...sec,
        takes: takes.filter((t) => t.id !== ev.take.id),
        chosen_take: sec.chosen_take === ev.take.id ? null : sec.chosen_take,
      };
    }
    case "take.status_set": {
      const k = findIndex(takes, ev.take);
      if (k < 0) return sec;
      const list = [...takes];
      list[k] = { ...takes[k], status: ev.status };
      return { ...sec, takes: list };
    }
    case "take.chosen":
      if (ev.take !== null && findIndex(takes, ev.take) < 0) return sec;
      return { ...sec, chosen_take: ev.take };
    default:
      return sec;
  }
}

export const SESSION_EVENT = /^(session|section|take)\./;

/** Where each section starts and ends, in quarter-note beats and seconds (section tempo overrides). */
export function arrangementLayout(session) {
  const perBar = beatsPerBar(session.meter);
  let beat = 0;
  let time = 0;
  return session.sections.map((sec) => {
    const bpm = sec.tempo || session.tempo;
    const beats = sec.bars * perBar;
    const item = { section: sec, startBeat: beat, endBeat: beat + beats, startTime: time, bpm };
    beat += beats;
    time += (beats * 60) / bpm;
    item.endTime = time;
    return item;
  });
}

/** Seconds at a beat of the arrangement (piecewise by section tempo). */
export function timeAtBeat(layout, beat, fallbackBpm) {
  for (const item of layout) {
    if (beat < item.endBeat) return item.startTime + ((beat - item.startBeat) * 60) / item.bpm;
  }
  const last = layout[layout.length - 1];
  if (!last) return (beat * 60) / fallbackBpm;
  return last.endTime + ((beat - last.endBeat) * 60) / last.bpm;
}

export function beatAtTime(layout, time, fallbackBpm) {
  for (const item of layout) {
    if (time < item.endTime) return item.startBeat + ((time - item.startTime) * item.bpm) / 60;
  }
  const last = layout[layout.length - 1];
  if (!last) return (time * fallbackBpm) / 60;
  return last.endBeat + ((time - last.endTime) * last.bpm) / 60;
}
