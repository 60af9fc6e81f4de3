"""The recommendation Q-network: Q(state, item) from item features (no per-item weights).

    Q(s, i) = V(s) + w . relu(A u(s) + B v(i) + C (u(s) * v(i)) + D m(s, i)) + u(s) . v(i)

u(s): an MLP over the catalogue-independent state (``runtime.recommend_features.featurise``);
v(i): an MLP over the item's features (topic mixture, quality, length, popularity, embedding);
m(s, i): five explicit matches (recent topics, topic profile, skipped profile and satiation against
the item's topic mixture; embedding profile against the item's embedding); V(s): a linear
state value (dueling-style: the part of Q shared by every item, so that a long-horizon value
does not have to be relearned per item).  Nothing in the network is tied
to an item id or to the catalogue's size, so the runtime can score any catalogue with the same
topics and embedding size (the exported ONNX graph takes the item features as an input).

In training the network sees ``[blocked (N) | state]`` (the simulator's observation; ``blocked``
is only used for the action mask) and scores the training catalogue, held as a constant.
"""
from __future__ import annotations

import numpy as np

_LAYERS: dict = {}


def _pair_layer():
    import keras
    from keras import ops

    if "PairQ" in _LAYERS:
        return _LAYERS["PairQ"]

    class PairQ(keras.layers.Layer):
        """Every weight is this layer's own (``add_weight``) and an attribute: nested Dense
        layers' variables were missing from ``tf.train.Checkpoint`` saves of the model."""

        def __init__(self, features, n_topics, embedding_dim, hidden, embed_dim, item_hidden,
                     pair_hidden, **kw):
            super().__init__(**kw)
            self.n_items, self.n_feat = features.shape
            self.t, self.e = int(n_topics), int(embedding_dim)
            self._init_features = np.asarray(features, np.float32)
            self.hidden = [int(h) for h in hidden]
            self.embed_dim, self.item_hidden, self.pair_hidden = embed_dim, item_hidden, pair_hidden

        def _dense(self, name, n_in, n_out, bias=True):
            w = self.add_weight(name=f"{name}_kernel", shape=(n_in, n_out),
                                initializer="glorot_uniform")
            b = self.add_weight(name=f"{name}_bias", shape=(n_out,), initializer="zeros") \
                if bias else None
            # a plain attribute per variable: tf.train.Checkpoint tracks attributes, not the
            # variables kept in the tuples below
            setattr(self, f"v_{name}_kernel", w)
            if b is not None:
                setattr(self, f"v_{name}_bias", b)
            return (w, b)

        def build(self, input_shape=None):
            self.features = self.add_weight(
                name="features", shape=(self.n_items, self.n_feat), trainable=False,
                initializer=keras.initializers.Constant(self._init_features))
            from runtime.recommend_features import state_dim

            d, self.user = state_dim(self.t, self.e), []
            for j, h in enumerate(self.hidden):
                self.user.append(self._dense(f"user{j}", d, h))
                d = h
            e, h = self.embed_dim, self.pair_hidden
            self.user_out = self._dense("user_out", d, e)
            self.item1 = self._dense("item1", self.n_feat, self.item_hidden)
            self.item2 = self._dense("item2", self.item_hidden, e)
            self.pu = self._dense("pair_user", e, h, bias=False)
            self.pi = self._dense("pair_item", e, h)
            self.pm = self._dense("pair_mul", e, h, bias=False)
            self.pmatch = self._dense("pair_match", 5, h, bias=False)
            self.out = self._dense("pair_out", h, 1)
            self.value = self._dense("value", d, 1)

        @staticmethod
        def _apply(x, wb, relu=False):
            w, b = wb
            y = ops.matmul(x, w)
            if b is not None:
                y = y + b
            return ops.relu(y) if relu else y

        def score(self, state, items):
            """state [B, S], items [N, F] -> Q [B, N]."""
            t, e = self.t, self.e
            u = state
            for wb in self.user:
                u = self._apply(u, wb, relu=True)
            value = self._apply(u, self.value)                           # [B, 1]
            u = self._apply(u, self.user_out)                           # [B, E']
            v = self._apply(self._apply(items, self.item1, relu=True), self.item2)   # [N, E']
            topics = items[:, :t]
            match = [ops.matmul(state[:, j * t:(j + 1) * t], ops.transpose(topics)) for j in range(3)]
            if e:
                emb = items[:, t + 3:t + 3 + e]
                match.append(ops.matmul(state[:, 3 * t:3 * t + e], ops.transpose(emb)))
            else:
                match.append(ops.zeros_like(match[0]))
            match.append(ops.matmul(state[:, 3 * t + e:4 * t + e], ops.transpose(topics)))
            m = ops.stack(match, axis=-1)                               # [B, N, 4]
            uv = u[:, None, :] * v[None, :, :]                          # [B, N, E']
            h = ops.relu(self._apply(u, self.pu)[:, None, :] + self._apply(v, self.pi)[None, :, :]
                         + self._apply(uv, self.pm) + self._apply(m, self.pmatch))
            return self._apply(h, self.out)[:, :, 0] + ops.sum(uv, axis=-1) + value

        def call(self, obs):
            return self.score(obs[:, self.n_items:], self.features)

    _LAYERS["PairQ"] = PairQ
    return PairQ


def make_q_network(features: np.ndarray, n_topics: int, embedding_dim: int, *, hidden=(128, 128),
                   embed_dim=32, item_hidden=64, pair_hidden=64, name="q"):
    """obs float32 [None, N + S] -> Q float32 [None, N] (trainer.dqn's interface); the scoring
    layer is ``model.get_layer(name + "_pairq")`` (its ``score(state, items)`` is exported)."""
    import keras

    from runtime.recommend_features import state_dim

    n = features.shape[0]
    s = state_dim(n_topics, embedding_dim)
    inp = keras.Input((n + s,), dtype="float32", name="obs")
    layer = _pair_layer()(features, n_topics, embedding_dim, hidden, embed_dim, item_hidden,
                          pair_hidden, name=f"{name}_pairq")
    return keras.Model(inp, layer(inp), name=name)
