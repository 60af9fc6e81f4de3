"""fastcore: Cython kernels vs their pure-Python twins, validation, GIL release, learning.

Fast (a few seconds) and TensorFlow-free.
"""
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import fastcore
from fastcore import reference as ref
from fastcore._core import Env

ROOT = Path(__file__).resolve().parents[1]
SEEDS = [0, 1, 12345, 2**64 - 1]


# ------------------------------------------------------------------------------------------
# RNG twin

@pytest.mark.parametrize("seed", SEEDS)
def test_rng_twin_bit_for_bit(seed):
    c, p = fastcore.SplitMix64(seed), ref.SplitMix64(seed)
    assert [c.next() for _ in range(2000)] == [p.next() for _ in range(2000)]
    assert [c.uniform() for _ in range(2000)] == [p.uniform() for _ in range(2000)]
    for n in (1, 2, 3, 4, 7, 25, 1000, 2**31 - 1):
        assert [c.below(n) for _ in range(200)] == [p.below(n) for _ in range(200)]
    assert c.state == p.state
    arr = c.fill_next(1000)
    assert arr.dtype == np.uint64 and arr.tolist() == [p.next() for _ in range(1000)]


def test_rng_known_values_and_ranges():
    # splitmix64 reference outputs for seed 0 (Vigna's splitmix64.c)
    g = fastcore.SplitMix64(0)
    assert g.next() == 0xE220A8397B1DCDAF
    assert g.next() == 0x6E789E6AA1B965F4
    u = np.array([g.uniform() for _ in range(20000)])
    assert u.min() >= 0.0 and u.max() < 1.0 and abs(u.mean() - 0.5) < 0.01
    b = np.array([g.below(4) for _ in range(20000)])
    assert set(b.tolist()) == {0, 1, 2, 3} and abs(np.bincount(b)[0] / 20000 - 0.25) < 0.02


# ------------------------------------------------------------------------------------------
# q_update / q_update_batch parity

def _random_transitions(seed, n, nS, nA):
    r = np.random.default_rng(seed)
    return (r.integers(0, nS, n), r.integers(0, nA, n), r.normal(size=n),
            r.integers(0, nS, n), r.random(n) < 0.2)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_q_update_matches_reference(seed):
    nS, nA = 13, 5
    q = np.random.default_rng(seed).normal(size=(nS, nA))
    qr = q.copy()
    s, a, r, s2, d = _random_transitions(seed, 3000, nS, nA)
    alpha, gamma = 0.3, 0.95
    for i in range(len(s)):
        td_c = fastcore.q_update(q, int(s[i]), int(a[i]), float(r[i]), int(s2[i]), bool(d[i]),
                                 alpha, gamma)
        td_p = ref.q_update(qr, int(s[i]), int(a[i]), float(r[i]), int(s2[i]), bool(d[i]),
                            alpha, gamma)
        assert td_c == td_p
    assert np.array_equal(q, qr)


def test_q_update_rule():
    q = np.zeros((3, 2))
    q[2] = [1.0, 3.0]
    td = fastcore.q_update(q, 0, 1, 0.5, 2, False, 0.5, 0.9)
    assert td == pytest.approx(0.5 + 0.9 * 3.0)
    assert q[0, 1] == pytest.approx(0.5 * (0.5 + 2.7))
    fastcore.q_update(q, 1, 0, 2.0, 2, True, 1.0, 0.9)   # terminal: no bootstrap
    assert q[1, 0] == 2.0
    assert q.sum() == pytest.approx(4.0 + 1.6 + 2.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_q_update_batch_matches_reference_and_is_sequential(seed):
    nS, nA = 7, 3     # few states: many repeated (s, a) pairs, so order matters
    q0 = np.random.default_rng(seed + 10).normal(size=(nS, nA))
    s, a, r, s2, d = _random_transitions(seed, 4000, nS, nA)
    q, qr, qs = q0.copy(), q0.copy(), q0.copy()
    td = fastcore.q_update_batch(q, s, a, r, s2, d, 0.2, 0.9)
    td_r = ref.q_update_batch(qr, s, a, r, s2, d, 0.2, 0.9)
    assert np.array_equal(q, qr) and np.array_equal(td, td_r)
    for i in range(len(s)):
        fastcore.q_update(qs, int(s[i]), int(a[i]), float(r[i]), int(s2[i]), bool(d[i]), 0.2, 0.9)
    assert np.array_equal(q, qs)
    # other integer / bool dtypes are accepted and give the same result
    q32 = q0.copy()
    fastcore.q_update_batch(q32, s.astype(np.int32), a.astype(np.uint8), r.tolist(),
                            s2.astype(np.int16), d.astype(np.int8), 0.2, 0.9)
    assert np.array_equal(q32, q)
    assert fastcore.q_update_batch(q, [], [], [], [], [], 0.2, 0.9).shape == (0,)


# ------------------------------------------------------------------------------------------
# Training loops parity

@pytest.mark.parametrize("seed", [0, 3, 99])
def test_train_gridworld_matches_reference_and_generic_loop(seed):
    q, st = fastcore.train_gridworld(5, 300, seed=seed, alpha=0.2, epsilon=0.15)
    qr, sr = ref.train_gridworld(5, 300, seed=seed, alpha=0.2, epsilon=0.15)
    assert st["updates"] > 2000
    assert q.shape == (5, 5, 4) and q.dtype == np.float64
    assert np.array_equal(q, qr)
    assert np.array_equal(st["returns"], sr["returns"])
    assert np.array_equal(st["lengths"], sr["lengths"]) and st["updates"] == sr["updates"]
    assert st["lengths"].dtype == np.int64 and st["returns"].dtype == np.float64
    assert st["updates"] == int(st["lengths"].sum())
    # the specialised loop and the generic Env-vtable loop are bit-identical
    qg = np.zeros((25, 4))
    sg = fastcore.train_q(fastcore.GridWorldEnv(5), qg, 300, seed=seed, alpha=0.2,
                          epsilon=0.15, max_steps=25000)
    assert np.array_equal(qg.reshape(5, 5, 4), q)
    assert np.array_equal(sg["returns"], st["returns"])


@pytest.mark.parametrize("algorithm", ["q", "expected_sarsa", "double_q"])
@pytest.mark.parametrize("seed", [0, 7, 2**63 + 5])
def test_train_q_variants_match_reference(algorithm, seed):
    kw = dict(alpha=0.25, gamma=0.95, epsilon=0.6, epsilon_decay=0.97, epsilon_min=0.05,
              max_steps=40, seed=seed, algorithm=algorithm)
    env, renv = fastcore.GridWorldEnv(6), ref.GridWorld(6)
    init = np.random.default_rng(1).normal(scale=0.01, size=(36, 4))
    q, qr = init.copy(), init.copy()
    q2 = qr2 = None
    if algorithm == "double_q":
        q2, qr2 = init[::-1].copy(), init[::-1].copy()
    st = fastcore.train_q(env, q, 200, q2=q2, **kw)
    sr = ref.train_q(renv, qr, 200, q2=qr2, **kw)
    assert st["updates"] > 2000
    assert np.array_equal(q, qr)
    if q2 is not None:
        assert np.array_equal(q2, qr2) and not np.array_equal(q2, init[::-1])
    assert np.array_equal(st["returns"], sr["returns"])
    assert np.array_equal(st["lengths"], sr["lengths"])
    assert st["updates"] == sr["updates"] and st["epsilon"] == sr["epsilon"]
    assert st["lengths"].max() <= 40
    assert st["epsilon"] == pytest.approx(max(0.05, 0.6 * 0.97 ** 200))


def test_variants_differ_and_training_continues_in_place():
    env = fastcore.GridWorldEnv(5)
    tables = {}
    for algo in fastcore.ALGORITHMS:
        q = np.zeros((25, 4))
        fastcore.train_q(env, q, 50, seed=3, algorithm=algo,
                         q2=np.zeros((25, 4)) if algo == "double_q" else None)
        tables[algo] = q
    assert not np.array_equal(tables["q"], tables["expected_sarsa"])
    assert not np.array_equal(tables["q"], tables["double_q"])
    # two calls on the same table == two calls on the twin
    q, qr = np.zeros((25, 4)), np.zeros((25, 4))
    for s in (1, 2):
        fastcore.train_q(env, q, 40, seed=s)
        ref.train_q(ref.GridWorld(5), qr, 40, seed=s)
    assert np.array_equal(q, qr)


def test_env_python_helpers_match_twin_env():
    env, renv = fastcore.GridWorldEnv(4), ref.GridWorld(4)
    gc, gp = fastcore.SplitMix64(5), ref.SplitMix64(5)
    s = env.py_reset(gc)
    assert s == renv.reset(gp) == 0
    actions = np.random.default_rng(0).integers(0, 4, 500)
    for a in actions:
        out_c = env.py_step(s, int(a), gc)
        out_p = renv.step(s, int(a), gp)
        assert out_c == out_p
        s = 0 if out_c[2] else out_c[0]
    assert env.coords(env.index(2, 3)) == (2, 3) and env.goal == 15
    # off-grid moves stay put; reward -0.1; the goal gives +1 and ends the episode
    assert env.py_step(0, 3, gc) == (0, -0.1, False)
    assert env.py_step(0, 2, gc) == (0, -0.1, False)
    assert env.py_step(env.index(3, 2), 0, gc) == (15, 1.0, True)
    assert env.py_step(env.index(2, 3), 1, gc) == (15, 1.0, True)


def test_base_env_is_usable_and_bad_env_states_raise():
    e = Env()
    e.n_states, e.n_actions = 1, 3
    q = np.zeros((1, 3))
    st = fastcore.train_q(e, q, 5)
    assert st["lengths"].tolist() == [1] * 5 and st["updates"] == 5
    # an env that lies about n_states gets a RuntimeError, not a memory corruption
    g = fastcore.GridWorldEnv(4)
    g.n_states = 2
    with pytest.raises(RuntimeError, match="outside"):
        fastcore.train_q(g, np.zeros((2, 4)), 10, epsilon=1.0)


# ------------------------------------------------------------------------------------------
# Learning

@pytest.mark.parametrize("size,episodes", [(4, 300), (5, 500), (8, 3000)])
def test_gridworld_learns_shortest_path(size, episodes):
    q, st = fastcore.train_gridworld(size, episodes, seed=1)
    roll = fastcore.greedy_rollout(fastcore.GridWorldEnv(size), q.reshape(-1, 4),
                                   max_steps=10 * size * size)
    assert roll["done"] and len(roll["actions"]) == 2 * size - 2
    assert roll["states"][-1] == size * size - 1
    assert roll["return"] == pytest.approx(1.0 - 0.1 * (2 * size - 3))
    assert st["lengths"][:20].mean() > st["lengths"][-100:].mean()
    rr = ref.greedy_rollout(ref.GridWorld(size), q.reshape(-1, 4), 10 * size * size)
    assert rr == roll


def test_untrained_greedy_policy_does_not_reach_the_goal():
    roll = fastcore.greedy_rollout(fastcore.GridWorldEnv(5), np.zeros((25, 4)), max_steps=100)
    assert not roll["done"] and len(roll["actions"]) == 100   # always "right": stuck at the wall


# ------------------------------------------------------------------------------------------
# GIL release

def test_training_releases_the_gil():
    """While a worker thread trains, the main thread keeps running Python code.

    If the loop held the GIL, the main thread would be frozen for the whole training call (a C
    call holding the GIL is never preempted by the interpreter), i.e. one gap between two
    main-thread ticks would be about as long as the training. This does not depend on the
    number of cores (the OS time-slices the two threads on one core too)."""
    episodes = 200_000
    t0 = time.perf_counter()
    fastcore.train_gridworld(8, episodes)
    while time.perf_counter() - t0 < 0.3:                  # calibrate to >= ~0.3 s of work
        episodes *= 2
        t0 = time.perf_counter()
        fastcore.train_gridworld(8, episodes)
    started, durations = threading.Event(), []

    def worker():
        started.set()
        t = time.perf_counter()
        fastcore.train_gridworld(8, episodes, seed=1)
        durations.append(time.perf_counter() - t)

    th = threading.Thread(target=worker)
    th.start()
    started.wait()
    ticks = [time.perf_counter()]
    while th.is_alive():
        ticks.append(time.perf_counter())
    th.join()
    duration = durations[0]
    max_gap = float(np.max(np.diff(ticks))) if len(ticks) > 1 else duration
    assert duration > 0.1
    assert max_gap < 0.5 * duration, (max_gap, duration, len(ticks))
    assert len(ticks) > 1000


def test_two_threads_give_the_same_results_as_sequential():
    seq = [fastcore.train_gridworld(6, 2000, seed=s)[0] for s in (1, 2)]
    out = [None, None]

    def run(i, s):
        out[i] = fastcore.train_gridworld(6, 2000, seed=s)[0]

    ths = [threading.Thread(target=run, args=(i, s)) for i, s in enumerate((1, 2))]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    assert all(np.array_equal(a, b) for a, b in zip(seq, out))


# ------------------------------------------------------------------------------------------
# Validation

Q = np.zeros((16, 4))
ENV = fastcore.GridWorldEnv(4)


@pytest.mark.parametrize("call,match", [
    (lambda: fastcore.train_gridworld(0, 10), "size"),
    (lambda: fastcore.train_gridworld(-3, 10), "size"),
    (lambda: fastcore.train_gridworld(10**6, 10), "size"),
    (lambda: fastcore.train_gridworld(2.5, 10), "size"),
    (lambda: fastcore.train_gridworld("4", 10), "size"),
    (lambda: fastcore.train_gridworld(True, 10), "size"),
    (lambda: fastcore.train_gridworld(4, -1), "episodes"),
    (lambda: fastcore.train_gridworld(4, 10**12), "episodes"),
    (lambda: fastcore.train_gridworld(4, 10, alpha=0.0), "alpha"),
    (lambda: fastcore.train_gridworld(4, 10, alpha=1.5), "alpha"),
    (lambda: fastcore.train_gridworld(4, 10, alpha=float("nan")), "alpha"),
    (lambda: fastcore.train_gridworld(4, 10, gamma=-0.1), "gamma"),
    (lambda: fastcore.train_gridworld(4, 10, gamma=1.01), "gamma"),
    (lambda: fastcore.train_gridworld(4, 10, epsilon=-0.5), "epsilon"),
    (lambda: fastcore.train_gridworld(4, 10, epsilon=2), "epsilon"),
    (lambda: fastcore.train_gridworld(4, 10, seed=-1), "seed"),
    (lambda: fastcore.train_gridworld(4, 10, seed=2**64), "seed"),
    (lambda: fastcore.train_gridworld(4, 10, max_steps=0), "max_steps"),
    (lambda: fastcore.train_q(ENV, Q.astype(np.float32), 5), "q.*float64"),
    (lambda: fastcore.train_q(ENV, Q.tolist(), 5), "q.*ndarray"),
    (lambda: fastcore.train_q(ENV, np.zeros((16, 5)), 5), r"q.*shape"),
    (lambda: fastcore.train_q(ENV, np.zeros((4, 4, 4)), 5), r"q.*2-D"),
    (lambda: fastcore.train_q(ENV, np.zeros((4, 16)).T, 5), "C-contiguous"),
    (lambda: fastcore.train_q(ENV, np.zeros((16, 8))[:, ::2], 5), "C-contiguous"),
    (lambda: fastcore.train_q(ENV, np.zeros((16, 4)), 5, epsilon_decay=0.0), "epsilon_decay"),
    (lambda: fastcore.train_q(ENV, np.zeros((16, 4)), 5, epsilon_min=1.5), "epsilon_min"),
    (lambda: fastcore.train_q(ENV, np.zeros((16, 4)), 5, algorithm="sarsa"), "algorithm"),
    (lambda: fastcore.train_q(ENV, np.zeros((16, 4)), 5, algorithm="double_q"), "q2"),
    (lambda: fastcore.train_q(ENV, Q, 5, algorithm="double_q", q2=Q), "q2"),
    (lambda: fastcore.train_q(ENV, np.zeros((16, 4)), 5, q2=np.zeros((16, 4))), "q2"),
    (lambda: fastcore.train_q(ENV, np.zeros((16, 4)), 5, algorithm="double_q",
                              q2=np.zeros((16, 3))), "q2"),
    (lambda: fastcore.train_q(ref.GridWorld(4), np.zeros((16, 4)), 5), "env"),
    (lambda: fastcore.train_q(Env(), np.zeros((1, 1)), 5), "n_states"),
    (lambda: fastcore.q_update(Q, 16, 0, 0.0, 0, False, 0.1, 0.9), r"\bs\b"),
    (lambda: fastcore.q_update(Q, -1, 0, 0.0, 0, False, 0.1, 0.9), r"\bs\b"),
    (lambda: fastcore.q_update(Q, 0, 4, 0.0, 0, False, 0.1, 0.9), r"\ba\b"),
    (lambda: fastcore.q_update(Q, 0, 0, 0.0, 16, False, 0.1, 0.9), "s2"),
    (lambda: fastcore.q_update(Q, 0, 0, float("inf"), 1, False, 0.1, 0.9), r"\br\b"),
    (lambda: fastcore.q_update(Q, 0, 0, "1", 1, False, 0.1, 0.9), r"\br\b"),
    (lambda: fastcore.q_update(Q, 0, 0, 0.0, 1, 2, 0.1, 0.9), "done"),
    (lambda: fastcore.q_update(Q, 0, 0, 0.0, 1, False, 0.0, 0.9), "alpha"),
    (lambda: fastcore.q_update(Q, 0, 0, 0.0, 1, False, 0.1, 1.5), "gamma"),
    (lambda: fastcore.q_update(Q, 0.5, 0, 0.0, 1, False, 0.1, 0.9), r"\bs\b"),
    (lambda: fastcore.q_update(np.zeros(4), 0, 0, 0.0, 0, False, 0.1, 0.9), "q"),
    (lambda: fastcore.q_update_batch(Q, [0, 1], [0], [0.0, 0.0], [1, 1], [0, 0], 0.1, 0.9),
     "actions"),
    (lambda: fastcore.q_update_batch(Q, [0.0], [0], [0.0], [1], [0], 0.1, 0.9), "states"),
    (lambda: fastcore.q_update_batch(Q, [[0]], [0], [0.0], [1], [0], 0.1, 0.9), "states"),
    (lambda: fastcore.q_update_batch(Q, [0], [9], [0.0], [1], [0], 0.1, 0.9), "actions"),
    (lambda: fastcore.q_update_batch(Q, [0], [0], [0.0], [-1], [0], 0.1, 0.9), "next_states"),
    (lambda: fastcore.q_update_batch(Q, [0], [0], ["x"], [1], [0], 0.1, 0.9), "rewards"),
    (lambda: fastcore.q_update_batch(Q, [0], [0], [np.nan], [1], [0], 0.1, 0.9), "rewards"),
    (lambda: fastcore.q_update_batch(Q, [0], [0], [0.0], [1], [0.5], 0.1, 0.9), "dones"),
    (lambda: fastcore.q_update_batch(Q, [0], [0], [0.0], [1], [3], 0.1, 0.9), "dones"),
    (lambda: fastcore.q_update_batch(Q, [0], [0], [0.0], [1], [0], 1.1, 0.9), "alpha"),
    (lambda: fastcore.greedy_rollout(ENV, np.zeros((16, 3)), 10), "q"),
    (lambda: fastcore.greedy_rollout(ENV, Q, -1), "max_steps"),
    (lambda: ENV.py_step(16, 0, fastcore.SplitMix64(0)), "state"),
    (lambda: ENV.py_step(0, 4, fastcore.SplitMix64(0)), "action"),
    (lambda: ENV.py_step(0, 0, ref.SplitMix64(0)), "rng"),
    (lambda: fastcore.SplitMix64(-1), "seed"),
    (lambda: fastcore.SplitMix64(0).below(0), "n"),
])
def test_validation_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_read_only_table_rejected_and_left_untouched():
    q = np.zeros((16, 4))
    q.setflags(write=False)
    with pytest.raises(ValueError, match="writeable"):
        fastcore.train_q(ENV, q, 5)
    with pytest.raises(ValueError, match="writeable"):
        fastcore.q_update(q, 0, 0, 1.0, 1, False, 0.1, 0.9)
    assert not q.any()


def test_edge_cases():
    q, st = fastcore.train_gridworld(4, 0)
    assert q.shape == (4, 4, 4) and st["returns"].shape == (0,) and st["updates"] == 0
    q, st = fastcore.train_gridworld(1, 3)          # start == goal: any move ends the episode
    assert st["lengths"].tolist() == [1, 1, 1] and st["returns"].tolist() == [1.0] * 3
    q, st = fastcore.train_gridworld(6, 5, max_steps=3)
    assert st["lengths"].tolist() == [3] * 5 and st["updates"] == 15
    # numpy integer / float scalars are accepted
    q, st = fastcore.train_gridworld(np.int64(3), np.int32(4), alpha=np.float32(0.5), seed=np.uint64(3))
    assert st["updates"] > 0


# ------------------------------------------------------------------------------------------
# Packaging

def test_import_does_not_pull_tensorflow():
    code = ("import sys, fastcore, fastcore.reference; "
            "bad = [m for m in ('tensorflow', 'keras', 'onnx', 'tf2onnx') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_benchmark_dispatcher_rejects_unknown_names():
    from benchmarks.__main__ import BENCHMARKS, main
    assert "fastcore" in BENCHMARKS
    assert main(["no-such-benchmark"]) == 2


@pytest.mark.slow
def test_benchmark_quick_runs():
    # --no-save: a test must not rewrite the checkout's benchmarks/results.md
    out = subprocess.run([sys.executable, "-m", "benchmarks", "--no-save", "fastcore", "--quick"],
                         cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert "fastcore / article Python" in out and "speed-up" in out
    assert "C table == fastcore table (FNV-1a of the bytes): NO" not in out
    assert "twin table == fastcore table: yes" in out
