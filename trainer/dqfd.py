"""Deep Q-learning from Demonstrations (DQfD, Hester et al., AAAI 2018) on top of ``trainer.dqn``.

A demonstrator (any ``policy(env) -> action``, e.g. a hand-written rule) plays
``demo_transitions`` transitions first. They stay in a replay of their own for the whole run,
and every gradient step on them adds a large-margin supervised loss

    J_E = max_a [Q(s, a) + margin * (a != a_E)] - Q(s, a_E)      (a over the valid actions)

to the TD losses: a 1-step and an ``n_step``-step Double-DQN Huber loss (weight ``lambda_n``),
used on every transition, the agent's own too. Then:

1. *pre-training*: ``pretrain_steps`` gradient steps on demonstrations only (the network
   starts out ranking the demonstrated action first, with values learnt by TD, not copied);
   its weights are kept in ``pretrained.weights.h5`` (for the ablation "does RL matter?");
2. *interaction*: epsilon-greedy play as in :func:`trainer.dqn.train_dqn`, each batch drawn
   from the demonstrations with a share that decays linearly from ``demo_share`` to
   ``demo_share_min`` over ``demo_decay_fraction`` of the steps, the rest from the agent's
   own replay. The margin loss only ever touches demonstrated transitions, so where the TD
   estimates say another action is worth more than the margin, the agent departs from the
   demonstrator.

Differences from the article, for a small MLP on a cheap simulator: a separate demonstration
buffer with a decaying batch share instead of prioritized replay with a demonstration bonus,
and no L2 term. Resumes like ``train_dqn``: the demonstrations (``demos.npz``), the replays
and the pre-trained weights are kept in ``work_dir``. Single-process only.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from trainer.dqn import (
    DQNConfig, ReplayBuffer, _atomic_json, _build_networks, _space_dims, epsilon_greedy,
    linear_epsilon,
)


@dataclass
class DemoConfig:
    demo_transitions: int = 60_000     # transitions the demonstrator plays before training
    pretrain_steps: int = 15_000       # gradient steps on demonstrations only
    margin: float = 0.1                # large-margin loss: the demonstrated action's lead
    lambda_n: float = 1.0              # weight of the n-step TD loss
    lambda_e: float = 1.0              # weight of the margin loss
    n_step: int = 4
    demo_share: float = 0.25           # share of each batch from the demonstrations ...
    demo_share_min: float = 0.05       # ... decaying linearly to this
    demo_decay_fraction: float = 0.5   # over this fraction of the interaction steps


class PairedNStep:
    """Per-env queues giving each step both as a 1-step and an n-step transition:
    ``((obs, a, r, next_obs, term), (obs, a, sum_j gamma^j r_j, obs_n, term_n, m))``."""

    def __init__(self, num_envs: int, n: int, gamma: float):
        self.queues = [[] for _ in range(num_envs)]
        self.n, self.gamma = int(n), float(gamma)

    def push(self, i, obs, action, reward, next_obs, terminated, episode_end):
        q = self.queues[i]
        q.append((obs, action, reward, next_obs, float(terminated)))
        out = []
        while q and (len(q) == self.n or episode_end):
            ret = sum(self.gamma ** j * step[2] for j, step in enumerate(q))
            out.append((q[0], (q[0][0], q[0][1], ret, next_obs, float(terminated), len(q))))
            q.pop(0)
        return out


class PairedReplay:
    """Two ring buffers filled in lock-step (row k of both is the same step): 1-step, n-step."""

    def __init__(self, capacity: int, obs_dim: int):
        self.one, self.many = ReplayBuffer(capacity, obs_dim), ReplayBuffer(capacity, obs_dim)

    def __len__(self) -> int:
        return len(self.one)

    def add(self, pairs) -> None:
        if pairs:
            o, a, r, o2, d = (np.asarray(x) for x in zip(*(p[0] for p in pairs)))
            self.one.add_batch(o, a, r, o2, d, 1)
            o, a, r, o2, d, m = (np.asarray(x) for x in zip(*(p[1] for p in pairs)))
            self.many.add_batch(o, a, r, o2, d, m)

    def rows(self, idx) -> dict:
        one, many = self.one, self.many
        return {"obs": one.obs[idx], "act": one.actions[idx], "r1": one.rewards[idx],
                "o1": one.next_obs[idx], "d1": one.dones[idx], "rn": many.rewards[idx],
                "on": many.next_obs[idx], "dn": many.dones[idx], "mn": many.nsteps[idx]}

    def save(self, path: Path) -> None:
        self.one.save(path.with_name(path.stem + "_1.npz"))
        self.many.save(path.with_name(path.stem + "_n.npz"))

    def load(self, path: Path) -> bool:
        return self.one.load(path.with_name(path.stem + "_1.npz")) and \
            self.many.load(path.with_name(path.stem + "_n.npz"))


def collect_demos(envs, demo_policy: Callable, n: int, demo: DemoConfig, gamma: float,
                  seed: int) -> PairedReplay:
    """``n`` transitions of ``demo_policy(env) -> action`` on ``envs`` (fresh episodes)."""
    obs_dim = _space_dims(envs[0])[0]
    buf = PairedReplay(n + len(envs) * demo.n_step, obs_dim)
    nstep = PairedNStep(len(envs), demo.n_step, gamma)
    obs = [e.reset(seed=500_000 + seed * 7919 + i)[0] for i, e in enumerate(envs)]
    done_all = False
    while not done_all:
        pairs = []
        for i, env in enumerate(envs):
            a = int(demo_policy(env))
            o, r, term, trunc, _ = env.step(a)
            pairs += nstep.push(i, np.asarray(obs[i], np.float32), a, r,
                                np.asarray(o, np.float32), term, term or trunc)
            obs[i] = env.reset()[0] if term or trunc else o
        buf.add(pairs)
        done_all = len(buf) >= n
    return buf


def _build_loss_step(q, target, optimizer, cfg: DQNConfig, demo: DemoConfig, n_actions: int):
    huber = keras.losses.Huber(reduction="none")
    neg = tf.constant(-1e9, tf.float32)

    def next_value(o2, m2):
        best = tf.argmax(tf.where(m2, q(o2, training=False), neg), axis=1, output_type=tf.int32)
        v = tf.gather(target(o2, training=False), best, axis=1, batch_dims=1)
        return tf.where(tf.reduce_any(m2, axis=1), v, 0.0)

    @tf.function(reduce_retracing=True)
    def step(b):
        y1 = tf.stop_gradient(b["r1"] + b["disc1"] * next_value(b["o1"], b["m1"]))
        yn = tf.stop_gradient(b["rn"] + b["discn"] * next_value(b["on"], b["mn_mask"]))
        with tf.GradientTape() as tape:
            qs = q(b["obs"], training=True)
            q_sa = tf.gather(qs, b["act"], axis=1, batch_dims=1)
            td = huber(y1[:, None], q_sa[:, None]) \
                + demo.lambda_n * huber(yn[:, None], q_sa[:, None])
            lead = demo.margin * (1.0 - tf.one_hot(b["act"], n_actions))
            best = tf.reduce_max(tf.where(b["m0"], qs + lead, neg), axis=1)
            margin_loss = (best - q_sa) * b["demo"]
            loss = tf.reduce_mean(td + demo.lambda_e * margin_loss)
        grads = tape.gradient(loss, q.trainable_variables)
        grads, _ = tf.clip_by_global_norm(grads, cfg.max_grad_norm)
        optimizer.apply_gradients(zip(grads, q.trainable_variables))
        return loss, tf.reduce_mean(margin_loss)

    @tf.function
    def copy_target():
        for v, tv in zip(q.trainable_variables, target.trainable_variables):
            tv.assign(v)

    return step, copy_target


def _batch(demos: PairedReplay, agent: PairedReplay, k_demo: int, cfg: DQNConfig, rng,
           mask_fn) -> dict:
    """A training batch: ``k_demo`` rows from the demonstrations, the rest from the agent."""
    k_demo = k_demo if len(agent) >= cfg.batch_size else cfg.batch_size
    parts = [demos.rows(rng.integers(0, len(demos), k_demo))]
    if cfg.batch_size > k_demo:
        parts.append(agent.rows(rng.integers(0, len(agent), cfg.batch_size - k_demo)))
    b = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    b["demo"] = (np.arange(cfg.batch_size) < k_demo).astype(np.float32)
    m0 = mask_fn(b["obs"])
    b["m0"] = m0 | np.eye(m0.shape[1], dtype=bool)[b["act"]]     # the demonstrated action
    b["m1"], b["mn_mask"] = mask_fn(b["o1"]), mask_fn(b["on"])
    b["disc1"] = (cfg.gamma * (1.0 - b["d1"])).astype(np.float32)
    b["discn"] = (cfg.gamma ** b.pop("mn") * (1.0 - b["dn"])).astype(np.float32)
    for k in ("d1", "dn"):
        b.pop(k)
    return {k: tf.constant(v) for k, v in b.items()}


def demo_share(demo: DemoConfig, cfg: DQNConfig, step: int) -> float:
    span = max(1.0, demo.demo_decay_fraction * cfg.total_steps)
    frac = min(1.0, step / span)
    return demo.demo_share + frac * (demo.demo_share_min - demo.demo_share)


def _pretrain(step_fn, copy_target, demos, agent, cfg, demo, rng, mask_fn, history) -> None:
    from trainer.common import Progress

    with Progress(demo.pretrain_steps, "dqfd pre-training", unit="grad") as bar:
        for k in range(demo.pretrain_steps):
            loss, margin = step_fn(_batch(demos, agent, cfg.batch_size, cfg, rng, mask_fn))
            if (k + 1) % cfg.target_update_every == 0:
                copy_target()
            if (k + 1) % 100 == 0:
                history["pretrain_losses"].append(float(loss))
                history["pretrain_margin"].append(float(margin))
                bar.update(100, loss=float(loss), margin=float(margin))


def _prepare(make_env, demo_policy, cfg, demo, work_dir, mask_fn):
    """Networks, checkpoint, demonstrations, replay, history; pre-trains on a fresh start."""
    from trainer.common import Checkpointer

    keras.utils.set_random_seed(cfg.seed)
    envs = [make_env(i) for i in range(cfg.num_envs)]
    obs_dim, n_actions = _space_dims(envs[0])
    q, target, optimizer, eps_var = _build_networks(cfg, tf.distribute.get_strategy(), obs_dim,
                                                    n_actions, None)
    ckpt = Checkpointer(work_dir, max_to_keep=2, q=q, target=target, optimizer=optimizer,
                        epsilon=eps_var)
    start = int(ckpt.restore())
    demos = PairedReplay(demo.demo_transitions + cfg.num_envs * demo.n_step, obs_dim)
    made_with = {"gamma": cfg.gamma, "n_step": demo.n_step, "seed": cfg.seed,
                 "transitions": demo.demo_transitions}
    meta = work_dir / "demos.json"
    if not (meta.exists() and json.loads(meta.read_text()) == made_with
            and demos.load(work_dir / "demos.npz")):
        demos = collect_demos([make_env(cfg.num_envs + i) for i in range(cfg.num_envs)],
                              demo_policy, demo.demo_transitions, demo, cfg.gamma, cfg.seed)
        demos.save(work_dir / "demos.npz")
        _atomic_json(meta, made_with)
    agent = PairedReplay(cfg.buffer_size, obs_dim)
    hist_path = work_dir / "dqn_history.json"
    history = {k: [] for k in ("episode_returns", "episode_lengths", "episode_end_steps",
                               "losses", "pretrain_losses", "pretrain_margin")}
    if start > 0:
        agent.load(work_dir / "replay.npz")
        if hist_path.exists():
            history.update(json.loads(hist_path.read_text()))
    step_fn, copy_target = _build_loss_step(q, target, optimizer, cfg, demo, n_actions)
    pre = work_dir / "pretrained.weights.h5"
    if start == 0 and pre.exists():
        q.load_weights(str(pre))
        copy_target()
    elif start == 0:
        _pretrain(step_fn, copy_target, demos, agent, cfg, demo,
                  np.random.default_rng([cfg.seed, 1]), mask_fn, history)
        q.save_weights(str(pre))
        copy_target()
    return envs, q, eps_var, ckpt, start, demos, agent, history, step_fn, copy_target


def _play(envs, obs, actions, nstep, ep, history, step):
    """One step of every env -> (next observations, finished transition pairs)."""
    next_obs, pairs = np.empty_like(obs), []
    for i, env in enumerate(envs):
        o, r, term, trunc, _ = env.step(int(actions[i]))
        pairs += nstep.push(i, obs[i], int(actions[i]), r, np.asarray(o, np.float32), term,
                            term or trunc)
        ep[0][i] += r
        ep[1][i] += 1
        next_obs[i] = o
        if term or trunc:
            history["episode_returns"].append(float(ep[0][i]))
            history["episode_lengths"].append(int(ep[1][i]))
            history["episode_end_steps"].append(int(step + i + 1))
            ep[0][i], ep[1][i] = 0.0, 0
            next_obs[i] = env.reset()[0]
    return next_obs, pairs


def train_dqfd(make_env: Callable[[int], object], demo_policy: Callable, cfg: DQNConfig,
               demo: DemoConfig, work_dir: Path, *, action_mask_fn,
               progress_desc: str = "dqfd"):
    """DQfD on ``cfg.num_envs`` envs from ``make_env(i)`` (the demonstrator plays on envs
    ``make_env(num_envs + i)``). -> (q_network, history) as :func:`trainer.dqn.train_dqn`."""
    from trainer.common import Progress

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    envs, q, eps_var, ckpt, start, demos, agent, history, step_fn, copy_target = _prepare(
        make_env, demo_policy, cfg, demo, work_dir, action_mask_fn)
    rng = np.random.default_rng([cfg.seed, start])
    forward = tf.function(lambda x: q(x, training=False))
    nstep = PairedNStep(cfg.num_envs, demo.n_step, cfg.gamma)
    obs = np.stack([np.asarray(e.reset(seed=cfg.seed * 1000 + start + i)[0], np.float32)
                    for i, e in enumerate(envs)])
    ep = (np.zeros(cfg.num_envs), np.zeros(cfg.num_envs, np.int64))
    step, grads, last_ckpt, t0, pending = start, 0, start, time.perf_counter(), []
    shown = start
    with Progress(cfg.total_steps, progress_desc, unit="step", initial=start) as bar:
        while step < cfg.total_steps:
            eps = linear_epsilon(cfg, step)
            actions = epsilon_greedy(forward(obs).numpy(), eps, rng, action_mask_fn(obs))
            obs, pairs = _play(envs, obs, actions, nstep, ep, history, step)
            agent.add(pairs)
            step += cfg.num_envs
            k_demo = int(round(cfg.batch_size * demo_share(demo, cfg, step)))
            loss, _ = step_fn(_batch(demos, agent, k_demo, cfg, rng, action_mask_fn))
            pending.append(loss)
            grads += 1
            if grads % cfg.target_update_every == 0:
                copy_target()
            if grads % 50 == 0 or step >= cfg.total_steps:
                history["losses"].extend(float(x) for x in pending)
                rets = history["episode_returns"][-100:]
                bar.update(min(step, cfg.total_steps) - shown,
                           mean_return=float(np.mean(rets)) if rets else 0.0, epsilon=eps)
                pending, shown = [], min(step, cfg.total_steps)
            if step - last_ckpt >= cfg.checkpoint_every or step >= cfg.total_steps:
                eps_var.assign(linear_epsilon(cfg, step))
                agent.save(work_dir / "replay.npz")
                _atomic_json(work_dir / "dqn_history.json", history)
                ckpt.save(step)
                last_ckpt = step
    elapsed = time.perf_counter() - t0
    history["steps"] = int(step)
    history["steps_per_second"] = (step - start) / elapsed if step > start and elapsed else 0.0
    return q, history
