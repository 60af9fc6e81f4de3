"""A user-interest simulator for recommendation, in the spirit of RecSim's interest evolution.

numpy only (importable without TensorFlow).  Gymnasium-style API::

    env = RecSimEnv(catalogue, cfg)
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(item_row)       # a one-item slate
    obs, reward, terminated, truncated, info = env.step([3, 17, 42])    # a slate of k items

Catalogue (``make_catalogue``, seeded, in the runtime's catalogue JSON schema): ``n_items``
items over ``n_topics`` topics.  Each item has a topic mixture (75 % on a primary topic), a
length in minutes, a quality in [0, 1] (topic means spread over [0.35, 0.65]: every topic has
good and poor items), an 8-d style embedding, an observable popularity and a hidden *appeal*
(thumbnail attractiveness) anti-correlated with quality: clickbait is easy to click and poor
to watch.  Popularity is the rank of appeal + quality / 2 + noise.

Users (hidden state, drawn per session; no topic dominates the population):
    segment  "focused" (50 %): one favourite topic, uniform over the topics;
             "mixed" (50 %): two to five favourite topics, uniform.
    interest u in [-1, 1]^T: ~0.8 on favourites, ~-0.5 elsewhere; taste v (unit vector in the
             embedding space) for within-topic preferences.
    history  what the user consumed before this session, revealing the interests: 25 % arrive
             with none (cold start), the others with 1..10 items drawn by the choice model over
             the catalogue.  Half of the sessions report no engagement (watch share) for it.

Choice model: multinomial logit over the slate plus a no-click option, with position bias,
    aff_i   = (u - satiation_weight * s) . topics_i + taste_weight * (v . embedding_i)
    score_i = click_affinity * aff_i + click_appeal * appeal_i - position_bias * pos_i
    P(i)    = exp(score_i) / (exp(no_click) + sum_j exp(score_j)),
    no_click = no_click_score + trust_click * (trust_ref - trust).
On a click on item i (reward = watch time, minutes):
    watch = length_i * sigmoid(watch_bias + watch_affinity * aff_i)
    budget -= watch * (1 - refund * quality_i)                  (good content re-engages)
    u += drift * topics_i * (quality_i - quality_pivot) * (1 - u^2)
    s = SATIATION_DECAY * s + topics_i                          (boredom with what was just had)
    trust += TRUST_RATE * (quality_i - trust)                   (clickbait erodes trust)
    the user leaves with probability abandon * max(0, trust_ref - trust)
On no click: budget -= no_click_cost, s *= SATIATION_DECAY (boredom wears off).  Items shown and
not clicked are *skipped*.  The session terminates when the budget is spent or the user leaves,
and is truncated after ``max_steps`` slates.  Consumed items cannot be recommended again
(``step`` raises ValueError, like for duplicates or unknown rows).  Satiation and trust start
from the prior history (trust from a per-user draw around TRUST0).

Why long-term value differs from myopic: clickbait maximises the one-step expected watch time,
but it burns the budget without refund, sours the user on its topic, lowers their willingness to
click and can end the session; piling up one topic bores the user for the next slates.

Observation: ``[blocked (N) | state]``: ``blocked`` marks the items the agent may not show
next (consumed, or skipped in the last slate); ``state`` is
``runtime.recommend_features.featurise(history, catalogue, engagement, skipped)``, the exact
function the runtime applies to an app's history.  The agent never sees u, v, the budget or
trust; satiation and trust are estimated from the history (the state's satiation block and
quality average: exact up to the trust draw and the decay of satiation on no-click slates).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np

from runtime.recommend_features import (SATIATION_DECAY, TRUST0, TRUST_RATE, Catalogue, featurise,
                                        parse_catalogue, state_dim)

SEGMENTS = ("focused", "mixed")


@dataclass
class RecSimConfig:
    n_items: int = 200
    n_topics: int = 10
    embedding_dim: int = 8
    catalogue_seed: int = 2024
    budget0: float = 30.0            # minutes of attention per session
    max_steps: int = 40              # slates per session (truncation)
    no_click_cost: float = 1.0       # minutes lost browsing a slate without clicking
    no_click_score: float = 2.5
    position_bias: float = 1.0       # score penalty per slate position (0 for the first item)
    click_affinity: float = 3.0
    click_appeal: float = 2.5
    taste_weight: float = 0.4
    watch_bias: float = 0.0
    watch_affinity: float = 2.0
    refund: float = 0.9              # share of watch time refunded x quality
    drift: float = 0.5
    quality_pivot: float = 0.4
    focused_share: float = 0.5       # users with one favourite topic
    max_favourites: int = 5          # the others ("mixed") have 2 .. max_favourites
    favourite_interest: float = 0.8
    other_interest: float = -0.5
    interest_noise: float = 0.15
    cold_share: float = 0.25         # users arriving with no history
    max_prior_history: int = 10
    hide_feedback_share: float = 0.5  # sessions whose history has no engagement values
    # satiation (boredom): s <- SATIATION_DECAY * s (+ topics_i of the consumed item) per slate; the affinity
    # of item j (click and watch) is lowered by satiation_weight * topics_j . s
    satiation_weight: float = 0.3
    # trust: an exponential average of the quality of consumed items (TRUST_RATE per item) from
    # a per-user start; low trust raises the no-click score and makes the user leave after a
    # click with probability abandon * max(0, trust_ref - trust)
    trust0: float = TRUST0
    trust0_noise: float = 0.05
    trust_click: float = 2.0
    trust_ref: float = 0.5
    abandon: float = 0.3


def make_catalogue(n_items: int = 200, n_topics: int = 10, seed: int = 2024,
                   embedding_dim: int = 8) -> dict:
    """A seeded catalogue in the runtime's JSON schema, plus the hidden ``appeal`` list."""
    rng = np.random.default_rng(seed)
    primary = rng.integers(0, n_topics, n_items)
    primary[:n_topics] = np.arange(n_topics)                       # every topic present
    mix = 0.25 * rng.dirichlet(np.full(n_topics, 0.3), n_items)
    mix[np.arange(n_items), primary] += 0.75
    topic_quality = np.linspace(0.35, 0.65, n_topics)[rng.permutation(n_topics)]
    quality = np.clip(rng.normal(topic_quality[primary], 0.2), 0.0, 1.0)
    appeal = np.clip(0.5 - 0.8 * (quality - 0.5) + rng.normal(0.0, 0.15, n_items), 0.0, 1.0)
    length = rng.uniform(1.0, 4.0, n_items)
    emb = rng.normal(0.0, 1.0, (n_items, embedding_dim)) / math.sqrt(max(1, embedding_dim))
    pop_raw = appeal + 0.5 * quality + rng.normal(0.0, 0.2, n_items)
    popularity = pop_raw.argsort().argsort() / max(1, n_items - 1)
    r4 = lambda x: round(float(x), 4)                                # noqa: E731
    return {
        "n_topics": int(n_topics), "embedding_dim": int(embedding_dim),
        "items": [
            {"id": int(i), "topic": int(primary[i]), "topics": [r4(x) for x in mix[i]],
             "quality": r4(quality[i]), "length": r4(length[i]), "popularity": r4(popularity[i]),
             "embedding": [r4(x) for x in emb[i]],
             "title": f"item {i:03d} - topic {int(primary[i])}"}
            for i in range(n_items)
        ],
        "appeal": [r4(x) for x in appeal],        # simulator-only (hidden; not shipped)
    }


_PARSED: dict = {}


def _parsed(raw: dict) -> Catalogue:
    """parse_catalogue once per catalogue dict (many envs share one)."""
    hit = _PARSED.get(id(raw))
    if hit is None or hit[0] is not raw:
        if len(_PARSED) > 8:
            _PARSED.clear()
        hit = _PARSED[id(raw)] = (raw, parse_catalogue(raw))
    return hit[1]


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


class RecSimEnv:
    """One user session per episode. Action: a catalogue row (one-item slate) or a list."""

    metadata = {"render_modes": []}

    def __init__(self, catalogue: dict, cfg: RecSimConfig | None = None):
        self.cfg = cfg or RecSimConfig()
        self.raw = catalogue
        self.cat: Catalogue = _parsed(catalogue)
        self.appeal = np.asarray(catalogue["appeal"], np.float64)
        self.n_actions = self.cat.n_items
        self.state_dim = state_dim(self.cat.n_topics, self.cat.embedding_dim)
        self.obs_dim = self.n_actions + self.state_dim
        self._rng = np.random.default_rng()
        self.history: list[int] = []

    # ----------------------------------------------------------------- Gymnasium API
    def reset(self, *, seed=None, options=None):
        """``options``: {"segment": "focused"|"mixed", "favourites": [topics], "cold": bool}
        pin the user type (evaluation per segment); by default all are drawn."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        c, rng, t = self.cfg, self._rng, self.cat.n_topics
        opts = options or {}
        segment = opts.get("segment") or ("focused" if rng.random() < c.focused_share else "mixed")
        fav = opts.get("favourites")
        if fav is None:
            n_fav = 1 if segment == "focused" else int(rng.integers(2, c.max_favourites + 1))
            fav = rng.choice(t, n_fav, replace=False)
        self.segment, self.favourites = segment, sorted(int(x) for x in fav)
        u = rng.normal(c.other_interest, c.interest_noise, t)
        u[self.favourites] = rng.normal(c.favourite_interest, c.interest_noise, len(self.favourites))
        self.interest = np.clip(u, -1.0, 1.0)
        v = rng.normal(0.0, 1.0, self.cat.embedding_dim)
        self.taste = v / (np.linalg.norm(v) + 1e-9)
        self.budget = float(c.budget0)
        self.satiation = np.zeros(t)
        self.trust = float(np.clip(rng.normal(c.trust0, c.trust0_noise), 0.0, 1.0))
        self.abandoned = False
        self.t = 0
        self.consumed = np.zeros(self.cat.n_items, bool)
        self.blocked = np.zeros(self.cat.n_items, bool)
        self.history, self.engagement, self.skipped = [], [], []
        self._state_key = None
        self._refresh()
        cold = opts.get("cold", rng.random() < c.cold_share)
        self.cold = bool(cold)
        if not cold:
            self._prior_history(int(rng.integers(1, c.max_prior_history + 1)))
        self.report_feedback = rng.random() >= c.hide_feedback_share
        self.blocked[:] = self.consumed
        return self.observation(), {"budget": self.budget, "segment": self.segment}

    def _prior_history(self, n: int) -> None:
        """Items consumed before the session, drawn by the choice model over the catalogue."""
        s = self._score.copy()
        for _ in range(n):
            p = np.exp(s - s.max())
            i = int(np.searchsorted(np.cumsum(p / p.sum()), self._rng.random(), side="right"))
            i = min(i, len(s) - 1)
            s[i] = -np.inf
            self.consumed[i] = True
            self.history.append(i)
            self.engagement.append(float(self._watch[i] / self.cat.length[i]))
            self._consume(i)
        self._refresh()

    def _consume(self, i: int) -> None:
        """Satiation and trust after consuming item ``i`` (the state's features track both)."""
        self.satiation = SATIATION_DECAY * self.satiation + self.cat.topics[i]
        self.trust += TRUST_RATE * (float(self.cat.quality[i]) - self.trust)

    def step(self, action, pick: int | None = None):
        """``pick``: force the user's choice (an index into the slate; ``len(slate)`` = no
        click) instead of drawing it, for rollouts of one outcome (trainer.recommend_rollout)."""
        slate = self._check_slate(action)
        c, cat = self.cfg, self.cat
        if pick is not None:
            if not 0 <= int(pick) <= len(slate):
                raise ValueError(f"pick must be in 0..{len(slate)}, got {pick!r}")
            pick = int(pick)
        elif len(slate) == 1:                                       # fast path: one-item slate
            p_click = 1.0 / (1.0 + math.exp(self._no_click - self._score[slate[0]]))
            pick = 0 if self._rng.random() < p_click else 1
        else:
            probs = self.choice_probs(slate)
            pick = int(np.searchsorted(np.cumsum(probs), self._rng.random(), side="right"))
            pick = min(pick, len(slate))
        reward, clicked = 0.0, None
        self.blocked[:] = self.consumed
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
            self.engagement.append(reward / float(cat.length[clicked]))
            self._consume(clicked)
            self._refresh()
            p_leave = c.abandon * max(0.0, c.trust_ref - self.trust)
            self.abandoned = p_leave > 0.0 and self._rng.random() < p_leave
        else:
            self.budget -= c.no_click_cost
            self.satiation *= SATIATION_DECAY                        # boredom wears off
            self._refresh()
        skipped = [int(i) for i in slate if int(i) != clicked]
        self.skipped.extend(skipped)
        self.blocked[self.consumed] = True
        self.blocked[skipped] = True
        if self.blocked.all():                                      # never leave nothing to show
            self.blocked[:] = self.consumed
        self.t += 1
        terminated = self.budget <= 0.0 or self.abandoned
        truncated = (not terminated) and (self.t >= c.max_steps or self.consumed.all())
        info = {"clicked": clicked, "budget": self.budget, "slate": slate,
                "abandoned": self.abandoned}
        return self.observation(), reward, terminated, truncated, info

    def clone(self, seed=None) -> "RecSimEnv":
        """An independent copy of this session (hidden user state included); ``seed``: a fresh
        random stream for the copy (None: a copy of this one's)."""
        new = copy.copy(self)
        for name in ("interest", "satiation", "consumed", "blocked"):
            setattr(new, name, getattr(self, name).copy())
        new.history, new.engagement = list(self.history), list(self.engagement)
        new.skipped = list(self.skipped)
        new._rng = np.random.default_rng(seed) if seed is not None else copy.deepcopy(self._rng)
        return new

    # ----------------------------------------------------------------- model pieces
    def state(self) -> np.ndarray:
        """The runtime's state of this user (cached until the next step)."""
        key = (len(self.history), len(self.skipped))
        if getattr(self, "_state_key", None) != key:
            eng = self.engagement if self.report_feedback else None
            self._state_cache = featurise(self.history, self.cat, eng, self.skipped)
            self._state_key = key
        return self._state_cache

    def observation(self) -> np.ndarray:
        return np.concatenate([self.blocked.astype(np.float32), self.state()])

    def _refresh(self) -> None:
        """Cache affinity, choice score and expected watch time of every item (user changed)."""
        c = self.cfg
        self._aff = (self.cat.topics @ (self.interest - c.satiation_weight * self.satiation)
                     + c.taste_weight * (self.cat.embedding @ self.taste))
        self._no_click = c.no_click_score + c.trust_click * (c.trust_ref - self.trust)
        self._score = c.click_affinity * self._aff + c.click_appeal * self.appeal
        self._watch = self.cat.length * _sigmoid(c.watch_bias + c.watch_affinity * self._aff)

    def affinity(self, items) -> np.ndarray:
        return self._aff[np.asarray(items)]

    def scores(self, items) -> np.ndarray:
        return self._score[np.asarray(items)]

    def choice_probs(self, slate) -> np.ndarray:
        """P(click slate[i]) for each i, then P(no click) last."""
        s = np.empty(len(slate) + 1)
        s[:-1] = self.scores(slate) - self.cfg.position_bias * np.arange(len(slate))
        s[-1] = self._no_click
        e = np.exp(s - s.max())
        return e / e.sum()

    def expected_watch(self, items) -> np.ndarray:
        """Watch time (minutes) if the user clicks each item."""
        return self._watch[np.asarray(items)]

    def click_probs_alone(self) -> np.ndarray:
        """P(click) of each item shown alone (a one-item slate; uses the hidden user state)."""
        return 1.0 / (1.0 + np.exp(self._no_click - self._score))

    def myopic_values(self) -> np.ndarray:
        """One-step expected reward of showing each item alone (uses the hidden user state)."""
        return self.click_probs_alone() * self._watch

    def _check_slate(self, action) -> np.ndarray:
        if isinstance(action, (int, np.integer)) and not isinstance(action, bool):
            slate = np.array([int(action)], np.int64)
        else:
            slate = np.asarray(action).reshape(-1)
            if slate.size == 0 or not np.issubdtype(slate.dtype, np.integer):
                raise ValueError(f"slate must be a non-empty list of item rows, got {action!r}")
        n = self.cat.n_items
        bad = [int(i) for i in slate if not 0 <= i < n]
        if bad:
            raise ValueError(f"unknown item rows {bad} (catalogue has rows 0..{n - 1})")
        if len(set(slate.tolist())) != len(slate):
            raise ValueError(f"duplicate item rows in slate {slate.tolist()}")
        seen = [int(i) for i in slate if self.consumed[i]]
        if seen:
            raise ValueError(f"items {seen} were already consumed in this session")
        return slate.astype(np.intp)
