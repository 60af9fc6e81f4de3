"""Baselines for the text kind, measured on the same split and characters as the model.

* :func:`kneser_ney_bpc`: a character n-gram model with interpolated Kneser-Ney smoothing
  (Chen & Goodman's interpolated KN, one absolute discount per order ``D = n1 / (n1 + 2 n2)``,
  continuation counts for every order below the highest, a uniform distribution over the
  vocabulary below order 1). Counting is vectorised: every n-gram is a 64-bit polynomial hash
  of its character ids (collisions among a few million n-grams: probability ~1e-6).
* :func:`compressor_bpc`: a general-purpose compressor conditioned on the training text:
  ``bits(compress(train + held-out)) - bits(compress(train))`` per held-out character
  (xz/LZMA at ``-9e``; PPMd order 16 too when the optional ``pyppmd`` package is installed).
* :func:`unigram_bpc`: character frequencies with add-one smoothing.

Both texts are first mapped through the model's character codec (unknown characters become
UNK), so every row of the table scores exactly the same character sequence.
"""
from __future__ import annotations

import lzma

import numpy as np

_MULT = np.uint64(0x9E3779B97F4A7C15)


def _gram_keys(ids: np.ndarray, n: int) -> np.ndarray:
    """Hash of the n-gram ending at each position i >= n - 1 (length len(ids) - n + 1)."""
    ids = ids.astype(np.uint64) + np.uint64(1)
    m = len(ids) - n + 1
    key = np.zeros(m, np.uint64)
    with np.errstate(over="ignore"):
        for j in range(n):
            key = key * _MULT + ids[j: j + m]
            key ^= key >> np.uint64(29)
    return key


def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """values[k] for each query key (0 where absent); ``keys`` sorted and unique."""
    pos = np.searchsorted(keys, query)
    pos = np.minimum(pos, len(keys) - 1)
    hit = keys[pos] == query
    return np.where(hit, values[pos], 0)


class KneserNey:
    """Interpolated Kneser-Ney character model of order ``order`` over ids in [0, vocab)."""

    def __init__(self, train_ids: np.ndarray, order: int, vocab_size: int):
        self.order, self.vocab_size = order, vocab_size
        ids = np.asarray(train_ids, np.int64)
        self.tables = {}
        for n in range(1, order + 1):
            full = _gram_keys(ids, n)                              # n-gram at position i+n-1
            ctx = _gram_keys(ids, n - 1)[: len(full)] if n > 1 else np.zeros(len(full), np.uint64)
            if n == order:                                         # raw counts
                keys, first, counts = np.unique(full, return_index=True, return_counts=True)
            else:                                                  # continuation counts
                longer = _gram_keys(ids, n + 1)                    # (n+1)-gram at i+n
                _, first_l = np.unique(longer, return_index=True)
                suffix = full[1:][first_l]                         # its last n characters
                keys, counts = np.unique(suffix, return_counts=True)
                first = _first_positions(full, keys)
            ctx_of = ctx[first]
            n1, n2 = np.sum(counts == 1), np.sum(counts == 2)
            d = float(n1 / (n1 + 2 * n2)) if n1 + n2 else 0.5
            d = min(max(d, 0.05), 0.95)     # degenerate counts (tiny texts): keep 0 < D < 1
            ck, inv = np.unique(ctx_of, return_inverse=True)
            total = np.bincount(inv, weights=counts).astype(np.float64)
            types = np.bincount(inv).astype(np.float64)
            self.tables[n] = (keys, counts.astype(np.float64), ck, total, types, d)

    def bits(self, history: np.ndarray, ids: np.ndarray) -> float:
        """Total bits of ``ids`` given the preceding ``history`` (its last order-1 chars)."""
        ctx = np.asarray(history[-(self.order - 1):], np.int64) if self.order > 1 else []
        seq = np.concatenate([np.asarray(ctx, np.int64), np.asarray(ids, np.int64)])
        off = len(seq) - len(ids)
        p = np.full(len(ids), 1.0 / self.vocab_size)
        for n in range(1, self.order + 1):
            keys, counts, ck, total, types, d = self.tables[n]
            pos = np.arange(off, len(seq))
            valid = pos - n + 1 >= 0
            full = np.zeros(len(ids), np.uint64)
            ctx = np.zeros(len(ids), np.uint64)
            g = _gram_keys(seq, n)
            full[valid] = g[pos[valid] - n + 1]
            if n > 1:
                c = _gram_keys(seq, n - 1)
                ctx[valid] = c[pos[valid] - n + 1]
            c_hw = _lookup(keys, counts, full) * valid
            c_h = _lookup(ck, total, ctx) * valid
            t_h = _lookup(ck, types, ctx) * valid
            seen = c_h > 0
            p = np.where(seen, (np.maximum(c_hw - d, 0.0) + d * t_h * p) / np.maximum(c_h, 1e-12),
                         p)
        return float(-np.sum(np.log2(p)))


def _first_positions(full: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Index of some occurrence of each key (sorted unique) in ``full``."""
    uk, first = np.unique(full, return_index=True)
    return first[np.searchsorted(uk, keys)]


def kneser_ney_bpc(train_ids, val_ids, order: int, vocab_size: int) -> float:
    model = KneserNey(train_ids, order, vocab_size)
    return model.bits(np.asarray(train_ids), np.asarray(val_ids)) / len(val_ids)


def compressor_bpc(train_text: str, val_text: str, method: str = "xz") -> float:
    """Bits per held-out character of a compressor that has first seen the training text."""
    a, b = train_text.encode("utf-8"), (train_text + val_text).encode("utf-8")
    if method == "xz":
        comp = lambda data: lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)  # noqa: E731
    elif method == "ppmd":
        import pyppmd

        comp = lambda data: pyppmd.compress(data, max_order=16, mem_size=256 << 20)  # noqa
    else:
        raise ValueError(f"unknown compressor {method!r}")
    return 8.0 * (len(comp(b)) - len(comp(a))) / len(val_text)


def unigram_bpc(train_ids, val_ids, vocab_size: int) -> float:
    counts = np.bincount(train_ids, minlength=vocab_size).astype(np.float64) + 1.0
    p = counts / counts.sum()
    return float(-np.mean(np.log2(p[val_ids])))


def baselines(data, orders=(5, 10)) -> dict:
    """All baselines on a ``text_data.Data`` split (texts mapped through its codec)."""
    train_text = data.codec.decode(data.train_ids)
    val_text = data.codec.decode(data.val_ids)
    out = {"unigram": unigram_bpc(data.train_ids, data.val_ids, data.vocab_size)}
    for n in orders:
        out[f"kneser_ney_{n}gram"] = kneser_ney_bpc(data.train_ids, data.val_ids, n,
                                                    data.vocab_size)
    out["xz_9e"] = compressor_bpc(train_text, val_text, "xz")
    try:
        out["ppmd_16"] = compressor_bpc(train_text, val_text, "ppmd")
    except ImportError:
        pass
    return out
