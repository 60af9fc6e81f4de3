"""Text generation on device: a character-level GRU stepped one character at a time.

    from runtime import generate
    generate("text", prompt="The list ", max_tokens=200, temperature=0.8, seed=1)
    for piece in generate("text", prompt="def ", stream=True, seed=1): print(piece, end="")

Model files (written by ``trainer/text.py``): ``step`` (ONNX, and its dynamically quantized
``step_int8``, picked by ``precision="int8"``) maps inputs ``token`` int64 ``[B]`` and ``state``
float32 ``[B, H]`` to two outputs, in order: the next-character logits float32 ``[B, V]`` and
the new state ``[B, H]``; ``vocab`` (JSON) lists the characters (id = position), the UNK id, the
start character and the hidden size. A prompt is encoded by stepping the same model (at most
1,024 steps, a few milliseconds). Each step reuses buffers bound to the session (no per-token
allocation); onnxruntime runs with the registry's settings (1 intra-op thread by default).

Options (validated before anything is allocated; a bad value raises ``ValueError``):

* ``prompt`` (str, default ``""``): text to continue. At most 100,000 characters are accepted;
  only the **last 1,024 characters** condition the model (a GRU's memory is far shorter).
  Generation always starts from a zero state fed the start character ``"\\n"`` (paragraphs start
  after a newline in the corpus), then the prompt; an empty prompt starts a new paragraph.
* ``max_tokens`` (int, 0..4096, default 200): characters generated at most (one token = one
  character).
* ``temperature`` (float, 0..100, default 0.8): ``0`` is greedy decoding (argmax) and ignores
  the seed and ``top_k``/``top_p``.
* ``top_k`` (int, 0..1000, default 0 = off): keep the k most likely characters.
* ``top_p`` (float, 0 < p <= 1, default 1.0 = off): nucleus sampling.
* ``stop`` (list of 1..16 non-empty strings of at most 64 characters, or None): generation
  ends at the first occurrence of any stop string in the *generated* text; the returned text
  ends just before it (the stop string is not included).
* ``stream`` (bool, default False): return an iterator of ``str`` pieces as they are produced;
  ``"".join`` of the pieces equals the non-streamed result for the same arguments and seed.
  Text that could be the beginning of a stop string is held back until it is decided.

Sampling follows onnxruntime-genai: logits / temperature, top-k filter, softmax (float32),
top-p filter on the sorted probabilities (the smallest set whose mass reaches p; the most
likely character is always kept), renormalise, draw one uniform number from ``rng``.

Characters: the vocabulary holds the corpus' most frequent characters. An unknown character
in the prompt is mapped, in order, through a small table of typographic equivalents
(curly quotes -> straight quotes, dashes -> ``-``, ``...``, no-break space -> space, tab -> 4
spaces, CR dropped), then Unicode NFKD with combining marks removed (``é`` -> ``e``,
``ﬁ`` -> ``fi``) when every resulting character is known, else the UNK id. The model never
generates UNK (its probability is set to zero).
"""
from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from runtime import options as _opt
from runtime import registry
from runtime.errors import ModelError

KIND = "text"
OPTIONS = {
    "prompt": "",
    "max_tokens": 200,
    "temperature": 0.8,
    "top_k": 0,
    "top_p": 1.0,
    "stop": None,
    "stream": False,
}
MAX_PROMPT_CHARS = 100_000   # longer prompts are rejected
PROMPT_CONTEXT = 1024        # only the last PROMPT_CONTEXT characters are fed to the model
MAX_TOKENS = 4096
MAX_STOP = 16
MAX_STOP_LEN = 64

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


_codecs: dict = {}


def codec(models_dir) -> tuple[Codec, dict]:
    vocab = registry.load_json(KIND, "vocab", models_dir)
    key = id(vocab)
    if key not in _codecs:
        _codecs.clear()
        _codecs[key] = (Codec(vocab["chars"], vocab["unk"]), vocab)
    return _codecs[key]


# ---------------------------------------------------------------------------- sampling
def sample_next(logits: np.ndarray, rng, temperature: float, top_k: int, top_p: float,
                buffers: tuple | None = None) -> int:
    """One id from a float32 logits row (UNK already masked to -inf).

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


class Stepper:
    """Batch-1 wrapper around the step session: feed one id, get the logits row.

    All buffers (token, state, logits) are allocated once per generation. Where onnxruntime
    allows it, they are bound to the session with an IOBinding so that a step allocates
    nothing and skips the feed-dict conversion (about 15 us of a 35-50 us step); otherwise
    ``session.run`` is used. Both paths compute the same numbers (tested).
    """

    def __init__(self, sess, hidden: int, vocab_size: int, unk: int, bind: bool = True):
        self.sess = sess
        self.inputs = [i.name for i in sess.get_inputs()]
        self.outputs = [o.name for o in sess.get_outputs()]
        self.token = np.zeros((1,), dtype=np.int64)
        self.state = np.zeros((1, hidden), dtype=np.float32)
        self.new_state = np.zeros((1, hidden), dtype=np.float32)
        self.logits = np.zeros((1, vocab_size), dtype=np.float32)
        self.row = self.logits[0]
        self.unk = unk
        self.buffers = (np.empty_like(self.row), np.empty_like(self.row))
        self._bound = self._bind() if bind else None

    def _bind(self):
        try:
            import onnxruntime as ort

            io = self.sess.io_binding()
            values = [ort.OrtValue.ortvalue_from_numpy(a) for a in
                      (self.token, self.state, self.logits, self.new_state)]
            io.bind_ortvalue_input(self.inputs[0], values[0])
            io.bind_ortvalue_input(self.inputs[1], values[1])
            io.bind_ortvalue_output(self.outputs[0], values[2])
            io.bind_ortvalue_output(self.outputs[1], values[3])
            # the C-level call: the Python wrapper's run_with_iobinding adds ~50 us of syncs
            run = self.sess._sess.run_with_iobinding
            args = (io._iobinding, ort.RunOptions())
            return run, args, values, io
        except Exception:  # an onnxruntime without these internals: plain run()
            return None

    def feed(self, token_id: int) -> np.ndarray:
        self.token[0] = token_id
        try:
            if self._bound is not None:
                self._bound[0](*self._bound[1])
                np.copyto(self.state, self.new_state)
            else:
                logits, state = self.sess.run(
                    self.outputs, {self.inputs[0]: self.token, self.inputs[1]: self.state})
                np.copyto(self.logits, logits)
                np.copyto(self.state, state)
        except Exception as exc:  # onnxruntime's own exception types
            raise ModelError(f"onnxruntime failed to run the text step model: "
                             f"{str(exc).splitlines()[0][:300]}") from None
        row = self.row
        row[self.unk] = -np.inf
        return row


def _check(prompt, max_tokens, temperature, top_k, top_p, stop, stream):
    prompt = _opt.check_str("prompt", prompt, max_len=MAX_PROMPT_CHARS)
    max_tokens = _opt.check_int("max_tokens", max_tokens, 0, MAX_TOKENS)
    temperature = _opt.check_float("temperature", temperature, 0.0, 100.0)
    top_k = _opt.check_int("top_k", top_k, 0, 1000)
    top_p = _opt.check_float("top_p", top_p, 0.0, 1.0)
    if top_p <= 0.0:
        raise ValueError(f"top_p must be in (0, 1] (1.0 turns it off), got {top_p!r}")
    if stop is not None:
        stop = _opt.check_str_list("stop", stop, max_items=MAX_STOP, max_len=MAX_STOP_LEN)
        if any(s == "" for s in stop):
            raise ValueError("stop strings must be non-empty strings (or stop=None)")
        stop = list(dict.fromkeys(stop)) or None
    stream = _opt.check_bool("stream", stream)
    return prompt, max_tokens, temperature, top_k, top_p, stop, stream


def generate(*, rng: np.random.Generator, models_dir: Path, precision: str, prompt="",
             max_tokens=200, temperature=0.8, top_k=0, top_p=1.0, stop=None, stream=False):
    prompt, max_tokens, temperature, top_k, top_p, stop, stream = _check(
        prompt, max_tokens, temperature, top_k, top_p, stop, stream)
    cod, vocab = codec(models_dir)
    sess = registry.session(KIND, "step", models_dir, precision)   # ModelError raised now
    stepper = Stepper(sess, int(vocab["hidden"]), len(cod.chars), cod.unk)
    pieces = _pieces(stepper, cod, vocab, prompt, max_tokens, temperature, top_k, top_p, stop,
                     rng)
    return pieces if stream else "".join(pieces)


def _pieces(stepper: Stepper, cod: Codec, vocab: dict, prompt: str, max_tokens: int,
            temperature: float, top_k: int, top_p: float, stop, rng) -> Iterator[str]:
    ids = cod.encode(vocab["start"] + prompt[-PROMPT_CONTEXT:])
    logits = None
    for i in ids:
        logits = stepper.feed(int(i))
    chars = cod.chars
    if not stop:
        for n in range(max_tokens, 0, -1):
            j = sample_next(logits, rng, temperature, top_k, top_p, stepper.buffers)
            yield chars[j]
            if n > 1:
                logits = stepper.feed(j)
        return
    longest = max(len(s) for s in stop)
    text = ""          # generated so far
    emitted = 0        # characters of `text` already yielded
    for _ in range(max_tokens):
        j = sample_next(logits, rng, temperature, top_k, top_p, stepper.buffers)
        text += chars[j]
        window_start = max(0, len(text) - longest - 1)
        cut = min((p for p in (text.find(s, window_start) for s in stop) if p >= 0),
                  default=-1)
        if cut >= 0:
            if cut > emitted:
                yield text[emitted:cut]
            return
        # hold back the longest tail that could still become a stop string
        hold = 0
        for s in stop:
            for k in range(min(len(s) - 1, len(text) - emitted), hold, -1):
                if s.startswith(text[-k:]):
                    hold = k
                    break
        if len(text) - hold > emitted:
            yield text[emitted:len(text) - hold]
            emitted = len(text) - hold
        logits = stepper.feed(j)
    if len(text) > emitted:
        yield text[emitted:]
