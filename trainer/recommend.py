"""Recommendation policy: DQN against a RecSim-style user-interest simulator (trainer.recsim).

State: ``runtime.recommend.featurise(history)`` (multi-hot of consumed items, recent and decayed
topic profiles, counters) -- the same numpy function the runtime uses.  Actions: the N catalogue
items (Q-values over items, items already consumed are masked out).

Slates in training (the DQN action is one item): the slate shown to the simulated user is
[action] + the top-(k-1) other allowed items by the same batch of Q-values (``slate_builder``,
through ``train_dqn(env_action_fn=...)``), and the transition stores the action with the
slate's reward (the watch time of whatever the user clicked).  With probability 1 - epsilon the
action is the argmax, so the greedy training slate is exactly the served top-k slate; the
simulator's position bias makes the first slot the one that matters most.  Q(s, i) is the
long-term watch time of leading the slate with item i.  The Q-network (``make_q_network``)
scores items as <user(s), item(features_i)> + bias_i + value(s), so what it learns about one
item transfers to items with similar topics/quality/length.  Double DQN, 3-step returns,
Huber loss, hard target updates every 250 updates.

Evaluation (``evaluate``) runs ``eval_sessions`` simulated sessions with k-item slates for:
the exported DQN (fp32 and int8 ONNX through the runtime's featurisation and top-k), random,
most-popular (items ranked by clicks in logged random-slate sessions), myopic greedy (top-k by
the one-step expected watch time computed from the user's *hidden* interests: an oracle
one-step model, stronger than any learned one) and a learned myopic greedy (the same DQN
machinery with gamma = 0, i.e. a one-step reward model on the same state).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.recommend import Catalogue, featurise, obs_dim, top_k
from trainer.recsim import RecSimConfig, RecSimEnv, make_catalogue

KIND = "recommend"
DATA = ("Seeded RecSim-style simulator (trainer/recsim.py): catalogue of n_items items over "
        "n_topics topics (topic mixture, length, quality, hidden appeal anti-correlated with "
        "quality); users with hidden topic interests that drift with consumption, multinomial "
        "logit choice with a no-click option, watch time as reward, a time budget that good "
        "items partly refund. No external data.")


@dataclass
class Config:
    seed: int = 0
    # simulator (the other dynamics constants are RecSimConfig's documented defaults)
    n_items: int = 200
    n_topics: int = 10
    catalogue_seed: int = 2024
    # DQN (see trainer.dqn.DQNConfig for the units)
    total_steps: int = 200_000
    learning_rate: float = 5e-4
    buffer_size: int = 100_000
    batch_size: int = 128
    gamma: float = 0.97
    tau: float = 1.0
    target_update_every: int = 250
    start_epsilon: float = 1.0
    end_epsilon: float = 0.05
    exploration_fraction: float = 0.4
    learning_starts: int = 2000
    train_every: int = 2
    hidden: tuple = (256, 256)
    embed_dim: int = 32              # user/item embedding size of the Q head
    item_hidden: int = 64            # item tower width (item features -> embedding)
    double_dqn: bool = True
    num_envs: int = 16
    checkpoint_every: int = 10_000
    prioritized: bool = False
    n_step: int = 3
    train_slate_k: int = 5           # slate size in training: [DQN action] + top-(k-1) by Q
    # learned myopic baseline: the same DQN with gamma = 0 (a one-step reward model on the same
    # state and slates), trained for as many steps as the DQN; 0 = skip it
    myopic_steps: int = 200_000
    # evaluation
    slate_k: int = 5
    eval_sessions: int = 1000
    popularity_sessions: int = 1000


PROFILES = {
    "quick": Config(total_steps=6_000, learning_starts=500, buffer_size=10_000, hidden=(64, 64),
                    checkpoint_every=3_000, target_update_every=50, myopic_steps=0, num_envs=8,
                    eval_sessions=100, popularity_sessions=200),
    "full": Config(),
}

EVAL_SEED0 = 10_000_000        # evaluation users never overlap with training users
POP_SEED0 = 20_000_000


def sim_config(cfg: Config) -> RecSimConfig:
    return RecSimConfig(n_items=cfg.n_items, n_topics=cfg.n_topics, catalogue_seed=cfg.catalogue_seed)


def catalogue(cfg: Config) -> dict:
    return make_catalogue(cfg.n_items, cfg.n_topics, cfg.catalogue_seed)


def shipped_catalogue(raw: dict) -> dict:
    """What the runtime gets: observable item features only (no hidden appeal / user prior)."""
    return {"n_items": raw["n_items"], "n_topics": raw["n_topics"], "items": raw["items"],
            "features": "runtime.recommend.featurise"}


def _dqn_config(cfg: Config, *, gamma=None, total_steps=None):
    from trainer.dqn import DQNConfig

    return DQNConfig(total_steps=total_steps or cfg.total_steps, learning_rate=cfg.learning_rate,
                     buffer_size=cfg.buffer_size, batch_size=cfg.batch_size,
                     gamma=cfg.gamma if gamma is None else gamma, tau=cfg.tau,
                     target_update_every=cfg.target_update_every,
                     start_epsilon=cfg.start_epsilon, end_epsilon=cfg.end_epsilon,
                     exploration_fraction=cfg.exploration_fraction,
                     learning_starts=cfg.learning_starts, train_every=cfg.train_every,
                     hidden=tuple(cfg.hidden), double_dqn=cfg.double_dqn, num_envs=cfg.num_envs,
                     seed=cfg.seed, checkpoint_every=cfg.checkpoint_every,
                     prioritized=cfg.prioritized, n_step=cfg.n_step)


def item_features(cat: Catalogue) -> np.ndarray:
    """Observable item features [N, T + 2]: topic mixture, quality, length / 4 minutes."""
    return np.concatenate([cat.topics, cat.quality[:, None], cat.length[:, None] / 4.0], 1).astype(np.float32)


_LAYERS: dict = {}


def make_q_network(cfg: Config, name: str = "q"):
    """Q(s, i) = <user(s), item(i)> + bias_i + value(s).

    user(s): MLP over the state (cfg.hidden) -> embed_dim; item(i): a small MLP over the item's
    observable features (topics, quality, length) -> embed_dim, so what is learned about one item
    transfers to similar ones; bias_i: a free per-item correction. Input obs float32
    [None, obs_dim] -> Q float32 [None, N] (the same interface as trainer.dqn.make_q_network).
    """
    import keras
    from keras import ops

    if "ItemScores" not in _LAYERS:
        class ItemScores(keras.layers.Layer):
            def __init__(self, features, embed_dim, item_hidden, **kw):
                super().__init__(**kw)
                self.n_items, self.n_feat = features.shape
                self._init_features = np.asarray(features, np.float32)
                self.item1 = keras.layers.Dense(item_hidden, activation="relu", name="item1")
                self.item2 = keras.layers.Dense(embed_dim, name="item2")

            def build(self, input_shape=None):
                self.features = self.add_weight(
                    name="features", shape=(self.n_items, self.n_feat), trainable=False,
                    initializer=keras.initializers.Constant(self._init_features))
                self.item_bias = self.add_weight(name="item_bias", shape=(self.n_items,),
                                                 initializer="zeros")
                self.item1.build((self.n_items, self.n_feat))
                self.item2.build((self.n_items, self.item1.units))

            def call(self, inputs):
                user, value = inputs                                     # [B, E], [B, 1]
                items = self.item2(self.item1(self.features))            # [N, E]
                # value is added here, not with a functional `+` between the layers' outputs:
                # Keras 3.15's functional add of [B, N] and [B, 1] is wrong when B == N
                return ops.matmul(user, ops.transpose(items)) + self.item_bias + value

        _LAYERS["ItemScores"] = ItemScores
    cat = Catalogue.from_json(catalogue(cfg))
    inp = keras.Input((obs_dim(cat),), dtype="float32", name="obs")
    x = inp
    for i, h in enumerate(cfg.hidden):
        x = keras.layers.Dense(int(h), activation="relu", name=f"{name}_dense{i}")(x)
    user = keras.layers.Dense(cfg.embed_dim, name=f"{name}_user")(x)
    value = keras.layers.Dense(1, name=f"{name}_value")(x)
    q = _LAYERS["ItemScores"](item_features(cat), cfg.embed_dim, cfg.item_hidden,
                              name=f"{name}_items")([user, value])
    return keras.Model(inp, q, name=name)


def slate_builder(cfg: Config):
    """Training slates: the DQN's action in position 1, the other ``train_slate_k - 1`` positions
    the top items by the same Q-values (allowed items only).  With probability 1 - epsilon the
    action is the argmax, so the greedy training slate is exactly the served top-k slate."""
    k = cfg.train_slate_k

    def build(actions, q, mask):
        q = np.where(mask, q, -np.inf) if mask is not None else q.copy()
        q[np.arange(len(actions)), actions] = np.inf                  # the action goes first
        top = np.argpartition(-q, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(q, top, 1).argsort(axis=1)[:, ::-1]
        return [row.tolist() for row in np.take_along_axis(top, order, 1)]
    return build


def action_mask(cfg: Config):
    n = cfg.n_items

    def mask(obs: np.ndarray) -> np.ndarray:          # allowed = not consumed (multi-hot < 0.5)
        return obs[:, :n] < 0.5
    return mask


def train(cfg: Config, work_dir: Path, *, strategy=None) -> None:
    from trainer.common import save_json, save_learning_curve
    from trainer.dqn import train_dqn

    work_dir = Path(work_dir)
    raw, sim = catalogue(cfg), sim_config(cfg)
    make_env = lambda i: RecSimEnv(raw, sim)          # noqa: E731
    runs = [("dqn", cfg.gamma, cfg.total_steps)]
    if cfg.myopic_steps > 0:
        runs.append(("myopic", 0.0, cfg.myopic_steps))
    summary = {}
    for name, gamma, steps in runs:
        dcfg = _dqn_config(cfg, gamma=gamma, total_steps=steps)
        _, hist = train_dqn(make_env, dcfg, work_dir / name, strategy=strategy,
                            action_mask_fn=action_mask(cfg), progress_desc=f"recommend {name}",
                            q_network_fn=lambda d, n, qname: make_q_network(cfg, qname),
                            env_action_fn=slate_builder(cfg) if cfg.train_slate_k > 1 else None)
        rets = hist["episode_returns"]
        summary[name] = {"episodes": len(rets), "steps": hist.get("steps", 0),
                         "steps_per_second": hist["steps_per_second"],
                         "final_mean_return_train": float(np.mean(rets[-200:])) if rets else 0.0}
        if name == "dqn":
            save_learning_curve(work_dir / "learning_curve.png",
                                {"episode return (train, eps-greedy, 5-item slates)": rets,
                                 "Huber loss per update": hist["losses"]},
                                xlabel="episode | update", title="recommend DQN")
    save_json(work_dir / "train_summary.json", summary)


def _load_q(cfg: Config, work_dir: Path, name: str):
    import tensorflow as tf

    q = make_q_network(cfg, "q")
    ckpt = tf.train.Checkpoint(q=q)
    latest = tf.train.latest_checkpoint(str(Path(work_dir) / name / "checkpoints"))
    if latest is None:
        raise FileNotFoundError(f"no {name} checkpoint in {Path(work_dir) / name}: train first")
    ckpt.restore(latest).expect_partial().assert_existing_objects_matched()   # fail loudly
    return q


def _sample_obs(cfg: Config, n: int = 16) -> np.ndarray:
    """Realistic states for the export parity check (random histories of 0..12 items)."""
    cat = Catalogue.from_json(catalogue(cfg))
    rng = np.random.default_rng(0)
    return np.stack([featurise(rng.choice(cfg.n_items, int(rng.integers(0, 13)), replace=False).tolist(), cat)
                     for _ in range(n)])


def export(cfg: Config, work_dir: Path, out_dir: Path) -> None:
    import tensorflow as tf
    from trainer.common import config_dict
    from trainer.export import export_tf_function, quantize_int8, write_entry, write_json

    out_dir = Path(out_dir)
    q = _load_q(cfg, work_dir, "dqn")
    d = int(q.inputs[0].shape[-1])

    @tf.function
    def q_values(obs):
        return {"q": q(obs, training=False)}

    sig = [tf.TensorSpec([None, d], tf.float32, name="obs")]
    e_q = export_tf_function(q_values, sig, kind=KIND, role="q", out_dir=out_dir,
                             sample_inputs=[[_sample_obs(cfg)]])
    e_q8 = quantize_int8(e_q, kind=KIND, role="q_int8", out_dir=out_dir)
    e_cat = write_json(shipped_catalogue(catalogue(cfg)), kind=KIND, role="catalogue", out_dir=out_dir)
    write_entry(out_dir, KIND, {"q": e_q, "q_int8": e_q8, "catalogue": e_cat}, config_dict(cfg),
                notes="Q-network over catalogue items; slate = top-k Q among items not in "
                      "history; state = runtime.recommend.featurise(history).")


# ------------------------------------------------------------------------------ evaluation
def run_sessions(policy, cfg: Config, n_sessions: int, k: int, seed0: int = EVAL_SEED0) -> dict:
    """Lock-step simulation of ``n_sessions`` users; ``policy(obs [B, D], envs, rng, k) -> slates``.

    Returns mean/sem return, CTR (clicks / slates), mean length, coverage (share of the
    catalogue shown at least once) and per-item click counts."""
    raw, sim = catalogue(cfg), sim_config(cfg)
    envs = [RecSimEnv(raw, sim) for _ in range(n_sessions)]
    obs = np.stack([e.reset(seed=seed0 + i)[0] for i, e in enumerate(envs)])
    rng = np.random.default_rng(seed0)
    active = np.arange(n_sessions)
    returns, lengths = np.zeros(n_sessions), np.zeros(n_sessions, np.int64)
    shown = np.zeros(cfg.n_items, bool)
    clicks_per_item = np.zeros(cfg.n_items, np.int64)
    clicks = slates = 0
    while len(active):
        chosen = policy(obs[active], [envs[i] for i in active], rng, k)
        keep = []
        for j, i in enumerate(active):
            slate = np.asarray(chosen[j][:k], np.int64)
            shown[slate] = True
            o, r, term, trunc, info = envs[i].step(slate)
            obs[i] = o
            returns[i] += r
            lengths[i] += 1
            slates += 1
            if info["clicked"] is not None:
                clicks += 1
                clicks_per_item[info["clicked"]] += 1
            if not (term or trunc):
                keep.append(i)
        active = np.asarray(keep, np.int64)
    return {"mean_return": float(returns.mean()),
            "sem_return": float(returns.std(ddof=1) / np.sqrt(n_sessions)) if n_sessions > 1 else 0.0,
            "ctr": float(clicks / max(1, slates)),
            "mean_session_length": float(lengths.mean()),
            "coverage": float(shown.mean()),
            "_clicks_per_item": clicks_per_item}


def _topk_policy(score_fn):
    def policy(obs, envs, rng, k):
        scores = score_fn(obs, envs)
        return [top_k(scores[j], e.history, k, rng) for j, e in enumerate(envs)]
    return policy


def random_policy(obs, envs, rng, k):
    out = []
    for e in envs:
        free = np.flatnonzero(~e.consumed)
        out.append(rng.choice(free, min(k, len(free)), replace=False))
    return out


def onnx_scores(models_dir: Path, precision: str = "fp32"):
    from runtime import registry

    sess = registry.session(KIND, "q", models_dir, precision)
    name = sess.get_inputs()[0].name
    return lambda obs, envs: sess.run(None, {name: obs.astype(np.float32)})[0]


def evaluate(cfg: Config, work_dir: Path, models_dir: Path) -> dict:
    import tensorflow as tf

    k, n = cfg.slate_k, cfg.eval_sessions
    t0 = time.time()
    # most-popular: rank items by clicks in logged sessions of the random policy
    pop_log = run_sessions(random_policy, cfg, cfg.popularity_sessions, k, seed0=POP_SEED0)
    popularity = pop_log["_clicks_per_item"].astype(np.float64)
    policies = {
        "dqn": _topk_policy(onnx_scores(models_dir, "fp32")),
        "dqn_int8": _topk_policy(onnx_scores(models_dir, "int8")),
        "random": random_policy,
        "most_popular": _topk_policy(lambda obs, envs: np.broadcast_to(popularity, (len(envs), len(popularity)))),
        "myopic_greedy_oracle": _topk_policy(lambda obs, envs: np.stack([e.myopic_values() for e in envs])),
    }
    myo_dir = Path(work_dir) / "myopic" / "checkpoints"
    if cfg.myopic_steps > 0 and tf.train.latest_checkpoint(str(myo_dir)):
        q_myo = _load_q(cfg, work_dir, "myopic")
        f = tf.function(lambda x: q_myo(x, training=False))
        policies["myopic_greedy_learned"] = _topk_policy(lambda obs, envs: f(tf.constant(obs)).numpy())
    results = {}
    for name, pol in policies.items():
        res = run_sessions(pol, cfg, n, k)
        res.pop("_clicks_per_item")
        results[name] = {key: round(v, 4) for key, v in res.items()}
    dqn = results["dqn"]["mean_return"]
    myopic_ref = results.get("myopic_greedy_learned", results["myopic_greedy_oracle"])["mean_return"]
    metrics = {
        "sessions": n, "slate_k": k, "n_items": cfg.n_items,
        "policies": results,
        "dqn_return_vs_myopic_oracle": round(dqn / results["myopic_greedy_oracle"]["mean_return"], 4),
        "dqn_return_vs_myopic_learned": round(dqn / myopic_ref, 4),
        "dqn_return_vs_random": round(dqn / results["random"]["mean_return"], 4),
        "dqn_return_vs_most_popular": round(dqn / results["most_popular"]["mean_return"], 4),
        "target": "dqn >= 1.05 x myopic greedy and >= 1.5 x random (mean session return)",
        "eval_seconds": round(time.time() - t0, 1),
    }
    summary = Path(work_dir) / "train_summary.json"
    if summary.exists():
        metrics["training"] = json.loads(summary.read_text())
    return metrics
