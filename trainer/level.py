"""Game levels: tabular Q-learning (fastcore, C speed) of a PCGRL-style level editor.

The editor (rules: ``runtime/level_env.py``; C: ``fastcore/level_env.pyx``) is a turtle on a
corridor lattice that starts from solid wall and carves a main arm from S and places G, carves
a return arm back to S (a second, disjoint route), puts hazards on the main arm and treasure at
branch tips, and grows dead-end branches, rewarded for meeting designer targets that are part
of its observation (path length, two routes, hazards that a player can avoid, treasure off the
shortest route, floor share). Each training episode draws a size in ``size_min..size_max``
and a difficulty in [0, 1) (and half of the time an explicit path target), so one table serves
every size and difficulty. State: the four neighbours' statuses (4^4) x a phase feature (72)
= 18,432 states x 7 actions; in phases A and B the statuses and features read a BFS from S
through the uncarved junctions (a neighbour cut off from S, on a shortest way to S or a longer
one; how long the return arm would be and the steps left to close it).

Training: ``fastcore.level_env.train_level_agent`` (epsilon-greedy Q-learning over the actions
each state allows, ``runtime.level_env.state_mask``; GIL released), in ``chunks``
calls with progress, the learning curve and resumable checkpoints (``work_dir/q.npy`` +
``work_dir/state.json``). The full profile also trains ``ablation_seeds`` more tables
(``work_dir/q_seed<k>.npy``) with the same config and other seeds, for the spread of the
learned policy in the ablation.

Export: the Q-table as an ONNX gather (``state`` int64 [None] -> ``q`` float32 [None, 7]) and an
``env`` JSON side file (encoding, state layout, action names, legend, sampling temperature).

Evaluation: ``trainer/level_eval.py``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainer import tabular

KIND = "level"
DATA = ("No external data: every training episode edits a fresh all-wall grid in the C "
        "environment (fastcore/level_env.pyx), its size, difficulty and start drawn from the "
        "training seed.")


@dataclass
class Config:
    seed: int = 0
    # the editor's rules (runtime.level_env.ENCODING): a checkpoint of other rules never resumes
    encoding: str = "lattice-turtle-v3"
    # environment (fastcore.level_env.LevelEnv)
    size_min: int = 8
    size_max: int = 40
    # tabular Q-learning (fastcore.level_env.train_level_agent)
    episodes: int = 1_200_000
    chunks: int = 12
    alpha: float = 0.1
    gamma: float = 0.98
    epsilon: float = 0.3
    epsilon_min: float = 0.02
    max_steps: int = 20_000
    # heuristic episodes for a warm start (trainer/level_prior.py); 0 = from zeros, the shipped
    # model (measured on the first observation, lattice-turtle-v1: the prior alone scored 0.868
    # and Q-learning from it 0.798, 0.805 from zeros; see docs/kinds/level.md)
    prior_episodes: int = 0
    ablation_seeds: int = 2          # extra tables trained for the spread of the learned policy
    ablation_episodes: int = 1_200_000
    # runtime sampling: softmax((Q - max) / (max - min) / temperature) over the allowed actions;
    # chosen on validation level seeds 1000..1059 (not the evaluation's 0..199), mean target
    # score of the 3 lattice-turtle-v3 tables: 0.977 at 0.002, 0.977 at 0.005, 0.977 at 0.01,
    # 0.970 at 0.02 (docs/kinds/level.md)
    temperature: float = 0.01
    # evaluation
    eval_seeds: int = 200
    eval_sizes: tuple = (16, 32)
    eval_difficulties: tuple = (0.0, 0.5, 1.0)
    ablation_levels: int = 100       # levels per size x difficulty for each ablation row


PROFILES = {
    "quick": Config(episodes=20_000, chunks=2, size_max=20, ablation_seeds=0, eval_seeds=20,
                    eval_sizes=(12, 16), eval_difficulties=(0.5, 1.0), ablation_levels=10),
    "full": Config(),
}


def _env_kwargs(cfg: Config) -> dict:
    return dict(size_min=cfg.size_min, size_max=cfg.size_max)


def _train_table(cfg: Config, q: np.ndarray, episodes: int, epsilon: float, decay: float,
                 seed: int) -> dict:
    from fastcore.level_env import train_level_agent

    return train_level_agent(episodes, alpha=cfg.alpha, gamma=cfg.gamma, epsilon=epsilon,
                             epsilon_decay=decay, epsilon_min=cfg.epsilon_min,
                             max_steps=cfg.max_steps, seed=seed, q=q, **_env_kwargs(cfg))[1]


def train(cfg: Config, work_dir: Path, *, strategy=None) -> None:
    """Q-learning in fastcore; ``strategy`` is unused (tabular, single process, C loop)."""
    from fastcore.level_env import LevelEnv

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    env = LevelEnv(**_env_kwargs(cfg))
    q, state = tabular.resume_or_start(cfg, work_dir, (env.n_states, env.n_actions),
                                       curves=("return", "length"))

    if state["chunk"] == 0:
        for stale in work_dir.glob("q_seed*.npy"):     # seed tables of an older config
            stale.unlink()
        if cfg.prior_episodes:
            q[:] = warm_start(cfg, work_dir / "q_prior.npy", cfg.seed)

    def run_chunk(episodes, epsilon, decay, seed):
        return _train_table(cfg, q, episodes, epsilon, decay, seed)

    def record(state, stats):
        state["return"] += tabular.curve_points(stats["returns"], 25)
        state["length"] += tabular.curve_points(stats["lengths"].astype(float), 25)
        return {"ret": state["return"][-1], "len": state["length"][-1]}

    tabular.train_chunks(cfg, work_dir, KIND, q, state, run_chunk, record)
    tabular.save_curve(cfg, work_dir, state,
                       {"episode return (target score - step costs)": state["return"],
                        "episode length (edit steps)": state["length"]},
                       title="level editor: Q-learning")
    train_ablation_seeds(cfg, work_dir)


def warm_start(cfg: Config, path: Path, seed: int) -> np.ndarray:
    """The heuristic prior (trainer/level_prior.py), computed once and kept at ``path``."""
    import io

    from trainer.export import atomic_write_bytes
    from trainer.level_prior import heuristic_prior

    if path.exists():
        return np.load(path)
    q = heuristic_prior(cfg, seed)
    buf = io.BytesIO()
    np.save(buf, q)
    atomic_write_bytes(path, buf.getvalue())
    return q


def train_ablation_seeds(cfg: Config, work_dir: Path) -> None:
    """``ablation_seeds`` more tables (seeds 1, 2, ...), same schedule shape, each saved once
    finished (a rerun skips the finished ones)."""
    import dataclasses
    import io

    from runtime import level_env as rules
    from trainer.export import atomic_write_bytes

    for k in range(1, cfg.ablation_seeds + 1):
        path = work_dir / f"q_seed{k}.npy"
        if path.exists():
            continue
        t0 = time.time()
        sub = dataclasses.replace(cfg, episodes=cfg.ablation_episodes)
        q = np.zeros((rules.N_STATES, rules.N_ACTIONS), np.float64)
        if cfg.prior_episodes:
            q[:] = warm_start(cfg, work_dir / f"q_prior_seed{k}.npy", cfg.seed + 1000 * k)
        decay = tabular.epsilon_decay(sub)
        eps = cfg.epsilon
        per = [len(a) for a in np.array_split(np.arange(sub.episodes), cfg.chunks)]
        for c, n in enumerate(per):
            stats = _train_table(cfg, q, n, eps, decay, (cfg.seed + 1000 * k) * 1_000_003 + c)
            eps = stats["epsilon"]
        buf = io.BytesIO()
        np.save(buf, q)
        atomic_write_bytes(path, buf.getvalue())
        print(f"ablation table seed {k}: {sub.episodes} episodes in {time.time() - t0:.0f}s")


def export(cfg: Config, work_dir: Path, out_dir: Path) -> None:
    from runtime import level_env as rules
    from trainer.common import config_dict
    from trainer.export import write_entry, write_json

    q = tabular.load_q(work_dir, (rules.N_STATES, rules.N_ACTIONS))
    q_entry = tabular.export_q_table(q, rules.N_STATES, [0, 17, rules.N_STATES - 1],
                                     kind=KIND, out_dir=out_dir)
    env = {
        "encoding": rules.ENCODING, "n_states": rules.N_STATES, "n_actions": rules.N_ACTIONS,
        "actions": list(rules.ACTIONS), "temperature": cfg.temperature,
        "state": "neighbours (base 4, by phase; A: 0 refused, 1 uncarved, 2 open edge, "
                 "3 uncarved but cut off from S; B: 0 refused or cut off, 1 uncarved on a "
                 "shortest way to S, 2 a longer way, 3 S) * 72 + phase feature (A 0..27, "
                 "B 28..55, C 56..71); see runtime/level_env.py",
        "action_mask": "runtime.level_env.state_mask: actions refused in every situation "
                       "of a state are never chosen",
        "legend": {"#": "wall", ".": "floor", "S": "start", "G": "goal",
                   "^": "hazard (walkable)", "$": "treasure (walkable)"},
    }
    env_entry = write_json(env, kind=KIND, role="env", out_dir=out_dir)
    write_entry(out_dir, KIND, {"q": q_entry, "env": env_entry}, config_dict(cfg),
                notes="Tabular Q-learning (fastcore) of a PCGRL-style turtle editor on a "
                      "corridor lattice, rewarded for designer targets in its observation; "
                      "the runtime samples softmax(Q/T) to edit a level.")


def evaluate(cfg: Config, work_dir: Path, models_dir: Path) -> dict:
    from trainer import level_eval

    return level_eval.evaluate(cfg, Path(work_dir), Path(models_dir))
