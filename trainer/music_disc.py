"""A discriminator reward: a random forest trained to tell the policy's 4-bar windows from real
**training** folk tunes' windows scores each sampled melody by how real its windows look.

This is the two-sample test's classifier family on the same window features
(``trainer.music_eval.window_features``) but trained only on training tunes and the policy's
own recent samples; the evaluation's judge is a separate forest trained on held-out tunes,
which never enter the reward. The forest is refitted every ``refit_every`` updates on the
last ``buffer`` batches of samples against as many training windows; a melody's reward is the
mean over its windows of ``logit(P(real))`` (probabilities clipped to [0.02, 0.98]). Only
folk-style melodies are scored (0 for the others).
"""
from __future__ import annotations

from collections import deque

import numpy as np

from trainer.music_eval import window_features, windows
from trainer.music_stats import whole_bars


class Discriminator:
    def __init__(self, train_recs, seed: int = 0, refit_every: int = 5, buffer: int = 8,
                 trees: int = 60):
        rows = [window_features(w, m["meter"])
                for m in (whole_bars(r) for r in train_recs if r["style"] == "folk")
                if m is not None for w in windows(m)]
        self.real = np.array(rows) if rows else np.zeros((0, 0))
        self.fake: deque = deque(maxlen=buffer)
        self.rng = np.random.default_rng([seed, 11])
        self.refit_every, self.trees, self.seed = refit_every, trees, seed
        self.clf = None
        self.updates = 0

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
                for w in windows(m):
                    rows.append(window_features(w, m["meter"]))
                    owner.append(i)
        if not rows or not len(self.real):
            return out
        x = np.array(rows)
        self.fake.append(x)
        if self.clf is None or self.updates % self.refit_every == 0:
            self._fit()
        self.updates += 1
        p = np.clip(self.clf.predict_proba(x)[:, 1], 0.02, 0.98)
        logit = np.log(p / (1 - p))
        owner = np.array(owner)
        for i in set(owner.tolist()):
            out[i] = logit[owner == i].mean()
        return out
