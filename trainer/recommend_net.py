"""The recommendation Q-network: Q(state, item) from item features (no per-item weights).

    Q(s, i) = w . relu(A u(s) + B v(i) + C (u(s) * v(i)) + D m(s, i)) + u(s) . v(i)

u(s): an MLP over the catalogue-independent state (``runtime.recommend_features.featurise``);
v(i): an MLP over the item's features (topic mixture, quality, length, popularity, embedding);
m(s, i): four explicit matches (recent topics, topic profile, skipped profile against the item's
topic mixture; embedding profile against the item's embedding).  Nothing in the network is tied
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
        def __init__(self, features, n_topics, embedding_dim, hidden, embed_dim, item_hidden,
                     pair_hidden, **kw):
            super().__init__(**kw)
            self.n_items, self.n_feat = features.shape
            self.t, self.e = int(n_topics), int(embedding_dim)
            self._init_features = np.asarray(features, np.float32)
            self.user = [keras.layers.Dense(int(h), activation="relu", name=f"user{j}")
                         for j, h in enumerate(hidden)]
            self.user_out = keras.layers.Dense(embed_dim, name="user_out")
            self.item1 = keras.layers.Dense(item_hidden, activation="relu", name="item1")
            self.item2 = keras.layers.Dense(embed_dim, name="item2")
            self.pu = keras.layers.Dense(pair_hidden, use_bias=False, name="pair_user")
            self.pi = keras.layers.Dense(pair_hidden, name="pair_item")
            self.pm = keras.layers.Dense(pair_hidden, use_bias=False, name="pair_mul")
            self.pmatch = keras.layers.Dense(pair_hidden, use_bias=False, name="pair_match")
            self.out = keras.layers.Dense(1, name="pair_out")
            self.embed_dim, self.pair_hidden = embed_dim, pair_hidden

        def build(self, input_shape=None):
            self.features = self.add_weight(
                name="features", shape=(self.n_items, self.n_feat), trainable=False,
                initializer=keras.initializers.Constant(self._init_features))
            d = 3 * self.t + self.e + 6
            for layer in self.user:
                layer.build((None, d))
                d = layer.units
            self.user_out.build((None, d))
            self.item1.build((None, self.n_feat))
            self.item2.build((None, self.item1.units))
            for layer in (self.pu, self.pi, self.pm):
                layer.build((None, self.embed_dim))
            self.pmatch.build((None, 4))
            self.out.build((None, self.pair_hidden))

        def score(self, state, items):
            """state [B, S], items [N, F] -> Q [B, N]."""
            t, e = self.t, self.e
            u = state
            for layer in self.user:
                u = layer(u)
            u = self.user_out(u)                                        # [B, E']
            v = self.item2(self.item1(items))                           # [N, E']
            topics = items[:, :t]
            match = [ops.matmul(state[:, j * t:(j + 1) * t], ops.transpose(topics)) for j in range(3)]
            if e:
                emb = items[:, t + 3:t + 3 + e]
                match.append(ops.matmul(state[:, 3 * t:3 * t + e], ops.transpose(emb)))
            else:
                match.append(ops.zeros_like(match[0]))
            m = ops.stack(match, axis=-1)                               # [B, N, 4]
            uv = u[:, None, :] * v[None, :, :]                          # [B, N, E']
            h = ops.relu(self.pu(u)[:, None, :] + self.pi(v)[None, :, :] + self.pm(uv)
                         + self.pmatch(m))
            return self.out(h)[:, :, 0] + ops.sum(uv, axis=-1)

        def call(self, obs):
            return self.score(obs[:, self.n_items:], self.features)

    _LAYERS["PairQ"] = PairQ
    return PairQ


def make_q_network(features: np.ndarray, n_topics: int, embedding_dim: int, *, hidden=(128, 128),
                   embed_dim=32, item_hidden=64, pair_hidden=64, name="q"):
    """obs float32 [None, N + S] -> Q float32 [None, N] (trainer.dqn's interface); the scoring
    layer is ``model.get_layer(name + "_pairq")`` (its ``score(state, items)`` is exported)."""
    import keras

    n = features.shape[0]
    s = 3 * n_topics + embedding_dim + 6
    inp = keras.Input((n + s,), dtype="float32", name="obs")
    layer = _pair_layer()(features, n_topics, embedding_dim, hidden, embed_dim, item_hidden,
                          pair_hidden, name=f"{name}_pairq")
    return keras.Model(inp, layer(inp), name=name)
