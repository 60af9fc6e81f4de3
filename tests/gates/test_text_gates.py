"""Release gates of the shipped text model: the metrics its evaluation stored in the manifest
(``python -m trainer eval text``) meet the text targets. They read numbers, so they can
only change after a re-export or re-evaluation; the behaviour tests are in tests/test_text.py."""
import pytest

import runtime


@pytest.fixture(scope="module")
def metrics(exported_dir):
    if "text" not in runtime.available(exported_dir):
        pytest.skip("no shipped text model")
    found = runtime.info("text", exported_dir)["metrics"]
    assert found and "heldout_bits_per_char" in found, \
        "text metrics missing or stale: python -m trainer eval text"
    return found


def test_release_gate_bpc_at_most_0_9x_kneser_ney_10gram(metrics):
    bpc = metrics["heldout_bits_per_char"]
    assert bpc["tuned"] <= 0.9 * bpc["baseline_kneser_ney_10gram"]


def test_release_gate_exported_models_match_tensorflow(metrics):
    bpc = metrics["heldout_bits_per_char"]
    assert abs(bpc["onnx_fp32"] - bpc["tuned"]) < 0.005
    assert abs(bpc["onnx_int8"] - bpc["onnx_fp32"]) < 0.05


def test_release_gate_tuning_keeps_bpc(metrics):
    assert abs(metrics["bpc_change_from_tuning"]) <= 0.1


def test_release_gate_tuning_fools_the_judge_more(metrics):
    """At the runtime's default temperature, the sampler the tuning optimises."""
    assert metrics["judge_roc_auc"]["tuned"] < metrics["judge_roc_auc"]["mle"]
    assert metrics["samples_runtime_default"]["temperature"] == 0.8
