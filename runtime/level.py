"""Game levels: a tabular Q-learning agent walks and carves a route through a seeded field.

``generate("level", size=16, difficulty=0.5, seed=1)`` -> ``list[str]``, ``size`` rows of
``size`` characters.

Legend (DESIGN.md): ``#`` wall, ``.`` floor, ``S`` start, ``G`` goal, and two walkable extras:
``^`` hazard (walkable; a game would hurt the player there) and ``$`` treasure (walkable; placed
at the tip of a dead end to make exploring it worth it). Exactly one ``S`` and one ``G``; ``G``
is reachable from ``S`` by 4-neighbour moves over non-wall tiles.

Options and caps
----------------
``size``: int in [6, 64] (the cap keeps generation below ~50 ms); ``difficulty``: float in
[0, 1] (default 0.5).

How a level is made (numpy + onnxruntime only)
----------------------------------------------
The model is the Q-table of the agent trained in ``fastcore.level_env`` (8192 local-feature
states x 4 moves, shipped as an ONNX gather: state indices -> Q values). The runtime reads the
whole table once per session (one ``run`` on ``arange(n_states)``) and samples moves from
``softmax((Q[s] - max Q[s]) / (max Q[s] - min Q[s]) / T)``.

1. Field: a wall border and random interior obstacles with density ``0.1 + 0.1 * d``
   (``d`` = difficulty). ``S`` is a random free cell; the obstacles are redrawn (at most 8
   times, then cleared) while fewer than a third of the interior is reachable from ``S``.
2. Targets: ``G`` is drawn among the cells reachable from ``S`` whose Manhattan distance is
   within ``max(1, D / 10)`` of ``(0.4 + 0.5 * d) * D`` (``D`` the farthest reachable
   distance). ``floor(d * (1 + (size - 2) // 8) + 0.5)`` waypoints are drawn among the
   reachable cells (any order).
3. Route: the agent walks from ``S`` to each waypoint in turn and then to ``G`` with
   temperature ``T = 0.08 + 0.1 * d``; obstacles block it exactly as in training, and every
   cell it stands on becomes floor. If a segment exceeds ``4 * manhattan + 2 * size`` steps, the
   documented fallback carves the shortest path (BFS over the field, neighbours tried
   right/down/left/up) from where the agent stands to the target; ``build_level`` counts these
   fallbacks (the metrics report their rate). The level is therefore solvable by construction.
4. Dead ends: ``floor((1 + 3 * d) * (size - 2) ** 2 / 64 + 0.5)`` branches start at random
   route cells and follow the same policy toward a random target for at most
   ``2 + U{0..size // 3}`` cells; a branch may only enter a free field cell that is not floor
   yet and touches no floor besides the cell it comes from, so branches never create
   shortcuts. A branch of >= 3 cells ends in treasure ``$``.
5. Hazards: ``floor(d * L / 6 + 0.5)`` hazards ``^`` on distinct cells of the shortest S-G path
   (``L`` its length), never on its first or last two cells.

Everything else is wall. Larger ``difficulty`` means a longer route (further goal, more
waypoints, a hotter policy), more dead ends and more hazards.

``build_level(table, size, difficulty, rng)`` returns ``(rows, info)`` with ``info`` =
``{"route_length", "walk_length", "fallbacks", "segments"}``; ``table=None`` is the random-walk
baseline generator (uniform moves instead of the learned policy, everything else equal).
"""
from __future__ import annotations

import threading
from collections import deque

import numpy as np

from runtime import options, registry
from runtime.errors import ModelError

OPTIONS = {"size": 16, "difficulty": 0.5}
SIZE_MIN, SIZE_MAX = 6, 64
KIND = "level"

# must match fastcore.level_env (checked against the exported "env" side file)
N_DIRS, N_DIST = 8, 4
N_STATES = 16 * 16 * N_DIRS * N_DIST
N_ACTIONS = 4
ACT_DX = (1, 0, -1, 0)     # right, down, left, up
ACT_DY = (0, 1, 0, -1)

# generation constants (see the module docstring): a + b * difficulty
TEMPERATURE = (0.08, 0.10)
DENSITY = (0.10, 0.10)
DEAD_ENDS = (0.25 / 16, 0.75 / 16)    # per interior cell

_lock = threading.Lock()
_tables: dict = {}
_cum_cache: dict = {}


# ------------------------------------------------------------------------------ features
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
    return 0 if d <= 1 else 1 if d <= 3 else 2 if d <= 7 else 3


def state_index(walls, visited, n: int, px: int, py: int, tx: int, ty: int) -> int:
    """Same encoding as fastcore.level_env; ``walls``/``visited`` flat (y * n + x)."""
    c = py * n + px
    nb = (c + 1, c + n, c - 1, c - n)
    w = (walls[nb[0]] | (walls[nb[1]] << 1) | (walls[nb[2]] << 2) | (walls[nb[3]] << 3))
    v = (visited[nb[0]] | (visited[nb[1]] << 1) | (visited[nb[2]] << 2) | (visited[nb[3]] << 3))
    dx, dy = tx - px, ty - py
    return ((w * 16 + v) * N_DIRS + direction8(dx, dy)) * N_DIST \
        + distance_bucket(abs(dx) + abs(dy))


# ------------------------------------------------------------------------------ model
def q_table(models_dir, precision: str = "fp32") -> np.ndarray:
    """The whole Q-table (n_states, 4) float32, read through the ONNX model once per session."""
    sess = registry.session(KIND, "q", models_dir, precision)
    with _lock:
        hit = _tables.get(id(sess))
        if hit is not None and hit[0] is sess:
            return hit[1]
    env = registry.load_json(KIND, "env", models_dir)
    if env.get("n_states") != N_STATES or env.get("n_actions") != N_ACTIONS \
            or env.get("encoding") != "walls4-visited4-dir8-dist4":
        raise ModelError(f"the {KIND} model was exported for another state encoding "
                         f"({env.get('encoding')!r}, {env.get('n_states')} states); this runtime "
                         f"expects walls4-visited4-dir8-dist4 with {N_STATES}: re-export {KIND}")
    (table,) = registry.run(sess, {"state": np.arange(N_STATES, dtype=np.int64)})
    table = np.asarray(table, dtype=np.float64)
    if table.shape != (N_STATES, N_ACTIONS) or not np.all(np.isfinite(table)):
        raise ModelError(f"the {KIND} Q model returned shape {table.shape} (or non-finite "
                         f"values); expected ({N_STATES}, {N_ACTIONS}): re-export {KIND}")
    with _lock:
        _tables[id(sess)] = (sess, table)
    return table


def _cumulative(table: np.ndarray | None, temperature: float) -> list:
    """Per-state cumulative move probabilities as Python lists (cached per table and T)."""
    key = (None if table is None else id(table), round(temperature, 9))
    with _lock:
        hit = _cum_cache.get(key)
        if hit is not None and hit[0] is table:
            return hit[1]
    if table is None:
        cum = [[0.25, 0.5, 0.75, 1.0]] * N_STATES
    else:
        hi = table.max(axis=1, keepdims=True)
        span = hi - table.min(axis=1, keepdims=True) + 1e-9
        p = np.exp((table - hi) / span / temperature)
        p /= p.sum(axis=1, keepdims=True)
        c = np.cumsum(p, axis=1)
        c[:, -1] = 1.0
        cum = c.tolist()
    with _lock:
        if len(_cum_cache) > 64:
            _cum_cache.clear()
        _cum_cache[key] = (table, cum)
    return cum


class _Uniforms:
    """Uniform draws from the caller's Generator, fetched in blocks (deterministic)."""

    def __init__(self, rng: np.random.Generator):
        self.rng, self.buf, self.i = rng, [], 0

    def __call__(self) -> float:
        if self.i == len(self.buf):
            self.buf, self.i = self.rng.random(1024).tolist(), 0
        self.i += 1
        return self.buf[self.i - 1]


# ------------------------------------------------------------------------------ grid helpers
def _bfs(walls, n: int, start: int) -> list:
    """Distances (-1 unreachable) over non-wall cells from ``start``; flat index."""
    dist = [-1] * (n * n)
    dist[start] = 0
    dq = deque([start])
    steps = (1, n, -1, -n)
    while dq:
        c = dq.popleft()
        for s in steps:
            nc = c + s
            if not walls[nc] and dist[nc] < 0:
                dist[nc] = dist[c] + 1
                dq.append(nc)
    return dist


def _bfs_path(walls, n: int, start: int, goal: int) -> list:
    """Shortest path start -> goal (inclusive) over non-wall cells, or [] if none."""
    prev = {start: -1}
    dq = deque([start])
    steps = (1, n, -1, -n)
    while dq:
        c = dq.popleft()
        if c == goal:
            break
        for s in steps:
            nc = c + s
            if not walls[nc] and nc not in prev:
                prev[nc] = c
                dq.append(nc)
    if goal not in prev:
        return []
    path = [goal]
    while path[-1] != start:
        path.append(prev[path[-1]])
    return path[::-1]


def _field(n: int, density: float, rng: np.random.Generator):
    """Border + obstacles; returns (walls bytearray, start, reachable cells list, dist)."""
    interior = (n - 2) * (n - 2)
    for attempt in range(9):
        dens = density if attempt < 8 else 0.0
        walls = bytearray(n * n)
        draws = rng.random((n, n))
        for y in range(n):
            for x in range(n):
                if x == 0 or y == 0 or x == n - 1 or y == n - 1 or draws[y, x] < dens:
                    walls[y * n + x] = 1
        sx, sy = (int(v) for v in rng.integers(1, n - 1, size=2))
        start = sy * n + sx
        walls[start] = 0
        dist = _bfs(walls, n, start)
        reach = [c for c in range(n * n) if dist[c] > 0]
        if len(reach) + 1 >= max(2, interior // 3):
            return walls, start, reach, dist
    raise AssertionError("unreachable: an empty field always qualifies")


def _walk(cum, walls, n: int, start: int, target: int, uni: _Uniforms, cap: int,
          carved: bytearray) -> tuple[int, int, bool]:
    """Policy walk start -> target, carving; returns (position, steps, reached)."""
    visited = bytearray(n * n)
    visited[start] = 1
    carved[start] = 1
    c = start
    tx, ty = target % n, target // n
    steps_ = (1, n, -1, -n)
    for step in range(cap):
        if c == target:
            return c, step, True
        px, py = c % n, c // n
        row = cum[state_index(walls, visited, n, px, py, tx, ty)]
        u = uni()
        a = 0 if u < row[0] else 1 if u < row[1] else 2 if u < row[2] else 3
        nc = c + steps_[a]
        if not walls[nc]:
            c = nc
            visited[c] = 1
            carved[c] = 1
    return c, cap, c == target


# ------------------------------------------------------------------------------ generator
def build_level(table, size: int, difficulty: float, rng: np.random.Generator):
    """One level -> (rows, info); ``table=None`` is the random-walk baseline (see docstring)."""
    n, d = size, difficulty
    temperature = TEMPERATURE[0] + TEMPERATURE[1] * d
    cum = _cumulative(table, temperature)
    uni = _Uniforms(rng)
    walls, start, reach, dist = _field(n, DENSITY[0] + DENSITY[1] * d, rng)

    # goal at a difficulty-dependent distance, then waypoints
    far = max(dist[c] for c in reach)
    want = (0.4 + 0.5 * d) * far
    tol = max(1.0, far / 10)
    near = [c for c in reach if abs(dist[c] - want) <= tol]
    goal = near[int(rng.integers(len(near)))]
    n_way = int(d * (1 + (n - 2) // 8) + 0.5)
    others = [c for c in reach if c != goal]
    waypoints = [others[int(i)] for i in rng.integers(len(others), size=n_way)] if others else []

    # the route
    carved = bytearray(n * n)
    pos, walked, fallbacks = start, 0, 0
    for target in waypoints + [goal]:
        if target == pos:
            continue
        manhattan = abs(target % n - pos % n) + abs(target // n - pos // n)
        pos, steps, reached = _walk(cum, walls, n, pos, target, uni, 4 * manhattan + 2 * n,
                                    carved)
        walked += steps
        if not reached:
            fallbacks += 1
            path = _bfs_path(walls, n, pos, target)
            for c in path:
                carved[c] = 1
            walked += len(path) - 1
            pos = target
    route_cells = [c for c in range(n * n) if carved[c]]

    # dead ends (trees hanging off the route; never shortcuts)
    tiles = bytearray(b"#" * (n * n))
    for c in route_cells:
        tiles[c] = ord(".")
    steps_ = (1, n, -1, -n)
    n_dead = int((DEAD_ENDS[0] + DEAD_ENDS[1] * d) * (n - 2) ** 2 + 0.5)
    for _ in range(n_dead):
        root = route_cells[int(rng.integers(len(route_cells)))]
        tx, ty = (int(v) for v in rng.integers(1, n - 1, size=2))
        max_len = 2 + int(rng.integers(0, n // 3 + 1))
        visited = bytearray(n * n)
        visited[root] = 1
        c, length = root, 0
        for _try in range(3 * max_len):
            if length >= max_len or (c % n == tx and c // n == ty):
                break
            row = cum[state_index(walls, visited, n, c % n, c // n, tx, ty)]
            u = uni()
            a = 0 if u < row[0] else 1 if u < row[1] else 2 if u < row[2] else 3
            nc = c + steps_[a]
            if walls[nc] or carved[nc] or any(carved[nc + s] for s in steps_ if nc + s != c):
                continue
            carved[nc] = 1
            visited[nc] = 1
            tiles[nc] = ord(".")
            c, length = nc, length + 1
        if length >= 3:
            tiles[c] = ord("$")

    # shortest path, hazards, S and G
    floor_walls = bytearray(0 if t != ord("#") else 1 for t in tiles)
    path = _bfs_path(floor_walls, n, start, goal)
    inner = path[2:-2]
    n_haz = min(len(inner), int(d * (len(path) - 1) / 6 + 0.5))
    if n_haz:
        for i in rng.choice(len(inner), size=n_haz, replace=False):
            tiles[inner[int(i)]] = ord("^")
    tiles[start] = ord("S")
    tiles[goal] = ord("G")
    text = tiles.decode("ascii")
    rows = [text[y * n:(y + 1) * n] for y in range(n)]
    info = {"route_length": len(path) - 1, "walk_length": walked, "fallbacks": fallbacks,
            "segments": len(waypoints) + 1}
    return rows, info


def generate(*, rng: np.random.Generator, models_dir, precision: str = "fp32", size=16,
             difficulty=0.5) -> list[str]:
    size = options.check_int("size", size, SIZE_MIN, SIZE_MAX)
    difficulty = options.check_float("difficulty", difficulty, 0.0, 1.0)
    table = q_table(models_dir, precision)
    rows, _ = build_level(table, size, difficulty, rng)
    return rows


# ------------------------------------------------------------------------------ checks
def is_solvable(rows: list[str]) -> bool:
    """BFS over non-wall tiles: exactly one S and one G, and G reachable from S."""
    text = "".join(rows)
    if text.count("S") != 1 or text.count("G") != 1:
        return False
    n_rows, n_cols = len(rows), len(rows[0])
    s, g = divmod(text.index("S"), n_cols), divmod(text.index("G"), n_cols)
    seen = {s}
    dq = deque([s])
    while dq:
        y, x = dq.popleft()
        if (y, x) == g:
            return True
        for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):
            ny, nx = y + dy, x + dx
            if 0 <= ny < n_rows and 0 <= nx < n_cols and rows[ny][nx] != "#" \
                    and (ny, nx) not in seen:
                seen.add((ny, nx))
                dq.append((ny, nx))
    return False
