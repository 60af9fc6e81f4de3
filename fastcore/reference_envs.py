"""Pure-Python twins of the level and melody environments (``level_env.pyx``, ``melody_env.pyx``).

Same state encoding, same reward arithmetic in the same order, same draws from the same
SplitMix64 stream: a twin driven by ``fastcore.reference.train_q`` (or by ``rollout`` below)
gives exactly the numbers of its Cython original. They exist for the parity tests and as
readable documentation of the C code; they are ~100x slower.

Interface (the one ``fastcore.reference.train_q`` drives): ``reset(rng) -> state`` and
``step(state, action, rng) -> (next_state, reward, done)`` with ``rng`` a SplitMix64 (methods
``next()``, ``uniform()``, ``below(n)``).
"""
from __future__ import annotations

import numpy as np

# ---------------------------------------------------------------------------------- levels
MAXN = 64
N_DIRS = 8
N_DIST = 4
N_LEVEL_STATES = 16 * 16 * N_DIRS * N_DIST
ACT_DX = (1, 0, -1, 0)                # right, down, left, up (also the pattern bit order)
ACT_DY = (0, 1, 0, -1)


def direction8(dx: int, dy: int) -> int:
    ax, ay = abs(dx), abs(dy)
    if ax > 2 * ay:
        return 2 if dx > 0 else 6
    if ay > 2 * ax:
        return 4 if dy > 0 else 0
    if dx > 0:
        return 3 if dy > 0 else 1
    return 5 if dy > 0 else 7


def distance_bucket(d: int) -> int:
    if d <= 1:
        return 0
    if d <= 3:
        return 1
    if d <= 7:
        return 2
    return 3


def level_state(walls, visited, px: int, py: int, tx: int, ty: int) -> int:
    """State index of the agent at (px, py) heading for (tx, ty).

    ``walls[y][x]`` / ``visited[y][x]`` truthy = wall / already visited in this episode.
    """
    w = v = 0
    for k in range(4):
        x, y = px + ACT_DX[k], py + ACT_DY[k]
        if walls[y][x]:
            w |= 1 << k
        if visited[y][x]:
            v |= 1 << k
    dx, dy = tx - px, ty - py
    return ((w * 16 + v) * N_DIRS + direction8(dx, dy)) * N_DIST \
        + distance_bucket(abs(dx) + abs(dy))


class LevelEnvPy:
    """Twin of ``fastcore.level_env.LevelEnv``."""

    def __init__(self, *, size_min=6, size_max=32, density_min=0.0, density_max=0.35,
                 step_reward=-1.0, bump_reward=-2.0, goal_reward=0.0):
        if not 5 <= size_min <= size_max <= MAXN:
            raise ValueError(f"need 5 <= size_min <= size_max <= {MAXN}")
        if not 0.0 <= density_min <= density_max < 0.9:
            raise ValueError("need 0 <= density_min <= density_max < 0.9")
        self.size_min, self.size_max = size_min, size_max
        self.density_min, self.density_max = float(density_min), float(density_max)
        self.step_reward, self.bump_reward = float(step_reward), float(bump_reward)
        self.goal_reward = float(goal_reward)
        self.n_states = N_LEVEL_STATES
        self.n_actions = 4
        self.walls = [[1] * size_min for _ in range(size_min)]
        self.visited = [[0] * size_min for _ in range(size_min)]
        self.px = self.py = self.tx = self.ty = 1

    def observe(self) -> int:
        return level_state(self.walls, self.visited, self.px, self.py, self.tx, self.ty)

    def reset(self, rng) -> int:
        n = self.size_min + rng.below(self.size_max - self.size_min + 1)
        density = self.density_min + (self.density_max - self.density_min) * rng.uniform()
        walls = [[0] * n for _ in range(n)]
        for y in range(n):
            for x in range(n):
                if x == 0 or y == 0 or x == n - 1 or y == n - 1:
                    walls[y][x] = 1
                else:
                    walls[y][x] = 1 if rng.uniform() < density else 0
        px = 1 + rng.below(n - 2)
        py = 1 + rng.below(n - 2)
        walls[py][px] = 0
        seen = {(px, py)}
        queue = [(px, py)]
        head = 0
        while head < len(queue):
            x, y = queue[head]
            head += 1
            for k in range(4):
                nx, ny = x + ACT_DX[k], y + ACT_DY[k]
                if not walls[ny][nx] and (nx, ny) not in seen:
                    seen.add((nx, ny))
                    queue.append((nx, ny))
        if len(queue) < 2:
            nx = px + 1 if px + 1 < n - 1 else px - 1
            walls[py][nx] = 0
            queue = [(px, py), (nx, py)]
        self.tx, self.ty = queue[1 + rng.below(len(queue) - 1)]
        self.walls, self.px, self.py = walls, px, py
        self.visited = [[0] * n for _ in range(n)]
        self.visited[py][px] = 1
        return self.observe()

    def step(self, state, action, rng):
        nx, ny = self.px + ACT_DX[action], self.py + ACT_DY[action]
        if self.walls[ny][nx]:
            return self.observe(), self.bump_reward, False
        self.px, self.py = nx, ny
        self.visited[ny][nx] = 1
        if nx == self.tx and ny == self.ty:
            return self.observe(), self.step_reward + self.goal_reward, True
        return self.observe(), self.step_reward, False

    def grid(self) -> np.ndarray:
        return np.array(self.walls, dtype=np.uint8)


# ---------------------------------------------------------------------------------- melodies
N_PITCH = 25
LOW_MIDI = 60
N_POS = 17
N_LAST = 26
N_IB = 12
MAXBARS = 16
MAXLEN = 128
MAJOR_MASK = 0xAB5                     # pitch classes 0 2 4 5 7 9 11


def interval_bucket(iv: int, rep: int) -> int:
    a = abs(iv)
    if a == 0:
        return 1 if rep <= 2 else (2 if rep == 3 else 3)
    if a <= 2:
        return 4 if iv > 0 else 5
    if a <= 4:
        return 6 if iv > 0 else 7
    if a <= 7:
        return 8 if iv > 0 else 9
    return 10 if iv > 0 else 11


def melody_state(t: int, length: int, last: int, ib: int) -> int:
    """State at step ``t`` of a melody of ``length`` steps; ``last`` pitch index or -1."""
    pos = 16 if t == length - 1 else t % 16
    return (pos * N_LAST + last + 1) * N_IB + ib


class MelodyEnvPy:
    """Twin of ``fastcore.melody_env.MelodyEnv``."""

    def __init__(self, *, bars_min=1, bars_max=8, style=None, style_weight=0.0,
                 out_of_key=-1.0, tonic_start=1.0, tonic_end=1.0, final_tonic=2.0,
                 final_other=-2.0, repeat=-0.2, excess_repeat=-1.5, step=0.3, skip=0.1,
                 leap=-0.2, big_leap=-0.8, huge_leap=-1.5, trill=-0.5, resolved=0.5,
                 unresolved=-1.0, motif=0.3, repeated_motif=1.0):
        if not 1 <= bars_min <= bars_max <= MAXBARS:
            raise ValueError(f"need 1 <= bars_min <= bars_max <= {MAXBARS}")
        self.bars_min, self.bars_max = bars_min, bars_max
        if style is None:
            self.style = [0.0] * (N_LAST * N_PITCH)
        else:
            arr = np.ascontiguousarray(style, dtype=np.float64)
            if arr.shape != (N_LAST, N_PITCH) or not np.all(np.isfinite(arr)):
                raise ValueError(f"style must be a finite ({N_LAST}, {N_PITCH}) table")
            self.style = [float(v) for v in arr.ravel()]
        self.style_weight = float(style_weight)
        self.out_of_key, self.tonic_start, self.tonic_end = out_of_key, tonic_start, tonic_end
        self.final_tonic, self.final_other = final_tonic, final_other
        self.repeat, self.excess_repeat = repeat, excess_repeat
        self.step_w, self.skip, self.leap = step, skip, leap
        self.big_leap, self.huge_leap, self.trill = big_leap, huge_leap, trill
        self.resolved, self.unresolved = resolved, unresolved
        self.motif, self.repeated_motif = motif, repeated_motif
        self.n_states = N_POS * N_LAST * N_IB
        self.n_actions = N_PITCH
        self.length = 8 * bars_min
        self.t, self.last, self.prev_iv, self.rep, self.ib = 0, -1, 0, 0, 0
        self.hist = [0] * MAXLEN

    def observe(self) -> int:
        return melody_state(self.t, self.length, self.last, self.ib)

    def reset(self, rng) -> int:
        self.length = 8 * (self.bars_min + rng.below(self.bars_max - self.bars_min + 1))
        self.t, self.last, self.prev_iv, self.rep, self.ib = 0, -1, 0, 0, 0
        return self.observe()

    def bar_distinct(self, bar: int) -> int:
        return len(set(self.hist[8 * bar:8 * bar + 8]))

    def bar_reward(self, bar: int) -> float:
        r = 0.0
        if self.bar_distinct(bar) < 3:
            return r
        r += self.motif
        h, start = self.hist, 8 * bar
        for b in range(bar):
            if self.bar_distinct(b) < 3:
                continue
            if all(h[8 * b + i] - h[8 * b + i - 1] == h[start + i] - h[start + i - 1]
                   for i in range(1, 8)):
                r += self.repeated_motif
                break
        return r

    def step(self, state, action, rng):
        p, t = action, self.t
        pc = (p + LOW_MIDI) % 12
        phase = t % 16
        iv = 0
        r = 0.0
        if not (MAJOR_MASK >> pc) & 1:
            r += self.out_of_key
        if phase == 0 and pc == 0:
            r += self.tonic_start
        if phase == 15 and pc == 0:
            r += self.tonic_end
        if t == self.length - 1:
            r += self.final_tonic if pc == 0 else self.final_other
        new_rep = 1
        if self.last >= 0:
            iv = p - self.last
            a = abs(iv)
            if a == 0:
                new_rep = self.rep + 1
                r += self.repeat
                if new_rep >= 4:
                    r += self.excess_repeat
            elif a <= 2:
                r += self.step_w
            elif a <= 4:
                r += self.skip
            elif a <= 7:
                r += self.leap
            elif a <= 12:
                r += self.big_leap
            else:
                r += self.huge_leap
            if t >= 3 and a != 0 and p == self.hist[t - 2] and self.last == self.hist[t - 3]:
                r += self.trill
            if self.ib >= 10:
                if iv * self.prev_iv < 0 and 1 <= a <= 4:
                    r += self.resolved
                else:
                    r += self.unresolved
        r += self.style_weight * self.style[(self.last + 1) * N_PITCH + p]
        self.hist[t] = p
        if t % 8 == 7:
            r += self.bar_reward(t // 8)
        self.ib = interval_bucket(iv, new_rep) if self.last >= 0 else 0
        self.prev_iv, self.rep, self.last = iv, new_rep, p
        self.t = t + 1
        return self.observe(), r, self.t >= self.length

    def melody(self) -> list[int]:
        return [h + LOW_MIDI for h in self.hist[:self.t]]


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


def train_level_agent(episodes, *, alpha=0.1, gamma=0.97, epsilon=0.2, epsilon_decay=1.0,
                      epsilon_min=0.0, max_steps=400, seed=0, q=None, algorithm="q",
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


def train_melody_agent(episodes, *, alpha=0.1, gamma=0.8, epsilon=0.2, epsilon_decay=1.0,
                       epsilon_min=0.0, seed=0, q=None, algorithm="q", **env_kwargs):
    """Twin of ``fastcore.melody_env.train_melody_agent`` (through fastcore.reference.train_q)."""
    from fastcore import reference

    env = MelodyEnvPy(**env_kwargs)
    if q is None:
        q = np.zeros((env.n_states, env.n_actions), dtype=np.float64)
    stats = reference.train_q(env, q, episodes, alpha=alpha, gamma=gamma, epsilon=epsilon,
                              epsilon_decay=epsilon_decay, epsilon_min=epsilon_min,
                              max_steps=MAXLEN, seed=seed, algorithm=algorithm)
    return q, stats
