"""Tests for generate("level"): the C editor against its pure-Python twin (bit-exact), the level
metrics on hand-made levels (C and Python), the editor's invariants under any policy, the
shipped model (legend, solvability, determinism, targets, options, files) and a quick profile
trained, exported, evaluated and served end to end (marked tf)."""
from __future__ import annotations

import numpy as np
import pytest

import runtime
from runtime import level as rt
from runtime import level_env as rules
from tests.conftest import require_kind

pytest.importorskip("fastcore.level_env", reason="fastcore is not built "
                    "(python setup.py build_ext --inplace)")
from fastcore import reference  # noqa: E402
from fastcore import reference_level as twins  # noqa: E402
from fastcore.level_env import LevelEnv, measure_tiles, train_level_agent  # noqa: E402

LEGEND = set("#.SG^$")


# ------------------------------------------------------------------------------ fastcore
@pytest.mark.parametrize("seed", [0, 7, 2**63 + 5])
@pytest.mark.parametrize("sizes", [(8, 12), (7, 64)])
def test_env_matches_twin_exactly(seed, sizes):
    kw = dict(size_min=sizes[0], size_max=sizes[1])
    c = LevelEnv(**kw).rollout(3000, seed)
    p = twins.rollout(twins.LevelEnvPy(**kw), 3000, reference.SplitMix64(seed))
    for name, a, b in zip(("states", "actions", "rewards", "dones"), c, p):
        assert np.array_equal(a, b), name
    assert c[3].sum() >= 1 and c[0].max() < rules.N_STATES


def test_training_matches_twin_and_learns():
    kw = dict(alpha=0.2, gamma=0.98, epsilon=0.3, seed=11, size_min=8, size_max=10)
    q_c, st_c = train_level_agent(40, **kw)
    q_p, st_p = twins.train_level_agent(40, **kw)
    assert np.array_equal(q_c, q_p)
    assert np.array_equal(st_c["returns"], st_p["returns"])
    q, st = train_level_agent(3000, **{**kw, "epsilon": 0.2})
    r = st["returns"]
    assert r[-500:].mean() > r[:500].mean() + 0.3


def test_action_masks_match_and_leave_out_only_refused_actions():
    """The state masks are the same in C and Python, and every left-out action is one the
    editor refuses (a bump that changes nothing) in every situation seen."""
    from fastcore.level_env import action_masks
    from trainer.level_baselines import random_policy

    masks = rules.state_masks()
    assert list(action_masks()) == masks and all(masks)
    seen = 0
    for seed in range(40):
        size = 8 + seed
        draws, act, ed = rt._Draws(np.random.default_rng(seed)), random_policy(), rules.Editor()
        state, done = ed.start(size, rt.design_targets(size, (seed % 5) / 4), draws), False
        while not done:
            before = (bytes(ed.tiles), ed.pos, ed.phase, ed.blen, ed.treasures)
            for a in range(rules.N_ACTIONS):
                if not masks[state] >> a & 1:
                    probe = rules.Editor.__new__(rules.Editor)
                    probe.__dict__ = {k: (v.copy() if hasattr(v, "copy") else v)
                                      for k, v in ed.__dict__.items()}
                    assert probe._act(a) == rules.BUMP_REWARD - rules.STEP_REWARD
                    assert (bytes(probe.tiles), probe.pos, probe.phase, probe.blen,
                            probe.treasures) == before
                    seen += 1
            state, _, done = ed.step(act(ed, draws))
    assert seen > 1000


def test_empty_branches_cannot_loop():
    """A table that always prefers ``mark`` (or ``treasure``) once re-drew the branch root
    without carving until phase C's budget ran out (16x16, difficulty 0: floor 0.043, levels
    repeated). Now ``mark`` and ``treasure`` are refused on an empty branch and masked out of
    the sampling: the floor target is met, every level differs, and treasure stays capped."""
    from bisect import bisect_right

    for prefer in (4, 6):
        q = np.zeros((rules.N_STATES, rules.N_ACTIONS))
        q[:, prefer] = 1.0
        cum = rt.cumulative_policy(q, 0.02)
        levels = []
        for seed in range(30):
            tg = rt.design_targets(16, 0.0)
            ed = rt.run_editor(lambda s, d: bisect_right(cum[s], d.uniform()), 16, tg,
                               rt._Draws(np.random.default_rng(seed)))
            level = rt.make_level(ed)
            check_level(level, 16)
            assert level.achieved["floor_share"] >= tg[4], (prefer, seed)
            assert level.achieved["treasure"] <= tg[3]
            levels.append("".join(level))
        assert len(set(levels)) == len(levels)


def test_env_validation():
    with pytest.raises(ValueError, match="size_min"):
        LevelEnv(size_min=6)
    with pytest.raises(ValueError, match="size_min"):
        LevelEnv(size_min=30, size_max=20)


# ------------------------------------------------------------------------------ metrics
RING = ["#########",
        "#S......#",
        "#.#####.#",
        "#.#####^#",
        "#.#####.#",
        "#.#####.#",
        "#..$...G#",
        "#########",
        "#########"]
CORRIDOR = ["#########",
            "#S.^...##",
            "#####.###",
            "#####.###",
            "###$..###",
            "#####.###",
            "#####..G#",
            "#########",
            "#########"]


def _measure_both(rows):
    tiles, n, s, g = rules.parse_rows(rows)
    py = rules.measure(tiles, n, s, g)
    c = measure_tiles(np.frombuffer(bytes(tiles), np.uint8).reshape(n, n), s, g)
    assert py == c
    return dict(zip(rules.METRIC_NAMES, py))


def test_metrics_of_a_ring_level():
    m = _measure_both(RING)
    assert m["path_length"] == 11 and m["routes"] == 2
    assert m["hazards"] == 1 and m["hazards_forced"] == 0 and m["hazard_free_route"] == 1
    # both routes are shortest paths: the treasure on the left one is on a shortest path
    assert m["treasure"] == 1 and m["treasure_off_route"] == 0
    assert m["unreachable_floor"] == 0 and m["regions"] == 1


def test_metrics_of_a_corridor_level():
    m = _measure_both(CORRIDOR)
    assert m["path_length"] == 11 and m["routes"] == 1
    assert m["hazards_forced"] == 1 and m["hazard_free_route"] == 0
    assert m["treasure_off_route"] == 1            # the dead end to the left
    cut = [r.replace("S.^", "S#^") for r in CORRIDOR]
    m = _measure_both(cut)
    assert m["path_length"] == -1 and m["unreachable_floor"] > 0 and m["regions"] == 2


def test_c_and_python_metrics_agree_on_edited_levels():
    from trainer.level_baselines import random_valid_policy

    for seed in range(30):
        size = 8 + seed
        draws = rt._Draws(np.random.default_rng(seed))
        act = random_valid_policy()
        ed = rules.Editor()
        ed.start(size, rt.design_targets(size, (seed % 5) / 4), draws)
        done = False
        while not done:
            _, _, done = ed.step(act(ed, draws))
        tiles = np.frombuffer(bytes(ed.tiles), np.uint8).reshape(size, size)
        assert measure_tiles(tiles, ed.jt(ed.s), ed.jt(ed.g)) == ed.final


def test_reach_is_the_bfs_distance_from_s_through_uncarved_junctions():
    """The observation's BFS (bit-parallel, stopping early) against a plain BFS."""
    from collections import deque

    from trainer.level_baselines import random_valid_policy

    checked = 0
    for seed in range(12):
        size = 9 + 3 * seed
        draws = rt._Draws(np.random.default_rng(seed))
        act, ed = random_valid_policy(), rules.Editor()
        ed.start(size, rt.design_targets(size, 1.0), draws)
        done = False
        while not done:
            if ed.phase in (rules.PHASE_A, rules.PHASE_B):
                dist = {x: 1 for x in ed.nbrs[ed.s] if not ed.carved[x]}
                queue = deque(dist)
                while queue:
                    c = queue.popleft()
                    for x in ed.nbrs[c]:
                        if not ed.carved[x] and x not in dist:
                            dist[x] = dist[c] + 1
                            queue.append(x)
                want = [None if link is None or ed.carved[link[0]] else dist.get(link[0], -1)
                        for link in ed.links[ed.pos]]
                assert ed._reach() == want
                checked += 1
            _, _, done = ed.step(act(ed, draws))
    assert checked > 100


@pytest.mark.parametrize("policy", ["random", "heuristic"])
def test_any_policy_gives_a_solvable_single_region_level(policy):
    from trainer import level_baselines as base

    make = base.random_policy if policy == "random" else base.heuristic_policy
    for seed in range(20):
        size = 8 + 3 * seed % 40
        draws = rt._Draws(np.random.default_rng(seed))
        act = make()
        ed = rules.Editor()
        ed.start(size, rt.design_targets(size, seed / 19), draws)
        done = False
        while not done:
            _, _, done = ed.step(act(ed, draws))
        level = rt.make_level(ed)
        check_level(level, size)
        assert level.achieved["unreachable_floor"] == 0 and level.achieved["regions"] == 1


def check_level(rows, size):
    assert isinstance(rows, list) and len(rows) == size
    assert all(isinstance(r, str) and len(r) == size for r in rows)
    text = "".join(rows)
    assert set(text) <= LEGEND
    assert text.count("S") == 1 and text.count("G") == 1
    assert rt.is_solvable(rows)
    assert set(rows[0]) == {"#"} and set(rows[-1]) == {"#"}


# ------------------------------------------------------------------------------ shipped model
@pytest.fixture(scope="module")
def shipped(exported_dir):
    require_kind("level")
    return exported_dir


def test_shipped_levels_are_valid_typed_and_deterministic(shipped):
    for size in (8, 16, 33):
        for seed in range(4):
            level = runtime.generate("level", seed=seed, models_dir=shipped, size=size,
                                     difficulty=seed / 3)
            check_level(level, size)
            assert isinstance(level, rt.Level) and rt.Level.suffix == ".txt"
            assert level.achieved["path_length"] == rules.measure(
                *rules.parse_rows(level))[0]
            assert level == runtime.generate("level", seed=seed, models_dir=shipped,
                                             size=size, difficulty=seed / 3)
    a = runtime.generate("level", seed=1, models_dir=shipped)
    assert len(a) == 16 and a.targets["path_length"] == 2 * rules.targets(7, 0.5)[0]
    assert a != runtime.generate("level", seed=2, models_dir=shipped)


def test_difficulty_lengthens_paths_and_adds_hazards(shipped):
    def mean(key, d):
        return np.mean([runtime.generate("level", seed=s, models_dir=shipped, size=20,
                                         difficulty=d).achieved[key] for s in range(15)])
    assert mean("path_length", 0.0) < mean("path_length", 0.5) < mean("path_length", 1.0)
    assert mean("hazards", 0.0) < mean("hazards", 1.0)


def test_explicit_path_length_is_followed(shipped):
    def lengths(want):
        out = []
        for seed in range(20):
            level = runtime.generate("level", seed=seed, models_dir=shipped, size=24,
                                     path_length=want)
            assert level.targets["path_length"] == want
            out.append(level.achieved["path_length"])
        return np.array(out)
    short, long = lengths(12), lengths(36)
    assert np.median(long) > 2 * np.median(short)
    assert np.mean(np.abs(long - 36) <= 0.2 * 36) >= 0.5
    assert np.mean(np.abs(short - 12) <= 0.2 * 12) >= 0.5


@pytest.mark.parametrize("opts, name", [
    ({"size": 7}, "size"), ({"size": 65}, "size"), ({"size": "16"}, "size"),
    ({"difficulty": 1.5}, "difficulty"), ({"difficulty": float("nan")}, "difficulty"),
    ({"path_length": 1}, "path_length"), ({"size": 16, "path_length": 40}, "path_length"),
    ({"routes": 3}, "routes"), ({"hazards": -1}, "hazards"), ({"colour": 1}, "colour")])
def test_bad_options_raise_value_error_naming_the_option(shipped, opts, name):
    with pytest.raises(ValueError, match=name):
        runtime.generate("level", seed=0, models_dir=shipped, **opts)


def test_save_writes_text_and_png(shipped, tmp_path):
    level = runtime.generate("level", seed=5, models_dir=shipped, size=16)
    line = level.save(tmp_path / "a.txt")
    assert "\n" not in line and "path" in line
    assert (tmp_path / "a.txt").read_text().split() == list(level)
    pytest.importorskip("PIL")
    from PIL import Image

    level.save(tmp_path / "a.png")
    img = Image.open(tmp_path / "a.png")
    assert img.size == (16 * 12, 16 * 12)
    pixels = np.asarray(img.convert("RGB"))
    y, x = divmod("".join(level).index("S"), 16)
    assert tuple(pixels[y * 12 + 5, x * 12 + 5]) == (60, 170, 75)


def test_model_reads_the_table_once(shipped):
    with runtime.load("level", models_dir=shipped) as model:
        a = model.policy()
        model.generate(seed=0)
        assert model.policy() is a
        assert model.q_table("q", rules.N_STATES).shape == (rules.N_STATES, rules.N_ACTIONS)


def test_int8_is_refused_with_value_error(shipped):
    with pytest.raises(ValueError, match="int8"):
        runtime.generate("level", seed=0, models_dir=shipped, precision="int8")


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
    for cell in metrics["targets"].values():
        assert cell["solvable_pct"] == 100.0 and cell["unreachable_floor_max"] == 0
    abl = metrics["ablation"]
    assert abl["learned (shipped table)"]["target_score"] > abl["random_actions"]["target_score"]
    level = runtime.generate("level", seed=3, models_dir=out, size=20, difficulty=0.9)
    check_level(level, 20)
    with runtime.load("level", models_dir=out) as model:
        np.testing.assert_allclose(model.q_table("q", rules.N_STATES), np.load(work / "q.npy"),
                                   rtol=1e-6, atol=1e-5)
    from trainer.export import read_manifest

    onnx_file = out / read_manifest(out)["models"]["level"]["files"]["q"]["file"]
    onnx_file.write_bytes(onnx_file.read_bytes()[:-10])
    runtime.release()                            # generate() keeps models loaded
    with pytest.raises(runtime.ModelError, match=onnx_file.name):
        runtime.generate("level", seed=3, models_dir=out)
