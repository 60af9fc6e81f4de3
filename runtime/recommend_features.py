"""Recommendation catalogue and state features (numpy only; shared by the runtime and trainer).

Catalogue file schema (what ``generate("recommend", catalogue=PATH)`` reads; the shipped
catalogue uses the same JSON schema):

JSON ::

    {"n_topics": 10,                 # must equal the model's topic count
     "embedding_dim": 8,             # optional; must equal the model's (0 = no embeddings)
     "items": [
        {"id": 17,                   # int >= 0, unique (any order, gaps allowed)
         "topic": 3,                 # primary topic, int in 0 .. n_topics-1
         "topics": [0.0, ...],       # optional topic mixture (n_topics numbers >= 0, sum > 0;
                                     #   normalised); default: one-hot of "topic"
         "quality": 0.7,             # number in [0, 1]
         "length": 3.5,              # minutes, number > 0
         "popularity": 0.4,          # optional, number in [0, 1]; default 0.5
         "embedding": [...],         # optional, embedding_dim numbers; default zeros
         "title": "..."},            # optional string
        ...]}

CSV: a header row with the columns ``id,topic,quality,length`` and optionally ``popularity``,
``title`` and ``emb0 .. emb{E-1}`` (the embedding); the topic mixture is the one-hot of
``topic``.  Every problem raises ``ValueError`` naming the file, the item and the field.

State (``featurise``): a fixed-size vector that does not depend on the catalogue's size or ids,
so the same Q-network scores any catalogue with the same topics and embedding size.
Item features (``item_features``): what the Q-network's item tower sees for each item.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

RECENT = 3            # items in the "recent topics" window
DECAY = 0.8           # per-item decay of the long-term profiles (newest weight 1)
SKIP_WINDOW = 20      # newest skipped items that enter the state
COUNT_SCALE = 20.0    # counters are divided by these
MINUTES_SCALE = 30.0
LENGTH_SCALE = 4.0    # item length feature = minutes / 4
MAX_ITEMS = 100_000   # catalogue size cap (a file cannot make the runtime allocate gigabytes)
SATIATION_DECAY = 0.6  # per-item decay of the satiation (boredom) vector
TRUST0 = 0.55         # starting value of the quality average (the trust estimate)
TRUST_RATE = 0.3      # weight of the newest item in the quality average
RUN_SCALE = 10.0      # the topic run length is divided by this


@dataclass(frozen=True)
class Catalogue:
    ids: np.ndarray          # int64 [N] the app's item ids
    topic: np.ndarray        # int64 [N] primary topic
    topics: np.ndarray       # float32 [N, T] topic mixture (rows sum to 1)
    quality: np.ndarray      # float32 [N] in [0, 1]
    length: np.ndarray       # float32 [N] minutes
    popularity: np.ndarray   # float32 [N] in [0, 1]
    embedding: np.ndarray    # float32 [N, E]
    titles: tuple = ()
    index: dict = field(default_factory=dict, compare=False, repr=False)   # id -> row
    cache: dict = field(default_factory=dict, compare=False, repr=False)   # derived arrays

    @property
    def n_items(self) -> int:
        return int(self.topics.shape[0])

    @property
    def n_topics(self) -> int:
        return int(self.topics.shape[1])

    @property
    def embedding_dim(self) -> int:
        return int(self.embedding.shape[1])

    def rows(self, ids) -> list[int]:
        """Rows of known ids (the caller validated them)."""
        return [self.index[int(i)] for i in ids]

    def state_rows(self) -> np.ndarray:
        """float64 [N, T + E + 3]: topic mixture, embedding, quality, length, length x
        (1 - quality): what ``featurise`` gathers per history item (built once)."""
        hit = self.cache.get("state_rows")
        if hit is None:
            q, ln = self.quality.astype(np.float64), self.length.astype(np.float64)
            hit = self.cache["state_rows"] = np.concatenate(
                [self.topics, self.embedding, q[:, None], ln[:, None], (ln * (1.0 - q))[:, None]],
                1).astype(np.float64)
        return hit

    @classmethod
    def from_json(cls, data, source: str = "catalogue") -> "Catalogue":
        return parse_catalogue(data, source)


def _fail(source, where, msg):
    raise ValueError(f"{source}: {where}{msg}")


def _num(source, where, name, value, lo=-math.inf, hi=math.inf, lo_open=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(source, where, f"'{name}' must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < lo or v > hi or (lo_open and v <= lo):
        rng = f"({lo}, {hi}]" if lo_open else f"[{lo}, {hi}]"
        _fail(source, where, f"'{name}' must be a finite number in {rng}, got {value!r}")
    return v


def _vector(source, where, name, value, n, lo=-math.inf):
    if not isinstance(value, (list, tuple)) or len(value) != n:
        _fail(source, where, f"'{name}' must be a list of {n} numbers, got {value!r:.80}")
    return [_num(source, where, f"{name}[{j}]", x, lo) for j, x in enumerate(value)]


def parse_catalogue(data, source: str = "catalogue") -> Catalogue:
    """Validate a catalogue given as the JSON object above; ValueError names what is wrong."""
    if not isinstance(data, dict):
        _fail(source, "", "must be a JSON object with 'n_topics' and 'items'")
    t = data.get("n_topics")
    if isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= 1000:
        _fail(source, "", f"'n_topics' must be an integer in [1, 1000], got {t!r}")
    e = data.get("embedding_dim", 0)
    if isinstance(e, bool) or not isinstance(e, int) or not 0 <= e <= 1000:
        _fail(source, "", f"'embedding_dim' must be an integer in [0, 1000], got {e!r}")
    items = data.get("items")
    if not isinstance(items, list) or not items:
        _fail(source, "", "'items' must be a non-empty list of item objects")
    if len(items) > MAX_ITEMS:
        _fail(source, "", f"too many items ({len(items)}; at most {MAX_ITEMS})")
    n = len(items)
    ids, topic = np.zeros(n, np.int64), np.zeros(n, np.int64)
    topics, emb = np.zeros((n, t), np.float32), np.zeros((n, e), np.float32)
    qual, length, pop = np.zeros(n, np.float32), np.zeros(n, np.float32), np.full(n, 0.5, np.float32)
    titles, index = [], {}
    for r, it in enumerate(items):
        where = f"item {r}: "
        if not isinstance(it, dict):
            _fail(source, where, f"must be an object, got {it!r:.80}")
        i = it.get("id")
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < 2**62:
            _fail(source, where, f"'id' must be a non-negative integer, got {i!r}")
        if i in index:
            _fail(source, where, f"duplicate id {i}")
        where = f"item {r} (id {i}): "
        index[i] = r
        ids[r] = i
        tp = it.get("topic")
        if isinstance(tp, bool) or not isinstance(tp, int) or not 0 <= tp < t:
            _fail(source, where, f"'topic' must be an integer in [0, {t - 1}], got {tp!r}")
        topic[r] = tp
        if "topics" in it:
            mix = _vector(source, where, "topics", it["topics"], t, lo=0.0)
            if sum(mix) <= 0:
                _fail(source, where, "'topics' must have a positive sum")
            topics[r] = np.asarray(mix) / sum(mix)
        else:
            topics[r, tp] = 1.0
        for name, arr, lo, hi, lo_open in (("quality", qual, 0.0, 1.0, False),
                                          ("length", length, 0.0, 1e4, True)):
            if name not in it:
                _fail(source, where, f"missing '{name}'")
            arr[r] = _num(source, where, name, it[name], lo, hi, lo_open)
        if it.get("popularity") is not None:
            pop[r] = _num(source, where, "popularity", it["popularity"], 0.0, 1.0)
        if it.get("embedding") is not None:
            emb[r] = _vector(source, where, "embedding", it["embedding"], e)
        title = it.get("title", f"item {i}")
        titles.append(str(title)[:200])
    return Catalogue(ids, topic, topics, qual, length, pop, emb, tuple(titles), index)


def _csv_value(text: str):
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def read_catalogue_file(path, n_topics: int, embedding_dim: int) -> Catalogue:
    """Read a catalogue file (``.json`` or ``.csv``) and check it fits the model."""
    p = Path(path)
    source = f"catalogue file {str(p)!r}"
    if p.suffix.lower() not in (".json", ".csv"):
        raise ValueError(f"catalogue must be a .json or .csv file, got {str(p)!r}")
    try:
        if p.stat().st_size > 64 * 2**20:
            raise ValueError(f"{source} is larger than 64 MB")
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"catalogue cannot be read: {exc}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{source} is not UTF-8 text") from None
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{source} is not valid JSON ({exc})") from None
    else:
        data = _csv_catalogue(text, source, n_topics)
    cat = parse_catalogue(data, source)
    if cat.n_topics != n_topics or cat.embedding_dim != embedding_dim:
        raise ValueError(f"{source} has n_topics={cat.n_topics}, embedding_dim="
                         f"{cat.embedding_dim}; the model needs n_topics={n_topics}, "
                         f"embedding_dim={embedding_dim}")
    return cat


def _csv_catalogue(text: str, source: str, n_topics: int) -> dict:
    rows = list(csv.DictReader(text.splitlines()))
    if not rows:
        raise ValueError(f"{source} has no item rows (a header row, then one row per item)")
    cols = set(rows[0])
    missing = {"id", "topic", "quality", "length"} - cols
    if missing:
        raise ValueError(f"{source} lacks the column(s) {', '.join(sorted(missing))}")
    emb_cols = sorted((c for c in cols if c.startswith("emb") and c[3:].isdigit()),
                      key=lambda c: int(c[3:]))
    if [int(c[3:]) for c in emb_cols] != list(range(len(emb_cols))):
        raise ValueError(f"{source}: embedding columns must be emb0 .. emb{len(emb_cols) - 1}")
    items = []
    for r, row in enumerate(rows):
        it = {k: _csv_value(row[k] or "") for k in ("id", "topic", "quality", "length")}
        if row.get("popularity"):
            it["popularity"] = _csv_value(row["popularity"])
        if row.get("title"):
            it["title"] = row["title"]
        if emb_cols:
            it["embedding"] = [_csv_value(row[c] or "") for c in emb_cols]
        items.append(it)
    return {"n_topics": n_topics, "embedding_dim": len(emb_cols), "items": items}


# ------------------------------------------------------------------------------ features
def item_feature_dim(n_topics: int, embedding_dim: int) -> int:
    return n_topics + 3 + embedding_dim


def item_features(cat: Catalogue) -> np.ndarray:
    """float32 [N, T + 3 + E]: topic mixture, quality, length / 4, popularity, embedding."""
    return np.concatenate([cat.topics, cat.quality[:, None], cat.length[:, None] / LENGTH_SCALE,
                           cat.popularity[:, None], cat.embedding], 1).astype(np.float32)


def state_dim(n_topics: int, embedding_dim: int) -> int:
    return 4 * n_topics + embedding_dim + 8


_POW_LEN = 4096      # powers of the decays by age, precomputed (older items: computed)


def _powers(base: float) -> np.ndarray:
    return base ** np.arange(_POW_LEN - 1, -1, -1, dtype=np.float64)     # newest (age 0) last


_DECAY_POW, _SAT_POW, _KEEP_POW = (_powers(DECAY), _powers(SATIATION_DECAY),
                                   _powers(1.0 - TRUST_RATE))


def _by_age(table: np.ndarray, base: float, m: int) -> np.ndarray:
    """[m] weights base ** age, oldest first."""
    if m <= _POW_LEN:
        return table[_POW_LEN - m:]
    return base ** np.arange(m - 1, -1, -1, dtype=np.float64)


def featurise(rows: Sequence[int], cat: Catalogue, engagement=None, skipped=()) -> np.ndarray:
    """State (float32 [4T + E + 8]) of a user who consumed catalogue ``rows`` (oldest first).

    ``engagement``: per consumed item, the share watched or a rating scaled to [0, 1]
    (None = unknown, taken as 1).  ``skipped``: rows shown to the user and not consumed
    (oldest first; the newest SKIP_WINDOW count).

    [0:T)          mean topic mixture of the last RECENT items
    [T:2T)         topic profile: DECAY- and engagement-weighted mean over the history
    [2T:3T)        skipped profile: DECAY-weighted mean topic mixture of skipped items
    [3T:3T+E)      embedding profile (weighted like the topic profile)
    [3T+E:4T+E)    satiation: sum of the topic mixtures, weighted SATIATION_DECAY ** age (age in
                   items, newest 0): how much of each topic the user just had (boredom)
    4T+E .. +7     mean quality of the last RECENT items, len(history) / 20, minutes / 30,
                   minutes weighted by (1 - quality) / 30, mean engagement of the last RECENT
                   items, len(skipped window) / 20, the quality average (from TRUST0, weight
                   TRUST_RATE per item: the trust estimate), the run of newest items sharing the
                   newest item's primary topic / 10
    """
    t, e = cat.n_topics, cat.embedding_dim
    o = 4 * t + e
    obs = np.zeros(o + 8, np.float32)
    obs[o + 6] = TRUST0
    m = len(rows)
    if m:
        x = cat.state_rows()[rows]                         # [m, T + E + 3]
        r = min(m, RECENT)
        recent = x[-r:].sum(axis=0) / r
        obs[:t] = recent[:t]
        obs[o] = recent[t + e]
        w = _by_age(_DECAY_POW, DECAY, m)
        eng = None
        if engagement is not None:
            eng = np.asarray(engagement, np.float64)
            w = w * eng
        ws = w.sum()
        if ws > 0:
            prof = (w @ x[:, :t + e]) / ws
            obs[t:2 * t] = prof[:t]
            obs[3 * t:3 * t + e] = prof[t:]
        obs[3 * t + e:o] = _by_age(_SAT_POW, SATIATION_DECAY, m) @ x[:, :t]
        sums = x[:, t + e + 1:].sum(axis=0)
        obs[o + 1] = m / COUNT_SCALE
        obs[o + 2] = sums[0] / MINUTES_SCALE
        obs[o + 3] = sums[1] / MINUTES_SCALE
        obs[o + 4] = 1.0 if eng is None else eng[-r:].sum() / r
        keep = _by_age(_KEEP_POW, 1.0 - TRUST_RATE, m)
        obs[o + 6] = TRUST0 * keep[0] * (1.0 - TRUST_RATE) + TRUST_RATE * (keep @ x[:, t + e])
        topic = cat.topic
        last, run = topic[rows[-1]], 1
        while run < m and topic[rows[-1 - run]] == last:
            run += 1
        obs[o + 7] = run / RUN_SCALE
    if len(skipped):
        s = skipped[-SKIP_WINDOW:]
        n = len(s)
        w = _DECAY_POW[_POW_LEN - n:]
        obs[2 * t:3 * t] = (w @ cat.state_rows()[s, :t]) / w.sum()
        obs[o + 5] = n / COUNT_SCALE
    return obs
