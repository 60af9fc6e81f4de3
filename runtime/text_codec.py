"""Characters <-> ids for the text model, with a documented mapping of unseen characters.

The vocabulary holds the training text's most frequent characters (``chars[unk]`` is a
placeholder for the rest). An unknown character is mapped, in order, through a small table of
typographic equivalents (curly quotes -> straight quotes, dashes -> ``-``, ``...``, no-break
space -> space, tab -> 4 spaces, CR dropped), then Unicode NFKD with combining marks removed
(``\u00e9`` -> ``e``, ``\ufb01`` -> ``fi``) when every resulting character is known, else UNK.
The trainer maps its corpus through this same code.
"""
from __future__ import annotations

import unicodedata

import numpy as np

PROMPT_CONTEXT = 1024        # only the last PROMPT_CONTEXT characters of a prompt are fed

# Typographic equivalents tried before Unicode normalisation (documented above).
FALLBACK = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2033": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2212": "-",
    "\u2026": "...", "\u00a0": " ", "\u2009": " ", "\u202f": " ", "\t": "    ", "\r": "",
    "\u00ab": '"', "\u00bb": '"', "\u00d7": "x", "\u2022": "*",
}


class Codec:
    """Characters <-> ids for a vocabulary ``chars`` (``chars[unk]`` is a placeholder)."""

    def __init__(self, chars, unk: int = 0):
        self.chars = list(chars)
        self.unk = int(unk)
        self.ids = {c: i for i, c in enumerate(self.chars) if i != self.unk}
        self._unseen: dict[str, tuple] = {}
        self._decode = np.array(self.chars, dtype=object)

    def char_ids(self, ch: str) -> tuple:
        """Ids for one character: itself, its documented fallback, or (unk,)."""
        i = self.ids.get(ch)
        if i is not None:
            return (i,)
        cached = self._unseen.get(ch)
        if cached is not None:
            return cached
        rep = FALLBACK.get(ch)
        if rep is None:
            rep = "".join(c for c in unicodedata.normalize("NFKD", ch)
                          if not unicodedata.combining(c))
            if not rep or rep == ch:
                rep = None
        if rep is not None and all(c in self.ids for c in rep):
            ids = tuple(self.ids[c] for c in rep)
        else:
            ids = (self.unk,)
        if len(self._unseen) < 4096:
            self._unseen[ch] = ids
        return ids

    def encode(self, text: str) -> np.ndarray:
        ids = self.ids
        out: list[int] = []
        append = out.append
        for ch in text:
            i = ids.get(ch)
            if i is None:
                out.extend(self.char_ids(ch))
            else:
                append(i)
        return np.asarray(out, dtype=np.int64)

    def decode(self, ids) -> str:
        return "".join(self._decode[np.asarray(ids, dtype=np.int64)])
