"""Text generation on device: a subword GRU language model stepped one token at a time.

    import runtime
    text = runtime.generate("text", prompt="And the LORD said", max_tokens=60, seed=1)
    text.tokens, text.finish_reason           # token ids generated; "length" or "stop"
    model = runtime.load("text", precision="int8")
    for piece in model.stream(prompt="In the beginning", seed=1): print(piece, end="")
    model.bits_per_character("And God saw the light, that it was good.")

Model files (written by ``trainer/text.py``): ``step`` (ONNX, and its dynamically quantized
``step_int8``, picked by ``precision="int8"``) maps inputs ``token`` int64 ``[B]`` and
``state`` float32 ``[B, H]`` to two outputs, in order: the next-token logits float32
``[B, V]`` and the new state ``[B, H]``; ``vocab`` (JSON) lists the characters (token id =
position), the byte-pair merges (one more token each, ``runtime.text_bpe``), the UNK id, the
start character and the hidden size.

A prompt is mapped through the character codec (``runtime.text_codec``: typographic
equivalents, NFKD, else UNK), only its last 1,024 characters are kept, it is cut into subword
tokens, and the model reads the start token (``"\\n"``) then those tokens from a zero state.
Generation then draws tokens (``runtime.text_sampling`` documents the order of the controls);
the model never produces UNK. Stop strings are matched on the generated characters; text that
could still become a stop string is held back while streaming, so ``"".join(stream(...))``
equals ``generate(...)`` for the same options and seed.

Only public onnxruntime calls (``session.run``) are used.
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from runtime.errors import ModelError
from runtime.model import Model, Option, Options
from runtime.text_bpe import BPE
from runtime.text_codec import PROMPT_CONTEXT, Codec
from runtime.text_sampling import History, StopScanner, sample_next

KIND = "text"
MAX_PROMPT_CHARS = 100_000
MAX_TOKENS = 4096
MAX_STOP = 16
MAX_STOP_LEN = 64
MAX_SCORE_CHARS = 1_000_000

OPTIONS = Options(
    Option("prompt", "", "str", "text to continue (only its last 1,024 characters condition "
           "the model); empty starts a new paragraph", hi=MAX_PROMPT_CHARS),
    Option("max_tokens", 200, "int", "subword tokens generated at most (about 3.6 characters "
           "each)", lo=0, hi=MAX_TOKENS),
    Option("temperature", 0.8, "float", "softmax temperature; 0 is greedy (argmax)",
           lo=0.0, hi=100.0),
    Option("top_k", 0, "int", "keep the k most likely tokens (0: off)", lo=0, hi=100_000),
    Option("top_p", 1.0, "float", "nucleus sampling: the smallest set of tokens whose "
           "probability reaches p (1: off; must be > 0)", lo=0.0, hi=1.0),
    Option("stop", None, "str_list", f"strings that end the text at their first occurrence in "
           f"the generated text (not included); 1..{MAX_STOP} non-empty strings of at most "
           f"{MAX_STOP_LEN} characters", hi=MAX_STOP, optional=True),
    Option("repetition_penalty", 1.0, "float", "divides positive (multiplies negative) logits "
           "of tokens already in the prompt or output (1: off)", lo=1.0, hi=10.0),
    Option("no_repeat_ngram_size", 0, "int", "never repeat a token n-gram of this size from "
           "the prompt or output (0: off)", lo=0, hi=32),
)


class Text(str):
    """The generated text (a ``str``) with ``.tokens`` (token ids generated, list of int) and
    ``.finish_reason`` (``"length"``: max_tokens reached, ``"stop"``: a stop string found)."""
    suffix = ".txt"

    def __new__(cls, text: str, tokens: list[int], finish_reason: str):
        obj = super().__new__(cls, text)
        obj.tokens = list(tokens)
        obj.finish_reason = finish_reason
        return obj

    def save(self, path) -> str:
        """Write the text (UTF-8) to ``path``; returns a one-line summary."""
        import os
        from pathlib import Path

        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        tmp.write_text(str(self), encoding="utf-8")
        os.replace(tmp, path)                   # atomic: never a half-written file
        words = len(self.split())
        return (f"{len(self)} characters, {words} words, {len(self.tokens)} tokens "
                f"({self.finish_reason}) -> {path}")


def _check_options(opts: dict) -> dict:
    if opts["top_p"] <= 0.0:
        raise ValueError(f"top_p must be in (0, 1] (1.0 turns it off), got {opts['top_p']!r}")
    stop = opts["stop"]
    if stop is not None:
        if any(not s or len(s) > MAX_STOP_LEN for s in stop):
            raise ValueError(f"stop strings must be non-empty strings of at most {MAX_STOP_LEN} "
                             f"characters (or stop=None)")
        opts["stop"] = list(dict.fromkeys(stop)) or None
    return opts


class _Vocab:
    """The vocab side file, checked once: codec, subword table, start token, hidden size."""

    def __init__(self, raw: dict):
        try:
            self.codec = Codec(raw["chars"], int(raw["unk"]))
            self.bpe = BPE(raw["chars"], raw.get("merges", []))
            self.start = self.codec.ids[raw["start"]]
            self.hidden = int(raw["hidden"])
            self.unk = int(raw["unk"])
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ModelError(f"the text vocab file is malformed ({exc!r}): re-export text") \
                from None

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` after the character mapping."""
        return self.bpe.encode(self.codec.decode(self.codec.encode(text)), self.unk)


class Stepper:
    """Batch-1 wrapper around the step session: feed one token, get its logits row."""

    def __init__(self, model: "TextModel", sess, vocab: _Vocab):
        self.model, self.sess = model, sess
        self.names = [i.name for i in sess.get_inputs()]
        self.token = np.zeros((1,), np.int64)
        self.state = np.zeros((1, vocab.hidden), np.float32)
        self.unk = vocab.unk

    def feed(self, token_id: int) -> np.ndarray:
        self.token[0] = token_id
        logits, self.state = self.model.run(self.sess, {self.names[0]: self.token,
                                                        self.names[1]: self.state})
        row = logits[0]
        row[self.unk] = -np.inf
        return row


class TextModel(Model):
    """The text kind: ``generate`` (a ``Text``), ``stream`` (str pieces), and
    ``bits_per_character`` (the model's score of a given text)."""
    kind = KIND
    options = OPTIONS

    def vocab(self) -> _Vocab:
        return self.cached(("vocab",), lambda: _Vocab(self.json("vocab")))

    def _generate(self, rng: np.random.Generator, **opts) -> Text:
        pieces, tokens, scanner = [], [], None
        for piece, scanner in self._run(rng, tokens, **opts):
            pieces.append(piece)
        reason = "stop" if scanner is not None and scanner.stopped else "length"
        return Text("".join(pieces), tokens, reason)

    def stream(self, *, seed: int | None = None, **options) -> Iterator[str]:
        """The generated text as it is produced, in pieces (same options as ``generate``)."""
        from runtime import options as _check

        seed = _check.check_seed(seed)
        opts = self.options.resolve(self.kind, options)
        run = self._run(np.random.default_rng(seed), [], **opts)   # validates now
        return (piece for piece, _ in run if piece)

    def _run(self, rng, tokens: list, **opts):
        opts = _check_options(opts)
        vocab = self.vocab()
        stepper = Stepper(self, self.session("step"), vocab)
        return self._pieces(rng, tokens, stepper, vocab, **opts)

    def _pieces(self, rng, tokens, stepper, vocab, *, prompt, max_tokens, temperature, top_k,
                top_p, stop, repetition_penalty, no_repeat_ngram_size):
        history = History(no_repeat_ngram_size, repetition_penalty)
        ids = vocab.encode(prompt[-PROMPT_CONTEXT:])
        logits = stepper.feed(vocab.start)
        for i in ids:
            history.add(i)
            logits = stepper.feed(i)
        scanner = StopScanner(stop)
        strings = vocab.bpe.tokens
        buffers = (np.empty_like(logits), np.empty_like(logits))
        for n in range(max_tokens, 0, -1):
            row = history.adjust(logits)
            j = sample_next(row, rng, temperature, top_k, top_p,
                            buffers if row is logits else None)
            tokens.append(j)
            history.add(j)
            yield scanner.push(strings[j]), scanner
            if scanner.stopped:
                return
            if n > 1:
                logits = stepper.feed(j)
        yield scanner.flush(), scanner

    def bits_per_character(self, text: str) -> float:
        """Bits per character of ``text`` under the model (after the character mapping): the
        negative log2-probability of its tokens, read from a zero state after the start
        token, divided by its number of characters. Lower means more expected."""
        from runtime import options as _check

        text = _check.check_str("text", text, MAX_SCORE_CHARS)
        if not text:
            raise ValueError("text must be a non-empty string")
        vocab = self.vocab()
        chars = vocab.codec.decode(vocab.codec.encode(text))
        ids = vocab.bpe.encode(chars, vocab.unk)
        sess = self.session("step")
        names = [i.name for i in sess.get_inputs()]
        state = np.zeros((1, vocab.hidden), np.float32)
        token = np.array([vocab.start], np.int64)
        bits = 0.0
        for i in ids:
            logits, state = self.run(sess, {names[0]: token, names[1]: state})
            z = logits[0].astype(np.float64)
            m = z.max()
            bits += (m + math.log(np.exp(z - m).sum()) - z[i]) / math.log(2.0)
            token[0] = i
        return bits / len(chars)


MODEL = TextModel
