"""Level benchmark: ``python -m benchmarks level [--quick]``.

Measured in one run, same machine, one thread:

1. Edit steps per second of the C level editor (``fastcore.level_env.LevelEnv.rollout``:
   uniformly random actions, an episode's full metrics computed at its end, new episodes
   drawn as needed) at the training mix of sizes (8..40) and at fixed sizes 16 and 32, against
   its pure-Python twin (``fastcore.reference_level``) on the same workload: the ratio is
   measured, not assumed.
2. Q-learning steps (= Q-updates) per second of ``train_level_agent`` (epsilon-greedy
   Q-learning over the actions each state allows, the training loop in
   ``fastcore/level_env.pyx``).
3. The level metrics of one finished level (shortest path, disjoint routes, forced hazards,
   treasure, floor): C against Python.
4. ``runtime.generate("level", size=..., difficulty=1.0)`` with the shipped model: p50 and p90
   milliseconds per level at sizes 16 and 32 (numpy + onnxruntime only), wall clock and the
   thread's CPU time.

Rates are per CPU second of the measuring thread (this machine is shared; wall-clock rates
are printed too, and the load average at the start and the end).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np


def timed(fn):
    c0, t0 = time.thread_time(), time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0, max(time.thread_time() - c0, 1e-9)


def rate(x: float) -> str:
    return f"{x / 1e6:7.2f} M/s" if x >= 1e5 else f"{x / 1e3:7.1f} k/s"


def bench_env(quick: bool) -> None:
    from fastcore.level_env import LevelEnv
    from fastcore.reference import SplitMix64
    from fastcore.reference_level import LevelEnvPy, rollout

    print("1. Edit steps per second (random actions, metrics at each episode's end)")
    print(f"   {'sizes':<10} {'C per CPU-s':>13} {'C wall':>12} {'Python':>12} {'C / Python':>11}")
    steps_c = 200_000 if quick else 1_000_000
    steps_py = 5_000 if quick else 20_000
    for lo, hi in ((8, 40), (16, 16), (32, 32)):
        env = LevelEnv(size_min=lo, size_max=hi)
        best_cpu, best_wall = 0.0, 0.0
        for r in range(3):
            _, wall, cpu = timed(lambda: env.rollout(steps_c, r))
            best_cpu, best_wall = max(best_cpu, steps_c / cpu), max(best_wall, steps_c / wall)
        _, wall_py, cpu_py = timed(lambda: rollout(LevelEnvPy(size_min=lo, size_max=hi),
                                                   steps_py, SplitMix64(0)))
        py = steps_py / cpu_py
        print(f"   {f'{lo}..{hi}':<10} {rate(best_cpu):>13} {rate(best_wall):>12} {rate(py):>12} "
              f"{best_cpu / py:>10.0f}x")


def bench_training(quick: bool) -> None:
    from fastcore.level_env import train_level_agent

    episodes = 2_000 if quick else 20_000
    best = 0.0
    for r in range(3):
        (_, st), wall, cpu = timed(lambda: train_level_agent(episodes, seed=r, epsilon=0.1))
        best = max(best, st["updates"] / cpu)
    print(f"\n2. Q-learning (train_level_agent, sizes 8..40, epsilon 0.1): {rate(best)} "
          f"Q-updates per CPU-s (best of 3 x {episodes} episodes)")


def bench_metrics() -> None:
    from fastcore.level_env import measure_tiles
    from runtime import level_env as rules
    from runtime.level import _Draws, design_targets
    from trainer.level_baselines import heuristic_policy

    print("\n3. Metrics of one finished level (C measure_tiles vs runtime.level_env.measure)")
    for size in (16, 32):
        ed = rules.Editor()
        draws = _Draws(np.random.default_rng(0))
        act = heuristic_policy()
        ed.start(size, design_targets(size, 1.0), draws)
        done = False
        while not done:
            _, _, done = ed.step(act(ed, draws))
        tiles = np.frombuffer(bytes(ed.tiles), np.uint8).reshape(size, size)
        s, g = ed.jt(ed.s), ed.jt(ed.g)
        reps = 200
        _, _, c_cpu = timed(lambda: [measure_tiles(tiles, s, g) for _ in range(reps)])
        _, _, p_cpu = timed(lambda: [rules.measure(ed.tiles, size, s, g) for _ in range(reps)])
        print(f"   {size}x{size}: C {1e6 * c_cpu / reps:7.1f} us, Python {1e6 * p_cpu / reps:7.1f} us"
              f" ({p_cpu / c_cpu:.0f}x)")


def bench_generate(quick: bool) -> None:
    import runtime

    print("\n4. runtime.generate('level', difficulty=1.0), shipped model (ms per level)")
    if "level" not in runtime.available():
        print("   skipped: no shipped level model")
        return
    n = 30 if quick else 200
    with runtime.load("level") as model:
        model.generate(seed=0)                      # reads the table once
        for size in (16, 32):
            times, cpu = [], []
            for seed in range(n):
                c0, t0 = time.thread_time(), time.perf_counter()
                model.generate(seed=seed, size=size, difficulty=1.0)
                times.append(time.perf_counter() - t0)
                cpu.append(time.thread_time() - c0)
            times.sort()
            print(f"   {size}x{size}: wall p50 {1000 * statistics.median(times):6.2f} ms, p90 "
                  f"{1000 * times[int(0.9 * len(times))]:6.2f} ms; CPU p50 "
                  f"{1000 * statistics.median(cpu):6.2f} ms ({n} levels)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks level")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    print("load average (1, 5, 15 min) at the start: %.2f %.2f %.2f on %d CPUs"
          % (*os.getloadavg(), os.cpu_count()))
    bench_env(args.quick)
    bench_training(args.quick)
    bench_metrics()
    bench_generate(args.quick)
    print(f"\ntotal {time.perf_counter() - t0:.1f} s; load average at the end: "
          "%.2f %.2f %.2f" % os.getloadavg())
    return 0


if __name__ == "__main__":
    sys.exit(main())
