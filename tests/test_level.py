"""Tests for generate("level"): the C environment against its pure-Python twin, the runtime's
feature encoding, the shipped model (solvability, legend, determinism, bad options) and a quick
profile trained, exported, evaluated and served end to end (marked tf)."""
from __future__ import annotations

import numpy as np
import pytest

import runtime
from runtime import level as rt
from tests.conftest import require_kind

pytest.importorskip("fastcore.level_env", reason="fastcore is not built "
                    "(python setup.py build_ext --inplace)")
from fastcore import reference  # noqa: E402
from fastcore import reference_envs as twins  # noqa: E402
from fastcore.level_env import LevelEnv, train_level_agent  # noqa: E402

LEGEND = set("#.SG^$")


# ------------------------------------------------------------------------------ fastcore
@pytest.mark.parametrize("seed", [0, 7, 2**63 + 5])
@pytest.mark.parametrize("kwargs", [{}, {"size_min": 5, "size_max": 64, "density_max": 0.6,
                                         "bump_reward": -3.5, "goal_reward": 10.0}])
def test_env_matches_twin_exactly(seed, kwargs):
    c = LevelEnv(**kwargs).rollout(4000, seed)
    p = twins.rollout(twins.LevelEnvPy(**kwargs), 4000, reference.SplitMix64(seed))
    for name, a, b in zip(("states", "actions", "rewards", "dones"), c, p):
        assert np.array_equal(a, b), name
    if not kwargs:
        assert c[3].sum() >= 1                   # some episodes reach their target
    step, bump = kwargs.get("step_reward", -1.0), kwargs.get("bump_reward", -2.0)
    assert set(np.unique(c[2])) <= {step, bump, step + kwargs.get("goal_reward", 0.0)}


def test_env_py_step_matches_twin():
    env, twin = LevelEnv(), twins.LevelEnvPy()
    g1, g2 = fastcore_rng(3), reference.SplitMix64(3)
    s1, s2 = env.py_reset(g1), twin.reset(g2)
    for i in range(500):
        assert s1 == s2
        a = i * 7 % 4
        s1, r1, d1 = env.py_step(s1, a, g1)
        s2, r2, d2 = twin.step(s2, a, g2)
        assert (r1, d1) == (r2, d2)
        if d1:
            s1, s2 = env.py_reset(g1), twin.reset(g2)
    assert np.array_equal(env.grid(), twin.grid())


def fastcore_rng(seed):
    from fastcore import SplitMix64

    return SplitMix64(seed)


def test_training_matches_twin_and_learns():
    kw = dict(alpha=0.2, gamma=0.95, epsilon=0.3, epsilon_decay=0.99, epsilon_min=0.05,
              max_steps=60, seed=11, size_max=12)
    qc, sc = train_level_agent(40, **kw)
    qp, sp = twins.train_level_agent(40, **kw)
    np.testing.assert_array_equal(qc, qp)
    np.testing.assert_array_equal(sc["returns"], sp["returns"])
    np.testing.assert_array_equal(sc["lengths"], sp["lengths"])
    assert sc["updates"] == sp["updates"]
    # and it learns: later episodes are shorter than the first ones
    q, stats = train_level_agent(20_000, epsilon=0.2, seed=1, size_max=16)
    assert stats["lengths"][-2000:].mean() < 0.6 * stats["lengths"][:2000].mean()


def test_env_validation():
    for bad in ({"size_min": 4}, {"size_max": 65}, {"size_min": 10, "size_max": 8},
                {"density_max": 0.95}, {"density_min": 0.3, "density_max": 0.2}):
        with pytest.raises(ValueError):
            LevelEnv(**bad)
    with pytest.raises(ValueError):
        train_level_agent(10, alpha=0.0)


def test_runtime_features_match_the_environment():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(5, 20))
        walls = (rng.random((n, n)) < 0.3).astype(np.uint8)
        walls[0, :] = walls[-1, :] = walls[:, 0] = walls[:, -1] = 1
        visited = (rng.random((n, n)) < 0.3).astype(np.uint8)
        px, py, tx, ty = (int(v) for v in rng.integers(1, n - 1, 4))
        want = twins.level_state(walls, visited, px, py, tx, ty)
        got = rt.state_index(bytearray(walls.ravel()), bytearray(visited.ravel()), n,
                             px, py, tx, ty)
        assert got == want
        assert 0 <= got < rt.N_STATES


# ------------------------------------------------------------------------------ generator
def check_level(rows, size):
    assert isinstance(rows, list) and len(rows) == size
    assert all(isinstance(r, str) and len(r) == size for r in rows)
    text = "".join(rows)
    assert set(text) <= LEGEND
    assert text.count("S") == 1 and text.count("G") == 1
    assert all(c == "#" for c in rows[0] + rows[-1] + "".join(r[0] + r[-1] for r in rows))
    assert rt.is_solvable(rows)


def test_is_solvable_detects_blocked_levels():
    assert rt.is_solvable(["#####", "#S.G#", "#####"])
    assert not rt.is_solvable(["#####", "#S#G#", "#####"])
    assert not rt.is_solvable(["#####", "#S.S#", "#G..#", "#####"])


@pytest.mark.parametrize("table_kind", ["random_walk", "greedy_right"])
def test_builder_is_solvable_even_with_a_bad_policy(table_kind):
    # a policy that always walks right needs the BFS fallback; levels must still be solvable
    table = None
    if table_kind == "greedy_right":
        table = np.zeros((rt.N_STATES, rt.N_ACTIONS))
        table[:, 0] = 1.0
    for seed in range(40):
        size = 6 + seed % 20
        rows, info = rt.build_level(table, size, (seed % 5) / 4, np.random.default_rng(seed))
        check_level(rows, size)
        assert info["route_length"] >= 1


# ------------------------------------------------------------------------------ shipped model
@pytest.fixture(scope="module")
def shipped(exported_dir):
    require_kind("level")
    return exported_dir


def test_shipped_levels_are_valid_and_solvable(shipped):
    for size in (6, 7, 8, 16, 32, 64):
        for seed in range(12):
            d = seed / 11
            rows = runtime.generate("level", seed=seed, models_dir=shipped, size=size,
                                    difficulty=d)
            check_level(rows, size)


def test_shipped_defaults_and_determinism(shipped):
    a = runtime.generate("level", seed=5, models_dir=shipped)
    assert len(a) == rt.OPTIONS["size"]
    assert a == runtime.generate("level", seed=5, models_dir=shipped)
    others = {"\n".join(runtime.generate("level", seed=s, models_dir=shipped)) for s in range(30)}
    assert len(others) == 30
    assert runtime.generate("level", seed=None, models_dir=shipped) is not None


def test_difficulty_lengthens_routes_and_adds_hazards(shipped):
    table = rt.q_table(shipped)
    route, hazards = [], []
    for d in (0.0, 0.5, 1.0):
        infos = [rt.build_level(table, 24, d, np.random.default_rng(s)) for s in range(60)]
        route.append(np.mean([i["route_length"] for _, i in infos]))
        hazards.append(np.mean([sum(r.count("^") for r in rows) for rows, _ in infos]))
    assert route[0] < route[1] < route[2], route
    assert hazards[0] == 0 < hazards[1] < hazards[2], hazards


def test_learned_policy_needs_far_fewer_fallbacks_than_random_walk(shipped):
    table = rt.q_table(shipped)
    rl = [rt.build_level(table, 16, 0.5, np.random.default_rng(s))[1] for s in range(100)]
    rw = [rt.build_level(None, 16, 0.5, np.random.default_rng(s))[1] for s in range(100)]

    def rate(infos):
        return sum(i["fallbacks"] for i in infos) / sum(i["segments"] for i in infos)
    assert rate(rl) < 0.15 and rate(rw) > 0.5
    assert np.mean([i["walk_length"] for i in rl]) < 0.5 * np.mean([i["walk_length"] for i in rw])


@pytest.mark.parametrize("opts", [
    {"size": 5}, {"size": 65}, {"size": 16.0}, {"size": "16"}, {"size": True}, {"size": None},
    {"difficulty": -0.1}, {"difficulty": 1.01}, {"difficulty": float("nan")},
    {"difficulty": "hard"}, {"difficulty": True}, {"width": 10},
])
def test_bad_options_raise_value_error(shipped, opts):
    with pytest.raises(ValueError) as err:
        runtime.generate("level", seed=0, models_dir=shipped, **opts)
    assert next(iter(opts)) in str(err.value)


def test_int8_is_refused_with_value_error(shipped):
    with pytest.raises(ValueError, match="int8"):
        runtime.generate("level", seed=0, models_dir=shipped, precision="int8")


def test_shipped_metrics_meet_the_targets(shipped):
    m = runtime.info("level", models_dir=shipped)["metrics"]
    assert m, "no metrics stored"
    for size in ("8", "16", "32"):
        rl = m["rl"][size]
        assert rl["solvable_pct"] == 100.0 and rl["unique_pct"] >= 99.0
        assert rl["route_monotone"]
        assert m["baseline_random_walk"][size]["solvable_pct"] == 100.0


# ------------------------------------------------------------------------------ end to end
@pytest.mark.tf
@pytest.mark.slow
def test_quick_profile_trains_exports_evaluates_and_generates(tmp_path):
    from trainer import level as tr

    cfg = tr.PROFILES["quick"]
    work, out = tmp_path / "work", tmp_path / "out"
    tr.train(cfg, work)
    assert (work / "learning_curve.png").exists() and (work / "q.npy").exists()
    tr.train(cfg, work)                          # resumes: nothing left to do, same table
    tr.export(cfg, work, out)
    metrics = tr.evaluate(cfg, work, out)
    assert metrics["training"]["final_return"] > metrics["training"]["first_return"]
    for size in map(str, cfg.eval_sizes):
        assert metrics["rl"][size]["solvable_pct"] == 100.0
        assert metrics["rl"][size]["route_monotone"]
    rows = runtime.generate("level", seed=3, models_dir=out, size=20, difficulty=0.9)
    check_level(rows, 20)
    # the exported table is the trained one
    np.testing.assert_allclose(rt.q_table(out), np.load(work / "q.npy"), rtol=1e-6, atol=1e-5)
    # a damaged model is a ModelError, not an onnxruntime traceback
    from trainer.export import read_manifest

    onnx_file = out / read_manifest(out)["models"]["level"]["files"]["q"]["file"]
    onnx_file.write_bytes(onnx_file.read_bytes()[:-10])
    from runtime import registry

    registry.clear_cache()
    with pytest.raises(runtime.ModelError):
        runtime.generate("level", seed=3, models_dir=out)
