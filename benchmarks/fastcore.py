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
3. Steps per second of the level and melody environments' training loops
   (fastcore.level_env.train_level_agent / fastcore.melody_env.train_melody_agent), when built.
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
    return {"updates": int(fields["updates"]), "seconds": float(fields["seconds"]),
            "hash": fields["q_fnv1a"]}


def timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0


def fmt_rate(x: float) -> str:
    return f"{x / 1e6:9.2f} M/s" if x >= 1e5 else f"{x / 1e3:9.1f} k/s"


def bench_gridworld(quick: bool) -> dict:
    import fastcore
    from fastcore import reference

    rounds = 3 if quick else 5
    fast_episodes = 200_000 if quick else 2_000_000      # ~3.1M / ~31M updates
    py_episodes = 300 if quick else 2_000
    res: dict = {}

    with tempfile.TemporaryDirectory() as tmp:
        try:
            exe = build_c_loop(Path(tmp))
        except (OSError, subprocess.CalledProcessError) as e:
            print(f"  (C comparison loop not built: {e})")
            exe = None
        fast_rates, c_rates, generic_rates = [], [], []
        fast_hash = c_hash = None
        for _ in range(rounds):
            (q, st), dt = timed(lambda: fastcore.train_gridworld(
                SIZE, fast_episodes, alpha=ALPHA, gamma=GAMMA, epsilon=EPSILON, seed=SEED))
            fast_rates.append(st["updates"] / dt)
            fast_hash, fast_updates = fnv1a(q.tobytes()), st["updates"]
            if exe is not None:
                c = run_c(exe, fast_episodes)
                c_rates.append(c["updates"] / c["seconds"])
                c_hash, c_updates = c["hash"], c["updates"]
        for _ in range(max(2, rounds - 2)):
            env, qg = fastcore.GridWorldEnv(SIZE), np.zeros((SIZE * SIZE, 4))
            st, dt = timed(lambda: fastcore.train_q(
                env, qg, fast_episodes, alpha=ALPHA, gamma=GAMMA, epsilon=EPSILON, seed=SEED,
                max_steps=1000 * SIZE * SIZE))
            generic_rates.append(st["updates"] / dt)
        generic_same = fnv1a(qg.tobytes()) == fast_hash

    art_rates, twin_rates = [], []
    for r in range(max(2, rounds - 2)):
        random.seed(r)
        (q_art, n_art), dt = timed(lambda: article_q_learning(GridWorld(SIZE), py_episodes,
                                                              ALPHA, GAMMA, EPSILON))
        art_rates.append(n_art / dt)
        (q_twin, st_twin), dt = timed(lambda: reference.train_gridworld(
            SIZE, py_episodes, alpha=ALPHA, gamma=GAMMA, epsilon=EPSILON, seed=SEED))
        twin_rates.append(st_twin["updates"] / dt)
    q_short, _ = fastcore.train_gridworld(SIZE, py_episodes, alpha=ALPHA, gamma=GAMMA,
                                          epsilon=EPSILON, seed=SEED)
    twin_same = np.array_equal(q_short, q_twin)

    def both(xs):
        return max(xs), statistics.median(xs)

    res["fastcore"] = both(fast_rates)
    res["generic"] = both(generic_rates)
    res["c"] = both(c_rates) if c_rates else None
    res["article"] = both(art_rates)
    res["twin"] = both(twin_rates)
    res["workload"] = (fast_episodes, fast_updates, py_episodes, n_art, st_twin["updates"])
    res["checks"] = {
        "C table == fastcore table (FNV-1a of the bytes)":
            None if c_hash is None else (c_hash == fast_hash and c_updates == fast_updates),
        "generic train_q table == train_gridworld table": generic_same,
        "pure-Python twin table == fastcore table": twin_same,
    }
    return res


def bench_threads(quick: bool) -> dict:
    import fastcore

    episodes = 150_000 if quick else 1_000_000    # ~2.3M / ~15.5M updates per agent

    def agent(seed, out, i):
        out[i] = fastcore.train_gridworld(SIZE, episodes, seed=seed)[1]["updates"]

    seq_times, par_times = [], []
    for _ in range(2 if quick else 3):
        out = [0, 0]
        t0 = time.perf_counter()
        agent(1, out, 0)
        agent(2, out, 1)
        seq_times.append(time.perf_counter() - t0)
        total = sum(out)
        out = [0, 0]
        threads = [threading.Thread(target=agent, args=(s, out, i)) for i, s in enumerate((1, 2))]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        par_times.append(time.perf_counter() - t0)
        assert sum(out) == total
    seq, par = min(seq_times), min(par_times)
    return {"updates": total, "seq": seq, "par": par, "speedup": seq / par,
            "speedups": [s / p for s, p in zip(seq_times, par_times)]}


def bench_envs(quick: bool) -> list:
    rows = []
    for mod_name, fn_name, label in (("fastcore.level_env", "train_level_agent", "level"),
                                     ("fastcore.melody_env", "train_melody_agent", "melody")):
        try:
            import importlib
            mod = importlib.import_module(mod_name)
            fn = getattr(mod, fn_name)
        except (ImportError, AttributeError) as e:
            rows.append((label, None, f"skipped ({mod_name}.{fn_name} unavailable: {e})"))
            continue
        try:
            episodes = 200
            _, dt = timed(lambda: fn(episodes, seed=0))
            target = 0.3 if quick else 1.0                       # seconds per measurement
            episodes = int(min(2_000_000, max(200, episodes * target / max(dt, 1e-6))))
            rates = []
            for r in range(2 if quick else 3):
                (q, st), dt = timed(lambda: fn(episodes, seed=r))
                rates.append(st["updates"] / dt)
            rows.append((label, max(rates),
                         f"{episodes} episodes/run, {st['updates']} steps in the last run, "
                         f"Q-table {q.shape}, best of {len(rates)} (median "
                         f"{fmt_rate(statistics.median(rates)).strip()})"))
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
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    print(f"fastcore benchmark: python {sys.version.split()[0]}, numpy {np.__version__}, "
          f"{cpus} CPUs usable, load average {load[0]:.2f} at start")

    g = bench_gridworld(args.quick)
    fe, fu, pe, au, tu = g["workload"]
    print(f"\nGridWorld {SIZE}x{SIZE} Q-learning (alpha {ALPHA}, gamma {GAMMA}, epsilon {EPSILON}), "
          f"Q-updates per second, best / median of rounds")
    print(f"  workloads: C-speed loops {fe} episodes = {fu} updates per round; "
          f"Python loops {pe} episodes (article {au}, twin {tu} updates)")
    best = g["fastcore"][0]
    rows = [("fastcore.train_gridworld (Cython, inlined env)", g["fastcore"]),
            ("fastcore.train_q(GridWorldEnv) (generic, vtable)", g["generic"]),
            ("plain C loop (cc -O3, benchmarks/c_gridworld.c)", g["c"]),
            ("article-style pure Python loop", g["article"]),
            ("fastcore.reference twin (pure Python)", g["twin"])]
    for name, v in rows:
        if v is None:
            print(f"  {name:<50} skipped (no C compiler)")
            continue
        print(f"  {name:<50} {fmt_rate(v[0])} / {fmt_rate(v[1])}   fastcore is "
              f"{best / v[0]:8.2f}x (best) / {g['fastcore'][1] / v[1]:8.2f}x (median)")
    print("  ratios:")
    if g["c"] is not None:
        r_best, r_med = g["fastcore"][0] / g["c"][0], g["fastcore"][1] / g["c"][1]
        print(f"    fastcore / plain C        = {r_best:.2f} (best), {r_med:.2f} (median)   "
              f"target >= 0.8   {'OK' if max(r_best, r_med) >= 0.8 else 'MISSED'}")
    r_art = g["fastcore"][0] / g["article"][0]
    print(f"    fastcore / article Python = {r_art:,.0f} (best), "
          f"{g['fastcore'][1] / g['article'][1]:,.0f} (median)   target >= 300   "
          f"{'OK' if r_art >= 300 else 'MISSED'}")
    print(f"    fastcore / Python twin    = {g['fastcore'][0] / g['twin'][0]:,.0f} (best)")
    print(f"    generic vtable / inlined  = {g['generic'][0] / g['fastcore'][0]:.2f} (best)")
    for k, v in g["checks"].items():
        print(f"  check: {k}: {'skipped' if v is None else ('yes' if v else 'NO')}")

    t = bench_threads(args.quick)
    print(f"\nScaling: 2 agents x GridWorld {SIZE}x{SIZE} ({t['updates']} updates in total)")
    print(f"  1 thread, one after the other: {t['seq']:.3f} s  ({fmt_rate(t['updates'] / t['seq']).strip()})")
    print(f"  2 threads in parallel:         {t['par']:.3f} s  ({fmt_rate(t['updates'] / t['par']).strip()})")
    print(f"  speed-up {t['speedup']:.2f}x (best times; per round "
          f"{', '.join(f'{s:.2f}x' for s in t['speedups'])}; ideal 2.00x on 2 idle cores)")

    print("\nLevel and melody environments (train_q generic loop), steps (= Q-updates) per second")
    for label, rate, note in bench_envs(args.quick):
        if rate is None:
            print(f"  {label:<8} {note}")
        else:
            print(f"  {label:<8} {fmt_rate(rate)}   {note}")

    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    print(f"\ntotal benchmark time {time.perf_counter() - t_start:.1f} s, load average "
          f"{load[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
