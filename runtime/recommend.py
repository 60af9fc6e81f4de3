"""Recommendation: ``generate("recommend", history=[ids], k=5)`` -> ``k`` distinct item ids.

The shipped Q-network (trained by DQN against ``trainer.recsim``, a RecSim-style user-interest
simulator) scores every catalogue item for the state computed from ``history`` (the ids the user
consumed, oldest first); the slate is the top ``k`` items by Q-value among the items not in
``history``, best first (simulated users look at the first slots most).  ``history=[]`` is
the cold start (the slate learned for a new session).

Options
    history  list of distinct int item ids in ``0 .. N-1`` (N = catalogue size, >= 200);
             at most N items.  Unknown ids, duplicates and non-integers raise ValueError
             naming them.
    k        slate size, 1 .. min(50, N - len(history)).
    explore  float in [0, 1], default 0: Gumbel noise on the Q-values scaled by ``explore`` times
             their standard deviation (a seeded Gumbel-top-k sample, for exploration / variety).
             With ``explore=0`` the slate is the exact top-k and the seed only breaks exact ties.

Same arguments and seed give the same slate.  Caps: history <= N ids, k <= 50 (no input
allocates more than a few kB).

``featurise`` is THE state function: the trainer's simulator imports it from here, so the
runtime computes exactly the observation the policy was trained on.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from runtime import options as _opt
from runtime import registry
from runtime.errors import ModelError

OPTIONS = {"history": (), "k": 5, "explore": 0.0}
MAX_K = 50
RECENT = 3            # items in the "recent topics" window
DECAY = 0.8           # per-item decay of the long-term topic profile
COUNT_SCALE = 20.0    # consumed-count and minutes features are divided by these
MINUTES_SCALE = 30.0


@dataclass(frozen=True)
class Catalogue:
    topics: np.ndarray    # float32 [N, T] topic mixture (rows sum to 1)
    quality: np.ndarray   # float32 [N] in [0, 1]
    length: np.ndarray    # float32 [N] minutes

    @property
    def n_items(self) -> int:
        return int(self.topics.shape[0])

    @property
    def n_topics(self) -> int:
        return int(self.topics.shape[1])

    @classmethod
    def from_json(cls, data: dict) -> "Catalogue":
        try:
            items = data["items"]
            topics = np.asarray([it["topics"] for it in items], np.float32)
            quality = np.asarray([it["quality"] for it in items], np.float32)
            length = np.asarray([it["length"] for it in items], np.float32)
            ids = [it["id"] for it in items]
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"recommend catalogue is malformed ({exc!r}): re-export recommend") from None
        if topics.ndim != 2 or ids != list(range(len(items))):
            raise ModelError("recommend catalogue is malformed (ids must be 0..N-1 in order): "
                             "re-export recommend")
        return cls(topics, quality, length)


def obs_dim(cat: Catalogue) -> int:
    return cat.n_items + 2 * cat.n_topics + 4


def featurise(history: Sequence[int], cat: Catalogue) -> np.ndarray:
    """State vector (float32 [N + 2T + 4]) of a user who consumed ``history`` (oldest first).

    [0:N)          multi-hot of consumed items
    [N:N+T)        mean topic mixture of the last RECENT items (zeros for an empty history)
    [N+T:N+2T)     topic profile: DECAY-weighted mean over the whole history (newest weight 1)
    N+2T           mean quality of the last RECENT items
    N+2T+1         len(history) / COUNT_SCALE
    N+2T+2         minutes consumed / MINUTES_SCALE
    N+2T+3         minutes of content weighted by (1 - quality) / MINUTES_SCALE
    """
    n, t = cat.n_items, cat.n_topics
    obs = np.zeros(n + 2 * t + 4, np.float32)
    m = len(history)
    if m == 0:
        return obs
    h = np.asarray(history, np.intp)
    obs[h] = 1.0
    top = cat.topics[h]                                   # [m, T]
    r = min(m, RECENT)
    obs[n:n + t] = top[-r:].sum(axis=0) / r
    w = DECAY ** np.arange(m - 1, -1, -1, dtype=np.float64)
    obs[n + t:n + 2 * t] = (w @ top) / w.sum()
    qual, length = cat.quality[h].astype(np.float64), cat.length[h].astype(np.float64)
    obs[n + 2 * t] = qual[-r:].sum() / r
    obs[n + 2 * t + 1] = m / COUNT_SCALE
    obs[n + 2 * t + 2] = length.sum() / MINUTES_SCALE
    obs[n + 2 * t + 3] = (length @ (1.0 - qual)) / MINUTES_SCALE
    return obs


def top_k(q: np.ndarray, exclude, k: int, rng: np.random.Generator, explore: float = 0.0) -> list[int]:
    """Top-k item ids by ``q`` (1-D) skipping ``exclude``; ties / Gumbel noise from ``rng``."""
    q = np.asarray(q, np.float64).copy()
    noise = rng.gumbel(size=q.shape)
    if explore > 0.0:
        q = q + explore * (q.std() + 1e-9) * noise
    q[np.asarray(list(exclude), np.int64)] = -np.inf
    order = np.lexsort((noise, -q))          # by Q desc, ties by the seeded noise
    return [int(i) for i in order[:k]]


_CATALOGUES: dict = {}


def load_catalogue(models_dir) -> Catalogue:
    """The shipped catalogue as arrays (cached per models dir and file hash)."""
    key = (str(models_dir), registry.file_entry("recommend", "catalogue", models_dir)["sha256"])
    cat = _CATALOGUES.get(key)
    if cat is None:
        cat = _CATALOGUES[key] = Catalogue.from_json(registry.load_json("recommend", "catalogue", models_dir))
    return cat


def check_history(history, n_items: int) -> list[int]:
    items = _opt._check_sequence("history", history, n_items)
    bad_type = [x for x in items if isinstance(x, bool) or not isinstance(x, (int, np.integer))]
    if bad_type:
        raise ValueError(f"history must contain integer item ids; not integers: {bad_type[:10]!r}")
    unknown = [int(x) for x in items if not 0 <= int(x) < n_items]
    if unknown:
        raise ValueError(f"history has unknown item ids {unknown[:10]} (catalogue ids are "
                         f"0..{n_items - 1})")
    seen, dups = set(), []
    for x in items:
        if int(x) in seen and int(x) not in dups:
            dups.append(int(x))
        seen.add(int(x))
    if dups:
        raise ValueError(f"history has duplicate item ids {dups[:10]}")
    return [int(x) for x in items]


def generate(*, rng: np.random.Generator, models_dir: Path, precision: str, history=(), k=5,
             explore=0.0) -> list[int]:
    cat = load_catalogue(models_dir)
    history = check_history(history, cat.n_items)
    left = cat.n_items - len(history)
    k = _opt.check_int("k", k, 1, max(1, min(MAX_K, left)))
    if k > left:
        raise ValueError(f"k must be at most the number of items not in history ({left})")
    explore = _opt.check_float("explore", explore, 0.0, 1.0)
    sess = registry.session("recommend", "q", models_dir, precision)
    inp = sess.get_inputs()[0]
    if inp.shape[-1] != obs_dim(cat) or sess.get_outputs()[0].shape[-1] != cat.n_items:
        raise ModelError(f"the recommend Q-network (input {inp.shape}, output "
                         f"{sess.get_outputs()[0].shape}) does not match the catalogue "
                         f"({cat.n_items} items, state size {obs_dim(cat)}): re-export recommend")
    obs = featurise(history, cat)[None, :]
    q = sess.run(None, {inp.name: obs})[0][0]
    return top_k(q, history, k, rng, explore)
