"""A user-interest simulator for recommendation, in the spirit of RecSim's interest evolution.

numpy only (importable without TensorFlow).  Gymnasium-style API::

    env = RecSimEnv(catalogue, cfg)
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(item_id)        # a one-item slate
    obs, reward, terminated, truncated, info = env.step([3, 17, 42])    # a slate of k items

Catalogue (``make_catalogue``, seeded): ``n_items`` items over ``n_topics`` topics.  Each item has
a topic mixture (75 % on a primary topic, the rest spread by a Dirichlet), a length in minutes, a
quality in [0, 1] whose mean depends on the topic (some topics are mostly junk, some mostly good)
and a hidden *appeal* (thumbnail/headline attractiveness) that is anti-correlated with quality:
"clickbait" is easy to click and poor to watch.

User (hidden state, drawn per session): interests ``u`` in [-1, 1]^T around a population prior,
a time budget ``budget0`` minutes.

Choice model: multinomial logit over the slate plus a no-click option, with position bias
(users look at the first slot more than at the fifth),
``score_i = click_affinity * (u . topic_i) + click_appeal * appeal_i - position_bias * pos_i``
(``pos_i`` = 0 for the first item of the slate),
``P(i) = exp(score_i) / (exp(no_click_score) + sum_j exp(score_j))``.

On a click on item i (engagement = reward = watch time, in minutes):
    watch = length_i * sigmoid(watch_bias + watch_affinity * (u . topic_i) + watch_quality * (quality_i - 0.5))
    (watch_quality defaults to 0: as in RecSim's interest evolution, quality does not change how
    long this item is watched -- interest does -- it changes what happens next:)
    budget -= watch;  budget += refund * watch * quality_i        (good content re-engages)
    u += drift * topic_i * (quality_i - quality_pivot) * (1 - u^2) (interests grow toward what
                                                                   satisfied the user, shrink
                                                                   away from disappointing items)
On no click: budget -= no_click_cost.  The session terminates when the budget is spent and is
truncated after ``max_steps`` slates.  Items the user consumed cannot be recommended again in the
session (``step`` raises ValueError for them, like for duplicates or unknown ids).

Why long-term value differs from myopic: clickbait maximises the one-step expected watch time,
but it burns the budget without refund and sours the user on its topic; good items keep the
session alive and raise future click rates.  Nothing in the simulator knows about the agent.

Observation: ``runtime.recommend.featurise(consumed_ids, catalogue)``, the exact function the
runtime applies to a user's history (a multi-hot of consumed items, the mean topic mixture of the
last few items, a decayed topic profile, and counters).  The agent never sees ``u`` or the budget.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from runtime.recommend import Catalogue, featurise, obs_dim


@dataclass
class RecSimConfig:
    n_items: int = 200
    n_topics: int = 10
    catalogue_seed: int = 2024
    budget0: float = 30.0            # minutes of attention per session
    max_steps: int = 40              # slates per session (truncation)
    no_click_cost: float = 1.0       # minutes lost browsing a slate without clicking
    no_click_score: float = 2.5
    position_bias: float = 1.0       # score penalty per slate position (0 for the first item)
    click_affinity: float = 3.0
    click_appeal: float = 2.5
    watch_bias: float = 0.0
    watch_affinity: float = 2.0
    watch_quality: float = 0.0
    refund: float = 0.9              # share of watch time refunded x quality
    drift: float = 0.5
    quality_pivot: float = 0.4
    interest_scale: float = 0.5      # spread of user interests around the population prior


def make_catalogue(n_items: int = 200, n_topics: int = 10, seed: int = 2024) -> dict:
    """A seeded catalogue as plain lists (the JSON shipped to the runtime) + hidden appeal."""
    rng = np.random.default_rng(seed)
    primary = rng.integers(0, n_topics, n_items)
    primary[:n_topics] = np.arange(n_topics)                       # every topic present
    mix = 0.25 * rng.dirichlet(np.full(n_topics, 0.3), n_items)
    mix[np.arange(n_items), primary] += 0.75
    topic_quality = np.linspace(0.15, 0.85, n_topics)[rng.permutation(n_topics)]
    quality = np.clip(rng.normal(topic_quality[primary], 0.15), 0.0, 1.0)
    appeal = np.clip(0.5 - 0.8 * (quality - 0.5) + rng.normal(0.0, 0.15, n_items), 0.0, 1.0)
    length = rng.uniform(1.0, 4.0, n_items)
    popularity = rng.normal(0.0, 0.3, n_topics)                    # population interest prior
    return {
        "n_items": int(n_items),
        "n_topics": int(n_topics),
        "topic_prior": [round(float(x), 4) for x in popularity],
        "items": [
            {"id": int(i), "topic": int(primary[i]),
             "topics": [round(float(x), 4) for x in mix[i]],
             "quality": round(float(quality[i]), 4), "length": round(float(length[i]), 4),
             "title": f"item {i:03d} - topic {int(primary[i])}"}
            for i in range(n_items)
        ],
        # simulator-only (hidden from the agent; not shipped)
        "appeal": [round(float(x), 4) for x in appeal],
    }


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


class RecSimEnv:
    """One user session per episode. Action: an item id (one-item slate) or a list of ids."""

    metadata = {"render_modes": []}

    def __init__(self, catalogue: dict, cfg: RecSimConfig | None = None):
        self.cfg = cfg or RecSimConfig()
        self.raw = catalogue
        self.cat = Catalogue.from_json(catalogue)
        self.appeal = np.asarray(catalogue["appeal"], np.float64)
        self.prior = np.asarray(catalogue["topic_prior"], np.float64)
        self.n_actions = self.cat.n_items
        self.obs_dim = obs_dim(self.cat)
        self._rng = np.random.default_rng()
        self.history: list[int] = []

    # ----------------------------------------------------------------- Gymnasium API
    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        c = self.cfg
        self.interest = np.clip(self.prior + self._rng.normal(0.0, c.interest_scale, len(self.prior)), -1, 1)
        self.budget = float(c.budget0)
        self.t = 0
        self.history = []
        self.consumed = np.zeros(self.cat.n_items, bool)
        self._refresh()
        return self.observation(), {"budget": self.budget}

    def step(self, action):
        slate = self._check_slate(action)
        c, cat = self.cfg, self.cat
        if len(slate) == 1:                                         # fast path: one-item slate
            p_click = 1.0 / (1.0 + math.exp(c.no_click_score - self._score[slate[0]]))
            pick = 0 if self._rng.random() < p_click else 1
        else:
            probs = self.choice_probs(slate)
            pick = int(np.searchsorted(np.cumsum(probs), self._rng.random(), side="right"))
            pick = min(pick, len(slate))
        reward, clicked = 0.0, None
        if pick < len(slate):                                       # index len(slate) = no click
            clicked = int(slate[pick])
            reward = float(self._watch[clicked])
            q = float(cat.quality[clicked])
            self.budget -= reward * (1.0 - c.refund * q)
            e = cat.topics[clicked]
            u = self.interest
            self.interest = np.clip(u + (c.drift * (q - c.quality_pivot)) * e * (1.0 - u * u), -1.0, 1.0)
            self.consumed[clicked] = True
            self.history.append(clicked)
            self._refresh()
        else:
            self.budget -= c.no_click_cost
        self.t += 1
        terminated = self.budget <= 0.0
        truncated = (not terminated) and (self.t >= c.max_steps or len(self.history) == self.n_actions)
        info = {"clicked": clicked, "budget": self.budget, "slate": slate}
        return self.observation(), reward, terminated, truncated, info

    # ----------------------------------------------------------------- model pieces
    def observation(self) -> np.ndarray:
        return featurise(self.history, self.cat)

    def _refresh(self) -> None:
        """Cache affinity, choice score and expected watch time of every item (user changed)."""
        c = self.cfg
        self._aff = self.cat.topics @ self.interest
        self._score = c.click_affinity * self._aff + c.click_appeal * self.appeal
        x = c.watch_bias + c.watch_affinity * self._aff + c.watch_quality * (self.cat.quality - 0.5)
        self._watch = self.cat.length * _sigmoid(x)

    def affinity(self, items) -> np.ndarray:
        return self._aff[np.asarray(items)]

    def scores(self, items) -> np.ndarray:
        return self._score[np.asarray(items)]

    def choice_probs(self, slate) -> np.ndarray:
        """P(click slate[i]) for each i, then P(no click) last."""
        s = np.empty(len(slate) + 1)
        s[:-1] = self.scores(slate) - self.cfg.position_bias * np.arange(len(slate))
        s[-1] = self.cfg.no_click_score
        e = np.exp(s - s.max())
        return e / e.sum()

    def expected_watch(self, items) -> np.ndarray:
        """Watch time (minutes) if the user clicks each item."""
        return self._watch[np.asarray(items)]

    def myopic_values(self) -> np.ndarray:
        """One-step expected reward of showing each item alone (uses the hidden user state)."""
        p = 1.0 / (1.0 + np.exp(self.cfg.no_click_score - self._score))
        return p * self._watch

    def _check_slate(self, action) -> np.ndarray:
        if isinstance(action, (int, np.integer)) and not isinstance(action, bool):
            a = int(action)
            if not 0 <= a < self.n_actions:
                raise ValueError(f"unknown item id {a} (catalogue has ids 0..{self.n_actions - 1})")
            if self.consumed[a]:
                raise ValueError(f"item {a} was already consumed in this session")
            return np.array([a], np.intp)
        else:
            slate = np.asarray(action).reshape(-1)
            if slate.size == 0 or not np.issubdtype(slate.dtype, np.integer):
                raise ValueError(f"slate must be a non-empty list of item ids, got {action!r}")
        n = self.cat.n_items
        bad = [int(i) for i in slate if not 0 <= i < n]
        if bad:
            raise ValueError(f"unknown item ids {bad} (catalogue has ids 0..{n - 1})")
        if len(set(slate.tolist())) != len(slate):
            raise ValueError(f"duplicate item ids in slate {slate.tolist()}")
        seen = [int(i) for i in slate if self.consumed[i]]
        if seen:
            raise ValueError(f"items {seen} were already consumed in this session")
        return slate.astype(np.intp)
