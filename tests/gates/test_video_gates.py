"""Release gates of the shipped video model: the metrics its evaluation stored in the manifest
(``python -m trainer eval video``) meet the video kind's targets. They read numbers, so they can
only fail after a re-export or re-evaluation; the behaviour tests are in tests/test_video.py."""
import pytest

import runtime


@pytest.fixture(scope="module")
def metrics(exported_dir):
    if "video" not in runtime.available(exported_dir):
        pytest.skip("no shipped video model")
    found = runtime.info("video", exported_dir)["metrics"]
    assert found, "video metrics missing from the manifest: python -m trainer eval video"
    return found


def test_release_gate_digits_move_like_real_clips(metrics):
    g, real = metrics["generated_1digit"], metrics["real_clips_1digit"]
    copy = metrics["copy_last_frame_1digit"]
    assert g["mean_centroid_displacement_px"] >= 0.5 * real["mean_centroid_displacement_px"]
    assert 0.5 <= g["mean_abs_pixel_change"] / real["mean_abs_pixel_change"] <= 2.0
    assert g["mean_centroid_displacement_px"] > copy["mean_centroid_displacement_px"] + 0.5


def test_release_gate_beats_copying_the_last_frame(metrics):
    """Next-frame prediction from real contexts of held-out digits: lower L1 than repeating
    the last frame (the strongest simple baseline)."""
    p = metrics["prediction_from_real_context"]
    assert p["l1_model_mean"] < p["l1_copy_last_frame_mean"]


def test_release_gate_digit_stays_recognisable_and_inked(metrics):
    g = metrics["generated_1digit"]
    assert g["class_agreement_with_first_frame"] >= 0.8
    assert 0.8 <= g["ink_last_over_first"] <= 1.3
