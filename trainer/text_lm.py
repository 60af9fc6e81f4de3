"""The text kind's language model: Embedding -> GRU -> Dense over subword tokens.

Maximum likelihood with truncated backpropagation through time: the training tokens are cut
into ``batch_size`` contiguous streams; step k of an epoch reads window k of every stream and
starts from the GRU state the previous window left (a ``tf.Variable``, part of the
checkpoint), so the model learns context longer than one window. Every epoch shifts the stream
starts by a seeded random offset. Adam, learning rate constant for the first 80% of the steps
then linearly down to ``lr_final_fraction`` (so a run can be shortened before 80% without a
jump), global-norm clipping. One ``tf.function`` step.
"""
from __future__ import annotations

import math

import numpy as np

LN2 = math.log(2.0)


def build_model(vocab_size: int, embed_dim: int, hidden: int):
    import keras

    class TextGenerator(keras.Model):
        """Embedding -> GRU -> Dense."""

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

    model = TextGenerator(vocab_size, embed_dim, hidden)
    model(np.zeros((1, 2), np.int32))       # create the variables
    return model


def step_weights(model):
    """(embedding, W_in, b_in, U, b_h, W_o, b_o) of the Keras GRU (reset_after=True)."""
    cell = model.gru.cell
    bias = cell.bias                    # [2, 3H]: input bias, recurrent bias
    return (model.embedding.embeddings, cell.kernel, bias[0], cell.recurrent_kernel, bias[1],
            model.dense.kernel, model.dense.bias)


def gru_step(weights, token, state):
    """One step of Keras' GRU (gates z, r, h) + the output layer."""
    import tensorflow as tf

    from trainer.common import gru_update

    emb, w_in, b_in, u, b_h, w_o, b_o = weights
    h = gru_update(tf.matmul(tf.gather(emb, token), w_in) + b_in, state, u, b_h)
    return tf.matmul(h, w_o) + b_o, h


def make_sampler(model, vocab_size: int, unk: int):
    """Batched sampling in TensorFlow: continue ``prefix`` [B, P] by ``length`` tokens."""
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


# ============================================================================ held-out bits
def chunked(ids: np.ndarray, start_id: int, chunks: int):
    """``chunks`` contiguous streams of the held-out tokens, each fed the start token first."""
    length = len(ids) // chunks
    targets = np.asarray(ids[: length * chunks], np.int32).reshape(chunks, length)
    inputs = np.concatenate([np.full((chunks, 1), start_id, np.int32), targets[:, :-1]], 1)
    return inputs, targets


def scored_chars(token_lengths: np.ndarray, ids: np.ndarray, chunks: int) -> int:
    """Characters covered by the tokens that :func:`chunked` scores."""
    length = len(ids) // chunks
    return int(token_lengths[np.asarray(ids[: length * chunks])].sum())


def val_bits_per_char(model, ids: np.ndarray, start_id: int, chunks: int,
                      token_lengths: np.ndarray, window: int = 256) -> float:
    """Bits per character of the held-out tokens read as ``chunks`` streams from a zero state
    (in windows of ``window`` tokens, the state carried across)."""
    import tensorflow as tf

    inputs, targets = chunked(ids, start_id, chunks)
    score = getattr(model, "_text_score_fn", None)
    if score is None:
        @tf.function(reduce_retracing=True)
        def score(x, y, state):
            logits, state = model(x, states=state, return_state=True)
            ce = tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits)
            return tf.reduce_sum(ce), state
        model._text_score_fn = score
    state = tf.zeros((chunks, model.gru.units))
    total = 0.0
    for s in range(0, inputs.shape[1], window):
        ce, state = score(tf.constant(inputs[:, s: s + window]),
                          tf.constant(targets[:, s: s + window]), state)
        total += float(ce)
    return total / LN2 / scored_chars(token_lengths, ids, chunks)


# ============================================================================ MLE training
def lr_at(step, cfg):
    """Constant for the first 80% of ``cfg.mle_steps``, then linear to lr * lr_final_fraction."""
    knee = 0.8 * cfg.mle_steps
    frac = min(1.0, max(0.0, (step - knee) / max(1.0, cfg.mle_steps - knee)))
    return cfg.lr * (1.0 - frac * (1.0 - cfg.lr_final_fraction))


class StreamBatches:
    """Window ``k`` of epoch ``e`` of the ``batch`` contiguous token streams (deterministic)."""

    def __init__(self, ids: np.ndarray, batch: int, seq_len: int, seed: int):
        self.ids, self.batch, self.seq_len, self.seed = ids, batch, seq_len, seed
        self.stream_len = len(ids) // batch - seq_len - 1
        self.per_epoch = max(1, self.stream_len // seq_len)

    def get(self, step: int) -> tuple[np.ndarray, bool]:
        epoch, k = divmod(step, self.per_epoch)
        shift = int(np.random.default_rng((self.seed, epoch)).integers(0, self.seq_len + 1))
        base = np.arange(self.batch) * (len(self.ids) // self.batch) + shift + k * self.seq_len
        rows = base[:, None] + np.arange(self.seq_len + 1)[None, :]
        return self.ids[rows].astype(np.int32), k == 0


def make_mle_step(model, optimizer, cfg, state_var):
    """tf.function: one TBPTT step on a [B, T + 1] window, the state carried in ``state_var``."""
    import tensorflow as tf

    variables = model.trainable_variables

    @tf.function(autograph=False)
    def step(window, reset, lr):
        x, y = window[:, :-1], window[:, 1:]
        state = tf.where(reset, tf.zeros_like(state_var), state_var)
        with tf.GradientTape() as tape:
            logits, new_state = model(x, states=state, return_state=True, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
        grads = tape.gradient(loss, variables)
        grads, _ = tf.clip_by_global_norm(grads, cfg.clip_norm)
        optimizer.learning_rate.assign(lr)
        optimizer.apply_gradients(zip(grads, variables))
        state_var.assign(new_state)
        return loss

    return step
