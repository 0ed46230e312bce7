"""Unigram and trigram event models: the baselines the transformer has to beat.

An event is (time since the previous onset, duration, note). Both models bottom out in the
same *base* distribution over the whole event space: the product of per-field add-one
distributions fitted on the training events, so an event never seen in training still gets
a finite, properly normalised probability (a uniform over ~1.65e11 events would be an
unfair 25.8 nats).

- ``AddKUnigram``: add-k over the events seen in training plus one "unseen" class whose
  mass is spread by the base distribution.
- ``KneserNeyTrigram``: interpolated Kneser-Ney (Chen & Goodman 1998) with one discount per
  order, D = n1 / (n1 + 2 n2) from the counts of counts; the unigram level interpolates
  with the base distribution. Contexts restart at each sequence start.

Everything is numpy over int64 keys (sorted arrays + ``searchsorted``), so fitting on the
~2.4 M training events takes seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engines.amt.evaluate.events import FIELD_SIZES, EventArrays

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


class FieldBase:
    """p(dt) p(dur) p(note), each add-one over its full range."""

    def __init__(self, events: EventArrays) -> None:
        self.logp: list[F64] = []
        for values, size in zip((events.dt, events.dur, events.note), FIELD_SIZES, strict=True):
            counts = np.bincount(values, minlength=size).astype(np.float64) + 1.0
            self.logp.append(np.log(counts / counts.sum()))

    def log_prob(self, events: EventArrays) -> F64:
        dt, dur, note = self.logp
        out: F64 = dt[events.dt] + dur[events.dur] + note[events.note]
        return out


def _lookup(keys: I64, values: npt.NDArray[np.float64] | I64, query: I64) -> F64:
    """``values[keys == query]`` per query, 0 where the key is absent (``keys`` sorted)."""
    if len(keys) == 0:
        return np.zeros(len(query))
    pos = np.clip(np.searchsorted(keys, query), 0, len(keys) - 1)
    hit = keys[pos] == query
    return np.where(hit, np.asarray(values, dtype=np.float64)[pos], 0.0)


class AddKUnigram:
    def __init__(self, events: EventArrays, k: float = 1.0) -> None:
        if k <= 0:
            raise ValueError(f"k must be > 0, got {k}")
        self.k = k
        self.base = FieldBase(events)
        self.keys, counts = np.unique(events.keys(), return_counts=True)
        self.counts = counts.astype(np.float64)
        denominator = len(events) + k * (len(self.keys) + 1)
        self.log_p_seen = np.log((self.counts + k) / denominator)
        # the unseen class shares k / denominator by the base distribution, renormalised over
        # the events not seen (their base mass is 1 minus that of the seen ones)
        seen_base = float(np.exp(self._base_of_keys(self.keys)).sum())
        self.log_unseen = math.log(k / denominator) - math.log(max(1e-300, 1.0 - seen_base))

    def _base_of_keys(self, keys: I64) -> F64:
        note = keys % FIELD_SIZES[2]
        rest = keys // FIELD_SIZES[2]
        dur, dt = rest % FIELD_SIZES[1], rest // FIELD_SIZES[1]
        return self.base.log_prob(EventArrays(dt, dur, note, np.zeros(len(keys), dtype=bool)))

    def log_prob(self, events: EventArrays) -> F64:
        keys = events.keys()
        pos = np.clip(np.searchsorted(self.keys, keys), 0, len(self.keys) - 1)
        seen = self.keys[pos] == keys
        out: F64 = np.where(seen, self.log_p_seen[pos], self.log_unseen + self.base.log_prob(events))
        return out


def _discount(counts: I64) -> float:
    n1 = int((counts == 1).sum())
    n2 = int((counts == 2).sum())
    return n1 / (n1 + 2 * n2) if n1 + n2 > 0 else 0.5


def _unique_counts(keys: I64) -> tuple[I64, I64]:
    unique, counts = np.unique(keys, return_counts=True)
    return unique, counts.astype(np.int64)


def _group_sums(group: I64, weights: I64) -> tuple[I64, F64, F64]:
    """Per distinct ``group`` value: (group keys, sum of weights, number of members)."""
    groups, inverse = np.unique(group, return_inverse=True)
    total = np.bincount(inverse, weights=weights.astype(np.float64)).astype(np.float64)
    members = np.bincount(inverse).astype(np.float64)
    return groups.astype(np.int64), total, members


@dataclass(frozen=True)
class _Level:
    """One order: n-gram keys with their (continuation) counts, and per context the total
    and the number of distinct followers."""

    keys: I64
    counts: I64
    ctx_keys: I64
    ctx_total: F64
    ctx_types: F64
    discount: float


class KneserNeyTrigram:
    def __init__(self, events: EventArrays) -> None:
        self.base = FieldBase(events)
        self.vocab, ids = np.unique(events.keys(), return_inverse=True)
        self.bos = len(self.vocab)  # context padding at sequence starts
        self.unseen = len(self.vocab) + 1  # never in a training key
        self.radix = len(self.vocab) + 2
        u, v, w = self._contexts(ids.astype(np.int64), events.start)
        r = self.radix
        tri_keys, tri_counts = _unique_counts((u * r + v) * r + w)
        self.tri = self._level(tri_keys, tri_counts, tri_keys // r)
        # continuation counts: distinct left neighbours of each (v, w) and of each w
        bi_keys, bi_counts = _unique_counts(tri_keys % (r * r))
        self.bi = self._level(bi_keys, bi_counts, bi_keys // r)
        uni_keys, uni_counts = _unique_counts(bi_keys % r)
        self.uni_keys = uni_keys
        self.uni_counts = uni_counts.astype(np.float64)
        self.uni_total = float(uni_counts.sum())
        self.uni_discount = _discount(uni_counts)

    def _contexts(self, ids: I64, start: npt.NDArray[np.bool_]) -> tuple[I64, I64, I64]:
        """(two back, one back, current) per event, BOS-padded at sequence starts."""
        n = len(ids)
        index = np.arange(n)
        first = np.maximum.accumulate(np.where(start, index, 0))  # this sequence's first event
        back1 = np.where(index - 1 >= first, np.roll(ids, 1), self.bos)
        back2 = np.where(index - 2 >= first, np.roll(ids, 2), self.bos)
        return back2, back1, ids

    def _level(self, keys: I64, counts: I64, contexts: I64) -> _Level:
        ctx_keys, total, types = _group_sums(contexts, counts)
        return _Level(keys, counts, ctx_keys, total, types, _discount(counts))

    def _interpolate(self, level: _Level, key: I64, context: I64, lower: F64) -> F64:
        total = _lookup(level.ctx_keys, level.ctx_total, context)
        types = _lookup(level.ctx_keys, level.ctx_types, context)
        count = _lookup(level.keys, level.counts, key)
        d = level.discount
        seen = total > 0
        safe = np.where(seen, total, 1.0)
        mixed = np.maximum(count - d, 0.0) / safe + d * types / safe * lower
        out: F64 = np.where(seen, mixed, lower)
        return out

    def log_prob(self, events: EventArrays) -> F64:
        keys = events.keys()
        pos = np.clip(np.searchsorted(self.vocab, keys), 0, len(self.vocab) - 1)
        ids = np.where(self.vocab[pos] == keys, pos, self.unseen).astype(np.int64)
        u, v, w = self._contexts(ids, events.start)
        r = self.radix
        base = np.exp(self.base.log_prob(events))
        count1 = _lookup(self.uni_keys, self.uni_counts, w)
        d1 = self.uni_discount
        p1 = (
            np.maximum(count1 - d1, 0.0) / self.uni_total
            + d1 * len(self.uni_keys) / self.uni_total * base
        )
        p2 = self._interpolate(self.bi, v * r + w, v, p1)
        p3 = self._interpolate(self.tri, (u * r + v) * r + w, u * r + v, p2)
        out: F64 = np.log(p3)
        return out


def nll_per_event(log_prob: F64) -> float:
    """Mean negative log-likelihood in nats."""
    return float(-np.mean(log_prob)) if len(log_prob) else float("nan")
