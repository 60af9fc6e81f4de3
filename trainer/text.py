"""Text: a character-level GRU trained by maximum likelihood, then tuned by policy gradient.

    python -m trainer train text --profile full [--corpus PATH]

``full`` (H=256, E=64, 500 MLE + 150 policy-gradient steps; 1.2 MB fp32 / 0.3 MB int8 step
model) took 826 s on the shared 2-core machine under heavy load; ``quick`` takes seconds.
Re-running resumes from the last checkpoint in the work dir (both phases; the frozen MLE model
is part of the checkpoint).

1. **Data.** Python's documentation topics (``pydoc_data.topics``, every topic's text joined by
   blank lines, topics sorted by name) or any UTF-8 file (``--corpus``). The last 10% of the
   characters are held out for validation. The vocabulary is the ``max_vocab - 1`` most
   frequent characters of the training part plus UNK (id 0); other characters go through the
   runtime's documented mapping (``runtime.text.Codec``: typographic equivalents, then NFKD,
   then UNK), the same code that encodes prompts on device.
2. **Maximum likelihood.** ``TextGenerator`` (Embedding -> GRU -> Dense, the original article's
   model) trained with teacher forcing on random windows (every window starts from a zero state
   fed the start character, exactly like generation), Adam with cosine decay.
3. **Policy gradient.** REINFORCE with a batch-mean baseline (advantages normalised): the
   policy continues random training-text prefixes (sampled in a ``tf.function`` loop over the
   GRU cell, batched), each continuation is scored by :func:`reward`, and the loss adds
   ``kl_coef`` x the exact per-character KL(policy || frozen MLE model) on the visited states
   (plus optionally ``mle_coef`` x teacher-forced cross-entropy on real text) so the policy
   does not collapse. The reward is the share of generated words that are real words of the
   corpus vocabulary (words seen at least ``min_word_count`` times in the training text), times
   ``(1 - share of repeated word trigrams)`` (degenerate loops such as "the list the list"
   score near 0), times ``min(1, words / min_words)`` (no reward for emitting few words). Runs of
   one character are not penalised: the corpus itself has long ones (reST tables, indentation).
4. **Export.** A single-step function (token, state) -> (logits, state) built from the tuned
   weights (the embedding is folded into the GRU's input projection: one gather instead of a
   gather + matmul), parity-checked by ``trainer.export``; an int8 variant by dynamic
   quantization.
5. **Evaluation.** Validation bits/char (MLE, tuned, unigram baseline, the exported fp32 and
   int8 ONNX models), mean reward of ``eval_samples`` continuations of held-out prefixes at
   ``eval_temperature`` before/after tuning (same prefixes, same random numbers), word
   distinct-2/3 of those samples.
"""
from __future__ import annotations

import math
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from runtime.text import Codec, PROMPT_CONTEXT

KIND = "text"
DATA = ("Python's documentation topics (`pydoc_data.topics`, shipped with CPython), or a UTF-8 "
        "file given with --corpus; last 10% of the characters held out for validation.")
LN2 = math.log(2.0)
START = "\n"
WORD_RE = re.compile(r"[A-Za-z]+")


@dataclass
class Config:
    seed: int = 0
    corpus: str | None = None      # UTF-8 file; None = pydoc_data.topics
    max_chars: int = 0             # use only the first N characters (0 = all)
    max_vocab: int = 100           # characters incl. UNK
    val_fraction: float = 0.1
    # model
    embed_dim: int = 64
    hidden: int = 256
    # maximum likelihood
    seq_len: int = 128
    batch_size: int = 64
    mle_steps: int = 500
    lr: float = 3e-3
    lr_final_fraction: float = 0.1
    clip_norm: float = 1.0
    val_every: int = 100
    ckpt_every: int = 100
    # policy gradient (REINFORCE + baseline + KL to the MLE model)
    rl_steps: int = 150
    rl_batch: int = 64
    rl_prefix: int = 32
    rl_len: int = 128
    rl_lr: float = 2e-4
    rl_temperature: float = 1.0
    kl_coef: float = 0.1
    mle_coef: float = 0.0
    rl_val_every: int = 50
    # reward
    min_words: int = 8
    min_word_count: int = 2        # a corpus word must occur this often in the training text
    # evaluation
    eval_samples: int = 500
    eval_temperature: float = 1.0
    eval_chunks: int = 16


PROFILES = {
    "quick": Config(max_chars=60_000, embed_dim=16, hidden=64, seq_len=64, batch_size=32,
                    mle_steps=80, lr=1e-2, val_every=40, ckpt_every=40, rl_steps=6, rl_batch=16,
                    rl_len=48, rl_prefix=16, eval_samples=32, eval_chunks=8),
    "full": Config(),
}


# ============================================================================ data
def load_corpus(cfg: Config) -> str:
    if cfg.corpus:
        path = Path(cfg.corpus)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"--corpus {path} is not UTF-8 text ({exc})") from None
    else:
        import pydoc_data.topics as topics

        text = "\n\n".join(topics.topics[k].strip("\n") for k in sorted(topics.topics))
    text = text.replace("\r\n", "\n")
    if cfg.max_chars:
        text = text[: cfg.max_chars]
    need = 20 * (cfg.seq_len + 2)
    if len(text) < need:
        raise ValueError(f"the corpus has {len(text)} characters; need at least {need}")
    return text


def split_text(text: str, val_fraction: float) -> tuple[str, str]:
    n = int(len(text) * (1.0 - val_fraction))
    return text[:n], text[n:]


def build_vocab(train_text: str, cfg: Config) -> dict:
    counts = Counter(train_text)
    counts[START] += 10**9          # the start character is always in the vocabulary
    chars = [c for c, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    chars = chars[: cfg.max_vocab - 1]
    return {"format": 1, "chars": ["\ufffd"] + chars, "unk": 0, "start": START,
            "hidden": cfg.hidden, "context": PROMPT_CONTEXT}


def corpus_words(train_text: str, min_count: int) -> frozenset:
    counts = Counter(w.lower() for w in WORD_RE.findall(train_text))
    return frozenset(w for w, c in counts.items() if c >= min_count)


class Data:
    """Corpus, vocabulary, encoded splits and the reward's word list for one config."""

    def __init__(self, cfg: Config, vocab: dict | None = None):
        self.text = load_corpus(cfg)
        self.train_text, self.val_text = split_text(self.text, cfg.val_fraction)
        self.vocab = vocab or build_vocab(self.train_text, cfg)
        self.codec = Codec(self.vocab["chars"], self.vocab["unk"])
        self.train_ids = self.codec.encode(self.train_text).astype(np.int32)
        self.val_ids = self.codec.encode(self.val_text).astype(np.int32)
        self.start_id = self.codec.ids[START]
        self.words = corpus_words(self.train_text, cfg.min_word_count)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab["chars"])


def train_dataset(cfg: Config, ids: np.ndarray, start_id: int, seed: int):
    """Infinite tf.data stream of [batch, seq_len + 1] windows at random offsets; column 0 is
    the start character (so every window is read like a generation from a zero state)."""
    import tensorflow as tf

    data = tf.constant(ids, dtype=tf.int32)
    n = len(ids) - cfg.seq_len

    def window(r):
        s = tf.cast(r % n, tf.int32)
        return tf.concat([[start_id], data[s: s + cfg.seq_len]], axis=0)

    return (tf.data.Dataset.random(seed=seed)
            .map(window, num_parallel_calls=1)
            .batch(cfg.batch_size, drop_remainder=True)
            .prefetch(2))


# ============================================================================ reward
def _words_of_continuation(prefix: str, continuation: str) -> list[str]:
    words = WORD_RE.findall(continuation)
    if words and prefix[-1:].isalpha() and continuation[:1].isalpha():
        words = words[1:]               # the first word continues a word of the prefix
    if words and continuation[-1:].isalpha():
        words = words[:-1]              # the last word may be cut off by the length limit
    return words


def reward_parts(prefix: str, continuation: str, words_set, cfg: Config) -> dict:
    words = _words_of_continuation(prefix, continuation)
    n = len(words)
    real = sum(w.lower() in words_set for w in words) / n if n else 0.0
    tri = [tuple(w.lower() for w in words[i:i + 3]) for i in range(n - 2)]
    repeated = 1.0 - len(set(tri)) / len(tri) if tri else 0.0
    value = real * (1.0 - repeated) * min(1.0, n / cfg.min_words)
    return {"reward": value, "real_word_share": real, "repeated_trigrams": repeated,
            "words": n}


def reward(prefix: str, continuation: str, words_set, cfg: Config) -> float:
    """Readability of a generated continuation, in [0, 1] (see the module docstring)."""
    return reward_parts(prefix, continuation, words_set, cfg)["reward"]


def distinct_n(texts: list[str], n: int) -> float:
    """Corpus-level distinct-n over words: unique n-grams / all n-grams."""
    grams, total = set(), 0
    for t in texts:
        w = WORD_RE.findall(t.lower())
        g = [tuple(w[i:i + n]) for i in range(len(w) - n + 1)]
        grams.update(g)
        total += len(g)
    return len(grams) / total if total else 0.0


# ============================================================================ model
def build_model(vocab_size: int, cfg: Config):
    import keras

    class TextGenerator(keras.Model):
        """Embedding -> GRU -> Dense, as in the original article."""

        def __init__(self, vocab_size, embedding_dim, rnn_units, **kwargs):
            super().__init__(**kwargs)
            self.embedding = keras.layers.Embedding(vocab_size, embedding_dim)
            self.gru = keras.layers.GRU(rnn_units, return_sequences=True, return_state=True)
            self.dense = keras.layers.Dense(vocab_size)

        def call(self, inputs, states=None, return_state=False, training=False):
            x = self.embedding(inputs, training=training)
            x, states = self.gru(x, initial_state=states, training=training)
            x = self.dense(x, training=training)
            return (x, states) if return_state else x

    model = TextGenerator(vocab_size, cfg.embed_dim, cfg.hidden)
    model(np.zeros((1, 2), np.int32))       # create the variables
    return model


def step_weights(model):
    """(table, U, b_h, W_o, b_o): the GRU cell with the embedding folded into its input
    projection (table[v] = embedding[v] @ kernel + input bias)."""
    import tensorflow as tf

    cell = model.gru.cell
    bias = cell.bias                    # [2, 3H]: input bias, recurrent bias (reset_after=True)
    table = tf.matmul(model.embedding.embeddings, cell.kernel) + bias[0]
    return table, cell.recurrent_kernel, bias[1], model.dense.kernel, model.dense.bias


def gru_step(weights, token, state):
    """One step of Keras' GRU (reset_after=True, gates z, r, h) + the output layer."""
    import tensorflow as tf

    table, u, b_h, w_o, b_o = weights
    gx = tf.gather(table, token)
    gh = tf.matmul(state, u) + b_h
    xz, xr, xh = tf.split(gx, 3, axis=-1)
    hz, hr, hh = tf.split(gh, 3, axis=-1)
    z = tf.sigmoid(xz + hz)
    r = tf.sigmoid(xr + hr)
    c = tf.tanh(xh + r * hh)
    h = c + z * (state - c)             # = z * state + (1 - z) * c
    return tf.matmul(h, w_o) + b_o, h


def make_sampler(model, vocab_size: int, unk: int):
    """Batched sampling in TensorFlow: continue ``prefix`` [B, P] by ``length`` characters."""
    import tensorflow as tf

    mask = tf.constant(np.where(np.arange(vocab_size) == unk, -1e9, 0.0).astype(np.float32))

    @tf.function(reduce_retracing=True, autograph=False)
    def sample(prefix, length, temperature, seed):
        logits, state = model(prefix, return_state=True)
        weights = step_weights(model)

        def body(i, last, state, out):
            tok = tf.random.stateless_categorical(last / temperature + mask, 1,
                                                  seed=seed + tf.stack([0, i]))[:, 0]
            last, state = gru_step(weights, tok, state)
            return i + 1, last, state, out.write(i, tf.cast(tok, tf.int32))

        _, _, _, out = tf.while_loop(
            lambda i, *_: i < length, body,
            (tf.constant(0), logits[:, -1], state, tf.TensorArray(tf.int32, size=length)))
        return tf.transpose(out.stack())

    return sample


def val_bits_per_char(model, ids: np.ndarray, start_id: int, chunks: int) -> float:
    """Bits/char over ``ids`` read as ``chunks`` contiguous streams from a zero state."""
    import tensorflow as tf

    inputs, targets = _chunked(ids, start_id, chunks)
    logits = _forward(model)(tf.constant(inputs))
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.constant(targets), logits)
    return float(tf.reduce_mean(ce)) / LN2


def _chunked(ids: np.ndarray, start_id: int, chunks: int):
    length = len(ids) // chunks
    targets = np.asarray(ids[: length * chunks], np.int32).reshape(chunks, length)
    inputs = np.concatenate([np.full((chunks, 1), start_id, np.int32), targets[:, :-1]], 1)
    return inputs, targets


_FORWARDS: dict = {}


def _forward(model):
    import tensorflow as tf

    if id(model) not in _FORWARDS:
        _FORWARDS[id(model)] = tf.function(lambda x: model(x))
    return _FORWARDS[id(model)]


def unigram_bits_per_char(train_ids: np.ndarray, val_ids: np.ndarray, vocab_size: int) -> float:
    counts = np.bincount(train_ids, minlength=vocab_size).astype(np.float64) + 1.0
    p = counts / counts.sum()
    return float(-np.mean(np.log2(p[val_ids])))


# ============================================================================ training
def _objects(cfg: Config, vocab_size: int, strategy):
    import keras

    with strategy.scope():
        model = build_model(vocab_size, cfg)
        reference = build_model(vocab_size, cfg)      # the frozen MLE model (KL anchor)
        schedule = keras.optimizers.schedules.CosineDecay(cfg.lr, max(1, cfg.mle_steps),
                                                          alpha=cfg.lr_final_fraction)
        mle_opt = keras.optimizers.Adam(schedule)
        rl_opt = keras.optimizers.Adam(cfg.rl_lr)
        mle_opt.build(model.trainable_variables)
        rl_opt.build(model.trainable_variables)
    return model, reference, mle_opt, rl_opt


def _checkpointer(work_dir: Path, strategy, model, reference, mle_opt, rl_opt):
    from trainer.common import Checkpointer

    return Checkpointer(work_dir, strategy=strategy, model=model, reference=reference,
                        mle_opt=mle_opt, rl_opt=rl_opt)


def train(cfg: Config, work_dir: Path, *, strategy=None) -> None:
    import tensorflow as tf

    from trainer import common

    strategy = strategy or tf.distribute.get_strategy()
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    common.set_seeds(cfg.seed)
    data = Data(cfg)
    chief = common.is_chief(strategy)            # only the chief writes files
    if chief:
        common.save_json(work_dir / "vocab.json", data.vocab)
    model, reference, mle_opt, rl_opt = _objects(cfg, data.vocab_size, strategy)
    ckpt = _checkpointer(work_dir, strategy, model, reference, mle_opt, rl_opt)
    start = ckpt.restore()
    total = cfg.mle_steps + cfg.rl_steps
    history = common.load_json(work_dir / "history.json", None) or {}
    history = {k: [p for p in v if p[0] < start] for k, v in history.items()}
    for key in ("train_bpc", "val_bpc", "reward", "kl", "rl_val_bpc"):
        history.setdefault(key, [])
    if start >= total:
        print(f"text: already trained ({start} steps) in {work_dir}")
        _save_curves(work_dir, history, cfg)
        return
    replicas = strategy.num_replicas_in_sync
    variables = model.trainable_variables

    # ---- maximum likelihood (teacher forcing)
    def mle_replica(batch):
        x, y = batch[:, :-1], batch[:, 1:]
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            ce = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits), 1)
            loss = tf.nn.compute_average_loss(ce, global_batch_size=cfg.batch_size)
        grads = tape.gradient(loss, variables)
        grads, _ = tf.clip_by_global_norm(grads, cfg.clip_norm)
        mle_opt.apply_gradients(zip(grads, variables))
        return loss

    @tf.function(autograph=False)
    def mle_step(iterator):
        loss = strategy.run(mle_replica, args=(next(iterator),))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)

    # ---- policy gradient (REINFORCE + baseline + KL to the frozen MLE model)
    mask = np.where(np.arange(data.vocab_size) == data.vocab["unk"], -1e9, 0.0)
    unk_mask = tf.constant(mask.astype(np.float32))
    global_rl = cfg.rl_batch * replicas           # every replica sees the whole batch

    def rl_replica(seq, adv, real):
        x, y = seq[:, :-1], seq[:, 1:]
        gen = tf.cast(tf.range(tf.shape(y)[1]) >= cfg.rl_prefix - 1, tf.float32)[None, :]
        n_gen = float(cfg.rl_len)
        ref_logp = tf.nn.log_softmax(reference(x))
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            logp = tf.nn.log_softmax(logits)
            logp_t = tf.nn.log_softmax(logits / cfg.rl_temperature + unk_mask)
            chosen = tf.gather(logp_t, y, batch_dims=2)
            pg = -adv * tf.reduce_sum(chosen * gen, 1) / n_gen
            kl_tok = tf.reduce_sum(tf.exp(logp) * (logp - ref_logp), -1)
            kl = tf.reduce_sum(kl_tok * gen, 1) / n_gen
            per_example = pg + cfg.kl_coef * kl
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_rl)
            if cfg.mle_coef:
                rx, ry = real[:, :-1], real[:, 1:]
                ce = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                    ry, model(rx, training=True)), 1)
                loss += cfg.mle_coef * tf.nn.compute_average_loss(ce, global_batch_size=
                                                                  cfg.batch_size * replicas)
        grads = tape.gradient(loss, variables)
        grads, _ = tf.clip_by_global_norm(grads, cfg.clip_norm)
        rl_opt.apply_gradients(zip(grads, variables))
        return tf.reduce_mean(kl)

    @tf.function(autograph=False)
    def rl_step(seq, adv, real):
        kl = strategy.run(rl_replica, args=(seq, adv, real))
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, kl, axis=None)

    sampler = make_sampler(model, data.vocab_size, data.vocab["unk"])
    iterator = iter(strategy.experimental_distribute_dataset(
        train_dataset(cfg, data.train_ids, data.start_id, cfg.seed * 1_000_003 + start)))
    real_iter = (iter(train_dataset(cfg, data.train_ids, data.start_id, cfg.seed + 7 + start))
                 if cfg.mle_coef else None)
    t0 = time.time()
    with common.Progress(total, "text", unit="step", initial=start) as bar:
        for step in range(start, total):
            if step == cfg.mle_steps:                # MLE done: freeze a copy as the anchor
                reference.set_weights(model.get_weights())
                ckpt.save(step)
            if step < cfg.mle_steps:
                loss = float(mle_step(iterator))
                history["train_bpc"].append((step, loss / LN2))
                scalars = {"bpc": loss / LN2}
                if (step + 1) % cfg.val_every == 0 or step + 1 == cfg.mle_steps:
                    v = val_bits_per_char(model, data.val_ids, data.start_id, cfg.eval_chunks)
                    history["val_bpc"].append((step, v))
                    bar.write(f"step {step + 1}: train bpc {loss / LN2:.3f}, val bpc {v:.3f}")
            else:
                seq, texts, prefixes = _rollouts(cfg, data, sampler, step)
                rewards = np.array([reward(p, t, data.words, cfg) for p, t in zip(prefixes, texts)],
                                   np.float32)
                adv = (rewards - rewards.mean()) / (rewards.std() + 1e-6)
                real = next(real_iter)[: cfg.rl_batch] if cfg.mle_coef else seq[:, :2]
                kl = float(rl_step(tf.constant(seq), tf.constant(adv), real))
                history["reward"].append((step, float(rewards.mean())))
                history["kl"].append((step, kl))
                if (step + 1 - cfg.mle_steps) % cfg.rl_val_every == 0 or step + 1 == total:
                    v = val_bits_per_char(model, data.val_ids, data.start_id, cfg.eval_chunks)
                    history["rl_val_bpc"].append((step, v))
                scalars = {"reward": float(rewards.mean()), "kl": kl}
                if (step + 1) % 25 == 0:
                    bar.write(f"step {step + 1}: reward {rewards.mean():.3f} kl {kl:.4f} | "
                              f"{texts[0][:70]!r}")
            bar.update(1, **scalars)
            if (step + 1) % cfg.ckpt_every == 0 or step + 1 == total:
                ckpt.save(step + 1)
                if chief:
                    common.save_json(work_dir / "history.json", history)
    if cfg.rl_steps == 0:
        reference.set_weights(model.get_weights())
        ckpt.save(total)
    if chief:
        common.save_json(work_dir / "history.json", history)
        _save_curves(work_dir, history, cfg)
    print(f"text: trained {total - start} steps in {time.time() - t0:.0f}s")


def _rollouts(cfg: Config, data: Data, sampler, step: int, ids=None, n=None, temperature=None,
              seed_base=0):
    """Sample continuations of random prefixes; returns (full sequences, texts, prefixes)."""
    import tensorflow as tf

    ids = data.train_ids if ids is None else ids
    n = n or cfg.rl_batch
    rng = np.random.default_rng((cfg.seed, seed_base, step))
    starts = rng.integers(0, len(ids) - cfg.rl_prefix, size=n)
    prefix = np.full((n, cfg.rl_prefix), data.start_id, np.int32)   # start char + text
    for row, s in zip(prefix, starts):
        row[1:] = ids[s: s + cfg.rl_prefix - 1]
    gen = sampler(tf.constant(prefix), tf.constant(cfg.rl_len),
                  tf.constant(temperature or cfg.rl_temperature, tf.float32),
                  tf.constant([cfg.seed + seed_base, step], tf.int32)).numpy()
    texts = [data.codec.decode(g) for g in gen]
    prefixes = [data.codec.decode(p[1:]) for p in prefix]
    return np.concatenate([prefix, gen], 1), texts, prefixes


def _save_curves(work_dir: Path, history: dict, cfg: Config) -> None:
    from trainer.common import save_learning_curve

    values = lambda key: [v for _, v in history.get(key, [])]  # noqa: E731
    series = {"MLE: train bits/char": values("train_bpc"),
              f"val bits/char (every {cfg.val_every} MLE,\nthen {cfg.rl_val_every} RL steps)":
                  values("val_bpc") + values("rl_val_bpc"),
              "REINFORCE: mean reward": values("reward"),
              "REINFORCE: KL(policy||MLE) nats/char": values("kl")}
    save_learning_curve(work_dir / "learning_curve.png", series, xlabel="step",
                        title="text: character GRU, maximum likelihood then policy gradient")


def _restore(cfg: Config, work_dir: Path):
    import tensorflow as tf

    from trainer import common

    vocab = common.load_json(Path(work_dir) / "vocab.json")
    if vocab is None:
        raise FileNotFoundError(f"{work_dir}/vocab.json missing: train text first")
    strategy = tf.distribute.get_strategy()
    model, reference, mle_opt, rl_opt = _objects(cfg, len(vocab["chars"]), strategy)
    ckpt = _checkpointer(Path(work_dir), strategy, model, reference, mle_opt, rl_opt)
    step = ckpt.restore()
    if step < cfg.mle_steps + cfg.rl_steps:
        raise RuntimeError(f"{work_dir} holds a checkpoint at step {step} of "
                           f"{cfg.mle_steps + cfg.rl_steps}: finish training first")
    return vocab, model, reference


# ============================================================================ export
def export(cfg: Config, work_dir: Path, out_dir: Path) -> None:
    import tensorflow as tf

    from trainer import export as tx

    vocab, model, _ = _restore(cfg, work_dir)
    v, h = len(vocab["chars"]), cfg.hidden
    arrays = [np.asarray(w) for w in step_weights(model)]
    _check_step_matches_keras(model, arrays, v)

    def step(token, state):
        weights = [tf.constant(a) for a in arrays]      # graph constants, not captured inputs
        logits, new_state = gru_step(weights, token, state)
        return tf.identity(logits, name="logits"), tf.identity(new_state, name="state_out")

    signature = [tf.TensorSpec([None], tf.int64, name="token"),
                 tf.TensorSpec([None, h], tf.float32, name="state")]
    rng = np.random.default_rng(cfg.seed)
    samples = [[rng.integers(0, v, size=n).astype(np.int64),
                rng.uniform(-1, 1, size=(n, h)).astype(np.float32)] for n in (1, 7, v)]
    step_entry = tx.export_tf_function(step, signature, kind=KIND, role="step", out_dir=out_dir,
                                       sample_inputs=samples)
    int8_entry = tx.quantize_int8(step_entry, kind=KIND, role="step_int8", out_dir=out_dir)
    vocab_entry = tx.write_json(vocab, kind=KIND, role="vocab", out_dir=out_dir)
    notes = ("step: (token int64 [B], state float32 [B,H]) -> (logits float32 [B,V], new state "
             "[B,H]); start from a zero state fed vocab['start'], then the prompt. Weights: after "
             "policy-gradient tuning (REINFORCE, batch-mean baseline, KL to the MLE model). "
             "Reward: share of generated words that are corpus words x (1 - share of repeated "
             "word trigrams) x min(1, words / min_words).")
    tx.write_entry(out_dir, KIND, {"step": step_entry, "step_int8": int8_entry,
                                   "vocab": vocab_entry}, config=asdict(cfg), notes=notes)


def _check_step_matches_keras(model, weights, vocab_size: int) -> None:
    """The hand-written step must reproduce Keras' GRU layer (guards the gate layout)."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    seq = rng.integers(0, vocab_size, size=(3, 12)).astype(np.int32)
    want = model(seq).numpy()
    state = tf.zeros((3, model.gru.units))
    got = []
    for t in range(seq.shape[1]):
        logits, state = gru_step(weights, tf.constant(seq[:, t]), state)
        got.append(logits.numpy())
    diff = float(np.max(np.abs(np.stack(got, 1) - want)))
    if diff > 1e-3:
        raise RuntimeError(f"the GRU step differs from Keras' GRU layer by {diff}")


# ============================================================================ evaluation
def onnx_bits_per_char(models_dir: Path, precision: str, ids: np.ndarray, start_id: int,
                       chunks: int) -> float:
    """Bits/char of an exported step model (runtime session), same streams as TensorFlow."""
    from runtime import registry

    sess = registry.session(KIND, "step", models_dir, precision)
    names = [i.name for i in sess.get_inputs()]
    inputs, targets = _chunked(ids, start_id, chunks)
    hidden = sess.get_inputs()[1].shape[1]
    state = np.zeros((chunks, hidden), np.float32)
    total = 0.0
    for t in range(inputs.shape[1]):
        logits, state = sess.run(None, {names[0]: inputs[:, t].astype(np.int64),
                                        names[1]: state})
        z = logits.astype(np.float64)
        m = z.max(1, keepdims=True)
        lse = (m[:, 0] + np.log(np.exp(z - m).sum(1)))
        total += float(np.sum(lse - z[np.arange(chunks), targets[:, t]]))
    return total / targets.size / LN2


def _sample_report(cfg: Config, data: Data, model, n: int, temperature: float) -> dict:
    """Continue ``n`` held-out prefixes; the same prefixes and random numbers for any model."""
    sampler = make_sampler(model, data.vocab_size, data.vocab["unk"])
    texts, prefixes = [], []
    batch = 100
    for b in range(0, n, batch):
        k = min(batch, n - b)
        _, t, p = _rollouts(cfg, data, sampler, b, ids=data.val_ids, n=k, temperature=temperature,
                            seed_base=1)
        texts += t
        prefixes += p
    parts = [reward_parts(p, t, data.words, cfg) for p, t in zip(prefixes, texts)]
    mean = {k: float(np.mean([q[k] for q in parts])) for k in parts[0]}
    return {"reward": mean["reward"], "real_word_share": mean["real_word_share"],
            "repeated_trigrams": mean["repeated_trigrams"], "words": mean["words"],
            "distinct_2": distinct_n(texts, 2), "distinct_3": distinct_n(texts, 3),
            "texts": texts, "prefixes": prefixes}


def evaluate(cfg: Config, work_dir: Path, models_dir: Path) -> dict:
    import runtime
    from runtime import registry
    from trainer import common

    work_dir = Path(work_dir)
    vocab, model, reference = _restore(cfg, work_dir)
    data = Data(cfg, vocab)
    chunks = cfg.eval_chunks
    bpc_mle = val_bits_per_char(reference, data.val_ids, data.start_id, chunks)
    bpc_rl = val_bits_per_char(model, data.val_ids, data.start_id, chunks)
    bpc_uni = unigram_bits_per_char(data.train_ids, data.val_ids, data.vocab_size)
    bpc_fp32 = onnx_bits_per_char(models_dir, "fp32", data.val_ids, data.start_id, chunks)
    bpc_int8 = onnx_bits_per_char(models_dir, "int8", data.val_ids, data.start_id, chunks)
    before = _sample_report(cfg, data, reference, cfg.eval_samples, cfg.eval_temperature)
    after = _sample_report(cfg, data, model, cfg.eval_samples, cfg.eval_temperature)
    files = registry.entry(KIND, models_dir)["files"]
    # a few samples through the shipped runtime, for the model card and the reader
    demo = [runtime.generate(KIND, seed=s, models_dir=models_dir, prompt=p, max_tokens=200)
            for s, p in enumerate(["", "The ", "A list "])]
    lines = ["# runtime samples (temperature 0.8)"] + [f"--- seed {i}\n{t}" for i, t in
                                                        enumerate(demo)]
    lines += [f"# tuned model, T={cfg.eval_temperature}, held-out prefixes"]
    lines += [f"--- [{p!r}] -> {t!r}" for p, t in zip(after["prefixes"][:8], after["texts"][:8])]
    lines += ["# MLE model, same prefixes and random numbers"]
    lines += [f"--- [{p!r}] -> {t!r}" for p, t in zip(before["prefixes"][:8], before["texts"][:8])]
    (work_dir / "samples.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    r = lambda x: round(float(x), 4)  # noqa: E731
    summary = lambda s: {k: r(v) for k, v in s.items() if k not in ("texts", "prefixes")}  # noqa
    metrics = {
        "val_bits_per_char": {"mle": r(bpc_mle), "policy_gradient": r(bpc_rl),
                              "unigram_baseline": r(bpc_uni), "onnx_fp32": r(bpc_fp32),
                              "onnx_int8": r(bpc_int8)},
        "bpc_ratio_to_unigram": r(bpc_rl / bpc_uni),
        "bpc_increase_from_tuning": r(bpc_rl - bpc_mle),
        "samples": {"n": cfg.eval_samples, "length": cfg.rl_len,
                    "temperature": cfg.eval_temperature, "prefix": "held-out text, "
                    f"{cfg.rl_prefix} chars", "mle": summary(before),
                    "policy_gradient": summary(after)},
        "reward_ratio": r(after["reward"] / max(before["reward"], 1e-9)),
        "bytes": {"step_fp32": files["step"]["bytes"], "step_int8": files["step_int8"]["bytes"],
                  "vocab": files["vocab"]["bytes"]},
        "targets": {"bpc_ratio_to_unigram_max": 0.55, "reward_ratio_min": 1.2,
                    "bpc_increase_max": 0.15},
    }
    metrics["targets_met"] = bool(metrics["bpc_ratio_to_unigram"] <= 0.55
                                  and metrics["reward_ratio"] >= 1.2
                                  and metrics["bpc_increase_from_tuning"] <= 0.15)
    common.save_json(work_dir / "eval_samples.json",
                     {"mle": before["texts"][:50], "policy_gradient": after["texts"][:50],
                      "prefixes": after["prefixes"][:50]})
    return metrics
