"""A reward for matching the training tunes' rhythm and range statistics (batch moment matching).

RL with the theory rewards alone moved the tunes toward fewer, longer notes (every rule is a
penalty per note, so fewer notes score better) and kept the prior's shortage of rests and its
narrow range. This reward pulls the *batch mean* of a few per-melody statistics toward their
mean over real **training** folk tunes (never the held-out tunes the evaluation uses):

* notes and rests per bar;
* the share of notes that are sixteenths, eighths, dotted eighths, quarters, dotted quarters,
  and half notes or longer;
* pitch range (octaves), distinct pitches (/ 12) and distinct bar rhythms (/ 4) per 4-bar
  window, averaged over windows (real tunes repeat bar rhythms more than sampled ones).

Each statistic is standardised by its spread over training tunes. Melody ``i`` of a batch
gets ``-w * sum_k z(mean_k) * z(f_ik)`` where ``z(x) = (x - target_k) / spread_k``: the gradient
of ``-w/2 * sum_k z(mean_k)^2`` with respect to ``f_ik`` (times the batch size). It is zero when
the batch matches the targets on average, and it never asks every melody to be the average
melody (no pull toward one rhythm). Only folk-style melodies are scored (the targets are folk
tunes'); others get 0.
"""
from __future__ import annotations

import numpy as np

from runtime import music_vocab as V
from trainer.music_eval import _split_bars, windows

NAMES = ("notes per bar", "rests per bar", "sixteenths", "eighths", "dotted eighths",
         "quarters", "dotted quarters", "half or longer", "window range", "window pitches",
         "window bar rhythms")
_CLASSES = {1: 2, 2: 3, 3: 4, 4: 5, 6: 6, 8: 7, 12: 7, 16: 7}


def melody_stats(m: dict) -> np.ndarray:
    """The statistics of one melody (``NAMES``) from its notes; bar 0 starts at onset 0."""
    f = np.zeros(len(NAMES))
    notes = [d for p, d in m["notes"] if p is not None]
    bars = max(sum(d for _, d in m["notes"]) / V.METERS[m["meter"]], 1e-9)
    f[0] = len(notes) / bars
    f[1] = sum(p is None for p, _ in m["notes"]) / bars
    for d in notes:
        f[_CLASSES[d]] += 1.0 / max(len(notes), 1)
    wins = windows(m) or [list(m["notes"])]
    pitches = [[p for p, _ in w if p is not None] or [0] for w in wins]
    f[8] = np.mean([(max(w) - min(w)) / 12.0 for w in pitches])
    f[9] = np.mean([len(set(w)) / 12.0 for w in pitches])
    bar_len = V.METERS[m["meter"]]
    f[10] = np.mean([len({tuple(d for _, d in bar) for bar in _split_bars(w, bar_len)}) / 4.0
                     for w in wins])
    return f


def whole_bars(rec: dict) -> dict | None:
    """A training tune without its pick-up and without an incomplete last bar."""
    bar_len = V.METERS[rec["meter"]]
    notes, t, skip = [], 0, rec["pickup"]
    total = sum(d for _, d in rec["notes"])
    end = skip + (total - skip) // bar_len * bar_len
    for p, d in rec["notes"]:
        if skip <= t < end:
            notes.append((p, min(d, end - t)))
        t += d
    if end - skip < 4 * bar_len or not notes:
        return None
    return {"notes": notes, "meter": rec["meter"], "minor": rec["minor"]}


def targets(train_recs) -> dict:
    """{"mean", "spread"} of ``melody_stats`` over the training folk tunes (whole bars)."""
    rows = [melody_stats(m) for m in (whole_bars(r) for r in train_recs if r["style"] == "folk")
            if m is not None]
    if not rows:                               # a tiny corpus without folk tunes: no pull
        return {"mean": np.zeros(len(NAMES)), "spread": np.full(len(NAMES), np.inf)}
    rows = np.array(rows)
    return {"mean": rows.mean(0), "spread": np.maximum(rows.std(0), 1e-3)}


def stats_rewards(melodies, target: dict, weight: float) -> tuple[np.ndarray, np.ndarray]:
    """(reward per melody, batch-mean z-scores per statistic) for one batch (see above)."""
    out = np.zeros(len(melodies))
    folk = [i for i, m in enumerate(melodies) if m.get("style", "folk") == "folk"]
    if not folk or weight == 0:
        return out, np.zeros(len(NAMES))
    z = (np.array([melody_stats(melodies[i]) for i in folk]) - target["mean"]) / target["spread"]
    gap = z.mean(0)
    out[folk] = -weight * (z @ gap)
    return out, gap
