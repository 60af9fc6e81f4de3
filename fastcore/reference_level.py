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


def train_level_agent(episodes, *, alpha=0.1, gamma=0.98, epsilon=0.2, epsilon_decay=1.0,
                      epsilon_min=0.0, max_steps=20000, seed=0, q=None, algorithm="q",
                      **env_kwargs):
    """Twin of ``fastcore.level_env.train_level_agent`` (through fastcore.reference.train_q)."""
    from fastcore import reference

    env = LevelEnvPy(**env_kwargs)
    if q is None:
        q = np.zeros((env.n_states, env.n_actions), dtype=np.float64)
    stats = reference.train_q(env, q, episodes, alpha=alpha, gamma=gamma, epsilon=epsilon,
                              epsilon_decay=epsilon_decay, epsilon_min=epsilon_min,
                              max_steps=max_steps, seed=seed, algorithm=algorithm)
    return q, stats
