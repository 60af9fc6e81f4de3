"""Measures of a set of melodies against held-out real tunes (none of them is the reward).

A melody here is a dict ``{"notes": [(MIDI or None, sixteenths)], "meter", "minor"}`` in C
major / A minor. ``set_metrics`` gives, per set:

* ``interval_tv``, ``duration_tv``: total variation distance of the interval histogram
  (successive notes, rests skipped, clipped to +-12 semitones) and of the duration histogram
  (notes and rests) to the reference set's;
* ``two_durations_pct``: melodies using at least 2 distinct note durations;
* ``unique_rhythm_pct``: melodies whose rhythm (durations, rests marked) no other has;
* ``unique_window_rhythm_pct``: 4-bar windows whose rhythm no other window has;
* ``near_copy_pct``: melodies with a near copy in the same set (same metre and length, at most
  25% of the sixteenth-note grid sounding a different pitch);
* ``distinct_4gram_pct``: distinct pitch 4-grams / all pitch 4-grams;
* ``interval_pair_tv``, ``bar_rhythm_tv`` (with ``reference_patterns``): total variation
  distance of the distribution of successive interval pairs and of whole-bar rhythms
  (``pattern_counts``) to the reference's: shapes no reward term reads;
* ``in_key_pct``, ``end_tonic_pct``, ``cadence_pct`` (inner phrase ends held at least a
  quarter or followed by a rest), ``notes_per_4_bars``, ``steps_pct``, ``repeats_pct``,
  ``leaps_pct`` (a fourth or more), ``trill_pct`` (x-y-x-y among 4-note runs).

``pooled_auc`` trains a classifier (random forest on hand-made window features) to tell a
set's 4-bar windows from the reference's and reports its ROC AUC by 5-fold cross-validation
grouped by melody (0.5: indistinguishable). ``position_aucs`` does this per window position
(a melody's opening window against the reference's openings, its closing against closings;
the reference is cut like the melodies, ``trainer.music_report.framed``) and
``two_sample_auc``, the headline, is their mean.
"""
from __future__ import annotations

import numpy as np

from runtime import music_vocab as V
from trainer.music_rewards import MAJOR, MINOR, bars_of

IV_CLIP = 12


def _pitches(m):
    return [p for p, _ in m["notes"] if p is not None]


def _hist(values, bins) -> np.ndarray:
    h = np.array([values.count(b) for b in bins], np.float64)
    return h / max(h.sum(), 1.0)


def interval_hist(mels) -> np.ndarray:
    ivs = []
    for m in mels:
        p = _pitches(m)
        ivs += [int(np.clip(b - a, -IV_CLIP, IV_CLIP)) for a, b in zip(p, p[1:])]
    return _hist(ivs, range(-IV_CLIP, IV_CLIP + 1))


def duration_hist(mels) -> np.ndarray:
    return _hist([d for m in mels for _, d in m["notes"]], V.DURATIONS)


def tv(p: np.ndarray, q: np.ndarray) -> float:
    return 0.5 * float(np.abs(p - q).sum())


def grid(m, length: int) -> np.ndarray:
    """Sounding pitch on the sixteenth grid (-1 = rest), ``length`` steps."""
    g = np.full(length, -1, np.int16)
    t = 0
    for p, d in m["notes"]:
        g[t:t + d] = -1 if p is None else p
        t += d
    return g


def near_copy_flags(mels, frac: float = 0.25) -> np.ndarray:
    flags = np.zeros(len(mels), bool)
    groups: dict = {}
    for i, m in enumerate(mels):
        groups.setdefault((m["meter"], sum(d for _, d in m["notes"])), []).append(i)
    for (_, length), idx in groups.items():
        if len(idx) < 2:
            continue
        g = np.stack([grid(mels[i], length) for i in idx])
        for a in range(len(idx)):
            diff = (g != g[a]).sum(axis=1)
            diff[a] = length + 1
            flags[idx[a]] = diff.min() <= frac * length
    return flags


def windows(m, bars: int = 4) -> list[list[tuple]]:
    """Non-overlapping windows of ``bars`` whole bars, as events [(pitch, duration)]."""
    bar_len = V.METERS[m["meter"]]
    by_bar = bars_of(m["notes"], bar_len)
    out = []
    for b0 in range(0, len(by_bar) - bars + 1, bars):
        ev = []
        for b in range(b0, b0 + bars):
            for pos, p, d in by_bar[b]:
                end = (b0 + bars) * bar_len - (b * bar_len + pos)
                ev.append((p, min(d, end)))
        if ev:
            out.append(ev)
    return out


def _rhythm(events) -> tuple:
    return tuple((d, p is None) for p, d in events)


def _unique_pct(keys) -> float:
    from collections import Counter

    c = Counter(keys)
    return 100.0 * sum(c[k] == 1 for k in keys) / max(len(keys), 1)


def pattern_counts(mels) -> dict:
    """Counts of successive interval pairs (clipped to +-7) and of whole-bar rhythms (per
    metre, rests marked): distributions no reward term reads (``set_metrics``)."""
    from collections import Counter

    pairs, bars = Counter(), Counter()
    for m in mels:
        p = _pitches(m)
        iv = [int(np.clip(b - a, -7, 7)) for a, b in zip(p, p[1:])]
        pairs.update(zip(iv, iv[1:]))
        bars.update((m["meter"], _rhythm(bar)) for bar in _split_bars(m["notes"],
                                                                      V.METERS[m["meter"]]))
    return {"interval_pairs": pairs, "bar_rhythms": bars}


def counts_tv(a, b) -> float:
    sa, sb = max(sum(a.values()), 1), max(sum(b.values()), 1)
    return 0.5 * sum(abs(a.get(k, 0) / sa - b.get(k, 0) / sb) for k in set(a) | set(b))


def set_metrics(mels, reference_interval=None, reference_duration=None,
                reference_patterns=None) -> dict:
    iv_h, du_h = interval_hist(mels), duration_hist(mels)
    notes = in_key = ends = cad = cad_n = 0
    grams, wins = [], []
    steps = reps = leaps = moves = trills = quads = 0
    for m in mels:
        p = _pitches(m)
        scale, tonic = (MINOR, 9) if m["minor"] else (MAJOR, 0)
        notes += len(p)
        in_key += sum(x % 12 in scale for x in p)
        ends += bool(p) and p[-1] % 12 == tonic
        grams += [tuple(p[i:i + 4]) for i in range(len(p) - 3)]
        for a, b in zip(p, p[1:]):
            moves += 1
            steps += 1 <= abs(b - a) <= 2
            reps += a == b
            leaps += abs(b - a) >= 5
        for i in range(len(p) - 3):
            quads += 1
            trills += p[i] == p[i + 2] and p[i + 1] == p[i + 3] and p[i] != p[i + 1]
        bars = bars_of(m["notes"], V.METERS[m["meter"]])
        for b in range(3, len(bars) - 1, 4):
            if bars[b]:
                cad_n += 1
                cad += bars[b][-1][2] >= 4 or bars[b][-1][1] is None
        wins += windows(m)
    n = max(len(mels), 1)
    out = {
        "melodies": len(mels),
        "two_durations_pct": 100.0 * sum(len({d for p, d in m["notes"] if p is not None}) >= 2
                                         for m in mels) / n,
        "unique_rhythm_pct": _unique_pct([_rhythm(m["notes"]) for m in mels]),
        "unique_window_rhythm_pct": _unique_pct([_rhythm(w) for w in wins]),
        "near_copy_pct": 100.0 * float(near_copy_flags(mels).mean()) if mels else 0.0,
        "distinct_4gram_pct": 100.0 * len(set(grams)) / max(len(grams), 1),
        "in_key_pct": 100.0 * in_key / max(notes, 1),
        "end_tonic_pct": 100.0 * ends / n,
        "cadence_pct": 100.0 * cad / max(cad_n, 1),
        "notes_per_4_bars": 4.0 * notes / max(sum(len(bars_of(m["notes"], V.METERS[m["meter"]]))
                                                 for m in mels), 1),
        "steps_pct": 100.0 * steps / max(moves, 1),
        "repeats_pct": 100.0 * reps / max(moves, 1),
        "leaps_pct": 100.0 * leaps / max(moves, 1),
        "trill_pct": 100.0 * trills / max(quads, 1),
    }
    if reference_interval is not None:
        out["interval_tv"] = tv(iv_h, reference_interval)
        out["duration_tv"] = tv(du_h, reference_duration)
    if reference_patterns is not None:
        own = pattern_counts(mels)
        out["interval_pair_tv"] = counts_tv(own["interval_pairs"],
                                            reference_patterns["interval_pairs"])
        out["bar_rhythm_tv"] = counts_tv(own["bar_rhythms"], reference_patterns["bar_rhythms"])
    return out


# ------------------------------------------------------------------------------ two-sample test
def window_features(events, meter: str) -> np.ndarray:
    bar_len = V.METERS[meter]
    p = [x for x, _ in events if x is not None]
    iv = [int(np.clip(b - a, -8, 8)) for a, b in zip(p, p[1:])]
    f_iv = _hist(iv, range(-8, 9))
    f_du = _hist([d for _, d in events], V.DURATIONS)
    onsets, t = [], 0
    for _, d in events:
        onsets.append(t % bar_len)
        t += d
    f_on = _hist(onsets, range(16))
    f_pc = _hist([x % 12 for x in p], range(12))
    arr = np.array(p or [0], np.float64)
    rh = [tuple(d for _, d in bar) for bar in _split_bars(events, bar_len)]
    extra = [len(p) / 16.0, sum(x is None for x, _ in events) / 4.0, (arr.max() - arr.min()) / 12,
             (arr.mean() - 70) / 12, len(set(p)) / 12.0, len(set(rh)) / 4.0,
             max(d for _, d in events) / 16.0]
    return np.concatenate([f_iv, f_du, f_on, f_pc, extra])


FEATURE_NAMES = ([f"interval {i:+d}" for i in range(-8, 9)]
                 + [f"duration {d}" for d in V.DURATIONS]
                 + [f"onset at {i}" for i in range(16)] + [f"pitch class {i}" for i in range(12)]
                 + ["notes", "rests", "range", "mean pitch", "distinct pitches",
                    "distinct bar rhythms", "longest event"])


def feature_gaps(mels, reference, top: int = 6) -> list[dict]:
    """The window features that alone tell ``mels`` from ``reference`` best: per feature the
    ROC AUC of its raw value (folded to >= 0.5) and both sets' means, largest first."""
    from sklearn.metrics import roc_auc_score

    a = np.array([window_features(w, m["meter"]) for m in mels for w in windows(m)])
    b = np.array([window_features(w, m["meter"]) for m in reference for w in windows(m)])
    x, y = np.concatenate([a, b]), np.r_[np.ones(len(a)), np.zeros(len(b))]
    out = []
    for j, name in enumerate(FEATURE_NAMES):
        auc = roc_auc_score(y, x[:, j]) if x[:, j].std() > 0 else 0.5
        out.append({"feature": name, "auc": round(max(auc, 1 - auc), 3),
                    "mean": round(float(a[:, j].mean()), 3),
                    "reference_mean": round(float(b[:, j].mean()), 3)})
    return sorted(out, key=lambda r: -r["auc"])[:top]


def _split_bars(events, bar_len):
    bars, t = {}, 0
    for p, d in events:
        bars.setdefault(t // bar_len, []).append((p, d))
        t += d
    return list(bars.values())


def two_sample_auc(mels, reference, seed: int = 0, max_windows: int = 1500,
                   trees: int = 200, grouped: bool = True, by_position: bool = True) -> float:
    """The two-sample test's headline: with ``by_position`` the mean over window positions of
    ``position_aucs`` (a generated melody's opening window judged against real openings, its
    closing window against real closings: ``reference`` holds real tunes cut like the
    melodies, ``trainer.music_report.framed``); otherwise ``pooled_auc`` (all windows in one
    test, positions mixed)."""
    if by_position:
        return float(np.mean(position_aucs(mels, reference, seed, max_windows, trees, grouped)))
    return pooled_auc(mels, reference, seed, max_windows, trees, grouped)


def position_aucs(mels, reference, seed: int = 0, max_windows: int = 1500, trees: int = 200,
                  grouped: bool = True) -> list[float]:
    """``pooled_auc`` per window position: the k-th 4-bar window of each melody against the
    k-th window of each reference tune, for every k both sets have (0: the opening; for
    8 bars, 1: the closing)."""
    n = min(max((len(windows(m)) for m in mels), default=0),
            max((len(windows(m)) for m in reference), default=0))
    return [pooled_auc(mels, reference, seed, max_windows, trees, grouped, position=k)
            for k in range(n)]


def pooled_auc(mels, reference, seed: int = 0, max_windows: int = 1500,
               trees: int = 200, grouped: bool = True, position: int | None = None) -> float:
    """ROC AUC (5-fold cross-validation) of a random forest telling ``mels``' 4-bar windows from
    ``reference``'s. ``grouped``: the folds keep all windows of one melody together; otherwise
    a melody's windows (often a repeated phrase) can sit in the training and the test fold, and
    the forest scores near-copies it was trained on (real against real tunes of the same
    distribution then scores ~0.6 instead of ~0.5). ``position``: only each melody's window
    of that index (``position_aucs``)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_score

    rng = np.random.default_rng(seed)

    def feats(ms, offset):
        pick = slice(None) if position is None else slice(position, position + 1)
        rows = [(window_features(w, m["meter"]), offset + i) for i, m in enumerate(ms)
                for w in windows(m)[pick]]
        x, g = np.array([r for r, _ in rows]), np.array([i for _, i in rows])
        if len(x) > max_windows:
            keep = rng.choice(len(x), max_windows, replace=False)
            x, g = x[keep], g[keep]
        return x, g

    (a, ga), (b, gb) = feats(mels, 0), feats(reference, len(mels))
    k = min(len(a), len(b))
    ia, ib = rng.permutation(len(a))[:k], rng.permutation(len(b))[:k]
    x = np.concatenate([a[ia], b[ib]])
    y = np.r_[np.ones(k), np.zeros(k)]
    clf = RandomForestClassifier(n_estimators=trees, min_samples_leaf=2, random_state=seed,
                                 n_jobs=1)
    if grouped:
        cv = StratifiedGroupKFold(5, shuffle=True, random_state=seed)
        scores = cross_val_score(clf, x, y, groups=np.r_[ga[ia], gb[ib]], cv=cv,
                                 scoring="roc_auc")
    else:
        cv = StratifiedKFold(5, shuffle=True, random_state=seed)
        scores = cross_val_score(clf, x, y, cv=cv, scoring="roc_auc")
    return float(np.mean(scores))
