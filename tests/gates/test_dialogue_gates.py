"""Release gates for the shipped dialogue model: the manifest's metrics meet issue 18's targets.

The metrics are written by ``python -m trainer train dialogue --profile full`` (evaluation:
``trainer.dialogue_eval``); these tests read them, they do not re-run the evaluation.
"""
from __future__ import annotations

import pytest

from tests.conftest import require_kind
from trainer.dialogue_goals import GOAL_TYPES


@pytest.fixture(scope="module")
def metrics(exported_dir):
    require_kind("dialogue")
    import runtime

    return runtime.info("dialogue", exported_dir)["metrics"]


def test_release_gate_heldout_phrasings_success_and_clean(metrics):
    """Scripted users with phrasings not in the training bank, over every goal type."""
    held = metrics["dqn"]["heldout_0.0"]
    assert held["success_rate"] >= 0.90
    assert held["clean_rate"] >= 0.75
    assert set(held["by_goal"]) == set(GOAL_TYPES)


def test_release_gate_hand_written_conversations(metrics):
    scripts = metrics["scripts"]
    assert scripts["conversations"] >= 40
    assert scripts["success_rate"] >= 0.90
    assert scripts["clean_rate"] >= 0.75


def test_release_gate_dqn_beats_the_best_rule_policy_at_20_percent_noise(metrics):
    dqn = metrics["dqn"]["noise_0.2"]
    best = max((metrics[p]["noise_0.2"] for p in ("rule", "rule_confirm")),
               key=lambda m: m["success_rate"])
    assert dqn["success_rate"] > best["success_rate"]
    assert dqn["mean_turns"] <= best["mean_turns"]
    assert dqn["success_rate"] > metrics["random"]["noise_0.2"]["success_rate"] + 0.5


def test_release_gate_int8_within_one_point_of_fp32(metrics):
    if "dqn_int8" not in metrics:
        pytest.skip("no int8 variant shipped")
    for setting, fp32 in metrics["dqn"].items():
        assert abs(metrics["dqn_int8"][setting]["success_rate"] - fp32["success_rate"]) <= 0.01
