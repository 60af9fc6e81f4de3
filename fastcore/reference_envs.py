"""Shared helper of the pure-Python environment twins (``fastcore.reference_level``).

The melody's Q-learning environment is gone: the melody model is a recurrent prior tuned by
policy gradient, and its C kernel (``melody_env.pyx``: the music-theory reward parts) has its
twin in ``fastcore.reference_music``.

``rollout`` drives a twin with ``reset(rng) -> state`` and ``step(state, action, rng) ->
(next_state, reward, done)``, ``rng`` a SplitMix64 (methods ``next()``, ``uniform()``,
``below(n)``), exactly like the Cython envs' ``rollout``.
"""
from __future__ import annotations

import numpy as np


# ---------------------------------------------------------------------------------- helpers
def rollout(env, n_steps: int, rng):
    """Twin of the Cython envs' ``rollout``: uniformly random actions, reset after each episode.

    ``rng`` is a SplitMix64 seeded like the Cython call's ``seed``.
    """
    states = np.zeros(n_steps + 1, dtype=np.int64)
    actions = np.zeros(n_steps, dtype=np.int64)
    rewards = np.zeros(n_steps, dtype=np.float64)
    dones = np.zeros(n_steps, dtype=np.uint8)
    s = env.reset(rng)
    states[0] = s
    for i in range(n_steps):
        a = rng.below(env.n_actions)
        s, r, done = env.step(s, a, rng)
        actions[i], rewards[i], dones[i] = a, r, done
        if done:
            s = env.reset(rng)
        states[i + 1] = s
    return states, actions, rewards, dones

