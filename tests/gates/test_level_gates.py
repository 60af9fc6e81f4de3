"""Release gates of the shipped level model: the metrics its evaluation stored in the manifest
(``python -m trainer eval level``) meet the level targets. They read numbers, so they can
only fail after a re-export or re-evaluation; the behaviour tests are in tests/test_level.py."""
import pytest

import runtime

CELLS = [f"{size}/{d}" for size in (16, 32) for d in ("0.5", "1")]


@pytest.fixture(scope="module")
def metrics(exported_dir):
    if "level" not in runtime.available(exported_dir):
        pytest.skip("no shipped level model")
    found = runtime.info("level", exported_dir)["metrics"]
    assert found, "level metrics missing from the manifest: python -m trainer eval level"
    return found


def test_release_gate_every_level_solvable_and_unique(metrics):
    assert metrics["levels_per_cell"] >= 200
    for cell in CELLS:
        t = metrics["targets"][cell]
        assert t["solvable_pct"] == 100.0 and t["unique_pct"] == 100.0, cell
        assert t["unreachable_floor_max"] == 0, cell


def test_release_gate_difficulty_0_has_no_stuck_levels(metrics):
    """Difficulty 0 is outside the target cells, but an editor stuck in phase C (empty
    branches re-drawn until the budget ran out) left 5 of 200 levels at 16x16 with a floor
    share of 0.043, identical up to the start: every level differs and meets its floor."""
    for size in (16, 32):
        t = metrics["targets"][f"{size}/0"]
        assert t["solvable_pct"] == 100.0 and t["unique_pct"] == 100.0, size
        assert t["floor_share_min"] >= 0.28, size


def test_release_gate_routes_hazards_treasure_floor(metrics):
    for cell in CELLS:
        t = metrics["targets"][cell]
        assert t["hazards_forced_pct"] <= 50.0, cell
        assert t["treasure_pct"] >= 70.0, cell
        assert t["floor_share_mean"] >= 0.25, cell
    for size in (16, 32):
        assert metrics["targets"][f"{size}/1"]["second_route_pct"] >= 40.0


def test_release_gate_path_and_hazards_grow_with_difficulty(metrics):
    for size in (16, 32):
        lo, hi = metrics["targets"][f"{size}/0.5"], metrics["targets"][f"{size}/1"]
        assert hi["path_length_mean"] > lo["path_length_mean"]
        assert hi["hazards_per_level"] > lo["hazards_per_level"]


def test_release_gate_requested_path_length_is_met(metrics):
    for size in ("16", "32"):
        assert metrics["controllability"][size]["within_20pct_pct"] >= 80.0


def _beats(metrics, name) -> bool:
    """The learned policy's target score (mean over training seeds) is above ``name``'s by more
    than both spreads."""
    abl = metrics["ablation"]
    learned, base = abl["learned, all training seeds"], abl[name]
    spread = learned["target_score_std_over_seeds"] or 0.0
    return learned["target_score_mean"] > base["target_score"] + spread \
        + base["target_score_std_over_seed_blocks"]


def test_release_gate_learned_policy_beats_random_edits(metrics):
    assert _beats(metrics, "random_valid_edits") and _beats(metrics, "random_actions")


def test_release_gate_learned_policy_beats_the_heuristic(metrics):
    assert _beats(metrics, "heuristic")


def test_release_gate_generation_fast_enough(metrics):
    assert metrics["targets"]["32/1"]["generate_cpu_ms_p50"] <= 5.0
