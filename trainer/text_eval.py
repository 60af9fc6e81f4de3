"""Evaluation of the text kind (see ``trainer.text``'s docstring and docs/kinds/text.md).

Which figures the tuning's reward sees: only the discriminator's logit (``reward`` below).
Everything else is outside the reward: held-out bits per character, the separate judge's ROC
AUC, distinct-2, real-word share, repeated word trigrams.

The judge: after tuning, for each model, a fresh logistic-regression classifier over hashed
word 1-2-gram and character 3-gram counts (a different model family from the GRU
discriminator) is trained on half of (real held-out continuations, that model's samples) and
its ROC AUC is measured on the other half. 0.5 = samples indistinguishable from real text.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from trainer import text_baselines
from trainer.text_data import word_stats
from trainer.text_lm import LN2, chunked, make_sampler, scored_chars, val_bits_per_char

HASH_DIM = 1 << 16
_TOKEN = re.compile(r"[A-Za-z]+|[^A-Za-z\s]")


# ============================================================================ the judge
def _features(texts: list[str]) -> np.ndarray:
    import zlib

    x = np.zeros((len(texts), HASH_DIM), np.float32)
    for i, t in enumerate(texts):
        w = _TOKEN.findall(t.lower())
        grams = w + [a + " " + b for a, b in zip(w, w[1:])]
        grams += ["#" + t[j: j + 3] for j in range(len(t) - 2)]
        for g in grams:
            x[i, zlib.crc32(g.encode()) & (HASH_DIM - 1)] += 1.0
    x = np.log1p(x)
    x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-9
    return x


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count 1/2)."""
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    s = scores[order]
    i = 0
    while i < len(s):                         # average ranks over ties
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[order[i: j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    pos = labels == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def judge_auc(real: list[str], fake: list[str], seed: int, l2: float = 1e-3,
              steps: int = 300) -> float:
    """ROC AUC of a logistic regression trained on half the texts, tested on the rest."""
    x = _features(real + fake)
    y = np.array([1] * len(real) + [0] * len(fake), np.float64)
    rng = np.random.default_rng((seed, 5))
    idx = rng.permutation(len(y))
    tr, te = idx[: len(y) // 2], idx[len(y) // 2:]
    w, b = np.zeros(x.shape[1]), 0.0
    lr = 2.0
    x_tr, y_tr = x[tr].astype(np.float64), y[tr]     # once: not gathered and cast every step
    for _ in range(steps):                    # full-batch gradient descent (convex)
        z = x_tr @ w + b
        p = 1.0 / (1.0 + np.exp(-z))
        g = p - y_tr
        w -= lr * (x_tr.T @ g / len(tr) + l2 * w)
        b -= lr * g.mean()
    return roc_auc(x[te] @ w + b, y[te])


# ============================================================================ samples
def samples(cfg, data, model, n: int, salt: int = 0) -> tuple[list[str], list[str], list[str]]:
    """(prefixes, model continuations, real continuations) of ``n`` held-out windows; the
    same windows and random numbers for any model."""
    import tensorflow as tf

    sampler = make_sampler(model, data.n_tokens, data.vocab["unk"])
    rng = np.random.default_rng((cfg.seed, 99, salt))
    need = cfg.rl_prefix + cfg.rl_len
    starts = rng.integers(0, len(data.val_tokens) - need, size=n)
    prefixes, texts, reals = [], [], []
    for b in range(0, n, 100):
        rows = starts[b: b + 100]
        prefix = np.stack([np.concatenate([[data.start_id],
                                           data.val_tokens[s: s + cfg.rl_prefix - 1]])
                           for s in rows]).astype(np.int32)
        gen = sampler(tf.constant(prefix), tf.constant(cfg.rl_len), tf.constant(1.0),
                      tf.constant([cfg.seed + 1000 + salt, b], tf.int32)).numpy()
        for s, p, g in zip(rows, prefix, gen):
            prefixes.append(data.decode(p[1:]))
            texts.append(data.decode(g))
            reals.append(data.decode(data.val_tokens[s + cfg.rl_prefix - 1:
                                                     s + cfg.rl_prefix - 1 + cfg.rl_len]))
    return prefixes, texts, reals


def onnx_bits_per_char(models_dir: Path, precision: str, data, chunks: int) -> float:
    """Held-out bits/char of an exported step model, the same streams as TensorFlow's."""
    from runtime import registry

    sess = registry.load_session("text", "step", models_dir, precision)
    names = [i.name for i in sess.get_inputs()]
    inputs, targets = chunked(data.val_tokens, data.start_id, chunks)
    state = np.zeros((chunks, sess.get_inputs()[1].shape[1]), np.float32)
    total = 0.0
    for t in range(inputs.shape[1]):
        logits, state = sess.run(None, {names[0]: inputs[:, t].astype(np.int64),
                                        names[1]: state})
        z = logits.astype(np.float64)
        m = z.max(1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(z - m).sum(1))
        total += float(np.sum(lse - z[np.arange(chunks), targets[:, t]]))
    return total / LN2 / scored_chars(data.token_lengths, data.val_tokens, chunks)


# ============================================================================ the report
def evaluate(cfg, work_dir: Path, models_dir: Path) -> dict:
    from trainer import common
    from trainer.text import restore

    work_dir = Path(work_dir)
    data, obj = restore(cfg, work_dir)
    bpc = {"mle": val_bits_per_char(obj.reference, data.val_tokens, data.start_id,
                                    cfg.eval_chunks, data.token_lengths),
           "tuned": val_bits_per_char(obj.model, data.val_tokens, data.start_id,
                                      cfg.eval_chunks, data.token_lengths),
           "onnx_fp32": onnx_bits_per_char(models_dir, "fp32", data, cfg.eval_chunks),
           "onnx_int8": onnx_bits_per_char(models_dir, "int8", data, cfg.eval_chunks)}
    base = text_baselines.baselines(data, cfg.kn_orders)
    top_kn = f"kneser_ney_{max(cfg.kn_orders)}gram"
    pre, mle_texts, reals = samples(cfg, data, obj.reference, cfg.eval_samples)
    _, rl_texts, _ = samples(cfg, data, obj.model, cfg.eval_samples)
    stats = {"heldout": word_stats(pre, reals, data.words),
             "mle": word_stats(pre, mle_texts, data.words),
             "tuned": word_stats(pre, rl_texts, data.words)}
    judge = {"mle": judge_auc(reals, mle_texts, cfg.seed),
             "tuned": judge_auc(reals, rl_texts, cfg.seed)}
    _write_samples(work_dir, pre, mle_texts, rl_texts, reals, models_dir)
    r = lambda x: round(float(x), 4)  # noqa: E731
    tuned, held = stats["tuned"], stats["heldout"]
    checks = {
        "bpc_at_most_0.9x_kneser_ney": bpc["tuned"] <= 0.9 * base[top_kn],
        "bpc_at_most_compressor (goal beyond)": bpc["tuned"] <= min(
            v for k, v in base.items() if k in ("xz_9e", "ppmd_16")),
        "judge_auc_lower_after_tuning": judge["tuned"] < judge["mle"],
        "distinct_2_at_least_0.8x_heldout": tuned["distinct_2"] >= 0.8 * held["distinct_2"],
        "real_word_share_at_least_0.97": tuned["real_word_share"] >= 0.97,
        "repeated_trigrams_at_most_0.02": tuned["repeated_trigrams"] <= 0.02,
        "bpc_within_0.1_of_mle": abs(bpc["tuned"] - bpc["mle"]) <= 0.1,
    }
    files = common.load_json(Path(models_dir) / "manifest.json")["models"]["text"]["files"]
    return {
        "heldout_bits_per_char": {**{k: r(v) for k, v in bpc.items()},
                                  **{f"baseline_{k}": r(v) for k, v in base.items()}},
        "bpc_ratio_to_kneser_ney": r(bpc["tuned"] / base[top_kn]),
        "bpc_change_from_tuning": r(bpc["tuned"] - bpc["mle"]),
        "samples": {"n": cfg.eval_samples, "tokens": cfg.rl_len, "temperature": 1.0,
                    "prefix": f"{cfg.rl_prefix - 1} held-out tokens",
                    **{k: {q: r(v) for q, v in s.items()} for k, s in stats.items()}},
        "judge_roc_auc": {k: r(v) for k, v in judge.items()},
        "in_reward": ["discriminator logit (tuning reward)"],
        "not_in_reward": ["heldout_bits_per_char", "judge_roc_auc", "distinct_2",
                          "real_word_share", "repeated_trigrams"],
        "tokens": {"vocab": data.n_tokens, "chars_per_token_heldout":
                   r(len(data.val_text) / max(1, len(data.val_tokens)))},
        "corpus_chars": {"train": len(data.train_text), "heldout": len(data.val_text)},
        "bytes": {role: f["bytes"] for role, f in files.items()},
        "targets": {k: bool(v) for k, v in checks.items()},
        "targets_met": bool(all(v for k, v in checks.items() if "goal beyond" not in k)),
    }


def _write_samples(work_dir: Path, pre, mle_texts, rl_texts, reals, models_dir) -> None:
    import runtime

    demo = [runtime.generate("text", seed=s, models_dir=models_dir, prompt=p, max_tokens=60)
            for s, p in enumerate(["", "And the LORD said unto Moses, ", "Blessed are "])]
    lines = ["# runtime samples (defaults: temperature 0.8)"]
    lines += [f"--- seed {i}\n{t}" for i, t in enumerate(demo)]
    for name, texts in (("tuned", rl_texts), ("maximum likelihood", mle_texts),
                        ("real held-out continuation", reals)):
        lines.append(f"# {name}, T=1, held-out prefixes")
        lines += [f"--- [{p!r}] -> {t!r}" for p, t in zip(pre[:8], texts[:8])]
    (work_dir / "samples.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
