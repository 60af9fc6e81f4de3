"""The melody network: (event token, context) -> GRU -> next-event logits, in TensorFlow.

``MelodyNet`` embeds the previous event (or the start token) and the context of the event to
predict (``runtime.music_vocab``), concatenates them, runs a GRU and a dense output layer over
the ``N_EVENT`` events. Trained by maximum likelihood with teacher forcing (``mle_loss``); the
single-step form is what ships (``tf_export_step``: two embedding gathers, the GRU's input
projection, the GRU update, the output layer), the same arithmetic as Keras' GRU (checked at
export). ``numpy_step`` is the step with both embeddings folded into the input projection
(two gathers and an add), in numpy, for fast batched rollouts during RL and evaluation.
"""
from __future__ import annotations

import numpy as np

from runtime import music_vocab as V


def build_model(hidden: int, token_dim: int, context_dim: int, dropout: float = 0.0):
    """``dropout``: on the embedded input while training (no effect on the exported step)."""
    import keras

    class MelodyNet(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.tok = keras.layers.Embedding(V.N_TOKEN, token_dim)
            self.ctx = keras.layers.Embedding(V.N_CONTEXT, context_dim)
            self.drop = keras.layers.Dropout(dropout)
            self.gru = keras.layers.GRU(hidden, return_sequences=True, return_state=True)
            self.out = keras.layers.Dense(V.N_EVENT)

        def call(self, tokens, contexts, states=None, return_state=False, training=False):
            import tensorflow as tf

            x = tf.concat([self.tok(tokens), self.ctx(contexts)], axis=-1)
            x = self.drop(x, training=training)
            x, states = self.gru(x, initial_state=states, training=training)
            logits = self.out(x)
            return (logits, states) if return_state else logits

    model = MelodyNet()
    model(np.zeros((1, 2), np.int32), np.zeros((1, 2), np.int32))
    return model


def step_weights(model) -> list[np.ndarray]:
    """[tok_table, ctx_table, U, b_h, W_o, b_o] as numpy (embeddings folded into the kernel)."""
    cell = model.gru.cell
    kernel = np.asarray(cell.kernel)
    bias = np.asarray(cell.bias)
    e = model.tok.embeddings.shape[1]
    tok = np.asarray(model.tok.embeddings) @ kernel[:e] + bias[0]
    ctx = np.asarray(model.ctx.embeddings) @ kernel[e:]
    return [tok.astype(np.float32), ctx.astype(np.float32),
            np.asarray(cell.recurrent_kernel), bias[1].astype(np.float32),
            np.asarray(model.out.kernel), np.asarray(model.out.bias)]


def export_weights(model) -> list[np.ndarray]:
    """[tok_emb, ctx_emb, kernel, b_x, U, b_h, W_o, b_o]: the shipped step keeps the embeddings
    unfolded (two small tables and one input projection), which is less than half the size of
    ``step_weights``' folded tables (0.9 MB instead of 1.8 MB at 192 units)."""
    cell = model.gru.cell
    bias = np.asarray(cell.bias)
    return [np.asarray(model.tok.embeddings), np.asarray(model.ctx.embeddings),
            np.asarray(cell.kernel), bias[0].astype(np.float32),
            np.asarray(cell.recurrent_kernel), bias[1].astype(np.float32),
            np.asarray(model.out.kernel), np.asarray(model.out.bias)]


def tf_export_step(weights, token, context, state):
    """The shipped step: ``tf_step`` with the embeddings gathered, then projected."""
    import tensorflow as tf

    from trainer.common import gru_update

    tok, ctx, kernel, b_x, u, b_h, w_o, b_o = weights
    x = tf.concat([tf.gather(tok, token), tf.gather(ctx, context)], axis=-1)
    h = gru_update(tf.matmul(x, kernel) + b_x, state, u, b_h)
    return tf.matmul(h, w_o) + b_o, h


def tf_step(weights, token, context, state):
    """One step of Keras' GRU (reset_after=True) + output layer, in TensorFlow."""
    import tensorflow as tf

    from trainer.common import gru_update

    tok, ctx, u, b_h, w_o, b_o = weights
    h = gru_update(tf.gather(tok, token) + tf.gather(ctx, context), state, u, b_h)
    return tf.matmul(h, w_o) + b_o, h


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def numpy_step(weights, token, context, state):
    """``tf_step`` in numpy (float32), batched: token/context int [B], state [B, H]."""
    tok, ctx, u, b_h, w_o, b_o = weights
    gx = tok[token] + ctx[context]
    gh = state @ u + b_h
    h3 = gx.shape[1] // 3
    z = _sigmoid(gx[:, :h3] + gh[:, :h3])
    r = _sigmoid(gx[:, h3:2 * h3] + gh[:, h3:2 * h3])
    c = np.tanh(gx[:, 2 * h3:] + r * gh[:, 2 * h3:])
    h = c + z * (state - c)
    return h @ w_o + b_o, h.astype(np.float32)


def pad_batch(seqs: list[tuple[list[int], list[int]]], max_len: int):
    """(inputs [B,T], contexts [B,T], targets [B,T], mask [B,T]) from to_tokens pairs: the
    input at t is token t, the target token t+1, its context contexts[t]."""
    n = len(seqs)
    t = min(max_len, max(len(c) for _, c in seqs))
    inputs = np.zeros((n, t), np.int32)
    ctx = np.zeros((n, t), np.int32)
    targets = np.zeros((n, t), np.int32)
    mask = np.zeros((n, t), np.float32)
    for i, (tok, c) in enumerate(seqs):
        k = min(t, len(c))
        inputs[i, :k] = tok[:k]
        ctx[i, :k] = c[:k]
        targets[i, :k] = tok[1:k + 1]
        mask[i, :k] = 1.0
    return inputs, ctx, targets, mask


def sequence_nll(model, batch) -> tuple[float, float]:
    """(summed negative log-likelihood in nats, number of events) of a padded batch."""
    import tensorflow as tf

    inputs, ctx, targets, mask = batch
    logits = model(tf.constant(inputs), tf.constant(ctx))
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.constant(targets), logits)
    return float(tf.reduce_sum(ce * mask)), float(mask.sum())


def heldout_nll(model, seqs, max_len: int, batch: int = 128) -> float:
    """Mean nats per event over ``seqs`` (sorted by length into batches)."""
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i][1]))
    total = count = 0.0
    for i in range(0, len(order), batch):
        s, c = sequence_nll(model, pad_batch([seqs[j] for j in order[i:i + batch]], max_len))
        total += s
        count += c
    return total / max(count, 1.0)
