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

import dataclasses
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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


def _decay(cfg: Config) -> float:
    """Per-episode epsilon decay reaching ``epsilon_min`` after 80% of the episodes."""
    if cfg.epsilon <= cfg.epsilon_min or cfg.epsilon_min <= 0:
        return 1.0
    return float((cfg.epsilon_min / cfg.epsilon) ** (1.0 / max(1, int(0.8 * cfg.episodes))))


def _curve_points(values: np.ndarray, points: int) -> list[float]:
    if len(values) == 0:
        return []
    return [float(b.mean()) for b in np.array_split(values, min(points, len(values)))]


def train(cfg: Config, work_dir: Path, *, strategy=None) -> None:
    """Q-learning in fastcore; ``strategy`` is unused (tabular, single process, C loop)."""
    from fastcore.level_env import LevelEnv, train_level_agent
    from trainer.common import Progress, load_json, save_json, save_learning_curve
    from trainer.export import atomic_write_bytes

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    env = LevelEnv(**_env_kwargs(cfg))
    state = load_json(work_dir / "state.json", None)
    if state and state.get("config") == json.loads(json.dumps(dataclasses.asdict(cfg))) \
            and (work_dir / "q.npy").exists():
        q = np.load(work_dir / "q.npy")
        print(f"resumed from {work_dir / 'q.npy'} (chunk {state['chunk']}/{cfg.chunks})")
    else:
        q = np.zeros((env.n_states, env.n_actions), dtype=np.float64)
        state = {"config": json.loads(json.dumps(dataclasses.asdict(cfg))), "chunk": 0,
                 "epsilon": cfg.epsilon, "return": [], "length": [], "updates": 0,
                 "seconds": 0.0}
    per_chunk = [len(a) for a in np.array_split(np.arange(cfg.episodes), cfg.chunks)]
    decay = _decay(cfg)
    with Progress(cfg.episodes, f"{KIND} Q-learning", unit="episode",
                  initial=sum(per_chunk[:state["chunk"]])) as bar:
        for chunk in range(state["chunk"], cfg.chunks):
            t0 = time.time()
            _, stats = train_level_agent(
                per_chunk[chunk], alpha=cfg.alpha, gamma=cfg.gamma, epsilon=state["epsilon"],
                epsilon_decay=decay, epsilon_min=cfg.epsilon_min, max_steps=cfg.max_steps,
                seed=cfg.seed * 1_000_003 + chunk, q=q, **_env_kwargs(cfg))
            state["seconds"] += time.time() - t0
            state["chunk"] = chunk + 1
            state["epsilon"] = stats["epsilon"]
            state["updates"] += stats["updates"]
            state["return"] += _curve_points(stats["returns"], 25)
            state["length"] += _curve_points(stats["lengths"].astype(float), 25)
            buf = io.BytesIO()
            np.save(buf, q)
            atomic_write_bytes(work_dir / "q.npy", buf.getvalue())
            save_json(work_dir / "state.json", state)
            bar.update(per_chunk[chunk], ret=state["return"][-1], len=state["length"][-1],
                       eps=state["epsilon"],
                       updates_per_s=state["updates"] / max(state["seconds"], 1e-9))
    save_learning_curve(work_dir / "learning_curve.png",
                        {"episode return": state["return"], "episode length": state["length"]},
                        xlabel=f"block of {max(1, cfg.episodes // max(1, len(state['return'])))} "
                               f"episodes", title="level agent: Q-learning on random fields")


def export(cfg: Config, work_dir: Path, out_dir: Path) -> None:
    import tensorflow as tf

    from runtime import level as rt
    from trainer.common import config_dict
    from trainer.export import export_tf_function, write_entry, write_json

    q = np.load(Path(work_dir) / "q.npy")
    if q.shape != (rt.N_STATES, rt.N_ACTIONS):
        raise ValueError(f"Q-table shape {q.shape} does not match the runtime's encoding "
                         f"({rt.N_STATES}, {rt.N_ACTIONS})")
    # a Variable (not a captured constant) so that tf2onnx freezes it into an initializer
    table = tf.Variable(q.astype(np.float32), trainable=False, name="q_table")

    @tf.function
    def q_values(state):
        # out-of-range indices are clamped (ONNX Gather would fail on them)
        return {"q": tf.gather(table, tf.clip_by_value(state, 0, rt.N_STATES - 1))}

    spec = [tf.TensorSpec([None], tf.int64, name="state")]
    samples = [[np.arange(rt.N_STATES, dtype=np.int64)], [np.array([0, 17, 8191], np.int64)]]
    q_entry = export_tf_function(q_values, spec, kind=KIND, role="q", out_dir=out_dir,
                                 sample_inputs=samples)
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
    state = json.loads((Path(work_dir) / "state.json").read_text()) \
        if (Path(work_dir) / "state.json").exists() else {}
    if state.get("return"):
        metrics["training"] = {"episodes": cfg.episodes, "updates": state.get("updates"),
                               "updates_per_s": state["updates"] / max(state["seconds"], 1e-9),
                               "first_return": state["return"][0],
                               "final_return": state["return"][-1]}
    metrics["eval_seconds"] = round(time.time() - t0, 1)
    return metrics
