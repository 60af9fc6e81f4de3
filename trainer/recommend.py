"""Recommendation policy: DQN against a RecSim-style user-interest simulator (trainer.recsim).

State: ``runtime.recommend_features.featurise(history, catalogue, engagement, skipped)``, the
same numpy function the runtime uses; it does not depend on the catalogue's size or ids.
Actions: the catalogue's items, scored by ``Q(state, item features)``
(``trainer.recommend_net``), items consumed or skipped in the last slate masked out.

Slates in training (the DQN action is one item): the slate shown to the simulated user is
[action] + the top-(k-1) other allowed items by the same batch of Q-values (``slate_builder``,
through ``train_dqn(env_action_fn=...)``).  The full profile trains on one-item slates
(``train_slate_k = 1``): the reward is then the action's own (its watch time when clicked), so
Q(s, i) is item i's value; with longer training slates the action was credited with whatever
the user clicked.  The served slate is the top-k by the same Q-values.  Double DQN, n-step
returns, Huber loss, hard target updates.

Two runs share the network and the trainer: ``myopic`` (gamma = 0, a one-step reward model)
and ``dqn`` (gamma, n-step; skipped when ``total_steps`` is 0).  Then the ``rollout`` stage
(``trainer.recommend_rollout``): approximate policy iteration with rollout targets in the
simulator, a least-squares fit of their long-term part on eight features, added to the myopic
network's output.  ``Config.ship`` picks what is exported (default ``rollout``: the myopic
network + the last round's linear term, one graph); the others are evaluated next to it (the
ablations).  Evaluation: ``trainer.recommend_eval``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.recommend_features import featurise, item_features, parse_catalogue
from trainer.recsim import RecSimConfig, RecSimEnv, make_catalogue

KIND = "recommend"
DATA = ("Seeded RecSim-style simulator (trainer/recsim.py): catalogue of n_items items over "
        "n_topics topics (topic mixture, length, quality, popularity, an 8-d style embedding, "
        "hidden appeal anti-correlated with quality); heterogeneous users (one or 2-5 favourite "
        "topics, uniform over topics, a style taste) who arrive with a history drawn from their "
        "interests (or none: cold start), multinomial logit choice with a no-click option and "
        "position bias, watch time as reward, a time budget that good items partly refund, "
        "interests that drift with consumption. No external data.")


@dataclass
class Config:
    seed: int = 0
    # simulator (the other dynamics constants are RecSimConfig's documented defaults)
    n_items: int = 200
    n_topics: int = 10
    embedding_dim: int = 8
    catalogue_seed: int = 2024
    # DQN (see trainer.dqn.DQNConfig for the units)
    total_steps: int = 90_000
    learning_rate: float = 5e-4
    buffer_size: int = 100_000
    batch_size: int = 128
    gamma: float = 0.9
    tau: float = 1.0
    target_update_every: int = 250
    start_epsilon: float = 1.0
    end_epsilon: float = 0.05
    exploration_fraction: float = 0.2   # of each run's steps (fine-tuning starts at the end)
    learning_starts: int = 2000
    train_every: int = 1            # an update every lock-step step (16 transitions)
    hidden: tuple = (128, 128)
    embed_dim: int = 32              # user/item embedding size of the Q head
    item_hidden: int = 64            # item tower width (item features -> embedding)
    pair_hidden: int = 32            # width of the (user, item) pair layer
    double_dqn: bool = True
    num_envs: int = 16
    checkpoint_every: int = 10_000
    prioritized: bool = False
    n_step: int = 3
    # slate size in training: [DQN action] + top-(k-1) by Q.  1: one-item slates, so the reward
    # belongs to the action (with 5-item slates the action's Q learned the reward of whatever
    # the user clicked: 0.75x the return of one-item training, see docs/kinds/recommend.md)
    train_slate_k: int = 1
    # which trained run is exported and served: "rollout" (the myopic network + the rollout
    # stage's linear term), "dqn" (gamma) or "myopic" (gamma 0); the others are evaluated next
    # to it
    ship: str = "rollout"
    # learned myopic baseline: the same DQN with gamma = 0; 0 = skip it
    myopic_steps: int = 90_000
    # the DQN starts from the myopic network's weights (a one-step reward model) and is
    # fine-tuned with gamma for total_steps more transitions; False: from scratch
    init_from_myopic: bool = True
    # ablation: the same DQN trained from scratch for scratch_steps (0 = skip)
    scratch_steps: int = 0
    scratch_gamma: float = 0.95
    # rollout stage (trainer.recommend_rollout): approximate policy iteration after the myopic
    # run; rounds of states from the current policy's sessions on training users, rollout
    # targets of the top / random candidates, a least-squares fit of their rollout part
    rollout_rounds: int = 2
    rollout_states: int = 3000       # states per round (0.6-1 s each on one core)
    rollout_keep: float = 0.15       # probability that a session step is kept as a state
    rollout_top: int = 10            # candidates: the current policy's top items ...
    rollout_random: int = 10         # ... and random other allowed items
    rollout_click: int = 3           # rollouts per candidate after a click on it
    rollout_noclick: int = 6         # ... and after no click
    rollout_terms: str = "all"       # "all" eight features, or "state": only those multiplied
                                     # by A or the trust estimate
    # evaluation
    slate_k: int = 5
    eval_sessions: int = 600
    probe_histories: int = 500       # random histories for coverage / max item share
    focused_per_topic: int = 50      # focused histories (5 items of one topic) per topic


PROFILES = {
    "quick": Config(total_steps=1_500, learning_starts=500, buffer_size=10_000, hidden=(32, 32),
                    embed_dim=16, item_hidden=16, pair_hidden=16, checkpoint_every=1_000,
                    target_update_every=50, myopic_steps=1_500, scratch_steps=0, num_envs=8,
                    rollout_states=16, rollout_top=3, rollout_random=2, rollout_click=1,
                    rollout_noclick=1, rollout_keep=0.3, eval_sessions=60,
                    probe_histories=100, focused_per_topic=5),
    "full": Config(),
}


def sim_config(cfg: Config) -> RecSimConfig:
    return RecSimConfig(n_items=cfg.n_items, n_topics=cfg.n_topics,
                        embedding_dim=cfg.embedding_dim, catalogue_seed=cfg.catalogue_seed)


def catalogue(cfg: Config, seed: int | None = None) -> dict:
    return make_catalogue(cfg.n_items, cfg.n_topics,
                          cfg.catalogue_seed if seed is None else seed, cfg.embedding_dim)


def shipped_catalogue(raw: dict) -> dict:
    """What the runtime gets: the observable item features only (no hidden appeal)."""
    return {k: v for k, v in raw.items() if k != "appeal"}


def _dqn_config(cfg: Config, *, gamma=None, total_steps=None, n_step=None):
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
                     prioritized=cfg.prioritized,
                     n_step=cfg.n_step if n_step is None else n_step)


def make_q_network(cfg: Config, name: str = "q"):
    from trainer.recommend_net import make_q_network as build

    cat = parse_catalogue(catalogue(cfg))
    return build(item_features(cat), cfg.n_topics, cfg.embedding_dim, hidden=cfg.hidden,
                 embed_dim=cfg.embed_dim, item_hidden=cfg.item_hidden,
                 pair_hidden=cfg.pair_hidden, name=name)


def slate_builder(cfg: Config):
    """Training slates: the DQN's action in position 1, the other ``train_slate_k - 1`` positions
    the top items by the same Q-values (allowed items only)."""
    k = cfg.train_slate_k

    def build(actions, q, mask):
        q = np.where(mask, q, -np.inf) if mask is not None else q.copy()
        q[np.arange(len(actions)), actions] = np.inf                  # the action goes first
        kk = min(k, int(np.isfinite(q).sum(axis=1).min()))
        top = np.argpartition(-q, kk - 1, axis=1)[:, :kk]
        order = np.take_along_axis(q, top, 1).argsort(axis=1)[:, ::-1]
        return [[int(i) for i in row if np.isfinite(qr[i])]
                for row, qr in zip(np.take_along_axis(top, order, 1), q)]
    return build


def action_mask(cfg: Config):
    n = cfg.n_items

    def mask(obs: np.ndarray) -> np.ndarray:          # allowed = not blocked
        return obs[:, :n] < 0.5
    return mask


def _warm_start(src: Path, dst: Path) -> None:
    """Copy the myopic run's checkpoints (weights, optimizer, step) and its replay buffer (its
    one-step transitions are valid targets for any gamma) to start the DQN from."""
    import shutil

    if (dst / "checkpoints" / "checkpoint").exists():
        return                                        # the DQN run resumes its own
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src / "checkpoints", dst / "checkpoints")
    for name in ("replay.npz", "dqn_history.json"):
        if (src / name).exists():
            shutil.copyfile(src / name, dst / name)


def train(cfg: Config, work_dir: Path, *, strategy=None) -> None:
    """Runs: ``myopic`` (gamma 0), ``dqn`` (from the myopic weights when
    ``init_from_myopic``: fine-tuned with gamma for ``total_steps`` more transitions) and the
    ``dqn_scratch`` ablation (gamma, from scratch, ``scratch_steps``)."""
    from trainer.common import save_json, save_learning_curve
    from trainer.dqn import train_dqn

    work_dir = Path(work_dir)
    raw, sim = catalogue(cfg), sim_config(cfg)
    make_env = lambda i: RecSimEnv(raw, sim)          # noqa: E731
    warm = cfg.init_from_myopic and cfg.myopic_steps > 0
    runs = [("myopic", 0.0, cfg.myopic_steps)] if cfg.myopic_steps > 0 else []
    if cfg.total_steps > 0 or not runs:
        runs.append(("dqn", cfg.gamma, cfg.total_steps + (cfg.myopic_steps if warm else 0)))
    if cfg.scratch_steps > 0:
        runs.append(("dqn_scratch", cfg.scratch_gamma, cfg.scratch_steps))
    summary = {}
    for name, gamma, steps in runs:
        t0 = time.time()
        if name == "dqn" and warm:
            _warm_start(work_dir / "myopic", work_dir / name)
        # gamma 0 needs no multi-step returns (the target is the reward either way)
        dcfg = _dqn_config(cfg, gamma=gamma, total_steps=steps, n_step=1 if gamma == 0 else None)
        _, hist = train_dqn(make_env, dcfg, work_dir / name, strategy=strategy,
                            action_mask_fn=action_mask(cfg), progress_desc=f"recommend {name}",
                            q_network_fn=lambda d, n, qname: make_q_network(cfg, qname),
                            env_action_fn=slate_builder(cfg) if cfg.train_slate_k > 1 else None)
        rets = hist["episode_returns"]
        summary[name] = {"episodes": len(rets), "steps": hist.get("steps", 0),
                         "steps_per_second": hist["steps_per_second"],
                         "seconds_this_process": round(time.time() - t0, 1),
                         "final_mean_return_train": float(np.mean(rets[-200:])) if rets else 0.0}
        if name == runs[-1][0]:
            save_learning_curve(work_dir / "learning_curve.png",
                                {"episode return (train, eps-greedy, 5-item slates)": rets,
                                 "Huber loss per update": hist["losses"]},
                                xlabel="episode | update", title=f"recommend {name}")
    if shipped_run(cfg) == "rollout":
        from trainer.recommend_rollout import train as train_rollout

        summary["rollout"] = train_rollout(cfg, work_dir)
    save_json(work_dir / "train_summary.json", summary)


def shipped_run(cfg: Config) -> str:
    """What is exported: ``cfg.ship`` ("rollout", "dqn" or "myopic")."""
    if cfg.ship not in ("rollout", "dqn", "myopic"):
        raise ValueError(f"ship must be 'rollout', 'dqn' or 'myopic', got {cfg.ship!r}")
    if cfg.ship == "rollout" and (cfg.rollout_rounds <= 0 or cfg.myopic_steps <= 0):
        raise ValueError("ship='rollout' needs myopic_steps > 0 and rollout_rounds > 0")
    if cfg.ship == "myopic" and cfg.myopic_steps <= 0:
        return "dqn"
    return cfg.ship


def load_q(cfg: Config, work_dir: Path, name: str):
    import tensorflow as tf

    q = make_q_network(cfg, "q")
    ckpt = tf.train.Checkpoint(q=q)
    latest = tf.train.latest_checkpoint(str(Path(work_dir) / name / "checkpoints"))
    if latest is None:
        raise FileNotFoundError(f"no {name} checkpoint in {Path(work_dir) / name}: train first")
    ckpt.restore(latest).expect_partial().assert_existing_objects_matched()   # fail loudly
    return q


def shipped_scorer(cfg: Config, work_dir: Path):
    """(the network, the rollout coefficients or None) of what ships."""
    run = shipped_run(cfg)
    if run != "rollout":
        return load_q(cfg, work_dir, run), None
    from trainer.recommend_rollout import load_fit

    return load_q(cfg, work_dir, "myopic"), load_fit(work_dir, cfg.rollout_rounds)["coef"]


def score_function(q, coef=None, cfg: Config | None = None):
    """The exported function: (state [B, S], items [N, F]) -> {"q": [B, N]}; with ``coef``
    (the rollout stage's fit) the score is A + theta . phi(A, state, items), A the network's."""
    layer = q.get_layer("q_pairq")
    if coef is None:
        def q_values(state, items):
            return {"q": layer.score(state, items)}
        return q_values
    from keras import ops

    from trainer.recommend_rollout import linear_term

    def q_values(state, items):
        a = layer.score(state, items)
        return {"q": a + linear_term(a, state, items, coef, cfg.n_topics, cfg.embedding_dim, ops)}
    return q_values


def _signature(cfg: Config) -> list:
    import tensorflow as tf
    from runtime.recommend_features import item_feature_dim, state_dim

    s, f = state_dim(cfg.n_topics, cfg.embedding_dim), item_feature_dim(cfg.n_topics, cfg.embedding_dim)
    return [tf.TensorSpec([None, s], tf.float32, name="state"),
            tf.TensorSpec([None, f], tf.float32, name="items")]


def tf_functions(cfg: Config, work_dir: Path | None) -> dict:
    """role -> (TensorFlow function, input signature) of what ships (the edge benchmark's
    TensorFlow row); ``work_dir=None``: freshly initialised weights of the same graph."""
    if work_dir is None:
        q, coef = make_q_network(cfg, "q"), None
    else:
        q, coef = shipped_scorer(cfg, work_dir)
    return {"q": (score_function(q, coef, cfg), _signature(cfg))}


def _sample_inputs(cfg: Config, n: int = 8) -> list:
    """Realistic (state, items) pairs for the export parity check, also on another catalogue."""
    out = []
    rng = np.random.default_rng(0)
    for seed in (cfg.catalogue_seed, cfg.catalogue_seed + 1):
        cat = parse_catalogue(catalogue(cfg, seed))
        states = np.stack([featurise(rng.choice(cat.n_items, int(rng.integers(0, 13)), replace=False).tolist(),
                                     cat, skipped=rng.choice(cat.n_items, 5).tolist())
                           for _ in range(n)])
        out.append([states, item_features(cat)])
    return out


def export(cfg: Config, work_dir: Path, out_dir: Path) -> None:
    from trainer.common import config_dict
    from trainer.export import export_tf_function, quantize_int8, write_entry, write_json

    out_dir = Path(out_dir)
    q, coef = shipped_scorer(cfg, work_dir)
    e_q = export_tf_function(score_function(q, coef, cfg), _signature(cfg), kind=KIND, role="q", out_dir=out_dir,
                             sample_inputs=_sample_inputs(cfg))
    e_q8 = quantize_int8(e_q, kind=KIND, role="q_int8", out_dir=out_dir)
    e_cat = write_json(shipped_catalogue(catalogue(cfg)), kind=KIND, role="catalogue", out_dir=out_dir)
    write_entry(out_dir, KIND, {"q": e_q, "q_int8": e_q8, "catalogue": e_cat}, config_dict(cfg),
                notes="Q(state, item features): inputs state [B, S] = runtime.recommend_features."
                      "featurise(history, catalogue, engagement, skipped) and items [N, F] = "
                      "item_features(catalogue); any catalogue with the same n_topics and "
                      "embedding_dim can be scored. Slate = top-k Q among allowed items. "
                      "Shipped 'rollout': q = A + theta . phi(A, trust estimate, item features), "
                      "A the one-step network (trainer.recommend_rollout).")


def evaluate(cfg: Config, work_dir: Path, models_dir: Path) -> dict:
    from trainer.recommend_eval import evaluate as run

    return run(cfg, work_dir, models_dir)
