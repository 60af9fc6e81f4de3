"""A discriminator reward: a random forest trained to tell the policy's 4-bar windows from real
**training** folk tunes' windows scores each sampled melody by how real its windows look.

This is the two-sample test's classifier family on the same window features
(``trainer.music_eval.window_features``) but trained only on training tunes and the policy's
own recent samples; the evaluation's judge is a separate forest trained on held-out tunes,
which never enter the reward. The forest is refitted every ``refit_every`` updates on the
last ``buffer`` batches of samples against as many training windows; a melody's reward is the
mean over its windows of ``logit(P(real))`` (probabilities clipped to [0.02, 0.98]). Only
folk-style melodies are scored (0 for the others). ``openings``: the real windows come from
the training tunes' openings (their first 16, 8 or 4 full bars), as a generated melody is an
opening; ``frames``: from their openings and closings (``trainer.music_stats.frame``, as the
evaluation cuts the held-out tunes), and each window's features carry its position (first,
last) so openings are compared with openings and closings with closings. ``holdout``: a
batch is scored by a forest fitted before it joined the buffer (a forest scoring its own
training windows mostly reports that it memorised them); the first batch then gets 0.
"""
from __future__ import annotations

from collections import deque

import numpy as np

from trainer.music_eval import window_features, windows
from trainer.music_stats import frame, opening, whole_bars


def _real_tune(rec: dict, openings: bool, frames: bool = False) -> dict | None:
    if not openings and not frames:
        return whole_bars(rec)
    cut = frame if frames else opening
    return next((m for m in (cut(rec, b) for b in (16, 8, 4)) if m is not None), None)


def _rows(m: dict, positions: bool) -> list[np.ndarray]:
    """Window features of a melody, with [first window, last window] flags if ``positions``."""
    wins = windows(m)
    if not positions:
        return [window_features(w, m["meter"]) for w in wins]
    return [np.r_[window_features(w, m["meter"]), k == 0, k == len(wins) - 1]
            for k, w in enumerate(wins)]


class Discriminator:
    def __init__(self, train_recs, seed: int = 0, refit_every: int = 5, buffer: int = 8,
                 trees: int = 60, openings: bool = False, holdout: bool = False,
                 frames: bool = False):
        self.positions = frames
        rows = [row for m in (_real_tune(r, openings, frames) for r in train_recs
                              if r["style"] == "folk") if m is not None
                for row in _rows(m, frames)]
        self.real = np.array(rows) if rows else np.zeros((0, 0))
        self.fake: deque = deque(maxlen=buffer)
        self.rng = np.random.default_rng([seed, 11])
        self.refit_every, self.trees, self.seed = refit_every, trees, seed
        self.clf = None
        self.updates = 0
        self.holdout = holdout

    def _fit(self) -> None:
        from sklearn.ensemble import RandomForestClassifier

        fake = np.concatenate(list(self.fake))
        k = min(len(fake), len(self.real))
        real = self.real[self.rng.choice(len(self.real), k, replace=False)]
        fake = fake[self.rng.choice(len(fake), k, replace=False)]
        self.clf = RandomForestClassifier(n_estimators=self.trees, min_samples_leaf=5,
                                          random_state=self.seed, n_jobs=1)
        self.clf.fit(np.concatenate([real, fake]), np.r_[np.ones(k), np.zeros(k)])

    def rewards(self, melodies) -> np.ndarray:
        """Reward per melody for one batch; refits first when due (the batch joins the buffer)."""
        out = np.zeros(len(melodies))
        rows, owner = [], []
        for i, m in enumerate(melodies):
            if m.get("style", "folk") == "folk":
                for row in _rows(m, self.positions):
                    rows.append(row)
                    owner.append(i)
        if not rows or not len(self.real):
            return out
        x = np.array(rows)
        due = self.updates % self.refit_every == 0
        self.updates += 1
        if self.holdout:                       # score with a forest that never saw this batch
            if due and self.fake:
                self._fit()
            self.fake.append(x)
            if self.clf is None:
                return out
        else:
            self.fake.append(x)
            if self.clf is None or due:
                self._fit()
        p = np.clip(self.clf.predict_proba(x)[:, 1], 0.02, 0.98)
        logit = np.log(p / (1 - p))
        owner = np.array(owner)
        for i in set(owner.tolist()):
            out[i] = logit[owner == i].mean()
        return out
