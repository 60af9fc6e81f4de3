"""Deep Q-Network (Double DQN, Huber loss, target network, replay buffer), one file.

In the spirit of CleanRL's ``dqn.py``: every hyperparameter lives in :class:`DQNConfig`, and the
whole training loop of :func:`train_dqn` fits on one screen.  Used by ``trainer.dialogue`` and
``trainer.recommend``; each passes a ``make_env(index) -> env`` factory of Gymnasium-style
environments (``reset(seed=) -> obs, info``; ``step(action) -> obs, reward, terminated,
truncated, info``; ``observation_space.shape`` / ``action_space.n`` or the attributes
``obs_dim`` / ``n_actions``).

Unlike the original article (``model.predict`` on one observation per env step, ~7 steps/s),
acting is batched: ``cfg.num_envs`` environments step in lock-step and ONE ``tf.function``
forward pass scores all of their observations; the gradient step is a ``tf.function`` run through
``strategy.run``.

Units (all counted in *environment transitions* unless stated otherwise):

* ``total_steps``      transitions summed over all envs (one vectorised step = ``num_envs``).
* ``learning_starts``  transitions collected before the first gradient step.
* ``train_every``      one gradient step every ``train_every`` *vectorised* steps.
* ``target_update_every``  gradient steps between hard target copies (``tau == 1``); with
  ``tau < 1`` the target is Polyak-averaged after every gradient step instead.
* ``exploration_fraction`` fraction of ``total_steps`` over which epsilon decays linearly from
  ``start_epsilon`` to ``end_epsilon``.
* ``checkpoint_every`` transitions between checkpoints (plus one at the end).

Resuming: Q-network, target network, optimizer, step and epsilon go through
``trainer.common.Checkpointer`` in ``work_dir``; the replay buffer (``replay.npz``) and the
history so far (``dqn_history.json``) are written atomically beside it.  Re-running with the same
``work_dir`` continues from the last checkpoint (environments restart with fresh episodes).

Action masks: ``action_mask_fn(obs_batch) -> bool [batch, n_actions]`` (True = allowed).  Masked
actions are never chosen by the greedy or the random part of epsilon-greedy, and they are
excluded from the bootstrap ``max`` (the mask is recomputed from the stored ``next_obs``).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import tensorflow as tf
import keras


@dataclass
class DQNConfig:
    total_steps: int
    learning_rate: float = 5e-4
    buffer_size: int = 50_000
    batch_size: int = 64
    gamma: float = 0.99
    tau: float = 1.0                     # 1.0 = hard copy every target_update_every; <1 = Polyak
    target_update_every: int = 500       # in gradient steps (only used when tau == 1)
    start_epsilon: float = 1.0
    end_epsilon: float = 0.05
    exploration_fraction: float = 0.5
    learning_starts: int = 1000
    train_every: int = 1                 # gradient step every N vectorised env steps
    hidden: tuple = (128, 128)
    double_dqn: bool = True
    num_envs: int = 8
    seed: int = 0
    checkpoint_every: int = 5000
    prioritized: bool = False            # proportional prioritized replay (Schaul et al. 2016)
    per_alpha: float = 0.6
    per_beta0: float = 0.4               # annealed linearly to 1.0 over total_steps
    max_grad_norm: float = 10.0
    n_step: int = 1                      # n-step returns (bootstrap with gamma ** n)


def make_q_network(obs_dim: int, n_actions: int, hidden=(128, 128), name: str = "q") -> keras.Model:
    """MLP: obs float32 [None, obs_dim] -> Q float32 [None, n_actions]."""
    inp = keras.Input((int(obs_dim),), dtype="float32", name="obs")
    x = inp
    for i, h in enumerate(hidden):
        x = keras.layers.Dense(int(h), activation="relu", name=f"{name}_dense{i}")(x)
    out = keras.layers.Dense(int(n_actions), name=f"{name}_out")(x)
    return keras.Model(inp, out, name=name)


class ReplayBuffer:
    """numpy ring buffer of (obs, action, reward, next_obs, done); optional proportional PER.

    ``done`` is *termination* only (a time-limit truncation still bootstraps)."""

    def __init__(self, capacity: int, obs_dim: int, prioritized: bool = False, alpha: float = 0.6):
        self.capacity, self.obs_dim = int(capacity), int(obs_dim)
        self.prioritized, self.alpha = bool(prioritized), float(alpha)
        self.obs = np.zeros((self.capacity, self.obs_dim), np.float32)
        self.next_obs = np.zeros((self.capacity, self.obs_dim), np.float32)
        self.actions = np.zeros(self.capacity, np.int64)
        self.rewards = np.zeros(self.capacity, np.float32)
        self.dones = np.zeros(self.capacity, np.float32)
        self.nsteps = np.ones(self.capacity, np.int16)          # rewards summed (n-step)
        self.priorities = np.zeros(self.capacity, np.float64)
        self.pos, self.size = 0, 0

    def __len__(self) -> int:
        return self.size

    def add_batch(self, obs, actions, rewards, next_obs, dones, nsteps=1) -> None:
        n = len(actions)
        idx = (self.pos + np.arange(n)) % self.capacity
        self.obs[idx], self.next_obs[idx] = obs, next_obs
        self.actions[idx], self.rewards[idx], self.dones[idx] = actions, rewards, dones
        self.nsteps[idx] = nsteps
        self.priorities[idx] = self.priorities[: self.size].max() if self.size else 1.0
        self.pos = int((self.pos + n) % self.capacity)
        self.size = int(min(self.size + n, self.capacity))

    def sample(self, batch_size: int, rng: np.random.Generator, beta: float = 0.4):
        """-> (obs, actions, rewards, next_obs, dones, weights, indices); ``self.nsteps[indices]``
        gives each transition's number of summed rewards."""
        if self.prioritized:
            p = self.priorities[: self.size] ** self.alpha
            p /= p.sum()
            idx = rng.choice(self.size, batch_size, p=p)
            w = (self.size * p[idx]) ** (-beta)
            w = (w / w.max()).astype(np.float32)
        else:
            idx = rng.integers(0, self.size, batch_size)
            w = np.ones(batch_size, np.float32)
        return (self.obs[idx], self.actions[idx], self.rewards[idx], self.next_obs[idx],
                self.dones[idx], w, idx)

    def update_priorities(self, idx, td_errors) -> None:
        if self.prioritized:
            self.priorities[idx] = np.abs(td_errors) + 1e-6

    def save(self, path: Path) -> None:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp.npz")
        n = self.size
        np.savez(tmp, obs=self.obs[:n], next_obs=self.next_obs[:n], actions=self.actions[:n],
                 rewards=self.rewards[:n], dones=self.dones[:n], priorities=self.priorities[:n],
                 nsteps=self.nsteps[:n],
                 meta=np.array([self.pos, self.size, self.capacity], np.int64))
        os.replace(tmp, path)

    def load(self, path: Path) -> bool:
        path = Path(path)
        if not path.exists():
            return False
        with np.load(path) as z:
            pos, size, cap = (int(v) for v in z["meta"])
            if cap != self.capacity or z["obs"].shape[1:] != (self.obs_dim,):
                return False
            for name in ("obs", "next_obs", "actions", "rewards", "dones", "priorities", "nsteps"):
                if name in z:
                    getattr(self, name)[:size] = z[name]
        self.pos, self.size = pos, size
        return True


class NStep:
    """Per-env queues turning 1-step transitions into n-step ones.

    ``push`` returns the finished transitions ``(obs, action, sum_j gamma^j r_j, next_obs,
    terminated, m)``: one once the queue holds n steps, and all the queued ones at an episode end
    (a truncated episode still bootstraps from its last observation, with gamma ** m)."""

    def __init__(self, num_envs: int, n: int, gamma: float):
        self.queues = [[] for _ in range(num_envs)]
        self.n, self.gamma = int(n), float(gamma)

    def push(self, i, obs, action, reward, next_obs, terminated, episode_end):
        q = self.queues[i]
        q.append((obs, action, reward))
        out = []
        while q and (len(q) == self.n or episode_end):
            ret = sum(self.gamma ** j * step[2] for j, step in enumerate(q))
            out.append((q[0][0], q[0][1], ret, next_obs, float(terminated), len(q)))
            q.pop(0)
        return out


def _space_dims(env) -> tuple[int, int]:
    obs_dim = getattr(env, "obs_dim", None)
    if obs_dim is None:
        obs_dim = int(np.prod(env.observation_space.shape))
    n_actions = getattr(env, "n_actions", None)
    if n_actions is None:
        n_actions = int(env.action_space.n)
    return int(obs_dim), int(n_actions)


def linear_epsilon(cfg: DQNConfig, step: int) -> float:
    span = max(1.0, cfg.exploration_fraction * cfg.total_steps)
    frac = min(1.0, step / span)
    return float(cfg.start_epsilon + frac * (cfg.end_epsilon - cfg.start_epsilon))


def epsilon_greedy(q: np.ndarray, epsilon: float, rng: np.random.Generator, mask=None) -> np.ndarray:
    """Batched epsilon-greedy over q [B, A]; random choice is uniform over allowed actions."""
    b, a = q.shape
    if mask is not None:
        q = np.where(mask, q, -np.inf)
    actions = np.argmax(q, axis=1)
    explore = rng.random(b) < epsilon
    if explore.any():
        if mask is None:
            actions[explore] = rng.integers(0, a, int(explore.sum()))
        else:
            # uniform over True entries: argmax of random keys restricted to the mask
            keys = np.where(mask[explore], rng.random((int(explore.sum()), a)), -1.0)
            actions[explore] = np.argmax(keys, axis=1)
    return actions.astype(np.int64)


def greedy_policy(q_network, action_mask_fn=None) -> Callable[[np.ndarray], np.ndarray]:
    """Batched argmax helper: obs [B, obs_dim] -> int64 actions [B] (one tf.function call)."""
    obs_dim = int(q_network.inputs[0].shape[-1])
    forward = tf.function(lambda x: q_network(x, training=False),
                          input_signature=[tf.TensorSpec([None, obs_dim], tf.float32)])

    def act(obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, np.float32).reshape(-1, obs_dim)
        q = forward(obs).numpy()
        if action_mask_fn is not None:
            q = np.where(action_mask_fn(obs), q, -np.inf)
        return np.argmax(q, axis=1).astype(np.int64)

    act.q_values = lambda obs: forward(np.asarray(obs, np.float32).reshape(-1, obs_dim)).numpy()
    return act


def _build_train_step(q, target, optimizer, cfg: DQNConfig, strategy, n_actions: int):
    replicas = strategy.num_replicas_in_sync
    huber = keras.losses.Huber(reduction="none")

    def step_fn(obs, actions, rewards, next_obs, discounts, weights, next_mask):
        q_next_target = target(next_obs, training=False)
        neg = tf.constant(-1e9, tf.float32)
        if cfg.double_dqn:
            q_next_online = tf.where(next_mask, q(next_obs, training=False), neg)
            best = tf.argmax(q_next_online, axis=1, output_type=tf.int32)
            next_v = tf.gather(q_next_target, best, axis=1, batch_dims=1)
        else:
            next_v = tf.reduce_max(tf.where(next_mask, q_next_target, neg), axis=1)
        next_v = tf.where(tf.reduce_any(next_mask, axis=1), next_v, 0.0)
        y = tf.stop_gradient(rewards + discounts * next_v)        # discounts = gamma^n (1 - done)
        with tf.GradientTape() as tape:
            q_sa = tf.gather(q(obs, training=True), actions, axis=1, batch_dims=1)
            per_example = huber(y[:, None], q_sa[:, None]) * weights
            loss = tf.reduce_sum(per_example) / (cfg.batch_size * replicas)
        grads = tape.gradient(loss, q.trainable_variables)
        grads, _ = tf.clip_by_global_norm(grads, cfg.max_grad_norm)
        optimizer.apply_gradients(zip(grads, q.trainable_variables))
        return loss, y - q_sa

    @tf.function(reduce_retracing=True)
    def train_step(obs, actions, rewards, next_obs, discounts, weights, next_mask):
        loss, td = strategy.run(step_fn, args=(obs, actions, rewards, next_obs, discounts, weights, next_mask))
        loss = strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)
        td = strategy.experimental_local_results(td)[0]
        return loss, td

    @tf.function
    def update_target(tau):
        for v, tv in zip(q.trainable_variables, target.trainable_variables):
            tv.assign(tau * v + (1.0 - tau) * tv)

    return train_step, update_target


def _atomic_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)


def _build_networks(cfg, strategy, obs_dim: int, n_actions: int, q_network_fn):
    """Online and target Q-networks, the optimizer and the epsilon variable, in the scope."""
    with strategy.scope():
        build = q_network_fn or (lambda d, n, name: make_q_network(d, n, cfg.hidden, name=name))
        q = build(obs_dim, n_actions, "q")
        target = build(obs_dim, n_actions, "q_target")
        target.set_weights(q.get_weights())
        optimizer = keras.optimizers.Adam(cfg.learning_rate)
        optimizer.build(q.trainable_variables)
        epsilon_var = tf.Variable(cfg.start_epsilon, dtype=tf.float32, trainable=False,
                                  name="epsilon")
    return q, target, optimizer, epsilon_var


def _resume(rb, history: dict, work_dir: Path, hist_path: Path) -> None:
    rb.load(work_dir / "replay.npz")
    if hist_path.exists():
        history.update(json.loads(hist_path.read_text()))


def _step_envs(envs, obs, actions, env_actions, nstep, ep_ret, ep_len, history, step):
    """One step of every env: (next observations, finished n-step transitions)."""
    next_obs = np.empty_like(obs)
    done_steps = []
    for i, env in enumerate(envs):
        o, r, term, trunc, _ = env.step(env_actions[i])
        next_obs[i] = o
        done_steps += nstep.push(i, obs[i], actions[i], r, next_obs[i].copy(), term, term or trunc)
        ep_ret[i] += r
        ep_len[i] += 1
        if term or trunc:
            history["episode_returns"].append(float(ep_ret[i]))
            history["episode_lengths"].append(int(ep_len[i]))
            history["episode_end_steps"].append(int(step + i + 1))
            ep_ret[i], ep_len[i] = 0.0, 0
            next_obs[i] = env.reset()[0]
    return next_obs, done_steps


def _learn_once(rb, cfg, rng, step, train_step, action_mask_fn, all_true):
    """One gradient step on a replay sample; returns the loss tensor."""
    beta = cfg.per_beta0 + (1.0 - cfg.per_beta0) * min(1.0, step / cfg.total_steps)
    o, a, r, o2, d, w, idx = rb.sample(cfg.batch_size, rng, beta)
    m2 = action_mask_fn(o2) if action_mask_fn is not None else all_true
    disc = (cfg.gamma ** rb.nsteps[idx] * (1.0 - d)).astype(np.float32)
    loss, td = train_step(o, a, r, o2, disc, w, m2)
    if cfg.prioritized:
        rb.update_priorities(idx, td.numpy())
    return loss


def _report(bar, history: dict, pending_losses: list, cfg, vec_step: int, eps: float) -> None:
    history["losses"].extend(float(x) for x in pending_losses)
    rets = history["episode_returns"][-100:]
    bar.update(50 * cfg.num_envs if vec_step % 50 == 0 else (vec_step % 50) * cfg.num_envs,
               episodes=len(history["episode_returns"]),
               mean_return=float(np.mean(rets)) if rets else 0.0, epsilon=eps)


def _save(ckpt, rb, history: dict, work_dir: Path, hist_path: Path, step: int, chief: bool):
    """Checkpoint the networks; the chief also keeps the replay buffer and the history."""
    if chief:
        rb.save(work_dir / "replay.npz")
        _atomic_json(hist_path, history)
    ckpt.save(step)


def train_dqn(make_env: Callable[[int], object], cfg: DQNConfig, work_dir: Path, *, strategy=None,
              action_mask_fn=None, progress_desc: str = "dqn", q_network_fn=None,
              env_action_fn=None):
    """Train a Q-network on ``cfg.num_envs`` envs from ``make_env(i)``. -> (q_network, history).

    ``q_network_fn(obs_dim, n_actions, name) -> keras.Model`` replaces the default MLP (called
    for the online and the target network inside ``strategy.scope()``).
    ``env_action_fn(actions [B], q_values [B, A], mask [B, A] | None) -> list`` maps the chosen
    actions to what ``env.step`` receives (e.g. a slate around the action); replay stores actions.

    history: ``episode_returns``, ``episode_lengths``, ``episode_end_steps``, ``losses``,
    ``steps_per_second`` (this run, learning included), ``steps`` (transitions in total)."""
    from trainer.common import Checkpointer, Progress, is_chief

    work_dir, strategy = Path(work_dir), strategy or tf.distribute.get_strategy()
    keras.utils.set_random_seed(cfg.seed)
    envs = [make_env(i) for i in range(cfg.num_envs)]
    obs_dim, n_actions = _space_dims(envs[0])
    work_dir.mkdir(parents=True, exist_ok=True)
    q, target, optimizer, epsilon_var = _build_networks(cfg, strategy, obs_dim, n_actions,
                                                        q_network_fn)
    ckpt = Checkpointer(work_dir, max_to_keep=2, strategy=strategy, q=q, target=target, optimizer=optimizer, epsilon=epsilon_var)
    start = int(ckpt.restore())
    rb = ReplayBuffer(cfg.buffer_size, obs_dim, cfg.prioritized, cfg.per_alpha)
    hist_path = work_dir / "dqn_history.json"
    history = {k: [] for k in ("episode_returns", "episode_lengths", "episode_end_steps", "losses")}
    if start > 0:
        _resume(rb, history, work_dir, hist_path)
    rng = np.random.default_rng([cfg.seed, start])
    train_step, update_target = _build_train_step(q, target, optimizer, cfg, strategy, n_actions)
    forward = tf.function(lambda x: q(x, training=False),
                          input_signature=[tf.TensorSpec([None, obs_dim], tf.float32)])
    all_true = np.ones((cfg.batch_size, n_actions), bool)
    nstep = NStep(cfg.num_envs, cfg.n_step, cfg.gamma)

    obs = np.stack([np.asarray(e.reset(seed=cfg.seed * 1000 + start + i)[0], np.float32)
                    for i, e in enumerate(envs)])
    ep_ret, ep_len = np.zeros(cfg.num_envs), np.zeros(cfg.num_envs, np.int64)
    step, vec_step, grad_steps, pending_losses = start, 0, 0, []
    last_ckpt, t0 = start, time.perf_counter()
    chief = is_chief(strategy)
    with Progress(cfg.total_steps, progress_desc, unit="step", initial=start) as bar:
        while step < cfg.total_steps:
            # --- act: one batched forward for all envs, epsilon-greedy in numpy -----------------
            eps = linear_epsilon(cfg, step)
            mask = action_mask_fn(obs) if action_mask_fn is not None else None
            q_batch = forward(obs).numpy()
            actions = epsilon_greedy(q_batch, eps, rng, mask)
            env_actions = env_action_fn(actions, q_batch, mask) if env_action_fn else actions.tolist()
            next_obs, done_steps = _step_envs(envs, obs, actions, env_actions, nstep, ep_ret,
                                              ep_len, history, step)
            if done_steps:
                o_, a_, r_, o2_, d_, m_ = (np.asarray(x) for x in zip(*done_steps))
                rb.add_batch(o_, a_, r_, o2_, d_, m_)
            obs = next_obs
            step += cfg.num_envs
            vec_step += 1
            # --- learn ---------------------------------------------------------------------
            if step >= cfg.learning_starts and len(rb) >= cfg.batch_size and vec_step % cfg.train_every == 0:
                pending_losses.append(_learn_once(rb, cfg, rng, step, train_step, action_mask_fn,
                                                  all_true))
                grad_steps += 1
                if cfg.tau < 1.0:
                    update_target(tf.constant(cfg.tau, tf.float32))
                elif grad_steps % cfg.target_update_every == 0:
                    update_target(tf.constant(1.0, tf.float32))
            # --- report / checkpoint -------------------------------------------------------------
            if vec_step % 50 == 0 or step >= cfg.total_steps:
                _report(bar, history, pending_losses, cfg, vec_step, eps)
                pending_losses = []
            if step - last_ckpt >= cfg.checkpoint_every or step >= cfg.total_steps:
                history["losses"].extend(float(x) for x in pending_losses)
                epsilon_var.assign(linear_epsilon(cfg, step))
                _save(ckpt, rb, history, work_dir, hist_path, step, chief)
                pending_losses, last_ckpt = [], step
    elapsed = time.perf_counter() - t0
    history["steps"] = int(step)
    history["steps_per_second"] = (step - start) / elapsed if step > start and elapsed else 0.0
    return q, history
