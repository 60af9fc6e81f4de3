"""Game levels designed by a reinforcement-learning editor (PCGRL-style).

    level = generate("level", size=16, difficulty=0.5, seed=1)     # a Level: list of rows
    level.achieved["routes"], level.targets["path_length"]
    level.save("level.png")                                         # or .txt

Legend: ``#`` wall, ``.`` floor, ``S`` start, ``G`` goal, ``^`` hazard (walkable: a game hurts
the player there), ``$`` treasure (walkable). Exactly one ``S`` and one ``G``, and ``G`` is
reachable from ``S`` by 4-neighbour moves (by construction: see ``runtime.level_env``).

How a level is made: a tabular Q-learning agent (trained in C, ``fastcore/level_env.pyx``;
shipped as an ONNX gather, state -> 7 action values, read once per model object) edits an
all-wall grid as a turtle on a corridor lattice: it carves the main arm from S and places G
(path length), carves a return arm back to S (a second, disjoint route), puts hazards on the
main arm and treasure at branch tips, and grows dead-end branches until the floor share target is
met. The designer targets are part of its observation; ``difficulty`` sets them
(``runtime.level_targets.targets``) and the explicit options override them. Actions are sampled
from ``softmax((Q - max Q) / (max Q - min Q) / T)`` per state over the actions the state allows
(``rules.state_mask``; ``T`` from the ``env`` side file).
The rules (lattice, phases, budgets, repair) are ``runtime/level_env.py``.

``Level.achieved``: the measured level (path length in tiles, disjoint routes up to 2, hazards
and how many are forced, whether a hazard-free route exists, treasure and how much is off every
shortest route, floor share, unreachable floor, regions). ``Level.targets``: what was asked.
"""
from __future__ import annotations

from bisect import bisect_right

import numpy as np

from runtime import level_env as rules
from runtime.errors import ModelError
from runtime.model import Model, Option, Options

KIND = "level"
SIZE_MIN, SIZE_MAX = 8, 64
N_STATES, N_ACTIONS = rules.N_STATES, rules.N_ACTIONS

OPTIONS = Options(
    Option("size", 16, "int", "side of the square level in tiles (corridors use a lattice of "
           "(size - 1) // 2 junctions per side)", lo=SIZE_MIN, hi=SIZE_MAX),
    Option("difficulty", 0.5, "float", "sets the targets: longer path, two routes from 0.25, "
           "more hazards and treasure, more floor", lo=0.0, hi=1.0),
    Option("path_length", None, "int", "requested shortest S-G path in tiles (overrides the "
           "difficulty's); at most 4 * ((size - 1) // 2)", lo=2, hi=4 * ((SIZE_MAX - 1) // 2),
           optional=True),
    Option("routes", None, "int", "1 or 2 disjoint S-G routes wanted (overrides the "
           "difficulty's)", lo=1, hi=2, optional=True),
    Option("hazards", None, "int", "hazards wanted (overrides the difficulty's)", lo=0, hi=64,
           optional=True),
    Option("treasure", None, "int", "treasure off the shortest route wanted (overrides the "
           "difficulty's)", lo=1, hi=16, optional=True),
)


class Level(list):
    """The level's rows (``list[str]``) with ``.achieved`` and ``.targets`` (dicts)."""
    suffix = ".txt"

    def __init__(self, rows, achieved: dict, targets: dict):
        super().__init__(rows)
        self.achieved = achieved
        self.targets = targets

    def summary(self) -> str:
        a, t = self.achieved, self.targets
        return (f"{len(self)}x{len(self[0])} level: path {a['path_length']} (target "
                f"{t['path_length']}), {a['routes']} disjoint route(s), {a['hazards']} hazards "
                f"({a['hazards_forced']} forced), {a['treasure_off_route']} treasure off the "
                f"route, floor {a['floor_share']:.2f}")

    def save(self, path) -> str:
        """``.png``: the tiles drawn (needs Pillow); anything else: the ASCII rows. Returns a
        one-line summary."""
        from pathlib import Path

        from runtime import media

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() == ".png":
            media.write_level_png(path, list(self))
        else:
            path.write_text("\n".join(self) + "\n", encoding="utf-8")
        return self.summary()


class _Draws:
    """The caller's Generator as the editor's ``below(k)`` plus block-fetched uniforms."""

    def __init__(self, rng: np.random.Generator):
        self.rng, self.buf, self.i = rng, [], 0

    def below(self, k: int) -> int:
        return int(self.uniform() * k)

    def uniform(self) -> float:
        if self.i == len(self.buf):
            self.buf, self.i = self.rng.random(256).tolist(), 0
        self.i += 1
        return self.buf[self.i - 1]


def allowed_actions() -> np.ndarray:
    """bool ``(N_STATES, N_ACTIONS)``: the actions ``rules.state_mask`` allows per state."""
    masks = np.asarray(rules.state_masks(), np.int64)[:, None]
    return (masks >> np.arange(N_ACTIONS)) & 1 == 1


def cumulative_policy(table: np.ndarray, temperature: float) -> list:
    """Per-state cumulative action probabilities (Python lists, for bisect) of
    ``softmax((Q - max) / (max - min) / T)`` over the allowed actions (max and min over them
    too); a left-out action has probability 0 and can never be drawn."""
    q = np.asarray(table, np.float64)
    ok = allowed_actions()
    hi = np.where(ok, q, -np.inf).max(axis=1, keepdims=True)
    span = hi - np.where(ok, q, np.inf).min(axis=1, keepdims=True) + 1e-9
    p = np.where(ok, np.exp((np.where(ok, q, hi) - hi) / span / temperature), 0.0)
    c = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
    last = N_ACTIONS - 1 - np.argmax(ok[:, ::-1], axis=1)
    c[np.arange(N_ACTIONS) >= last[:, None]] = 1.0     # u < 1 always lands on an allowed one
    return c.tolist()


def design_targets(size: int, difficulty: float, path_length=None, routes=None, hazards=None,
                   treasure=None) -> tuple:
    """The editor's targets tuple (lattice units) for these options."""
    m = rules.lattice(size)
    path, ring, h, t, f = rules.targets(m, difficulty)
    if path_length is not None:
        if path_length > 4 * m:
            raise ValueError(f"path_length must be at most {4 * m} at size {size} "
                             f"(4 * ((size - 1) // 2)), got {path_length}")
        path = max(1, (path_length + 1) // 2)
    if routes is not None:
        ring = routes == 2
    if hazards is not None:
        h = hazards
    if treasure is not None:
        t = treasure
    return path, ring, h, t, f


def run_editor(policy, size: int, tg: tuple, draws) -> rules.Editor:
    """One episode of the editor; ``policy(state, draws) -> action``."""
    editor = rules.Editor()
    editor.rewards = False                       # generation reads the level, not the rewards
    state = editor.start(size, tg, draws)
    done = False
    while not done:
        state, _, done = editor.step(policy(state, draws))
    return editor


def make_level(editor: rules.Editor) -> Level:
    met = editor.final
    achieved = dict(zip(rules.METRIC_NAMES, met))
    achieved["hazard_free_route"] = bool(achieved["hazard_free_route"])
    achieved["score"] = rules.score(met, editor.tg) / 5.0
    path, ring, h, t, f = editor.tg
    targets = {"path_length": 2 * path, "routes": 2 if ring else 1, "hazards": h,
               "treasure": t, "floor_share": f}
    return Level(editor.rows(), achieved, targets)


class LevelModel(Model):
    kind = KIND
    options = OPTIONS

    def env(self) -> dict:
        """The ``env`` side file, checked against this runtime's rules."""
        def build():
            env = self.json("env")
            if env.get("encoding") != rules.ENCODING or env.get("n_states") != N_STATES \
                    or env.get("n_actions") != N_ACTIONS:
                raise ModelError(f"{self.models_dir}: the {KIND} model was exported for "
                                 f"another editor ({env.get('encoding')!r}, "
                                 f"{env.get('n_states')} states); this runtime expects "
                                 f"{rules.ENCODING} with {N_STATES}: re-export {KIND}")
            return env
        return self.cached("env", build)

    def policy(self):
        """The sampling policy ``(state, draws) -> action`` over the shipped Q-table."""
        def build():
            temperature = float(self.env()["temperature"])
            table = self.q_table("q", N_STATES)
            if table.shape[1] != N_ACTIONS or not np.all(np.isfinite(table)):
                raise ModelError(f"{self.models_dir}: the {KIND} Q model gives shape "
                                 f"{table.shape} or non-finite values: re-export {KIND}")
            cum = cumulative_policy(table, temperature)

            def act(state, draws):
                return bisect_right(cum[state], draws.uniform())
            return act
        return self.cached("policy", build)

    def _generate(self, rng, *, size, difficulty, path_length, routes, hazards,
                  treasure) -> Level:
        tg = design_targets(size, difficulty, path_length, routes, hazards, treasure)
        editor = run_editor(self.policy(), size, tg, _Draws(rng))
        return make_level(editor)


MODEL = LevelModel


def is_solvable(rows: list[str]) -> bool:
    """Exactly one S and one G, and G reachable from S over non-wall tiles."""
    text = "".join(rows)
    if text.count("S") != 1 or text.count("G") != 1 or any(len(r) != len(rows) for r in rows):
        return False
    tiles, n, s, g = rules.parse_rows(rows)
    return rules.measure(tiles, n, s, g)[0] >= 0
