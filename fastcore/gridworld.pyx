# cython: language_level=3
"""The original article's GridWorld as a fastcore environment (the "one environment = one file"
example), plus ``train_gridworld``.

GridWorld n x n: start (0, 0) top-left, goal (n-1, n-1) bottom-right; actions in the article's
order right, down, left, up; a move off the grid stays put; reward +1 when the move reaches the
goal (the episode ends) and -0.1 otherwise. State index = row * n + col.
"""
import numpy as np

from libc.stdint cimport int64_t, uint64_t

from fastcore._core cimport (Env, EpisodeLog, Rng, episode_log, epsilon_greedy, max_row,
                             seeded_rng)
from fastcore._core import check_int, check_train_args

__all__ = ["GridWorldEnv", "train_gridworld", "MAX_SIZE", "ACTIONS"]

MAX_SIZE = 1024      # the Q-table of a 1024 x 1024 grid is 32 MiB
ACTIONS = ((0, 1), (1, 0), (0, -1), (-1, 0))   # (d_row, d_col): right, down, left, up


cdef class GridWorldEnv(Env):
    """``GridWorldEnv(size)``: n_states = size * size, n_actions = 4 (right, down, left, up)."""
    cdef readonly int size
    cdef readonly int goal

    def __init__(self, size):
        size = check_int("size", size, 1, MAX_SIZE)
        self.size = size
        self.n_states = size * size
        self.n_actions = 4
        self.goal = size * size - 1

    cdef int reset(self, Rng* rng) noexcept nogil:
        return 0

    cdef int step(self, int state, int action, Rng* rng, double* reward, bint* done) noexcept nogil:
        cdef int n = self.size
        cdef int row = state // n
        cdef int col = state - row * n
        if action == 0:
            if col + 1 < n:
                state += 1
        elif action == 1:
            if row + 1 < n:
                state += n
        elif action == 2:
            if col > 0:
                state -= 1
        else:
            if row > 0:
                state -= n
        if state == self.goal:
            reward[0] = 1.0
            done[0] = True
        else:
            reward[0] = -0.1
            done[0] = False
        return state

    def index(self, row, col):
        """(row, col) -> state index."""
        row = check_int("row", row, 0, self.size - 1)
        col = check_int("col", col, 0, self.size - 1)
        return row * self.size + col

    def coords(self, state):
        """state index -> (row, col)."""
        state = check_int("state", state, 0, self.n_states - 1)
        return divmod(state, self.size)

    def __repr__(self):
        return f"GridWorldEnv(size={self.size})"


cdef int64_t _train_gridworld_loop(int n, double* Q, int64_t episodes, double alpha,
                                  double gamma, double epsilon, double epsilon_decay,
                                  double epsilon_min, int64_t max_steps, Rng* rng,
                                  double* returns, int64_t* lengths) noexcept nogil:
    """Q-learning with the GridWorld step inlined (row/col kept in registers, 4 actions known
    at compile time). Same draws and arithmetic as train_q(GridWorldEnv(n), ...), so the
    results are bit-identical; it exists only because the vtable call plus the div/mod of the
    generic loop cost ~40% of the time on this tiny environment. Returns the number of updates."""
    cdef int64_t ep, t, updates = 0
    cdef int r, c, nr, nc, a
    cdef int goal = n - 1
    cdef double reward, target, G
    cdef bint done
    cdef double* row
    for ep in range(episodes):
        r = 0
        c = 0
        G = 0.0
        t = 0
        while t < max_steps:
            row = Q + (r * n + c) * 4
            a = epsilon_greedy(rng, row, 4, epsilon)
            nr = r
            nc = c
            if a == 0:
                if c + 1 < n:
                    nc = c + 1
            elif a == 1:
                if r + 1 < n:
                    nr = r + 1
            elif a == 2:
                if c > 0:
                    nc = c - 1
            else:
                if r > 0:
                    nr = r - 1
            done = nr == goal and nc == goal
            if done:
                reward = 1.0
                target = reward
            else:
                reward = -0.1
                target = reward + gamma * max_row(Q + (nr * n + nc) * 4, 4)
            row[a] = row[a] + alpha * (target - row[a])
            G = G + reward
            t += 1
            r = nr
            c = nc
            if done:
                break
        updates += t
        returns[ep] = G
        lengths[ep] = t
        epsilon = epsilon * epsilon_decay
        if epsilon < epsilon_min:
            epsilon = epsilon_min
    return updates


def train_gridworld(size, episodes, *, alpha=0.1, gamma=0.9, epsilon=0.1, seed=0,
                    max_steps=None):
    """Q-learning on the article's GridWorld, ``episodes`` episodes in C (GIL released).

    Returns ``(q, stats)``: ``q`` float64 ``(size, size, 4)`` in the article's action order
    (right, down, left, up); ``stats`` = {"returns": float64[episodes], "lengths":
    int64[episodes], "updates": total number of Q-updates}. ``max_steps=None`` means no
    practical limit (``1000 * size * size`` steps per episode; the article loops until the goal).
    Bit-identical to ``train_q(GridWorldEnv(size), q.reshape(-1, 4), episodes, ...)`` and to
    ``fastcore.reference.train_gridworld``. Continue training a returned table with
    ``train_q(GridWorldEnv(size), q.reshape(-1, 4), more_episodes, seed=other_seed)``.
    """
    size = check_int("size", size, 1, MAX_SIZE)
    if max_steps is None:
        max_steps = 1000 * size * size
    (episodes, alpha, gamma, epsilon, _, _, max_steps, seed) = check_train_args(
        episodes, alpha, gamma, epsilon, 1.0, 0.0, max_steps, seed)
    q = np.zeros((size, size, 4), dtype=np.float64)
    returns, lengths = np.zeros(episodes, np.float64), np.zeros(episodes, np.int64)
    cdef EpisodeLog log = episode_log(returns, lengths)
    cdef double[:, :, ::1] qv = q
    cdef Rng rng = seeded_rng(<uint64_t>seed)
    cdef int n = size
    cdef int64_t n_ep = episodes, n_max = max_steps, updates
    cdef double al = alpha, ga = gamma, eps = epsilon
    with nogil:
        updates = _train_gridworld_loop(n, &qv[0, 0, 0], n_ep, al, ga, eps, 1.0, 0.0, n_max,
                                        &rng, log.returns, log.lengths)
    return q, {"returns": returns, "lengths": lengths, "updates": int(updates)}
