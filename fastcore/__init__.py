"""fastcore: tabular Q-learning and environment step loops at C speed (Cython).

Public API:
    train_gridworld(size, episodes, *, alpha, gamma, epsilon, seed, max_steps) -> (q, stats)
    train_q(env, q, episodes, *, alpha, gamma, epsilon, epsilon_decay, epsilon_min, max_steps,
            seed, algorithm="q"|"expected_sarsa"|"double_q", q2=None) -> stats
    q_update(q, s, a, r, s2, done, alpha, gamma) -> td_error
    q_update_batch(q, states, actions, rewards, next_states, dones, alpha, gamma) -> td_errors
    greedy_rollout(env, q, max_steps, seed=0) -> {"states", "actions", "return", "done"}
    Env (C-level environment base class), GridWorldEnv, SplitMix64 (the generator)
    fastcore.reference: the pure-Python twins (same signatures, same results).

Adding an environment is one file: ``fastcore/my_env.pyx`` with
``cdef class MyEnv(Env)`` (``from fastcore._core cimport Env, Rng, rng_next, rng_uniform,
rng_below``) implementing ``reset`` / ``step`` ``noexcept nogil``; ``train_q`` drives it.
Importing fastcore never imports TensorFlow.
"""
from fastcore._core import (
    ALGORITHMS,
    Env,
    SplitMix64,
    greedy_rollout,
    q_update,
    q_update_batch,
    train_q,
)
from fastcore.gridworld import GridWorldEnv, train_gridworld
from fastcore import reference  # noqa: F401  (pure-Python twins; cheap, numpy only)

__all__ = [
    "ALGORITHMS", "Env", "GridWorldEnv", "SplitMix64", "greedy_rollout", "q_update",
    "q_update_batch", "reference", "train_gridworld", "train_q",
]
