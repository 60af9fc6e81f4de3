"""Token choice for the text model: temperature, top-k, top-p, and the loop-stopping controls.

Order (as in onnxruntime-genai / Hugging Face): the logits row (UNK already at -inf) gets the
repetition penalty, then the no-repeat n-gram ban, then logits / temperature, the top-k
filter, softmax (float32), the top-p filter on the sorted probabilities (the smallest set
whose mass reaches p; the most likely token is always kept), renormalisation, and one uniform
number from ``rng`` picks the token. ``temperature == 0`` (or ``top_k == 1``) is greedy.

* ``repetition_penalty`` r >= 1 (CTRL, Keskar et al. 2019): every token already present in
  the prompt or the generated text has its logit divided by r when positive, multiplied by r
  when negative.
* ``no_repeat_ngram_size`` n >= 1: a token that would complete an n-gram of tokens already
  present in the prompt or the generated text gets probability 0 (if that bans every token,
  the ban is lifted for that step).
"""
from __future__ import annotations

import numpy as np


class History:
    """Tokens seen so far (prompt + generated) and the indexes the controls need."""

    def __init__(self, ngram: int, penalty: float):
        self.ngram, self.penalty = ngram, penalty
        self.tokens: list[int] = []
        self.seen: set[int] = set()
        self.follow: dict[tuple, set] = {}

    def add(self, token: int) -> None:
        self.tokens.append(token)
        if self.penalty != 1.0:
            self.seen.add(token)
        n = self.ngram
        if n >= 1 and len(self.tokens) >= n:
            key = tuple(self.tokens[len(self.tokens) - n: -1]) if n > 1 else ()
            self.follow.setdefault(key, set()).add(token)

    def adjust(self, logits: np.ndarray) -> np.ndarray:
        """The logits row with both controls applied (a copy when anything changes)."""
        if self.penalty != 1.0 and self.seen:
            idx = np.fromiter(self.seen, np.int64, len(self.seen))
            logits = logits.copy()
            vals = logits[idx]
            logits[idx] = np.where(vals > 0, vals / self.penalty, vals * self.penalty)
        n = self.ngram
        if n >= 1 and len(self.tokens) >= n - 1:
            key = tuple(self.tokens[len(self.tokens) - n + 1:]) if n > 1 else ()
            banned = self.follow.get(key)
            if banned:
                out = logits.copy()
                out[np.fromiter(banned, np.int64, len(banned))] = -np.inf
                if np.isfinite(out).any():
                    logits = out
        return logits


def sample_next(logits: np.ndarray, rng, temperature: float, top_k: int, top_p: float,
                buffers: tuple | None = None) -> int:
    """One id from a float32 logits row (UNK and banned tokens already at -inf).

    ``buffers``: optional two float32 arrays shaped like ``logits``, reused by the plain
    temperature path so that a generation loop allocates nothing per token.
    """
    if temperature == 0.0 or top_k == 1:
        return int(logits.argmax())
    if top_k == 0 and top_p >= 1.0:            # plain temperature sampling: the fast path
        z, cum = buffers if buffers is not None else (np.empty_like(logits),
                                                      np.empty_like(logits))
        np.subtract(logits, logits.max(), out=z)
        z *= np.float32(1.0 / temperature)
        np.exp(z, out=z)
        np.cumsum(z, out=cum)
        j = int(cum.searchsorted(rng.random() * cum[-1], side="right"))
        return min(j, cum.shape[0] - 1)
    if 0 < top_k < logits.shape[0]:
        idx = np.argpartition(logits, -top_k)[-top_k:]
        sub = logits[idx]
    else:
        idx = None
        sub = logits
    z = sub / np.float32(temperature)
    z = z - z.max()
    p = np.exp(z, dtype=np.float32)
    p /= p.sum(dtype=np.float32)
    if top_p < 1.0:
        order = np.argsort(-p, kind="stable")
        ps = p[order]
        cum = np.cumsum(ps, dtype=np.float32)
        keep = int(np.searchsorted(cum, np.float32(top_p))) + 1   # smallest set with mass >= p
        keep = max(1, min(keep, ps.shape[0]))
        ps = ps[:keep]
        cum = np.cumsum(ps, dtype=np.float32)
        j = int(np.searchsorted(cum, rng.random() * cum[-1], side="right"))
        j = order[min(j, keep - 1)]
    else:
        cum = np.cumsum(p, dtype=np.float32)
        j = int(np.searchsorted(cum, rng.random() * cum[-1], side="right"))
        j = min(j, p.shape[0] - 1)
    return int(j if idx is None else idx[j])


class StopScanner:
    """Cuts generated text at the first stop string; holds back what could still become one."""

    def __init__(self, stop: list[str] | None):
        self.stop = stop or []
        self.longest = max((len(s) for s in self.stop), default=0)
        self.text = ""
        self.emitted = 0
        self.stopped = False

    def push(self, piece: str) -> str:
        """Add generated text; returns what can be shown now ('' if nothing)."""
        self.text += piece
        if not self.stop:
            out, self.emitted = self.text[self.emitted:], len(self.text)
            return out
        text = self.text
        window_start = max(0, len(text) - len(piece) - self.longest)
        cut = min((p for p in (text.find(s, window_start) for s in self.stop) if p >= 0),
                  default=-1)
        if cut >= 0:
            self.stopped = True
            out = text[self.emitted:cut] if cut > self.emitted else ""
            self.text, self.emitted = text[:cut], cut
            return out
        hold = 0
        for s in self.stop:
            for k in range(min(len(s) - 1, len(text) - self.emitted), hold, -1):
                if s.startswith(text[-k:]):
                    hold = k
                    break
        end = len(text) - hold
        out = text[self.emitted:end] if end > self.emitted else ""
        self.emitted = max(self.emitted, end)
        return out

    def flush(self) -> str:
        out = self.text[self.emitted:]
        self.emitted = len(self.text)
        return out
