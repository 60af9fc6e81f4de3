"""Release gates of the shipped image model: the metrics its evaluation stored in the manifest
(``python -m trainer eval image``) meet the image kind's targets. They read numbers, so they can
only fail after a re-export or re-evaluation; the behaviour tests are in tests/test_image.py."""
import math

import pytest

import runtime


@pytest.fixture(scope="module")
def metrics(exported_dir):
    if "image" not in runtime.available(exported_dir):
        pytest.skip("no shipped image model")
    found = runtime.info("image", exported_dir)["metrics"]
    assert found, "image metrics missing from the manifest: python -m trainer eval image"
    return found


def test_release_gate_classes_covered_and_recognisable(metrics):
    g0 = metrics["generator_quality_0"]
    assert g0["min_class_share"] >= 0.04 and g0["confidence"] >= 0.8
    assert g0["label_accuracy"] >= 0.9                  # the digit option works


def test_release_gate_quality_one_beats_plain_sampling(metrics):
    """quality=1: clearly more confident, every class still >= 4%, and a Frechet distance
    lower by more than the spread of independent draws."""
    g0, g1 = metrics["generator_quality_0"], metrics["generator_quality_1"]
    assert g1["confidence"] > g0["confidence"] + 0.005
    assert g1["label_accuracy"] >= g0["label_accuracy"]
    assert g1["min_class_share"] >= 0.04
    for key, gain in (("frechet_distance", g0["frechet_distance"] - g1["frechet_distance"]),
                      ("confidence", g1["confidence"] - g0["confidence"])):
        spread = math.hypot(g0[f"{key}_std"], g1[f"{key}_std"])
        assert gain > spread, f"quality=1 {key} gain {gain:.4f} within the draws' {spread:.4f}"


def test_release_gate_far_better_than_untrained(metrics):
    assert metrics["generator_quality_0"]["frechet_distance"] \
        < metrics["untrained_generator"]["frechet_distance"] / 5


def test_release_gate_int8_close_to_fp32(metrics, exported_dir):
    """The int8 variant ships only while its FD is within the fp32 FD + the draws' spread and
    its confidence and label accuracy within 0.01 of fp32."""
    if "generator_int8" not in runtime.info("image", exported_dir)["files"]:
        pytest.skip("no int8 image generator shipped")
    for q in ("0", "1"):
        fp32, int8 = metrics[f"generator_quality_{q}"], metrics[f"generator_int8_quality_{q}"]
        assert int8["frechet_distance"] <= fp32["frechet_distance"] \
            + fp32["frechet_distance_std"] + int8["frechet_distance_std"]
        assert int8["confidence"] >= fp32["confidence"] - 0.01
        assert int8["label_accuracy"] >= fp32["label_accuracy"] - 0.01


def test_release_gate_targets_hold_at_the_default_precision(metrics, exported_dir):
    """precision="auto" serves the manifest's default_precision: its own rows meet the
    targets (the int8 rows where int8 is the default)."""
    default = runtime.info("image", exported_dir).get("default_precision", "fp32")
    targets = metrics["targets_int8" if default == "int8" else "targets"]
    assert targets and all(targets.values()), targets
