# cython: language_level=3
"""fastcore._core: the generic tabular kernels, the RNG and the environment base class.

Layout (scikit-learn style): every public function is a thin Python layer that validates its
arguments (raising ``ValueError`` that names the argument) and then drops into a C loop that runs
without the GIL and touches no Python object per step.

* ``Env``: the C-level environment interface. An environment is one ``.pyx`` file defining
  ``cdef class MyEnv(Env)`` with ``reset(rng)`` and ``step(state, action, rng, &reward, &done)``
  implemented ``noexcept nogil``; ``train_q`` drives any of them through the vtable.
* ``train_q``: whole training runs (N episodes) of tabular Q-learning, Expected SARSA or Double
  Q-learning with epsilon-greedy exploration, updating the Q-table in place.
* ``q_update`` / ``q_update_batch``: single and batched Q-learning updates.
* ``SplitMix64``: the seedable generator (its pure-Python twin is fastcore.reference.SplitMix64).

Exact semantics (mirrored operation for operation by fastcore.reference, so results match bit for
bit):

* per step: ``u = rng_uniform()``; explore iff ``u < epsilon``, then ``a = rng_below(n_actions)``;
  otherwise ``a`` = greedy action (ties -> lowest index). The environment steps (it may draw from
  the same generator). Double Q-learning then draws one more uniform (``< 0.5``: update table 1).
* targets: ``r`` when the step terminated the episode, else ``r + gamma * X`` with ``X`` =
  ``max_a Q[s2, a]`` (Q-learning), ``(1 - eps) * max + eps * (sum / n_actions)`` (Expected
  SARSA, eps = the current exploration rate) or ``Qother[s2, argmax Qthis[s2]]`` (Double Q).
  Update: ``Q[s, a] = Q[s, a] + alpha * (target - Q[s, a])``.
* an episode ends when the environment reports done or after ``max_steps`` steps (then the last
  update bootstraps, it is a truncation). After each episode ``epsilon *= epsilon_decay`` and is
  floored at ``epsilon_min``.
* statistics: per-episode undiscounted return (sum of rewards in step order) and length.
"""
import operator
import math

import numpy as np

cimport numpy as cnp
from libc.stdint cimport uint64_t, int64_t

cnp.import_array()

__all__ = [
    "Env", "SplitMix64", "train_q", "q_update", "q_update_batch", "greedy_rollout",
    "ALGORITHMS", "MAX_EPISODES", "MAX_STEPS", "MAX_TABLE_ENTRIES",
]

ALGORITHMS = ("q", "expected_sarsa", "double_q")
MAX_EPISODES = 100_000_000          # per call; the statistics arrays take 16 bytes per episode
MAX_STEPS = 2 ** 40                 # per-episode step limit
MAX_TABLE_ENTRIES = 2 ** 31 - 1     # n_states * n_actions must fit a C int index

cdef enum:
    ALGO_Q = 0
    ALGO_EXPECTED_SARSA = 1
    ALGO_DOUBLE_Q = 2


# ------------------------------------------------------------------------------------------
# Validation helpers (shared with the environment modules through the Python layer)

def check_int(name, value, lo=None, hi=None):
    """``value`` as a Python int (rejects bool, float, str); ValueError naming ``name``."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be an integer, got bool {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {type(value).__name__} {value!r}") from None
    if lo is not None and v < lo:
        raise ValueError(f"{name} must be >= {lo}, got {v}")
    if hi is not None and v > hi:
        raise ValueError(f"{name} must be <= {hi}, got {v}")
    return v


def check_float(name, value, lo, hi, *, lo_open=False):
    """``value`` as a finite float in [lo, hi] (or (lo, hi] with lo_open); ValueError otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    if (v <= lo if lo_open else v < lo) or v > hi:
        interval = f"({lo}, {hi}]" if lo_open else f"[{lo}, {hi}]"
        raise ValueError(f"{name} must be in {interval}, got {v}")
    return v


def check_q_table(name, q, shape=None):
    """Checks a Q-table: numpy float64, 2-D, C-contiguous, writeable, non-empty (and ``shape``)."""
    if not isinstance(q, np.ndarray):
        raise ValueError(f"{name} must be a numpy.ndarray of float64, got {type(q).__name__}")
    if q.dtype != np.float64:
        raise ValueError(f"{name} must have dtype float64, got {q.dtype}")
    if q.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_states, n_actions), got shape {q.shape}"
                         " (a C-contiguous table reshapes without copying: q.reshape(-1, n_actions))")
    if not q.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (use numpy.ascontiguousarray)")
    if not q.flags.writeable:
        raise ValueError(f"{name} must be writeable (it is updated in place)")
    if q.shape[0] < 1 or q.shape[1] < 1:
        raise ValueError(f"{name} must be non-empty, got shape {q.shape}")
    if q.size > MAX_TABLE_ENTRIES:
        raise ValueError(f"{name} has {q.size} entries, more than {MAX_TABLE_ENTRIES}")
    if shape is not None and tuple(q.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {q.shape}")
    return q


def check_env(env):
    if not isinstance(env, Env):
        raise ValueError(f"env must be a fastcore Env (a cdef class deriving from "
                         f"fastcore._core.Env), got {type(env).__name__}")
    if env.n_states < 1 or env.n_actions < 1:
        raise ValueError(f"env must have n_states >= 1 and n_actions >= 1, got "
                         f"n_states={env.n_states}, n_actions={env.n_actions}")
    if <long long>env.n_states * <long long>env.n_actions > MAX_TABLE_ENTRIES:
        raise ValueError(f"env has n_states * n_actions > {MAX_TABLE_ENTRIES}")
    return env


def _check_index_array(name, x, n, hi):
    x = np.asarray(x)
    if x.size == 0 and x.dtype.kind == "f":      # [] -> float64: an empty batch is fine
        x = x.astype(np.int64)
    if x.dtype.kind not in "iu":
        raise ValueError(f"{name} must be an integer array, got dtype {x.dtype}")
    if x.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {x.shape}")
    if x.shape[0] != n:
        raise ValueError(f"{name} must have length {n} (like states), got {x.shape[0]}")
    if n and (x.min() < 0 or x.max() >= hi):
        raise ValueError(f"{name} must hold indices in [0, {hi}), got values in "
                         f"[{x.min()}, {x.max()}]")
    return np.ascontiguousarray(x, dtype=np.int64)


# ------------------------------------------------------------------------------------------
# RNG

cdef class SplitMix64:
    """The fastcore generator as a Python object: ``SplitMix64(seed)``; ``state`` is readable and
    writable, ``next()`` / ``uniform()`` / ``below(n)`` are rng_next / rng_uniform / rng_below.
    fastcore.reference.SplitMix64 is its pure-Python twin (same outputs, bit for bit)."""

    def __init__(self, seed=0):
        self.rng.state = <uint64_t>check_int("seed", seed, 0, 2 ** 64 - 1)

    @property
    def state(self):
        return self.rng.state

    @state.setter
    def state(self, value):
        self.rng.state = <uint64_t>check_int("state", value, 0, 2 ** 64 - 1)

    def next(self):
        return rng_next(&self.rng)

    def uniform(self):
        return rng_uniform(&self.rng)

    def below(self, n):
        n = check_int("n", n, 1, 2 ** 31 - 1)
        return rng_below(&self.rng, n)

    def fill_next(self, Py_ssize_t count):
        """``count`` successive rng_next outputs as a uint64 array (for tests and benchmarks)."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        out = np.empty(count, dtype=np.uint64)
        cdef uint64_t[::1] o = out
        cdef Py_ssize_t i
        with nogil:
            for i in range(count):
                o[i] = rng_next(&self.rng)
        return out

    def __repr__(self):
        return f"SplitMix64(state={self.rng.state})"


def _as_rng(rng):
    if not isinstance(rng, SplitMix64):
        raise ValueError(f"rng must be a fastcore.SplitMix64, got {type(rng).__name__}")
    return rng


# ------------------------------------------------------------------------------------------
# Environment base class

cdef class Env:
    """Base class of the C-level environments (see the module docstring).

    Subclasses set ``n_states`` / ``n_actions`` in ``__init__`` and override the ``cdef`` methods
    ``reset`` and ``step``. The base class is a one-state environment whose every step terminates
    with reward 0. ``py_reset`` / ``py_step`` expose the C methods to Python (tests, debugging)
    with the same call shape as the pure-Python twin environments: ``reset(rng) -> state`` and
    ``step(state, action, rng) -> (next_state, reward, done)``.
    """

    cdef int reset(self, Rng* rng) noexcept nogil:
        return 0

    cdef int step(self, int state, int action, Rng* rng, double* reward, bint* done) noexcept nogil:
        reward[0] = 0.0
        done[0] = True
        return 0

    def rollout(self, long n_steps, uint64_t seed):
        """Uniformly random actions for ``n_steps`` steps -> (states, actions, rewards, dones)."""
        if n_steps < 0:
            raise ValueError("n_steps must be >= 0")
        check_env(self)  # n_actions > 0 before rng_below divides by it
        states = np.zeros(n_steps + 1, dtype=np.int64)
        actions = np.zeros(n_steps, dtype=np.int64)
        rewards = np.zeros(n_steps, dtype=np.float64)
        dones = np.zeros(n_steps, dtype=np.uint8)
        cdef int64_t[::1] s_v = states
        cdef int64_t[::1] a_v = actions
        cdef double[::1] r_v = rewards
        cdef unsigned char[::1] d_v = dones
        cdef Rng rng
        cdef long i
        cdef int s, a
        cdef double r = 0.0
        cdef bint done = False
        rng.state = seed
        with nogil:
            s = self.reset(&rng)
            s_v[0] = s
            for i in range(n_steps):
                a = rng_below(&rng, self.n_actions)
                s = self.step(s, a, &rng, &r, &done)
                a_v[i] = a
                r_v[i] = r
                d_v[i] = done
                if done:
                    s = self.reset(&rng)
                s_v[i + 1] = s
        return states, actions, rewards, dones

    def py_reset(self, rng):
        """Calls the C ``reset`` with a fastcore.SplitMix64 (advanced in place); -> state."""
        cdef SplitMix64 g = _as_rng(rng)
        check_env(self)
        return self.reset(&g.rng)

    def py_step(self, state, action, rng):
        """Calls the C ``step``; -> (next_state, reward, done)."""
        cdef SplitMix64 g = _as_rng(rng)
        check_env(self)
        cdef int s = check_int("state", state, 0, self.n_states - 1)
        cdef int a = check_int("action", action, 0, self.n_actions - 1)
        cdef double reward = 0.0
        cdef bint done = False
        cdef int s2 = self.step(s, a, &g.rng, &reward, &done)
        return s2, reward, bool(done)


# ------------------------------------------------------------------------------------------
# The generic training loop

cdef int _train_loop(Env env, double* Q, double* Q2, int algo, int64_t episodes,
                     double alpha, double gamma, double* epsilon_io, double epsilon_decay,
                     double epsilon_min, int64_t max_steps, Rng* rng,
                     double* returns, int64_t* lengths, int64_t* updates_out,
                     int* bad_state) noexcept nogil:
    """Runs the episodes; returns 0, or 1 when the env produced a state outside [0, n_states)."""
    cdef int nS = env.n_states
    cdef int nA = env.n_actions
    cdef double epsilon = epsilon_io[0]
    cdef int64_t ep, t, updates = 0
    cdef int s, s2, a, b
    cdef double r, target, G, mx, sm
    cdef bint done
    cdef double* row
    cdef double* nrow
    cdef double* row2 = NULL
    cdef double* nrow2 = NULL
    for ep in range(episodes):
        s = env.reset(rng)
        if s < 0 or s >= nS:
            bad_state[0] = s
            epsilon_io[0] = epsilon
            updates_out[0] = updates
            return 1
        G = 0.0
        t = 0
        while t < max_steps:
            row = Q + <Py_ssize_t>s * nA
            if algo == ALGO_DOUBLE_Q:
                row2 = Q2 + <Py_ssize_t>s * nA
                if rng_uniform(rng) < epsilon:
                    a = rng_below(rng, nA)
                else:
                    a = 0
                    mx = row[0] + row2[0]
                    for b in range(1, nA):
                        if row[b] + row2[b] > mx:
                            mx = row[b] + row2[b]
                            a = b
            else:
                a = epsilon_greedy(rng, row, nA, epsilon)
            done = False
            r = 0.0
            s2 = env.step(s, a, rng, &r, &done)
            if s2 < 0 or s2 >= nS:
                bad_state[0] = s2
                epsilon_io[0] = epsilon
                updates_out[0] = updates
                return 1
            nrow = Q + <Py_ssize_t>s2 * nA
            if algo == ALGO_Q:
                target = q_learning_target(nrow, nA, r, done, gamma)
                row[a] = row[a] + alpha * (target - row[a])
            elif algo == ALGO_EXPECTED_SARSA:
                if done:
                    target = r
                else:
                    mx = nrow[0]
                    sm = nrow[0]
                    for b in range(1, nA):
                        if nrow[b] > mx:
                            mx = nrow[b]
                        sm = sm + nrow[b]
                    target = r + gamma * ((1.0 - epsilon) * mx + epsilon * (sm / nA))
                row[a] = row[a] + alpha * (target - row[a])
            else:
                nrow2 = Q2 + <Py_ssize_t>s2 * nA
                if rng_uniform(rng) < 0.5:
                    if done:
                        target = r
                    else:
                        target = r + gamma * nrow2[argmax_row(nrow, nA)]
                    row[a] = row[a] + alpha * (target - row[a])
                else:
                    if done:
                        target = r
                    else:
                        target = r + gamma * nrow[argmax_row(nrow2, nA)]
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
    epsilon_io[0] = epsilon
    updates_out[0] = updates
    return 0


def check_train_args(episodes, alpha, gamma, epsilon, epsilon_decay, epsilon_min, max_steps,
                     seed):
    """Validates the common training arguments; returns them normalised (a tuple)."""
    return (
        check_int("episodes", episodes, 0, MAX_EPISODES),
        check_float("alpha", alpha, 0.0, 1.0, lo_open=True),
        check_float("gamma", gamma, 0.0, 1.0),
        check_float("epsilon", epsilon, 0.0, 1.0),
        check_float("epsilon_decay", epsilon_decay, 0.0, 1.0, lo_open=True),
        check_float("epsilon_min", epsilon_min, 0.0, 1.0),
        check_int("max_steps", max_steps, 1, MAX_STEPS),
        check_int("seed", seed, 0, 2 ** 64 - 1),
    )


def train_q(env, q, episodes, *, alpha=0.1, gamma=0.9, epsilon=0.1, epsilon_decay=1.0,
            epsilon_min=0.0, max_steps=1000, seed=0, algorithm="q", q2=None):
    """Trains a tabular agent on ``env`` for ``episodes`` episodes entirely in C (GIL released).

    ``q``: float64 C-contiguous ``(env.n_states, env.n_actions)``, updated IN PLACE (call again to
    continue training; the generator restarts from ``seed`` on every call, so pass a different
    seed to continue with fresh randomness).
    ``algorithm``: ``"q"`` (Q-learning), ``"expected_sarsa"`` or ``"double_q"`` (needs ``q2``, a
    second table of the same shape; actions are greedy on ``q + q2``).
    Returns ``{"returns": float64[episodes], "lengths": int64[episodes], "updates": int,
    "epsilon": final exploration rate}``.
    """
    check_env(env)
    cdef Env e = env
    check_q_table("q", q, (e.n_states, e.n_actions))
    (episodes, alpha, gamma, epsilon, epsilon_decay, epsilon_min, max_steps,
     seed) = check_train_args(episodes, alpha, gamma, epsilon, epsilon_decay, epsilon_min,
                              max_steps, seed)
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    cdef int algo = ALGORITHMS.index(algorithm)
    if algo == ALGO_DOUBLE_Q:
        if q2 is None:
            raise ValueError("q2 is required with algorithm='double_q' (a second Q-table)")
        check_q_table("q2", q2, (e.n_states, e.n_actions))
        if np.shares_memory(q, q2):
            raise ValueError("q2 must not share memory with q")
    elif q2 is not None:
        raise ValueError(f"q2 is only used with algorithm='double_q', not {algorithm!r}")

    returns, lengths = np.zeros(episodes, np.float64), np.zeros(episodes, np.int64)
    cdef EpisodeLog log = episode_log(returns, lengths)
    cdef double[:, ::1] qv = q
    cdef double[:, ::1] q2v = q2 if q2 is not None else q
    cdef Rng rng = seeded_rng(<uint64_t>seed)
    cdef double eps = epsilon
    cdef int64_t updates = 0, n_ep = episodes, n_max = max_steps
    cdef double a_ = alpha, g_ = gamma, dec = epsilon_decay, emin = epsilon_min
    cdef int bad = 0, status
    with nogil:
        status = _train_loop(e, &qv[0, 0], &q2v[0, 0], algo, n_ep, a_, g_, &eps, dec, emin,
                             n_max, &rng, log.returns, log.lengths, &updates, &bad)
    if status != 0:
        raise RuntimeError(f"{type(env).__name__} produced state {bad} outside "
                           f"[0, {e.n_states}) (a bug in the environment)")
    return {"returns": returns, "lengths": lengths, "updates": int(updates), "epsilon": eps}


# ------------------------------------------------------------------------------------------
# Single and batched updates

def q_update(q, s, a, r, s2, done, alpha, gamma):
    """One Q-learning update of ``q[s, a]`` in place (float64 ``(n_states, n_actions)``).

    target = r if done else r + gamma * max(q[s2]); q[s, a] += alpha * (target - q[s, a]).
    Returns the TD error ``target - q_old[s, a]``.
    """
    check_q_table("q", q)
    cdef int nS = q.shape[0], nA = q.shape[1]
    cdef int si = check_int("s", s, 0, nS - 1)
    cdef int ai = check_int("a", a, 0, nA - 1)
    cdef int s2i = check_int("s2", s2, 0, nS - 1)
    cdef double rr = _check_reward("r", r)
    cdef bint d = _check_done("done", done)
    cdef double al = check_float("alpha", alpha, 0.0, 1.0, lo_open=True)
    cdef double ga = check_float("gamma", gamma, 0.0, 1.0)
    cdef double[:, ::1] qv = q
    cdef double* row = &qv[si, 0]
    cdef double target = q_learning_target(&qv[s2i, 0], nA, rr, d, ga)
    cdef double td = target - row[ai]
    row[ai] = row[ai] + al * (target - row[ai])
    return td


def _check_reward(name, r):
    if isinstance(r, (bool, np.bool_)) or not isinstance(r, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a real number, got {type(r).__name__} {r!r}")
    v = float(r)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    return v


def _check_done(name, d):
    if isinstance(d, (bool, np.bool_)):
        return bool(d)
    if isinstance(d, (int, np.integer)) and d in (0, 1):
        return bool(d)
    raise ValueError(f"{name} must be a bool (or 0/1), got {type(d).__name__} {d!r}")


def q_update_batch(q, states, actions, rewards, next_states, dones, alpha, gamma):
    """Q-learning updates for arrays of transitions, applied sequentially in array order (so a
    later transition sees the earlier updates), in C without the GIL. Same rule as ``q_update``.

    ``states``, ``actions``, ``next_states``: 1-D integer arrays; ``rewards``: 1-D real array;
    ``dones``: 1-D bool (or 0/1 integer) array; all the same length. Returns the TD errors
    (float64 array).
    """
    check_q_table("q", q)
    cdef int nS = q.shape[0], nA = q.shape[1]
    states_ = np.asarray(states)
    if states_.size == 0 and states_.dtype.kind == "f":
        states_ = states_.astype(np.int64)
    if states_.dtype.kind not in "iu":
        raise ValueError(f"states must be an integer array, got dtype {states_.dtype}")
    if states_.ndim != 1:
        raise ValueError(f"states must be 1-D, got shape {states_.shape}")
    cdef Py_ssize_t n = states_.shape[0]
    s_arr = _check_index_array("states", states_, n, nS)
    a_arr = _check_index_array("actions", actions, n, nA)
    s2_arr = _check_index_array("next_states", next_states, n, nS)
    r_arr = np.asarray(rewards)
    if r_arr.dtype.kind not in "iuf" or r_arr.dtype == np.float16:
        raise ValueError(f"rewards must be a real (float or integer) array, got dtype {r_arr.dtype}")
    if r_arr.ndim != 1 or r_arr.shape[0] != n:
        raise ValueError(f"rewards must be 1-D of length {n}, got shape {r_arr.shape}")
    r_arr = np.ascontiguousarray(r_arr, dtype=np.float64)
    if not np.all(np.isfinite(r_arr)):
        raise ValueError("rewards must be finite")
    d_arr = np.asarray(dones)
    if d_arr.size == 0 and d_arr.dtype.kind == "f":
        d_arr = d_arr.astype(np.bool_)
    if d_arr.dtype.kind not in "biu":
        raise ValueError(f"dones must be a bool array, got dtype {d_arr.dtype}")
    if d_arr.ndim != 1 or d_arr.shape[0] != n:
        raise ValueError(f"dones must be 1-D of length {n}, got shape {d_arr.shape}")
    if d_arr.dtype.kind != "b" and n and (d_arr.min() < 0 or d_arr.max() > 1):
        raise ValueError("dones must hold only 0/1 (or be a bool array)")
    d_arr = np.ascontiguousarray(d_arr, dtype=np.uint8)
    cdef double al = check_float("alpha", alpha, 0.0, 1.0, lo_open=True)
    cdef double ga = check_float("gamma", gamma, 0.0, 1.0)

    td_out = np.empty(n, dtype=np.float64)
    if n == 0:
        return td_out
    cdef double[:, ::1] qv = q
    cdef int64_t[::1] sv = s_arr, av = a_arr, s2v = s2_arr
    cdef double[::1] rv = r_arr, tv = td_out
    cdef unsigned char[::1] dv = d_arr
    cdef double* Q = &qv[0, 0]
    cdef double* row
    cdef double target
    cdef Py_ssize_t i
    with nogil:
        for i in range(n):
            row = Q + sv[i] * nA
            target = q_learning_target(Q + s2v[i] * nA, nA, rv[i], dv[i] != 0, ga)
            tv[i] = target - row[av[i]]
            row[av[i]] = row[av[i]] + al * (target - row[av[i]])
    return td_out


# ------------------------------------------------------------------------------------------
# Greedy evaluation

def greedy_rollout(env, q, max_steps, seed=0):
    """Follows the greedy policy of ``q`` (ties -> lowest index) from ``env``'s start state.

    Returns ``{"states": [s0, s1, ...], "actions": [...], "return": float, "done": bool}``;
    stops at termination or after ``max_steps`` steps. ``seed`` seeds the generator handed to
    the environment (stochastic environments).
    """
    check_env(env)
    cdef Env e = env
    check_q_table("q", q, (e.n_states, e.n_actions))
    cdef int64_t n_max = check_int("max_steps", max_steps, 0, MAX_STEPS)
    cdef Rng rng
    rng.state = <uint64_t>check_int("seed", seed, 0, 2 ** 64 - 1)
    cdef double[:, ::1] qv = q
    cdef int nA = e.n_actions, nS = e.n_states
    cdef int s = e.reset(&rng), a
    cdef double r = 0.0, G = 0.0
    cdef bint done = False
    cdef int64_t t = 0
    if s < 0 or s >= nS:
        raise RuntimeError(f"{type(env).__name__}.reset produced state {s} outside [0, {nS})")
    states = [s]
    actions = []
    while t < n_max and not done:
        a = argmax_row(&qv[s, 0], nA)
        s = e.step(s, a, &rng, &r, &done)
        if s < 0 or s >= nS:
            raise RuntimeError(f"{type(env).__name__}.step produced state {s} outside [0, {nS})")
        G = G + r
        states.append(s)
        actions.append(a)
        t += 1
    return {"states": states, "actions": actions, "return": G, "done": bool(done)}
