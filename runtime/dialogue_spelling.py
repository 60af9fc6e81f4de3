"""Typo-tolerant word correction for the dialogue understanding (edit distance, no model).

A word that is not in the vocabulary (slot values, synonyms, request words, restaurant-name
words, number and time words) and not a common English word is corrected to the vocabulary
word within optimal-string-alignment distance 1 (words of 4-7 letters; 4-letter words only by
a swap or when the first letter is kept) or 2 (8 letters or more). Candidates come from a
deletion index (the SymSpell idea), so a lookup costs a few dict probes; results are cached.

Shorter words are left alone except for the two that turn a sentence round, "not" and "but":
an unknown three-letter word one edit from one of them and nearer to it than to any common
word of two to four letters ("ont", "nto", "mot", "ubt", "btu"), and the two-letter "nt" and
"bt", are read as that word, so that "nto Jade Garden" is no request for Jade Garden; so are
the four-letter words that are one of them, or another known three-letter word, with a
letter doubled ("noot", "nnot", "buut", "ffor"): "noot" is one edit from "noon" too.
"""
from __future__ import annotations

import re

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")      # "doesn't" is one word (never corrected)


def osa_distance(a: str, b: str, cap: int = 3) -> int:
    """Optimal string alignment distance (Levenshtein plus adjacent swaps), capped."""
    if abs(len(a) - len(b)) >= cap:
        return cap
    prev2, prev = None, list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return min(prev[-1], cap)


_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_NEAR = {(r[i], r[j]) for r in _ROWS for i in range(len(r)) for j in (i - 1, i + 1)
         if 0 <= j < len(r)}


def typo_cost(a: str, b: str) -> float:
    """A finer distance for ranking candidates: a swap of neighbouring letters costs 0.8, a
    substitution by a neighbouring key 0.9, any other edit 1."""
    prev2, prev = None, [float(j) for j in range(len(b) + 1)]
    for i in range(1, len(a) + 1):
        cur = [float(i)] + [0.0] * len(b)
        for j in range(1, len(b) + 1):
            x, y = a[i - 1], b[j - 1]
            sub = 0.0 if x == y else 0.9 if (x, y) in _NEAR else 1.0
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + sub)
            if i > 1 and j > 1 and x == b[j - 2] and a[i - 2] == y:
                cur[j] = min(cur[j], prev2[j - 2] + 0.8)
        prev2, prev = prev, cur
    return prev[-1]


def _deletes(word: str, depth: int) -> set[str]:
    out, frontier = {word}, {word}
    for _ in range(depth):
        frontier = {w[:i] + w[i + 1:] for w in frontier for i in range(len(w))}
        out |= frontier
    return out


SHORT_WORDS = ("not", "but")        # short words whose typos are corrected (see above)


def _max_distance(word: str) -> int:
    return 0 if len(word) < 4 else 1 if len(word) < 8 else 2


class Speller:
    """Corrects single words to a vocabulary; ``correct(word) -> (word, confidence)``.

    The ``protected`` (common) words are never corrected and are candidates too, so that a
    typo of "what" does not become "west". Candidates within the distance bound are ranked by
    :func:`typo_cost`, then by keeping the first letter, then common words first.
    Confidence: 1.0 unchanged, 0.7 for one best correction, 0.5 when two tie."""

    def __init__(self, vocabulary, protected=(), values=()):
        self.vocab = [w for w in dict.fromkeys(vocabulary) if w]
        self.values = set(values)         # words of slot values (never reached by a 1st letter)
        self.slot_words = set(self.vocab)
        targets = [w for w in dict.fromkeys(list(protected) + self.vocab) if w.isalpha()]
        self.known = set(self.vocab) | set(protected)
        self.order = {w: i for i, w in enumerate(targets)}
        self.index: dict[str, list[str]] = {}
        for w in targets:
            for d in _deletes(w, _max_distance(w) or 1):
                self.index.setdefault(d, []).append(w)
        self._cache: dict[str, tuple[str, float]] = {}
        self.short = [w for w in self.known if 2 <= len(w) <= 4 and w not in SHORT_WORDS]
        self.three = {w for w in self.known if len(w) == 3 and w.isalpha()} | set(SHORT_WORDS)

    def correct(self, word: str) -> tuple[str, float]:
        hit = self._cache.get(word)
        if hit is not None:
            return hit
        hit = self._correct(word)
        if len(self._cache) > 50_000:
            self._cache.clear()
        self._cache[word] = hit
        return hit

    def _correct(self, word: str) -> tuple[str, float]:
        d_max = _max_distance(word)
        if word in self.known or not word.isalpha():
            return word, 1.0
        if d_max == 0:
            return self._correct_short(word)
        undoubled = {word[:i] + word[i + 1:] for i in range(len(word) - 1)
                     if word[i] == word[i + 1]} & self.three
        if len(word) == 4 and len(undoubled) == 1:   # "noot", "nnot", "ffor": not "noon"
            return undoubled.pop(), 0.7
        cands = set()
        for d in _deletes(word, d_max):
            cands.update(self.index.get(d, ()))
        ranked = []
        for c in cands:
            if len(c) < 4:
                continue
            d = osa_distance(word, c, d_max + 1)
            if d > min(d_max, _max_distance(c)):
                continue
            if len(word) == 4 and d == 1 and word[0] != c[0] and sorted(word) != sorted(c) \
                    and not (word[1:] == c[1:] and (word[0], c[0]) in _NEAR
                             and c not in self.values):
                continue      # the first letter of a short word is kept, unless a common
                              # word is one neighbouring key away: "eant" is "want", not "east"
            ranked.append((typo_cost(word, c), c[0] != word[0], c in self.slot_words,
                           self.order[c], c))
        if not ranked:
            return word, 1.0
        ranked.sort()
        tie = len(ranked) > 1 and ranked[0][:2] == ranked[1][:2]
        return ranked[0][-1], 0.5 if tie else 0.7

    def _correct_short(self, word: str) -> tuple[str, float]:
        """A typo of "not" or "but" (see the module docstring), else the word unchanged."""
        if len(word) == 2:
            hit = [w for w in SHORT_WORDS if word == w[0] + w[2]]
            return (hit[0], 0.7) if hit else (word, 1.0)
        if len(word) != 3:
            return word, 1.0
        ranked = sorted((typo_cost(word, c), c not in SHORT_WORDS, c)
                        for c in list(SHORT_WORDS) + self.short
                        if osa_distance(word, c, 2) == 1)
        if not ranked or ranked[0][1] or (len(ranked) > 1 and ranked[1][0] <= ranked[0][0]):
            return word, 1.0
        return ranked[0][2], 0.7

    def correct_text(self, text: str) -> tuple[str, dict[str, float]]:
        """``text`` (normalised, lower case) with every word corrected, and the corrected
        words with their confidence."""
        fixed: dict[str, float] = {}

        def sub(m):
            w, conf = self.correct(m.group(0))
            if conf < 1.0:
                fixed[w] = min(conf, fixed.get(w, 1.0))
            return w
        return _WORD.sub(sub, text), fixed
