"""Recommendation: ``generate("recommend", history=[ids], k=5)`` -> a ``Slate`` of item ids.

The shipped Q-network (trained by DQN against ``trainer.recsim``, a RecSim-style simulator of
users with different interests) scores every catalogue item from its *features* (topic mixture,
quality, length, popularity, embedding) and the user's state (``featurise``: what the user
consumed, how much of it they watched, what they skipped).  Nothing in the network is tied to
item ids, so an app can score its own catalogue (``catalogue=PATH``, a JSON or CSV file with the
schema in ``runtime/recommend_features.py`` and docs/kinds/recommend.md) without retraining, as
long as it has the model's topic count and embedding size.

The slate is the top ``k`` allowed items by Q-value, best first (users look at the first slots
most).  Allowed: not in ``exclude``, of an allowed topic (``topics``), not consumed (unless
``allow_repeats``) and not skipped (unless ``reshow_skipped``).  ``history=[]`` is the cold
start.  Same arguments and seed give the same slate; with ``explore=0`` the seed only breaks
exact ties.  Bad input raises ``ValueError`` naming the option.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from runtime import options as _check
from runtime.errors import ModelError
from runtime.model import Model, Option, Options
from runtime.recommend_features import (Catalogue, featurise, item_feature_dim, item_features,
                                        parse_catalogue, read_catalogue_file, state_dim)

KIND = "recommend"
MAX_K = 50
MAX_LIST = 10_000

OPTIONS = Options(
    Option("history", (), "object", "item ids the user consumed, oldest first (repeats allowed: "
           "re-watches); [] is a cold start"),
    Option("k", 5, "int", "slate size (at most the number of allowed items)", lo=1, hi=MAX_K),
    Option("explore", 0.0, "float", "Gumbel noise on the scores, in units of their standard "
           "deviation (0: the exact top-k)", lo=0.0, hi=1.0),
    Option("skipped", (), "object", "item ids shown to the user and not consumed, oldest first; "
           "they shape the state and are left out of the slate"),
    Option("engagement", None, "object", "per history item, the share watched or a rating "
           "scaled to [0, 1] (same length as history); None: unknown", optional=True),
    Option("allow_repeats", False, "bool", "items in history may be recommended again"),
    Option("reshow_skipped", False, "bool", "skipped items may be recommended again"),
    Option("exclude", (), "object", "item ids never to recommend"),
    Option("topics", None, "object", "only items whose primary topic is in this list; None: all",
           optional=True),
    Option("catalogue", None, "str", "path of the app's catalogue file (.json or .csv, see "
           "docs/kinds/recommend.md); None: the shipped catalogue", optional=True),
)


class Slate(list):
    """The recommended item ids, best first (a ``list[int]``), with ``.scores`` (Q-values; for
    the shipped one-step network, the expected watch time of showing the item, in simulator
    minutes), ``.topics`` and ``.titles``."""
    suffix = ".txt"

    def __init__(self, ids, scores, topics, titles):
        super().__init__(np.asarray(ids, np.int64).tolist())      # Python ints and floats
        self.scores = np.asarray(scores, np.float64).tolist()
        self.topics = np.asarray(topics, np.int64).tolist()
        self.titles = list(titles)

    def summary(self) -> str:
        return (f"{len(self)} items: " + ", ".join(f"{i} (topic {t}, {s:.2f})"
                                                   for i, t, s in zip(self, self.topics, self.scores)))

    def save(self, path) -> str:
        """Writes one line per item (rank, id, score, topic, title); returns a summary line."""
        lines = ["rank\tid\tscore\ttopic\ttitle"]
        lines += [f"{r + 1}\t{i}\t{s:.4f}\t{t}\t{title}" for r, (i, s, t, title)
                  in enumerate(zip(self, self.scores, self.topics, self.titles))]
        p = Path(path)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(tmp, p)
        return self.summary()


def _ids(name: str, value, cat: Catalogue) -> list[int]:
    """Rows of a list of known item ids (ValueError naming the option and the offending
    values)."""
    items = _check._check_sequence(name, value, MAX_LIST)
    get = cat.index.get
    rows = [get(x) if type(x) is int else None for x in items]   # the common case, one pass
    if None not in rows:
        return rows
    bad = [x for x in items if isinstance(x, bool) or not isinstance(x, (int, np.integer))]
    if bad:
        raise ValueError(f"{name} must contain integer item ids; not integers: {bad[:10]!r}")
    unknown = [int(x) for x in items if int(x) not in cat.index]
    if unknown:
        raise ValueError(f"{name} has unknown item ids {unknown[:10]} (the catalogue has "
                         f"{cat.n_items} items, ids {_id_range(cat)})")
    return cat.rows(items)


def _id_range(cat: Catalogue) -> str:
    lo, hi = int(cat.ids.min()), int(cat.ids.max())
    return f"0..{hi}" if lo == 0 and hi == cat.n_items - 1 else f"between {lo} and {hi}"


def _engagement(value, n: int):
    if value is None:
        return None
    items = _check._check_sequence("engagement", value, MAX_LIST)
    if len(items) != n:
        raise ValueError(f"engagement must have one value per history item ({n}), got {len(items)}")
    if all(type(x) is float for x in items):                   # the common case, vectorised
        eng = np.array(items, np.float64)
        if ((eng >= 0.0) & (eng <= 1.0)).all():                     # NaN fails this too
            return eng
    return [_check.check_float(f"engagement[{j}]", x, 0.0, 1.0) for j, x in enumerate(items)]


def _topics(value, n_topics: int):
    if value is None:
        return None
    return set(_check.check_int_list("topics", value, 0, n_topics - 1, max_items=n_topics * 4))


def top_k(q: np.ndarray, allowed: np.ndarray, k: int, rng: np.random.Generator,
          explore: float = 0.0) -> np.ndarray:
    """Rows of the top-k ``q`` among ``allowed`` (bool), best first; exact ties are broken by
    seeded noise; ``explore`` adds Gumbel noise scaled by the scores' standard deviation."""
    q = np.array(q, np.float64)                                     # a copy
    if explore > 0.0:
        q += explore * (q[allowed].std() + 1e-9) * rng.gumbel(size=q.shape)
    q[~allowed] = -np.inf
    n = len(q)
    cand = np.argpartition(q, n - k)[n - k:] if k < n else np.arange(n)
    return cand[np.lexsort((rng.random(len(cand)), -q[cand]))]


class RecommendModel(Model):
    kind = KIND
    options = OPTIONS

    def shipped_catalogue(self) -> Catalogue:
        def build():
            try:
                return parse_catalogue(self.json("catalogue"), "the shipped recommend catalogue")
            except ValueError as exc:
                raise ModelError(f"{exc}: re-export recommend") from None
        return self.cached(("catalogue", None), build)

    def catalogue(self, path=None) -> Catalogue:
        """The shipped catalogue, or the app's file ``path`` (checked against the model)."""
        base = self.shipped_catalogue()
        if path is None:
            return base
        try:
            st = os.stat(path)
        except OSError as exc:
            raise ValueError(f"catalogue cannot be read: {exc}") from None
        return self.cached(("catalogue", str(path), st.st_mtime_ns, st.st_size),
                           lambda: read_catalogue_file(path, base.n_topics, base.embedding_dim))

    def features(self, cat: Catalogue) -> np.ndarray:
        return self.cached(("features", id(cat)), lambda: item_features(cat))

    def _scorer(self, path):
        """(catalogue, session, state input name, item feeds) for ``path`` (None: shipped), built
        once per catalogue version: one cache look-up per call."""
        if path is None:
            key = ("scorer", None)
        else:
            try:
                st = os.stat(path)
            except OSError as exc:
                raise ValueError(f"catalogue cannot be read: {exc}") from None
            key = ("scorer", str(path), st.st_mtime_ns, st.st_size)

        def build():
            cat = self.catalogue(path)
            sess = self.q_session()
            a, b = (i.name for i in sess.get_inputs())
            return cat, sess, a, {b: self.features(cat)}
        return self.cached(key, build)

    def q_session(self):
        sess = self.session("q")
        base = self.shipped_catalogue()
        s, f = state_dim(base.n_topics, base.embedding_dim), item_feature_dim(base.n_topics, base.embedding_dim)
        shapes = [tuple(i.shape) for i in sess.get_inputs()]
        if len(shapes) != 2 or shapes[0][-1] != s or shapes[1][-1] != f:
            raise ModelError(f"the recommend Q-network's inputs {shapes} do not match the "
                             f"catalogue (state size {s}, item features {f}): re-export recommend")
        return sess

    def scores(self, states: np.ndarray, cat: Catalogue | None = None) -> np.ndarray:
        """Q-values [B, N] of every catalogue item for states [B, S] (from ``featurise``)."""
        cat = cat or self.shipped_catalogue()
        sess = self.q_session()
        a, b = (i.name for i in sess.get_inputs())
        return self.run(sess, {a: np.asarray(states, np.float32), b: self.features(cat)})[0]

    def _generate(self, rng, *, history, k, explore, skipped, engagement, allow_repeats,
                  reshow_skipped, exclude, topics, catalogue):
        cat, sess, state_name, feeds = self._scorer(catalogue)
        rows = _ids("history", history, cat)
        skip_rows = _ids("skipped", skipped, cat)
        eng = _engagement(engagement, len(rows))
        allowed = np.ones(cat.n_items, bool)
        allowed[_ids("exclude", exclude, cat)] = False
        wanted = _topics(topics, cat.n_topics)
        if wanted is not None:
            allowed &= np.isin(cat.topic, sorted(wanted))
        if not allow_repeats:
            allowed[rows] = False
        if not reshow_skipped:
            allowed[skip_rows] = False
        left = int(allowed.sum())
        if k > left:
            raise ValueError(f"k={k} but only {left} items are allowed (after history, skipped, "
                             f"exclude and topics)")
        state = featurise(rows, cat, eng, skip_rows)[None, :]
        q = self.run(sess, {state_name: state, **feeds})[0][0]
        best = top_k(q, allowed, k, rng, explore)
        return Slate(cat.ids[best], q[best], cat.topic[best], [cat.titles[i] for i in best])


MODEL = RecommendModel
