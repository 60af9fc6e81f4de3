"""fastcore benchmark: ``python -m benchmarks fastcore [--quick]``.

Measured side by side in one run, same machine, one thread each unless stated:

1. GridWorld 8x8 tabular Q-learning (alpha 0.1, gamma 0.9, epsilon 0.1), Q-updates per second:
   - fastcore.train_gridworld (Cython, the specialised inlined GridWorld loop),
   - fastcore.train_q(GridWorldEnv(8), ...) (the generic loop through the Env vtable),
   - a plain C loop of the same algorithm and RNG (benchmarks/c_gridworld.c, compiled here with
     ``cc -O3`` into a temporary directory); its final Q-table must hash identically to
     fastcore's (same algorithm, same random stream, bit-identical arithmetic),
   - the article-style pure-Python loop (copied from the original article: tuple states, numpy
     indexing, the ``random`` module; the only addition is an update counter),
   - fastcore.reference.train_gridworld (the pure-Python twin).
   fastcore and C run the identical workload in alternating rounds; the best and the median
   round are reported (this machine is shared, so the best is the least-disturbed figure).
2. Scaling: two threads each training their own agent vs the same two trainings one after the
   other (the loops release the GIL).
3. Steps per second of the level environment's training loop
   (fastcore.level_env.train_level_agent), when built. The melody kernel (music-theory reward
   parts, fastcore.melody_env.theory_parts_batch) is measured by ``python -m benchmarks music``.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SIZE = 8
ALPHA, GAMMA, EPSILON, SEED = 0.1, 0.9, 0.1, 0


# --------------------------------------------------------------------------------------------
# The article's code, copied faithfully (GridWorld + q_learning); an update counter is added.

class GridWorld:
    def __init__(self, size=5):
        self.size = size
        self.grid = np.zeros((size, size))
        self.state = (0, 0)
        self.end_state = (size-1, size-1)
        self.actions = [(0, 1), (1, 0), (0, -1), (-1, 0)]  # right, down, left, up
        self.grid[self.end_state] = 1  # goal state

    def reset(self):
        self.state = (0, 0)
        return self.state

    def step(self, action):
        new_state = (self.state[0] + action[0], self.state[1] + action[1])
        if 0 <= new_state[0] < self.size and 0 <= new_state[1] < self.size:
            self.state = new_state
        reward = 1 if self.state == self.end_state else -0.1
        done = self.state == self.end_state
        return self.state, reward, done


def article_q_learning(env, episodes=1000, alpha=0.1, gamma=0.9, epsilon=0.1):
    q_table = np.zeros((env.size, env.size, len(env.actions)))
    updates = 0  # added for the benchmark
    for _ in range(episodes):
        state = env.reset()
        done = False
        while not done:
            if random.uniform(0, 1) < epsilon:
                action_idx = random.choice(range(len(env.actions)))
            else:
                action_idx = np.argmax(q_table[state[0], state[1]])
            action = env.actions[action_idx]
            next_state, reward, done = env.step(action)
            next_max = np.max(q_table[next_state[0], next_state[1]])
            q_table[state[0], state[1], action_idx] = q_table[state[0], state[1], action_idx] + \
                alpha * (reward + gamma * next_max - q_table[state[0], state[1], action_idx])
            state = next_state
            updates += 1  # added for the benchmark
    return q_table, updates


# --------------------------------------------------------------------------------------------

def fnv1a(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def build_c_loop(tmp: Path) -> Path | None:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        return None
    exe = tmp / "c_gridworld"
    subprocess.run([cc, "-O3", "-o", str(exe), str(HERE / "c_gridworld.c")], check=True,
                   capture_output=True, text=True)
    return exe


def run_c(exe: Path, episodes: int) -> dict:
    out = subprocess.run([str(exe), str(SIZE), str(episodes), repr(ALPHA), repr(GAMMA),
                          repr(EPSILON), str(SEED), str(1000 * SIZE * SIZE)],
                         check=True, capture_output=True, text=True).stdout
    fields = dict(kv.split("=") for kv in out.split())
    return {"updates": int(fields["updates"]), "wall": float(fields["seconds"]),
            "cpu": float(fields["cpu_seconds"]), "hash": fields["q_fnv1a"]}


def timed(fn):
    """-> (result, wall seconds, CPU seconds of the calling thread).

    The nogil loops run in the calling thread, so thread CPU time counts exactly their work and
    not the time this process spent descheduled on a shared machine."""
    c0, t0 = time.thread_time(), time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0, time.thread_time() - c0


def fmt_rate(x: float) -> str:
    return f"{x / 1e6:8.2f} M/s" if x >= 1e5 else f"{x / 1e3:8.1f} k/s"


class Rates:
    """Per-round (updates, wall, cpu) samples -> best/median rates per CPU second and per wall
    second."""

    def __init__(self):
        self.samples = []

    def add(self, updates, wall, cpu):
        self.samples.append((updates, wall, max(cpu, 1e-9)))

    def cpu_best(self):
        return max(u / c for u, _, c in self.samples)

    def wall_best(self):
        return max(u / w for u, w, _ in self.samples)

    def wall_median(self):
        return statistics.median(u / w for u, w, _ in self.samples)


def bench_gridworld(quick: bool) -> dict:
    import fastcore
    from fastcore import reference

    rounds = 3 if quick else 5
    fast_episodes = 200_000 if quick else 2_000_000      # ~3.1M / ~31M updates
    py_episodes = 300 if quick else 2_000
    fast, c_loop, generic, article, twin = Rates(), Rates(), Rates(), Rates(), Rates()

    with tempfile.TemporaryDirectory() as tmp:
        try:
            exe = build_c_loop(Path(tmp))
        except (OSError, subprocess.CalledProcessError) as e:
            print(f"  (C comparison loop not built: {e})")
            exe = None
        fast_hash = c_hash = None
        c_updates = None
        for _ in range(rounds):                      # fastcore and C alternate, same workload
            (q, st), wall, cpu = timed(lambda: fastcore.train_gridworld(
                SIZE, fast_episodes, alpha=ALPHA, gamma=GAMMA, epsilon=EPSILON, seed=SEED))
            fast.add(st["updates"], wall, cpu)
            fast_hash, fast_updates = fnv1a(q.tobytes()), st["updates"]
            if exe is not None:
                c = run_c(exe, fast_episodes)
                c_loop.add(c["updates"], c["wall"], c["cpu"])
                c_hash, c_updates = c["hash"], c["updates"]
        for _ in range(max(2, rounds - 2)):
            env, qg = fastcore.GridWorldEnv(SIZE), np.zeros((SIZE * SIZE, 4))
            st, wall, cpu = timed(lambda: fastcore.train_q(
                env, qg, fast_episodes, alpha=ALPHA, gamma=GAMMA, epsilon=EPSILON, seed=SEED,
                max_steps=1000 * SIZE * SIZE))
            generic.add(st["updates"], wall, cpu)
        generic_same = fnv1a(qg.tobytes()) == fast_hash

    for r in range(max(2, rounds - 2)):
        random.seed(r)
        (q_art, n_art), wall, cpu = timed(lambda: article_q_learning(
            GridWorld(SIZE), py_episodes, ALPHA, GAMMA, EPSILON))
        article.add(n_art, wall, cpu)
        (q_twin, st_twin), wall, cpu = timed(lambda: reference.train_gridworld(
            SIZE, py_episodes, alpha=ALPHA, gamma=GAMMA, epsilon=EPSILON, seed=SEED))
        twin.add(st_twin["updates"], wall, cpu)
    q_short, _ = fastcore.train_gridworld(SIZE, py_episodes, alpha=ALPHA, gamma=GAMMA,
                                          epsilon=EPSILON, seed=SEED)
    return {
        "fastcore": fast, "generic": generic, "c": c_loop if c_loop.samples else None,
        "article": article, "twin": twin,
        "workload": (fast_episodes, fast_updates, py_episodes, n_art, st_twin["updates"], rounds),
        "checks": {
            "C table == fastcore table (FNV-1a of the bytes)":
                None if c_hash is None else (c_hash == fast_hash and c_updates == fast_updates),
            "generic train_q table == train_gridworld table": generic_same,
            "pure-Python twin table == fastcore table": np.array_equal(q_short, q_twin),
        },
    }


def bench_threads(quick: bool) -> dict:
    """Rounds of (the two trainings one after the other in this thread, then the same two in
    two threads at once), measured back to back so that both halves of a round see about the
    same machine load; the per-round ratio is the speed-up."""
    import fastcore

    episodes = 150_000 if quick else 500_000    # ~2.3M / ~7.8M updates per agent

    def agent(seed, out, i):
        out[i] = fastcore.train_gridworld(SIZE, episodes, seed=seed)[1]["updates"]

    seq_times, par_times, utilisation = [], [], []
    for _ in range(3 if quick else 7):
        out = [0, 0]
        t0 = time.perf_counter()
        agent(1, out, 0)
        agent(2, out, 1)
        seq_times.append(time.perf_counter() - t0)
        total = sum(out)
        out = [0, 0]
        threads = [threading.Thread(target=agent, args=(s, out, i)) for i, s in enumerate((1, 2))]
        c0, t0 = time.process_time(), time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        par_times.append(time.perf_counter() - t0)
        utilisation.append((time.process_time() - c0) / par_times[-1])
        assert sum(out) == total
    speedups = [s / p for s, p in zip(seq_times, par_times)]
    return {"updates": total, "seq": statistics.median(seq_times),
            "par": statistics.median(par_times), "speedups": speedups,
            "utilisation": max(utilisation)}


def bench_envs(quick: bool) -> list:
    rows = []
    for mod_name, fn_name, label in (("fastcore.level_env", "train_level_agent", "level"),):
        try:
            import importlib
            mod = importlib.import_module(mod_name)
            fn = getattr(mod, fn_name)
        except (ImportError, AttributeError) as e:
            rows.append((label, None, f"skipped ({mod_name}.{fn_name} unavailable: {e})"))
            continue
        try:
            episodes = 200
            _, dt, _ = timed(lambda: fn(episodes, seed=0))
            target = 0.3 if quick else 1.0                       # seconds per measurement
            episodes = int(min(2_000_000, max(200, episodes * target / max(dt, 1e-6))))
            rates = Rates()
            for r in range(2 if quick else 3):
                (q, st), wall, cpu = timed(lambda: fn(episodes, seed=r))
                rates.add(st["updates"], wall, cpu)
            rows.append((label, rates,
                         f"{episodes} episodes/run ({st['updates']} steps in the last), "
                         f"Q-table {q.shape}"))
        except Exception as e:  # noqa: BLE001 - a broken optional env must not kill the bench
            rows.append((label, None, f"failed: {type(e).__name__}: {e}"))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks fastcore",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small workloads (a few seconds)")
    args = parser.parse_args(argv)
    t_start = time.perf_counter()

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"fastcore benchmark: python {sys.version.split()[0]}, numpy {np.__version__}, "
          f"{cpus} CPUs usable, load average {load:.2f} at start")

    g = bench_gridworld(args.quick)
    fe, fu, pe, au, tu, rounds = g["workload"]
    print(f"\nGridWorld {SIZE}x{SIZE} Q-learning (alpha {ALPHA}, gamma {GAMMA}, epsilon {EPSILON}): "
          f"Q-updates per second")
    print(f"  workloads: C-speed loops {fe} episodes = {fu} updates per round, {rounds} rounds;"
          f" Python loops {pe} episodes (article {au}, twin {tu} updates)")
    print("  'per CPU-s' = updates / CPU time of the loop (immune to being descheduled on a busy "
          "machine);\n  'wall' = updates / elapsed time. Best of rounds unless marked median.")
    print(f"  {'':<50} {'per CPU-s':>12} {'wall best':>12} {'wall median':>12}")
    rows = [("fastcore.train_gridworld (Cython, inlined env)", g["fastcore"]),
            ("fastcore.train_q(GridWorldEnv) (generic, vtable)", g["generic"]),
            ("plain C loop (cc -O3, benchmarks/c_gridworld.c)", g["c"]),
            ("article-style pure Python loop", g["article"]),
            ("fastcore.reference twin (pure Python)", g["twin"])]
    for name, v in rows:
        if v is None:
            print(f"  {name:<50} skipped (no C compiler)")
        else:
            print(f"  {name:<50} {fmt_rate(v.cpu_best()):>12} {fmt_rate(v.wall_best()):>12} "
                  f"{fmt_rate(v.wall_median()):>12}")
    f = g["fastcore"]
    print("  ratios (per CPU-s / wall best / wall median):")

    def ratio_line(label, other, target, fmt):
        r = (f.cpu_best() / other.cpu_best(), f.wall_best() / other.wall_best(),
             f.wall_median() / other.wall_median())
        verdict = "" if target is None else (
            f"   target >= {target}: {'met' if r[0] >= target else 'MISSED'}")
        print(f"    {label:<28} {' / '.join(format(x, fmt) for x in r)}{verdict}")

    if g["c"] is not None:
        ratio_line("fastcore / plain C", g["c"], 0.8, ".2f")
    ratio_line("fastcore / article Python", g["article"], 300, ",.0f")
    ratio_line("fastcore / Python twin", g["twin"], None, ",.0f")
    print(f"    {'generic vtable / inlined':<28} {g['generic'].cpu_best() / f.cpu_best():.2f}")
    for k, v in g["checks"].items():
        print(f"  check: {k}: {'skipped' if v is None else ('yes' if v else 'NO')}")

    t = bench_threads(args.quick)
    sp = t["speedups"]
    print(f"\nScaling: 2 agents x GridWorld {SIZE}x{SIZE} ({t['updates']} updates in total), "
          f"wall clock, median of {len(sp)} rounds")
    print(f"  1 thread, one after the other: {t['seq']:.3f} s  "
          f"({fmt_rate(t['updates'] / t['seq']).strip()})")
    print(f"  2 threads in parallel:         {t['par']:.3f} s  "
          f"({fmt_rate(t['updates'] / t['par']).strip()})")
    print(f"  speed-up per round (same-round ratio): median {statistics.median(sp):.2f}x, "
          f"best {max(sp):.2f}x  [{', '.join(f'{x:.2f}' for x in sp)}]; ideal 2.00x on 2 idle "
          f"cores")
    print(f"  process CPU time / wall time during the 2-thread runs: up to "
          f"{t['utilisation']:.2f} (> 1 only if both threads ran at the same moment; on a "
          f"machine whose cores are busy with other work it stays low)")

    print("\nLevel environment (generic train_q loop): steps (= Q-updates) per second")
    print(f"  {'':<8} {'per CPU-s':>12} {'wall best':>12}")
    for label, rates, note in bench_envs(args.quick):
        if isinstance(rates, Rates):
            print(f"  {label:<8} {fmt_rate(rates.cpu_best()):>12} {fmt_rate(rates.wall_best()):>12}"
                  f"   {note}")
        else:
            print(f"  {label:<8} {note}")

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\ntotal benchmark time {time.perf_counter() - t_start:.1f} s, load average "
          f"{load:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
