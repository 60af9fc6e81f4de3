"""Release gates for the shipped dialogue model: the manifest's metrics meet the dialogue targets.

The metrics are written by ``python -m trainer train dialogue --profile full`` (evaluation:
``trainer.dialogue_eval``); these tests read them, they do not re-run the evaluation. An unmet
target is marked ``xfail(strict=True)`` with the measured figures.
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


def _paired_best(metrics):
    best = metrics["target"]["best_rule_at_0.2"]
    return metrics["paired_noise_0.2"][best]


SHORT = ("on 10,000 paired users at 20% typos the DQN succeeds in 0.9924 against 0.9938 for the "
         "best rule, `rule_tuned`, which reads every booking back (tuned on training users, and "
         "the DQN's demonstrator): difference -0.0014, standard error 0.0005 (8 users only the "
         "DQN serves, 22 only the rule); it skips the read-back of most booking changes, and "
         "some of those are wrong. The rule's own failures are misreadings the belief does not "
         "show (a misread correction after 'yes, but', a rejection not understood); "
         "catching them needs better understanding, which would help the rule too")


@pytest.mark.xfail(strict=True, reason=SHORT)
def test_release_gate_dqn_beats_the_best_rule_policy_at_20_percent_noise_on_success(metrics):
    """Paired over the same simulated users: more successes by over two standard errors."""
    p = _paired_best(metrics)
    assert p["dqn_minus_rule_success"] > 2 * p["success_se"]


def test_release_gate_dqn_beats_the_best_rule_policy_at_20_percent_noise_on_turns(metrics):
    """Measured: 6.500 against 6.569 system turns, difference -0.069 (standard error 0.005)."""
    p = _paired_best(metrics)
    assert p["dqn_minus_rule_turns"] < -2 * p["turns_se"]
    assert metrics["dqn"]["noise_0.2"]["success_rate"] \
        > metrics["random"]["noise_0.2"]["success_rate"] + 0.5


def test_the_tuned_rule_was_tuned_on_training_users(metrics):
    tuning = metrics["rule_tuning"]
    assert tuning["seed"] not in (7, 11) and tuning["noise"] == [0.0, 0.3]
    assert set(tuning["params"]) == {"threshold", "booking_threshold", "sloppy", "recheck",
                                     "readback", "readback_sloppy"}


def test_release_gate_int8_within_one_point_of_fp32(metrics):
    if "dqn_int8" not in metrics:
        pytest.skip("no int8 variant shipped")
    for setting, fp32 in metrics["dqn"].items():
        assert abs(metrics["dqn_int8"][setting]["success_rate"] - fp32["success_rate"]) <= 0.01
