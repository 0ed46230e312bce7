"""Events of packed training sequences, as the baselines and the statistics see them.

A packed sequence is a flag token and 341 triples. Event triples are (absolute time,
duration, note); anticipated controls are context, not events; a separator triple ends a
piece and is itself an event to predict (the language model predicts it too), after which
times restart at 0. The n-gram models see an event as (time since the previous onset,
duration, note): given the history that is the same information as the absolute time the
transformer predicts, so their NLL per event is directly comparable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engines.amt import vocab as V

I64 = npt.NDArray[np.int64]

# Field values of the separator event: one past each field's range, so it can never collide
# with a real (dt, duration, note) and the per-field base distributions cover it.
SEP_DT = V.MAX_TIME
SEP_DUR = V.MAX_DUR
SEP_NOTE = V.MAX_NOTE + 1  # MAX_NOTE itself is REST
FIELD_SIZES = (V.MAX_TIME + 1, V.MAX_DUR + 1, V.MAX_NOTE + 2)


@dataclass(frozen=True)
class EventArrays:
    """Events of many sequences, flattened: ``start[i]`` is True at each sequence's first
    event (the n-gram context restarts there, as the transformer's window does)."""

    dt: I64
    dur: I64
    note: I64
    start: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return int(self.dt.shape[0])

    def keys(self) -> I64:
        """One int64 per event: (dt, dur, note) mixed-radix, unique per event."""
        return (self.dt * FIELD_SIZES[1] + self.dur) * FIELD_SIZES[2] + self.note


def sequence_events(sequences: npt.NDArray[np.integer]) -> EventArrays:
    """The events of each packed sequence (rows of ``sequences``), controls dropped."""
    dts: list[I64] = []
    durs: list[I64] = []
    notes: list[I64] = []
    starts: list[npt.NDArray[np.bool_]] = []
    for row in np.asarray(sequences, dtype=np.int64):
        body = row[1 : 1 + 3 * ((len(row) - 1) // 3)].reshape(-1, 3)
        time, dur, note = body[:, 0], body[:, 1], body[:, 2]
        sep = note == V.SEPARATOR
        event = sep | (note < V.CONTROL_OFFSET)
        time, dur, note, sep = time[event], dur[event], note[event], sep[event]
        onset = np.where(sep, 0, time - V.TIME_OFFSET)
        # previous onset, restarting at 0 at the sequence start and after each separator
        prev = np.concatenate(([0], onset[:-1]))
        prev[np.concatenate(([False], sep[:-1]))] = 0
        dt = np.clip(onset - prev, 0, V.MAX_TIME - 1)
        dts.append(np.where(sep, SEP_DT, dt))
        durs.append(np.where(sep, SEP_DUR, dur - V.DUR_OFFSET))
        notes.append(np.where(sep, SEP_NOTE, note - V.NOTE_OFFSET))
        first = np.zeros(len(dt), dtype=np.bool_)
        first[:1] = True
        starts.append(first)
    return EventArrays(
        np.concatenate(dts), np.concatenate(durs), np.concatenate(notes), np.concatenate(starts)
    )


@dataclass(frozen=True)
class Notes:
    """The sounding notes of one piece (REST and drums excluded), onset-sorted."""

    onset: I64  # ticks of 10 ms
    duration: I64
    pitch: I64
    instrument: I64

    def __len__(self) -> int:
        return int(self.onset.shape[0])


def notes_of(events: list[int] | I64) -> Notes:
    """Notes of an event token list (time, duration, note triples; controls ignored)."""
    body = np.asarray(events, dtype=np.int64)
    body = body[: 3 * (len(body) // 3)].reshape(-1, 3)
    time, dur, note = body[:, 0], body[:, 1], body[:, 2]
    keep = (note >= V.NOTE_OFFSET) & (note < V.REST)
    time, dur, note = time[keep], dur[keep], note[keep] - V.NOTE_OFFSET
    instrument = note // V.MAX_PITCH
    pitched = instrument != V.DRUMS
    order = np.argsort(time[pitched], kind="stable")
    return Notes(
        (time[pitched] - V.TIME_OFFSET)[order],
        (dur[pitched] - V.DUR_OFFSET)[order],
        (note[pitched] % V.MAX_PITCH)[order],
        instrument[pitched][order],
    )


def pieces_of(sequences: npt.NDArray[np.integer], min_notes: int = 20) -> list[Notes]:
    """Each stretch between separators of each sequence, as notes (short stretches dropped)."""
    out: list[Notes] = []
    for row in np.asarray(sequences, dtype=np.int64):
        body = row[1 : 1 + 3 * ((len(row) - 1) // 3)].reshape(-1, 3)
        cuts = np.flatnonzero(body[:, 2] == V.SEPARATOR)
        for part in np.split(body, cuts):
            part = part[part[:, 2] != V.SEPARATOR]
            notes = notes_of(part.reshape(-1))
            if len(notes) >= min_notes:
                out.append(notes)
    return out
