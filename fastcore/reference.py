"""Pure-Python twins of the fastcore kernels (for tests and for reading).

Same signatures, same generator, same arithmetic order as the Cython code, so the results are
bit-identical (tests check it). Slow on purpose: every operation is a plain Python float or int
operation mirroring one C operation.

Environments here are plain Python objects with ``n_states``, ``n_actions``,
``reset(rng) -> state`` and ``step(state, action, rng) -> (next_state, reward, done)``, where
``rng`` is a :class:`SplitMix64`.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "SplitMix64", "GridWorld", "train_q", "train_gridworld", "q_update", "q_update_batch",
    "greedy_rollout", "argmax_row", "max_row",
]

MASK64 = 0xFFFFFFFFFFFFFFFF
_INV_2_53 = 1.0 / 9007199254740992.0
ALGORITHMS = ("q", "expected_sarsa", "double_q")


class SplitMix64:
    """splitmix64, bit for bit like fastcore's ``rng_next`` / ``rng_uniform`` / ``rng_below``."""

    def __init__(self, seed: int = 0):
        self.state = int(seed) & MASK64

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def uniform(self) -> float:
        return float(self.next() >> 11) * _INV_2_53

    def below(self, n: int) -> int:
        return (self.next() >> 11) % n

    def __repr__(self) -> str:
        return f"SplitMix64(state={self.state})"


def argmax_row(row, n: int) -> int:
    best, v = 0, row[0]
    for a in range(1, n):
        if row[a] > v:
            v, best = row[a], a
    return best


def max_row(row, n: int) -> float:
    v = row[0]
    for a in range(1, n):
        if row[a] > v:
            v = row[a]
    return v


class GridWorld:
    """The article's GridWorld with flat state indices (row * size + col)."""

    ACTIONS = ((0, 1), (1, 0), (0, -1), (-1, 0))  # right, down, left, up

    def __init__(self, size: int):
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"size must be an integer >= 1, got {size!r}")
        self.size = int(size)
        self.n_states = self.size * self.size
        self.n_actions = 4
        self.goal = self.n_states - 1

    def reset(self, rng) -> int:
        return 0

    def step(self, state: int, action: int, rng):
        n = self.size
        row, col = divmod(state, n)
        dr, dc = self.ACTIONS[action]
        if 0 <= row + dr < n and 0 <= col + dc < n:
            state = (row + dr) * n + (col + dc)
        if state == self.goal:
            return state, 1.0, True
        return state, -0.1, False


def _check_q(q, n_states=None, n_actions=None, name="q"):
    if not isinstance(q, np.ndarray) or q.dtype != np.float64 or q.ndim != 2:
        raise ValueError(f"{name} must be a 2-D float64 numpy array")
    if not q.flags.c_contiguous or not q.flags.writeable:
        raise ValueError(f"{name} must be C-contiguous and writeable")
    if n_states is not None and q.shape != (n_states, n_actions):
        raise ValueError(f"{name} must have shape {(n_states, n_actions)}, got {q.shape}")


def train_q(env, q, episodes, *, alpha=0.1, gamma=0.9, epsilon=0.1, epsilon_decay=1.0,
            epsilon_min=0.0, max_steps=1000, seed=0, algorithm="q", q2=None):
    """Twin of fastcore.train_q (the Q-table is updated in place; same returned dict)."""
    _check_q(q, env.n_states, env.n_actions)
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    if algorithm == "double_q":
        if q2 is None:
            raise ValueError("q2 is required with algorithm='double_q'")
        _check_q(q2, env.n_states, env.n_actions, "q2")
    if episodes < 0 or max_steps < 1 or not (0.0 < alpha <= 1.0) or not (0.0 <= gamma <= 1.0) \
            or not (0.0 <= epsilon <= 1.0):
        raise ValueError("episodes >= 0, max_steps >= 1, alpha in (0, 1], gamma and epsilon in"
                         " [0, 1] required")
    nA = env.n_actions
    rng = SplitMix64(seed)
    # Python lists of floats: each element is the same IEEE double as in the C table.
    Q = [list(map(float, r)) for r in q]
    Q2 = [list(map(float, r)) for r in q2] if algorithm == "double_q" else None
    returns = np.zeros(episodes, dtype=np.float64)
    lengths = np.zeros(episodes, dtype=np.int64)
    updates = 0
    for ep in range(episodes):
        s = env.reset(rng)
        G = 0.0
        t = 0
        while t < max_steps:
            row = Q[s]
            if algorithm == "double_q":
                row2 = Q2[s]
                if rng.uniform() < epsilon:
                    a = rng.below(nA)
                else:
                    a, mx = 0, row[0] + row2[0]
                    for b in range(1, nA):
                        if row[b] + row2[b] > mx:
                            mx, a = row[b] + row2[b], b
            else:
                if rng.uniform() < epsilon:
                    a = rng.below(nA)
                else:
                    a = argmax_row(row, nA)
            s2, r, done = env.step(s, a, rng)
            r = float(r)
            nrow = Q[s2]
            if algorithm == "q":
                target = r if done else r + gamma * max_row(nrow, nA)
                row[a] = row[a] + alpha * (target - row[a])
            elif algorithm == "expected_sarsa":
                if done:
                    target = r
                else:
                    mx = sm = nrow[0]
                    for b in range(1, nA):
                        if nrow[b] > mx:
                            mx = nrow[b]
                        sm = sm + nrow[b]
                    target = r + gamma * ((1.0 - epsilon) * mx + epsilon * (sm / nA))
                row[a] = row[a] + alpha * (target - row[a])
            else:
                nrow2 = Q2[s2]
                if rng.uniform() < 0.5:
                    target = r if done else r + gamma * nrow2[argmax_row(nrow, nA)]
                    row[a] = row[a] + alpha * (target - row[a])
                else:
                    target = r if done else r + gamma * nrow[argmax_row(nrow2, nA)]
                    row2[a] = row2[a] + alpha * (target - row2[a])
            updates += 1
            G = G + r
            t += 1
            s = s2
            if done:
                break
        returns[ep] = G
        lengths[ep] = t
        epsilon = epsilon * epsilon_decay
        if epsilon < epsilon_min:
            epsilon = epsilon_min
    q[...] = np.asarray(Q, dtype=np.float64).reshape(q.shape)
    if Q2 is not None:
        q2[...] = np.asarray(Q2, dtype=np.float64).reshape(q2.shape)
    return {"returns": returns, "lengths": lengths, "updates": updates, "epsilon": epsilon}


def train_gridworld(size, episodes, *, alpha=0.1, gamma=0.9, epsilon=0.1, seed=0,
                    max_steps=None):
    """Twin of fastcore.train_gridworld -> (q (size, size, 4), stats)."""
    env = GridWorld(size)
    if max_steps is None:
        max_steps = 1000 * env.size * env.size
    q = np.zeros((env.n_states, 4), dtype=np.float64)
    st = train_q(env, q, episodes, alpha=alpha, gamma=gamma, epsilon=epsilon, seed=seed,
                 max_steps=max_steps)
    return q.reshape(env.size, env.size, 4), {"returns": st["returns"],
                                              "lengths": st["lengths"],
                                              "updates": st["updates"]}


def q_update(q, s, a, r, s2, done, alpha, gamma):
    """Twin of fastcore.q_update; returns the TD error."""
    _check_q(q)
    nA = q.shape[1]
    row = q[s]
    old = float(row[a])
    r = float(r)
    target = r if done else r + gamma * max_row([float(x) for x in q[s2]], nA)
    row[a] = old + alpha * (target - old)
    return target - old


def q_update_batch(q, states, actions, rewards, next_states, dones, alpha, gamma):
    """Twin of fastcore.q_update_batch (sequential, in array order); returns the TD errors."""
    td = np.empty(len(states), dtype=np.float64)
    for i in range(len(states)):
        td[i] = q_update(q, int(states[i]), int(actions[i]), float(rewards[i]),
                         int(next_states[i]), bool(dones[i]), alpha, gamma)
    return td


def greedy_rollout(env, q, max_steps, seed=0):
    """Twin of fastcore.greedy_rollout."""
    rng = SplitMix64(seed)
    nA = env.n_actions
    s = env.reset(rng)
    states, actions, G, done, t = [s], [], 0.0, False, 0
    while t < max_steps and not done:
        a = argmax_row([float(x) for x in q[s]], nA)
        s, r, done = env.step(s, a, rng)
        G = G + float(r)
        states.append(s)
        actions.append(a)
        t += 1
    return {"states": states, "actions": actions, "return": G, "done": bool(done)}
