"""Byte-pair-encoding subwords over the text model's characters (pure Python, no dependencies).

Text is first cut into *pieces*: a run of letters with at most one leading space, or any single
other character (space, newline, digit, punctuation). Merges never cross a piece, so a token is
a character, a word, a word with its leading space, or a part of one. Token ids: the character
vocabulary first (id = the character's id in the ``Codec``), then one id per merge in the order
learned; :func:`learn_merges` learns them from training text, :class:`BPE` applies them (lowest
rank first, like GPT-2's tokenizer) and caches each piece's tokens.

The same text always gives the same tokens, so the bits of a text under the model are the bits
of its (unique) tokenization; bits per character divide that by the number of characters.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict

PIECE_RE = re.compile(r" ?[A-Za-z]+|[^A-Za-z]", re.DOTALL)
CACHE_LIMIT = 200_000


def pieces(text: str) -> list[str]:
    return PIECE_RE.findall(text)


class BPE:
    """Encoder/decoder for a character list plus ordered merges (pairs of token ids)."""

    def __init__(self, chars: list[str], merges: list[list[int]]):
        self.tokens = list(chars)
        self.ranks: dict = {}
        for rank, (a, b) in enumerate(merges):
            self.ranks[(a, b)] = rank
            self.tokens.append(self.tokens[a] + self.tokens[b])
        self.char_ids = {c: i for i, c in enumerate(chars)}
        self.n_chars = len(chars)
        self._cache: dict = {}

    def __len__(self) -> int:
        return len(self.tokens)

    def encode_piece(self, piece: str, unk: int = 0) -> list[int]:
        hit = self._cache.get(piece)
        if hit is not None:
            return hit
        ids = [self.char_ids.get(c, unk) for c in piece]
        while len(ids) > 1:
            best, at = None, -1
            for i in range(len(ids) - 1):
                r = self.ranks.get((ids[i], ids[i + 1]))
                if r is not None and (best is None or r < best):
                    best, at = r, i
            if best is None:
                break
            ids[at: at + 2] = [self.n_chars + best]
        if len(self._cache) < CACHE_LIMIT:
            self._cache[piece] = ids
        return ids

    def encode(self, text: str, unk: int = 0) -> list[int]:
        out: list[int] = []
        for p in pieces(text):
            out.extend(self.encode_piece(p, unk))
        return out

    def decode(self, ids) -> str:
        return "".join(self.tokens[int(i)] for i in ids)


def learn_merges(text: str, chars: list[str], n_merges: int, unk: int = 0) -> list[list[int]]:
    """The ``n_merges`` most useful merges for ``text`` (greedy BPE on piece counts).

    Ties between equally frequent pairs go to the smaller (first id, second id), so the result
    depends only on the text and the character list."""
    char_ids = {c: i for i, c in enumerate(chars)}
    words = [([char_ids.get(c, unk) for c in p], n) for p, n in Counter(pieces(text)).items()]
    pair_count: Counter = Counter()
    where: dict = defaultdict(set)
    for w, (ids, n) in enumerate(words):
        for a, b in zip(ids, ids[1:]):
            pair_count[(a, b)] += n
            where[(a, b)].add(w)
    merges: list[list[int]] = []
    new_id = len(chars)
    while len(merges) < n_merges and pair_count:
        top = max(pair_count.values())
        if top < 2:
            break
        pair = min(p for p, c in pair_count.items() if c == top)
        merges.append([pair[0], pair[1]])
        for w in where.pop(pair, ()):
            ids, n = words[w]
            for a, b in zip(ids, ids[1:]):          # remove the word's old pairs
                pair_count[(a, b)] -= n
                if pair_count[(a, b)] <= 0:
                    del pair_count[(a, b)]
            merged, i = [], 0
            while i < len(ids):
                if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
                    merged.append(new_id)
                    i += 2
                else:
                    merged.append(ids[i])
                    i += 1
            words[w] = (merged, n)
            for a, b in zip(merged, merged[1:]):     # add its new pairs
                pair_count[(a, b)] += n
                where[(a, b)].add(w)
        pair_count.pop(pair, None)
        new_id += 1
    return merges
