"""Game levels: tabular Q-learning (fastcore, C speed) of an agent that reaches targets on
procedurally seeded obstacle fields; the runtime samples its Q-values to walk and carve routes.

Agent and environment: ``fastcore.level_env.LevelEnv`` (its docstring has the details). Each
episode draws a fresh grid (size ``size_min..size_max``, obstacle density
``density_min..density_max``), a start and a reachable target. State: local features only
(walls and already-visited cells among the 4 neighbours, target direction quantised to 8,
distance bucket) -> 8192 states x 4 moves, so one table generalises across grids of any size.
Reward: ``step_reward`` per move, ``bump_reward`` for walking into a wall, ``goal_reward`` on
arrival. The training loop is ``fastcore._core.train_q`` (epsilon-greedy Q-learning, GIL
released), run in ``chunks`` calls so that progress, the learning curve and resumable
checkpoints (``work_dir/q.npy`` + ``work_dir/state.json``) happen between chunks.

Export: the Q-table as an ONNX gather (``state`` int64 [None] -> ``q`` float32 [None, 4]) and an
``env`` JSON side file (state encoding, action order, legend, generation constants).

Evaluation (``evaluate``): ``eval_seeds`` seeds at each size of ``eval_sizes`` and each
difficulty of ``eval_difficulties``, generated exactly as ``runtime.generate("level", seed=s,
size=..., difficulty=...)`` (through the exported ONNX table), and the same for the random-walk
baseline generator (uniform moves instead of the learned policy, everything else identical):
solvable % (BFS from S to G), unique % and mean pairwise tile difference (fraction of tiles that
differ, over all pairs) at the default difficulty, route length (shortest S-G path) by
difficulty, walked steps, and the rate of route segments that needed the BFS fallback.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainer import tabular

KIND = "level"
DATA = ("No external data: every training episode is a procedurally seeded obstacle field drawn "
        "by the C environment (fastcore/level_env.pyx) from the training seed.")
ENCODING = "walls4-visited4-dir8-dist4"


@dataclass
class Config:
    seed: int = 0
    # environment (fastcore.level_env.LevelEnv)
    size_min: int = 6
    size_max: int = 32
    density_min: float = 0.0
    density_max: float = 0.3
    step_reward: float = -1.0
    bump_reward: float = -2.0
    goal_reward: float = 0.0
    # tabular Q-learning (fastcore._core.train_q)
    episodes: int = 1_000_000
    chunks: int = 20
    alpha: float = 0.1
    gamma: float = 0.97
    epsilon: float = 0.3
    epsilon_min: float = 0.05
    max_steps: int = 400
    # evaluation
    eval_seeds: int = 1000
    eval_sizes: tuple = (8, 16, 32)
    eval_difficulties: tuple = (0.0, 0.5, 1.0)
    default_difficulty: float = 0.5


PROFILES = {
    "quick": Config(episodes=60_000, chunks=4, eval_seeds=60, eval_sizes=(8, 16)),
    "full": Config(),
}


def _env_kwargs(cfg: Config) -> dict:
    return dict(size_min=cfg.size_min, size_max=cfg.size_max, density_min=cfg.density_min,
                density_max=cfg.density_max, step_reward=cfg.step_reward,
                bump_reward=cfg.bump_reward, goal_reward=cfg.goal_reward)


def train(cfg: Config, work_dir: Path, *, strategy=None) -> None:
    """Q-learning in fastcore; ``strategy`` is unused (tabular, single process, C loop)."""
    from fastcore.level_env import LevelEnv, train_level_agent

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    env = LevelEnv(**_env_kwargs(cfg))
    q, state = tabular.resume_or_start(cfg, work_dir, (env.n_states, env.n_actions),
                                       curves=("return", "length"))

    def run_chunk(episodes, epsilon, decay, seed):
        return train_level_agent(episodes, alpha=cfg.alpha, gamma=cfg.gamma, epsilon=epsilon,
                                 epsilon_decay=decay, epsilon_min=cfg.epsilon_min,
                                 max_steps=cfg.max_steps, seed=seed, q=q, **_env_kwargs(cfg))[1]

    def record(state, stats):
        state["return"] += tabular.curve_points(stats["returns"], 25)
        state["length"] += tabular.curve_points(stats["lengths"].astype(float), 25)
        return {"ret": state["return"][-1], "len": state["length"][-1]}

    tabular.train_chunks(cfg, work_dir, KIND, q, state, run_chunk, record)
    tabular.save_curve(cfg, work_dir, state,
                       {"episode return": state["return"], "episode length": state["length"]},
                       title="level agent: Q-learning on random fields")


def export(cfg: Config, work_dir: Path, out_dir: Path) -> None:
    from runtime import level as rt
    from trainer.common import config_dict
    from trainer.export import write_entry, write_json

    q = tabular.load_q(work_dir, (rt.N_STATES, rt.N_ACTIONS))
    q_entry = tabular.export_q_table(q, rt.N_STATES, [0, 17, 8191], kind=KIND, out_dir=out_dir)
    env = {
        "encoding": ENCODING, "n_states": rt.N_STATES, "n_actions": rt.N_ACTIONS,
        "actions": ["right", "down", "left", "up"],
        "state": "((walls * 16 + visited) * 8 + direction) * 4 + distance_bucket",
        "legend": {"#": "wall", ".": "floor", "S": "start", "G": "goal",
                   "^": "hazard (walkable)", "$": "treasure (walkable)"},
        "generation": {"temperature": list(rt.TEMPERATURE), "density": list(rt.DENSITY),
                       "dead_ends_per_cell": list(rt.DEAD_ENDS),
                       "size": [rt.SIZE_MIN, rt.SIZE_MAX]},
    }
    env_entry = write_json(env, kind=KIND, role="env", out_dir=out_dir)
    write_entry(out_dir, KIND, {"q": q_entry, "env": env_entry}, config_dict(cfg),
                notes="Tabular Q-learning (fastcore) of a target-reaching agent on seeded "
                      "obstacle fields; the runtime samples softmax(Q/T) to carve a route.")


# ------------------------------------------------------------------------------ evaluation
def pairwise_difference(levels: list[list[str]]) -> float:
    """Mean fraction of differing tiles over all pairs of same-size levels."""
    grids = np.array([np.frombuffer("".join(r).encode(), dtype=np.uint8) for r in levels])
    n = len(grids)
    if n < 2:
        return 0.0
    total = 0.0
    for i in range(0, n, 32):
        block = grids[i:i + 32]
        diff = (block[:, None, :] != grids[None, :, :]).mean(axis=2)   # (b, n)
        rows = np.arange(i, i + len(block))[:, None]
        total += float(diff[np.arange(n)[None, :] > rows].sum())
    return total / (n * (n - 1) / 2)


def _evaluate_generator(table, cfg: Config) -> dict:
    from runtime import level as rt

    out = {}
    for size in cfg.eval_sizes:
        levels, solvable, count = {}, 0, 0
        route, walk, fallback_rate, hazards, treasure = {}, {}, {}, {}, {}
        for d in cfg.eval_difficulties:
            rows_d, infos = [], []
            for seed in range(cfg.eval_seeds):
                rows, info = rt.build_level(table, size, float(d), np.random.default_rng(seed))
                rows_d.append(rows)
                infos.append(info)
                solvable += rt.is_solvable(rows)
                count += 1
            levels[d] = rows_d
            key = f"{d:g}"
            route[key] = float(np.mean([i["route_length"] for i in infos]))
            walk[key] = float(np.mean([i["walk_length"] for i in infos]))
            fallback_rate[key] = 100.0 * sum(i["fallbacks"] for i in infos) / \
                sum(i["segments"] for i in infos)
            hazards[key] = float(np.mean([sum(r.count("^") for r in rows) for rows in rows_d]))
            treasure[key] = float(np.mean([sum(r.count("$") for r in rows) for rows in rows_d]))
        default = levels.get(cfg.default_difficulty) or levels[cfg.eval_difficulties[-1]]
        unique_by_d = {f"{d:g}": 100.0 * len({"\n".join(r) for r in lv}) / len(lv)
                       for d, lv in levels.items()}
        values = [route[f"{d:g}"] for d in sorted(cfg.eval_difficulties)]
        out[str(size)] = {
            "solvable_pct": 100.0 * solvable / count,
            "unique_pct": 100.0 * len({"\n".join(r) for r in default}) / len(default),
            "pairwise_tile_difference": pairwise_difference(default),
            "route_length_by_difficulty": route,
            "route_monotone": bool(all(a < b for a, b in zip(values, values[1:]))),
            "walk_length_by_difficulty": walk,
            "fallback_segments_pct_by_difficulty": fallback_rate,
            "hazards_by_difficulty": hazards,
            "treasure_by_difficulty": treasure,
            "unique_pct_by_difficulty": unique_by_d,
        }
    return out


def evaluate(cfg: Config, work_dir: Path, models_dir: Path) -> dict:
    import runtime
    from runtime import level as rt

    t0 = time.time()
    table = rt.q_table(models_dir)            # read through the exported ONNX model
    # the evaluation generator is runtime.generate's: check one sample end to end
    size, d = cfg.eval_sizes[0], cfg.default_difficulty
    via_api = runtime.generate(KIND, seed=0, models_dir=models_dir, size=size, difficulty=d)
    if via_api != rt.build_level(table, size, d, np.random.default_rng(0))[0]:
        raise RuntimeError("runtime.generate and build_level disagree")
    metrics = {
        "seeds": cfg.eval_seeds,
        "default_difficulty": cfg.default_difficulty,
        "rl": _evaluate_generator(table, cfg),
        "baseline_random_walk": _evaluate_generator(None, cfg),
    }
    training = tabular.training_summary(cfg, work_dir, "first_return", "final_return")
    if training:
        metrics["training"] = training
    metrics["eval_seconds"] = round(time.time() - t0, 1)
    return metrics
