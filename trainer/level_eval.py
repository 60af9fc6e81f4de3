"""Evaluation of the level editor: the release targets, controllability and the ablation.

* ``targets``: ``eval_seeds`` levels per size x difficulty, generated exactly as
  ``runtime.generate("level", seed=s, size=..., difficulty=...)`` (through the exported ONNX
  table): solvable % (an independent BFS on the rows), unique %, a second disjoint route %,
  hazards per level and the share of them that are forced, levels with hazards that have a
  hazard-free route %, levels with treasure off every shortest route %, floor share (mean and
  minimum), shortest path length, target score, generation time (p50).
* ``controllability``: ``eval_seeds`` levels per size with ``path_length`` requested uniformly
  in ``[m, 3 m]`` tiles (``m`` the lattice side) at difficulty 0.5: share within +-20%.
* ``ablation``: the target score (0..1, the mean of the five target terms of
  ``runtime.level_targets.score``) and per-target hit rates of the learned policy (the shipped table
  and ``ablation_seeds`` tables trained with other seeds: spread over training seeds), the
  heuristic prior the learning starts from on its own (``q_prior*.npy``), Q-learning from zeros
  (``q_scratch*.npy`` when present in the work directory), the
  hand-written heuristic, valid random edits and uniformly random actions
  (``trainer/level_baselines.py``), all through the same editor on the same level seeds
  (``ablation_levels`` per size x difficulty; the baselines' spread is over 5 blocks of seeds).

Every target term is also part of the reward: the reward IS the target score. Evidence that is
not in the reward: solvability and no unreachable floor (by construction, checked), uniqueness,
the heuristic comparison on the same score.
"""
from __future__ import annotations

import time
from bisect import bisect_right
from pathlib import Path

import numpy as np

KIND = "level"
IN_REWARD = ["path_length target", "second disjoint route", "hazards not forced",
             "hazard-free route", "treasure off the shortest route", "floor share"]
NOT_IN_REWARD = ["solvable (BFS on the rows)", "unique levels", "unreachable floor",
                 "regions", "generation time"]


def _summary(levels: list, times: list | None = None) -> dict:
    from runtime.level import is_solvable

    a = [lv.achieved for lv in levels]
    hazards = sum(x["hazards"] for x in a)
    with_h = [x for x in a if x["hazards"]]
    t_path = [lv.targets["path_length"] for lv in levels]
    out = {
        "solvable_pct": 100.0 * np.mean([is_solvable(lv) for lv in levels]),
        "unique_pct": 100.0 * len({"\n".join(lv) for lv in levels}) / len(levels),
        "second_route_pct": 100.0 * np.mean([x["routes"] >= 2 for x in a]),
        "hazards_per_level": float(np.mean([x["hazards"] for x in a])),
        "hazards_forced_pct": 100.0 * sum(x["hazards_forced"] for x in a) / max(1, hazards),
        "hazard_free_route_pct_of_levels_with_hazards":
            100.0 * np.mean([x["hazard_free_route"] for x in with_h]) if with_h else None,
        "treasure_pct": 100.0 * np.mean([x["treasure_off_route"] > 0 for x in a]),
        "floor_share_mean": float(np.mean([x["floor_share"] for x in a])),
        "floor_share_min": float(np.min([x["floor_share"] for x in a])),
        "unreachable_floor_max": int(max(x["unreachable_floor"] for x in a)),
        "path_length_mean": float(np.mean([x["path_length"] for x in a])),
        "path_target_mean": float(np.mean(t_path)),
        "path_within_20pct_pct": 100.0 * np.mean(
            [abs(x["path_length"] - t) <= 0.2 * t for x, t in zip(a, t_path)]),
        "target_score": float(np.mean([x["score"] for x in a])),
    }
    if times:
        out["generate_wall_ms_p50"] = 1000.0 * float(np.median(times))
    return out


def target_table(model, cfg) -> dict:
    out = {}
    for size in cfg.eval_sizes:
        for d in cfg.eval_difficulties:
            levels, times, cpu = [], [], []
            for seed in range(cfg.eval_seeds):
                c0, t0 = time.thread_time(), time.perf_counter()
                levels.append(model.generate(seed=seed, size=size, difficulty=float(d)))
                times.append(time.perf_counter() - t0)
                cpu.append(time.thread_time() - c0)
            out[f"{size}/{d:g}"] = _summary(levels, times)
            out[f"{size}/{d:g}"]["generate_cpu_ms_p50"] = 1000.0 * float(np.median(cpu))
    return out


def controllability(model, cfg) -> dict:
    out = {}
    for size in cfg.eval_sizes:
        m = (size - 1) // 2
        rng = np.random.default_rng(12345 + size)
        hits = []
        for seed in range(cfg.eval_seeds):
            want = int(rng.integers(m, 3 * m + 1))
            lv = model.generate(seed=seed, size=size, difficulty=0.5, path_length=want)
            hits.append(abs(lv.achieved["path_length"] - want) <= 0.2 * want)
        out[str(size)] = {"requested_range": [m, 3 * m],
                          "within_20pct_pct": 100.0 * float(np.mean(hits))}
    return out


def _hit_rates(levels: list) -> dict:
    s = _summary(levels)
    return {k: s[k] for k in ("target_score", "path_within_20pct_pct", "second_route_pct",
                              "hazards_forced_pct", "treasure_pct", "floor_share_mean")}


def _levels(policy_factory, cfg, seeds: range) -> list:
    """Levels of a policy ``factory() -> act(editor, state, draws)`` through the editor."""
    from runtime import level_env as rules
    from runtime.level import _Draws, design_targets, make_level

    out = []
    for size in cfg.eval_sizes:
        for d in cfg.eval_difficulties:
            for seed in seeds:
                act = policy_factory()
                draws = _Draws(np.random.default_rng(seed))
                ed = rules.Editor()
                state = ed.start(size, design_targets(size, float(d)), draws)
                done = False
                while not done:
                    state, _, done = ed.step(act(ed, state, draws))
                out.append(make_level(ed))
    return out


def _table_policy(q: np.ndarray, temperature: float):
    from runtime.level import cumulative_policy

    cum = cumulative_policy(q, temperature)
    return lambda: (lambda ed, state, draws: bisect_right(cum[state], draws.uniform()))


def _editor_policy(make):
    return lambda: (lambda f: (lambda ed, state, draws: f(ed, draws)))(make())


def ablation(cfg, work_dir: Path, shipped_q: np.ndarray) -> dict:
    from trainer import level_baselines as base

    seeds = range(cfg.ablation_levels)
    tables = [shipped_q] + [np.load(p) for p in sorted(work_dir.glob("q_seed*.npy"))]
    learned = [_hit_rates(_levels(_table_policy(q, cfg.temperature), cfg, seeds))
               for q in tables]
    scores = [r["target_score"] for r in learned]
    rows = {"learned (shipped table)": learned[0],
            "learned, all training seeds": {
                "target_score_mean": float(np.mean(scores)),
                "target_score_std_over_seeds": float(np.std(scores)) if len(scores) > 1 else None,
                "training_seeds": len(scores), "per_seed": scores}}
    baselines = {"heuristic": _editor_policy(base.heuristic_policy),
                 "random_valid_edits": _editor_policy(base.random_valid_policy),
                 "random_actions": _editor_policy(base.random_policy)}
    extra = {"heuristic prior alone (no Q-learning)": sorted(work_dir.glob("q_prior*.npy")),
             "Q-learning from zeros (no prior)": sorted(work_dir.glob("q_scratch*.npy"))}
    for name, paths in extra.items():
        if paths:
            per = [_hit_rates(_levels(_table_policy(np.load(p), cfg.temperature), cfg, seeds))
                   for p in paths]
            sc = [r["target_score"] for r in per]
            rows[name] = {"target_score_mean": float(np.mean(sc)),
                          "target_score_std_over_seeds": float(np.std(sc)),
                          "training_seeds": len(sc), "first_seed": per[0]}
    blocks = np.array_split(np.arange(cfg.ablation_levels), 5)
    for name, factory in baselines.items():
        levels = _levels(factory, cfg, seeds)
        row = _hit_rates(levels)
        per_block = []
        n_cfg = len(cfg.eval_sizes) * len(cfg.eval_difficulties)
        for b in blocks:
            idx = [c * cfg.ablation_levels + int(i) for c in range(n_cfg) for i in b]
            per_block.append(float(np.mean([levels[i].achieved["score"] for i in idx])))
        row["target_score_std_over_seed_blocks"] = float(np.std(per_block))
        rows[name] = row
    return rows


def evaluate(cfg, work_dir: Path, models_dir: Path) -> dict:
    import runtime
    from runtime import level_env as rules
    from trainer import tabular

    t0 = time.time()
    model = runtime.load(KIND, models_dir=models_dir)
    shipped = np.asarray(model.q_table("q", rules.N_STATES), np.float64)
    metrics = {
        "levels_per_cell": cfg.eval_seeds,
        "targets": target_table(model, cfg),
        "controllability": controllability(model, cfg),
        "ablation": ablation(cfg, work_dir, shipped),
        "in_reward": IN_REWARD, "not_in_reward": NOT_IN_REWARD,
    }
    training = tabular.training_summary(cfg, work_dir, "first_return", "final_return")
    if training:
        metrics["training"] = training
    metrics["eval_seconds"] = round(time.time() - t0, 1)
    model.close()
    return metrics
