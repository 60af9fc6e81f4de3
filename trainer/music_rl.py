"""Batched melody rollouts (numpy) and the RL Tuner-style policy-gradient update (TensorFlow).

``rollouts`` samples a batch of melodies from a step function with exactly the runtime's rule
(``runtime.music``: the same masks, the same context encoding), recording each step's allowed
events so the loss can use the same masked distribution. ``rl_update`` does one REINFORCE step
on the KL-regularised objective ``E[reward] - kl_coef * KL(policy || prior)`` (``kl_at``: the
coefficient may decay over the updates): with
``log p_prior`` inside the KL this is the RL Tuner's reward (music theory plus the prior's
log-probability) with an entropy bonus (KL control).
"""
from __future__ import annotations

import numpy as np

from runtime import music as rt
from runtime import music_vocab as V
from trainer.music_prior import numpy_step


def draw_settings(records, n: int, rng, bars_choices=(4, 8, 8, 16)):
    """(style, meter, minor, bars) for ``n`` melodies, drawn like the training tunes."""
    picks = rng.integers(0, len(records), n)
    return [(records[i]["style"], records[i]["meter"], records[i]["minor"],
             int(bars_choices[rng.integers(0, len(bars_choices))])) for i in picks]


def rollouts(weights, settings, rng, temperature: float = 1.0, top_p: float = 1.0):
    """Sample one melody per setting (batched); returns a list of dicts with ``notes``,
    ``tokens`` (inputs incl. the start token), ``contexts``, ``masks`` (allowed event indices
    per step). ``temperature`` and ``top_p`` as in ``runtime.music.pick``."""
    b = len(settings)
    hidden = weights[2].shape[0]
    totals = np.array([bars * V.METERS[meter] for _, meter, _, bars in settings])
    bar_lens = np.array([V.METERS[meter] for _, meter, _, _ in settings])
    onset = np.zeros(b, int)
    token = np.array([V.N_EVENT + V.bos_index(s, m, mi) for s, m, mi, _ in settings])
    state = np.zeros((b, hidden), np.float32)
    out = [{"notes": [], "tokens": [int(token[i])], "contexts": [], "masks": [],
            "meter": settings[i][1], "minor": settings[i][2], "style": settings[i][0]}
           for i in range(b)]
    last_rest = np.zeros(b, bool)
    while True:
        live = np.flatnonzero(onset < totals)
        if not len(live):
            break
        ctx = np.array([V.context_at(int(onset[i]), int(bar_lens[i]), 0, int(totals[i]))
                        for i in live])
        logits, new_state = numpy_step(weights, token[live], ctx, state[live])
        state[live] = new_state
        u = rng.random(len(live))
        for j, i in enumerate(live):
            rec = out[i]
            idx = rt.allowed(int(totals[i] - onset[i]), not rec["notes"], bool(last_rest[i]))
            a = rt.pick(logits[j], idx, u[j], temperature, top_p)
            pi, di = V.split_token(a)
            d = V.DURATIONS[di]
            last_rest[i] = pi == V.REST
            rec["notes"].append((None if last_rest[i] else V.PITCH_LOW + pi, d))
            rec["tokens"].append(a)
            rec["contexts"].append(int(ctx[j]))
            rec["masks"].append(idx)
            token[i] = a
            onset[i] += d
    return out


def pad_rollouts(rolls):
    """(inputs, contexts, actions, step mask [B,T], event masks [B,T,N_EVENT]) as arrays."""
    b = len(rolls)
    t = max(len(r["contexts"]) for r in rolls)
    inputs = np.zeros((b, t), np.int32)
    ctx = np.zeros((b, t), np.int32)
    actions = np.zeros((b, t), np.int32)
    valid = np.zeros((b, t), np.float32)
    allowed = np.ones((b, t, V.N_EVENT), bool)
    for i, r in enumerate(rolls):
        k = len(r["contexts"])
        inputs[i, :k] = r["tokens"][:k]
        ctx[i, :k] = r["contexts"]
        actions[i, :k] = r["tokens"][1:k + 1]
        valid[i, :k] = 1.0
        allowed[i, :k] = False
        for t, idx in enumerate(r["masks"]):
            allowed[i, t, idx] = True
    return inputs, ctx, actions, valid, allowed


def kl_at(update: int, updates: int, kl_coef: float, kl_final: float | None) -> float:
    """The KL coefficient at ``update`` (0-based): ``kl_coef`` throughout when ``kl_final`` is
    None, else decaying geometrically from ``kl_coef`` to ``kl_final`` at the last update."""
    if kl_final is None or updates <= 1:
        return float(kl_coef)
    return float(kl_coef * (kl_final / kl_coef) ** (update / (updates - 1)))


def make_rl_step(model, prior, optimizer, clip: float = 1.0):
    """One REINFORCE step; its last argument is the KL coefficient (``kl_at``)."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def step(inputs, ctx, actions, valid, allowed, advantages, kl_coef):
        neg = tf.where(allowed, 0.0, -1e9)
        prior_logp = tf.nn.log_softmax(prior(inputs, ctx) + neg)
        with tf.GradientTape() as tape:
            logp = tf.nn.log_softmax(model(inputs, ctx) + neg)       # no dropout: as sampled
            taken = tf.reduce_sum(tf.one_hot(actions, V.N_EVENT) * logp, axis=-1) * valid
            pg = -tf.reduce_mean(advantages * tf.reduce_sum(taken, axis=1))
            p = tf.exp(logp)
            kl_t = tf.reduce_sum(tf.where(allowed, p * (logp - prior_logp), 0.0), axis=-1)
            kl = tf.reduce_sum(kl_t * valid) / tf.reduce_sum(valid)
            loss = pg / tf.reduce_mean(tf.reduce_sum(valid, axis=1)) + kl_coef * kl
        grads = tape.gradient(loss, model.trainable_variables)
        grads, _ = tf.clip_by_global_norm(grads, clip)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss, kl

    return step
