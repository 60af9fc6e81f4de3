"""Pure-Python twin of the level editing environment (``fastcore/level_env.pyx``).

The rules live once in pure Python, in ``runtime.level_env`` (the runtime generates levels
with them); this module drives them with the SplitMix64 stream exactly as the C environment
does, so that ``reference.train_q`` / ``rollout`` on ``LevelEnvPy`` give the C numbers bit for
bit (tests/test_level.py). Interface: ``reset(rng) -> state``, ``step(state, action, rng) ->
(next_state, reward, done)``.
"""
from __future__ import annotations

import numpy as np

from runtime import level_env as rules

MAXN = 64
N_LEVEL_STATES = rules.N_STATES
N_LEVEL_ACTIONS = rules.N_ACTIONS


class LevelEnvPy:
    """Twin of ``fastcore.level_env.LevelEnv``."""

    def __init__(self, *, size_min=8, size_max=40):
        if not 7 <= size_min <= size_max <= MAXN:
            raise ValueError(f"need 7 <= size_min <= size_max <= {MAXN}")
        self.size_min, self.size_max = size_min, size_max
        self.n_states = N_LEVEL_STATES
        self.n_actions = N_LEVEL_ACTIONS
        self.editor = rules.Editor()

    def reset(self, rng) -> int:
        n = self.size_min + rng.below(self.size_max - self.size_min + 1)
        m = rules.lattice(n)
        d = rng.uniform()
        tg = list(rules.targets(m, d))
        if rng.uniform() >= 0.5:
            tg[0] = 1 + rng.below(2 * m)
        return self.editor.start(n, tuple(tg), rng)

    def step(self, state, action, rng):
        self.editor.rng = rng
        return self.editor.step(int(action))

    def tiles(self) -> np.ndarray:
        e = self.editor
        return np.frombuffer(bytes(e.tiles), dtype=np.uint8).reshape(e.n, e.n).copy()

    def metrics(self) -> tuple:
        return self.editor.metrics()


def rollout(env, n_steps: int, rng):
    """Twin of ``LevelEnv.rollout`` (uniformly random actions, reset after each episode)."""
    from fastcore.reference_envs import rollout as _rollout

    return _rollout(env, n_steps, rng)


def _masked_argmax(row, mask: int) -> int:
    best, v = -1, 0.0
    for a in range(N_LEVEL_ACTIONS):
        if mask >> a & 1 and (best < 0 or row[a] > v):
            v, best = row[a], a
    return best


def _masked_pick(mask: int, k: int) -> int:
    for a in range(N_LEVEL_ACTIONS):
        if mask >> a & 1:
            if k == 0:
                return a
            k -= 1
    return -1


def train_level_agent(episodes, *, alpha=0.1, gamma=0.98, epsilon=0.2, epsilon_decay=1.0,
                      epsilon_min=0.0, max_steps=20000, seed=0, q=None, algorithm="q",
                      **env_kwargs):
    """Twin of ``fastcore.level_env.train_level_agent`` (Q-learning over the allowed actions
    of each state, ``rules.state_mask``; the loop of ``_masked_q_loop``)."""
    from fastcore import reference

    if algorithm != "q":
        raise ValueError(f"algorithm must be 'q' for the level editor, got {algorithm!r}")
    env = LevelEnvPy(**env_kwargs)
    if q is None:
        q = np.zeros((env.n_states, env.n_actions), dtype=np.float64)
    masks = rules.state_masks()
    rng = reference.SplitMix64(seed)
    Q = [list(map(float, r)) for r in q]
    returns = np.zeros(episodes, dtype=np.float64)
    lengths = np.zeros(episodes, dtype=np.int64)
    updates = 0
    for ep in range(episodes):
        s = env.reset(rng)
        G, t = 0.0, 0
        while t < max_steps:
            row, mask = Q[s], masks[s]
            if rng.uniform() < epsilon:
                a = _masked_pick(mask, rng.below(bin(mask).count("1")))
            else:
                a = _masked_argmax(row, mask)
            s2, r, done = env.step(s, a, rng)
            r = float(r)
            if done:
                target = r
            else:
                nrow = Q[s2]
                target = r + gamma * nrow[_masked_argmax(nrow, masks[s2])]
            row[a] = row[a] + alpha * (target - row[a])
            updates += 1
            G = G + r
            t += 1
            s = s2
            if done:
                break
        returns[ep], lengths[ep] = G, t
        epsilon = epsilon * epsilon_decay
        if epsilon < epsilon_min:
            epsilon = epsilon_min
    q[:] = np.array(Q, dtype=np.float64)
    return q, {"returns": returns, "lengths": lengths, "updates": updates, "epsilon": epsilon}
