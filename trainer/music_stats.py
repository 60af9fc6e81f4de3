"""A reward for matching the training tunes' rhythm and range statistics (batch moment matching).

RL with the theory rewards alone moved the tunes toward fewer, longer notes (every rule is a
penalty per note, so fewer notes score better) and kept the prior's shortage of rests and its
narrow range. This reward pulls the *batch mean* of a few per-melody statistics toward their
mean over real **training** folk tunes (never the held-out tunes the evaluation uses):

* notes and rests per bar;
* the share of notes that are sixteenths, eighths, dotted eighths, quarters, dotted quarters,
  and half notes or longer;
* pitch range (octaves), distinct pitches (/ 12) and distinct bar rhythms (/ 4) per 4-bar
  window, averaged over windows (real tunes repeat bar rhythms more than sampled ones);
* events that cross a bar line (per bar), phrase ends (bars 4, 8, ...) closed by a rest or by
  a note of at least a quarter, the tonic's share of the notes, and rests per bar in the
  second half (the prior plays a third as many there as the openings of real tunes);
* the mean pitch ((MIDI - 70) / 12) and the share of pitch class B (RL drifted to a higher
  mean pitch and fewer B's than real tunes where nothing pulled them back);
* the final note's length (/ 16): real tunes end on a long note, the prior mostly on a
  quarter or an eighth.

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
from trainer.music_eval import FEATURE_NAMES, _split_bars, window_features, windows

NAMES = ("notes per bar", "rests per bar", "sixteenths", "eighths", "dotted eighths",
         "quarters", "dotted quarters", "half or longer", "window range", "window pitches",
         "window bar rhythms", "bar-line crossings per bar", "phrase-end rests",
         "phrase-end long notes", "tonic share", "rests per bar, second half", "mean pitch",
         "pitch class B", "final note")
Z_CLIP = 5.0        # one melody's z-score per statistic is clipped (rare events: tiny spread)
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
    last, t, half = {}, 0, bars * bar_len / 2
    for p, d in m["notes"]:
        f[11] += (t % bar_len + d > bar_len) / bars
        f[15] += (p is None and t >= half) / (bars / 2)
        last[t // bar_len] = (p, d)
        t += d
    ends = [last[b] for b in range(3, int(round(bars)), 4) if b in last]
    if ends:
        f[12] = np.mean([p is None for p, _ in ends])
        f[13] = np.mean([p is not None and d >= 4 for p, d in ends])
    pitches = [p for p, _ in m["notes"] if p is not None]
    f[14] = np.mean([p % 12 == (9 if m["minor"] else 0) for p in pitches]) if pitches else 0.0
    f[16] = (np.mean(pitches) - 70) / 12 if pitches else 0.0
    f[17] = np.mean([p % 12 == 11 for p in pitches]) if pitches else 0.0
    f[18] = m["notes"][-1][1] / 16.0 if m["notes"] else 0.0
    return f


def window_stats(m: dict) -> np.ndarray:
    """The mean of the two-sample test's window features over a melody's 4-bar windows
    (feature matching: the features' means pulled toward the training tunes')."""
    wins = windows(m) or [list(m["notes"])]
    return np.mean([window_features(w, m["meter"]) for w in wins], axis=0)


def position_stats(m: dict) -> np.ndarray:
    """The two-sample test's window features of a melody's first and of its last 4-bar window,
    side by side (feature matching by position: the opening toward real openings, the closing
    toward real closings; a 4-bar melody's one window is both)."""
    wins = windows(m) or [list(m["notes"])]
    return np.concatenate([window_features(wins[0], m["meter"]),
                           window_features(wins[-1], m["meter"])])


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


def opening(rec: dict, bars: int) -> dict | None:
    """A tune's first ``bars`` full bars (pick-up dropped), None if shorter or starting with a
    rest: how a generated melody of ``bars`` bars is compared with real tunes."""
    from trainer.music_report import excerpt

    return excerpt(rec, bars)


def frame(rec: dict, bars: int) -> dict | None:
    """A tune's opening and closing, ``bars`` bars in all (``trainer.music_report.framed``):
    cut exactly as the evaluation cuts the held-out tunes a generated melody is judged
    against."""
    from trainer.music_report import framed

    return framed(rec, bars)


def targets(train_recs, bars: int | None = None, stats=melody_stats, cut=opening) -> dict:
    """{"mean", "spread", "stats"} of ``stats`` (``melody_stats``, ``window_stats`` or
    ``position_stats``) over the training folk tunes: whole tunes (whole bars) when ``bars``
    is None, else ``cut(tune, bars)`` (``opening`` or ``frame``)."""
    folk = [r for r in train_recs if r["style"] == "folk"]
    tunes = (whole_bars(r) if bars is None else cut(r, bars) for r in folk)
    rows = [stats(m) for m in tunes if m is not None]
    if not rows:                               # a tiny corpus without folk tunes: no pull
        n = len(stats({"notes": [(60, 4)], "meter": "4/4", "minor": False}))
        return {"mean": np.zeros(n), "spread": np.full(n, np.inf), "stats": stats}
    rows = np.array(rows)
    return {"mean": rows.mean(0), "spread": np.maximum(rows.std(0), 1e-3), "stats": stats}


def opening_targets(train_recs, bars_choices=(4, 8, 16), stats=melody_stats,
                    cut=opening) -> dict:
    """{bars: targets(train_recs, bars)}: each melody is compared with real tunes cut to its
    length (``cut``: their openings, or with ``frame`` their openings and closings)."""
    return {b: targets(train_recs, b, stats, cut) for b in sorted(set(bars_choices))}


def _target_of(m: dict, target: dict) -> dict:
    if "mean" in target:
        return target
    bars = sum(d for _, d in m["notes"]) / V.METERS[m["meter"]]
    return target[min(target, key=lambda b: abs(b - bars))]


def emphasis(names, pairs) -> np.ndarray:
    """Per-statistic weights (1 unless named): ``pairs`` of (name, factor), e.g. ("final
    note", 3.0); an unknown name is a ValueError."""
    names, scale = list(names), np.ones(len(names))
    for name, factor in pairs:
        if name not in names:
            raise ValueError(f"no statistic named {name!r}")
        scale[names.index(name)] = float(factor)
    return scale


POSITION_NAMES = ([f"opening: {n}" for n in FEATURE_NAMES]
                  + [f"closing: {n}" for n in FEATURE_NAMES])


def stats_rewards(melodies, target: dict, weight: float, tracker=None,
                  scale=None) -> tuple[np.ndarray, np.ndarray]:
    """(reward per melody, batch-mean z-scores per statistic) for one batch (see above);
    ``target`` from ``targets`` or ``opening_targets`` (then by each melody's length);
    ``tracker`` (``GapTracker``) smooths the batch means over updates; ``scale`` (``emphasis``)
    weights the statistics: the gradient of ``-w/2 * sum_k scale_k * z(mean_k)^2``."""
    out = np.zeros(len(melodies))
    folk = [i for i, m in enumerate(melodies) if m.get("style", "folk") == "folk"]
    first = _target_of(melodies[0], target) if melodies else target
    if not folk or weight == 0:
        return out, np.zeros(len(first.get("mean", NAMES)))
    tg = [_target_of(melodies[i], target) for i in folk]
    z = np.clip([(t.get("stats", melody_stats)(melodies[i]) - t["mean"]) / t["spread"]
                 for i, t in zip(folk, tg)], -Z_CLIP, Z_CLIP)
    gap = z.mean(0)
    if tracker is not None:                    # a running mean of the batch means: less noise
        gap = tracker.update(gap)
    out[folk] = -weight * (z @ (gap if scale is None else gap * scale))
    return out, gap


class GapTracker:
    """An exponential moving average of the batch-mean z-scores over updates: one batch of 48
    melodies estimates each mean only to ~0.15 spreads, as large as the gaps being pulled."""

    def __init__(self, decay: float):
        self.decay, self.value = decay, None

    def update(self, gap: np.ndarray) -> np.ndarray:
        self.value = gap if self.value is None else self.decay * self.value \
            + (1 - self.decay) * gap
        return self.value
