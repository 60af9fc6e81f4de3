"""Tests for generate("video"): runtime behaviour on the shipped models, the opening-frame
physics, and a tiny next-frame GAN trained, exported and rolled out end to end (marked tf)."""
from __future__ import annotations

import numpy as np
import pytest

import runtime
from runtime import video as rvideo


@pytest.fixture(scope="module")
def models(exported_dir):
    have = runtime.available(exported_dir)
    if "video" not in have or "image" not in have:
        pytest.skip("no 'video' (and 'image') model in exported/ yet "
                    "(python -m trainer train image; python -m trainer train video)")
    return exported_dir


def _centroid(frame: np.ndarray) -> np.ndarray:
    ink = frame.astype(np.float64)
    ys, xs = np.indices(ink.shape)
    return np.array([(ink * ys).sum(), (ink * xs).sum()]) / max(ink.sum(), 1e-9)


def test_shape_dtype(models):
    v = runtime.generate("video", seed=1, models_dir=models)
    assert isinstance(v, np.ndarray) and v.dtype == np.uint8 and v.shape == (16, 48, 48)
    assert runtime.generate("video", frames=1, seed=1, models_dir=models).shape == (1, 48, 48)
    assert runtime.generate("video", frames=5, digits=2, seed=1, models_dir=models).shape == \
        (5, 48, 48)


def test_determinism_by_seed(models):
    a = runtime.generate("video", frames=10, seed=7, models_dir=models)
    b = runtime.generate("video", frames=10, seed=7, models_dir=models)
    c = runtime.generate("video", frames=10, seed=8, models_dir=models)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_prefix_consistency(models):
    """A longer clip with the same seed starts with the shorter clip."""
    a = runtime.generate("video", frames=6, seed=11, models_dir=models)
    b = runtime.generate("video", frames=12, seed=11, models_dir=models)
    np.testing.assert_array_equal(a, b[:6])


def test_digit_moves_and_persists(models):
    """Over 16 frames the digit moves smoothly and keeps its ink: the step model copies pixels
    (no blur, no fade), so the ink stays near the first frame's."""
    ratios, steps = [], []
    for seed in range(12):
        v = runtime.generate("video", frames=16, seed=seed, models_dir=models)
        cen = np.array([_centroid(f) for f in v])
        steps.append(np.linalg.norm(np.diff(cen, axis=0), axis=1))
        ink = v.reshape(len(v), -1).astype(np.float64).sum(1)
        ratios.append(ink[-1] / ink[0])
    steps = np.concatenate(steps)
    assert steps.mean() > 1.0                     # it moves (real clips: ~2 px/frame)
    assert np.percentile(steps, 95) < 6           # smoothly, no teleporting
    assert 0.8 < np.mean(ratios) < 1.3            # neither fades nor smears (real: 1.0)


def test_opening_digits_are_the_ones_the_class_head_accepts(models):
    """quality > 0: each opening digit is the first draw the image classifier (class head)
    reads as its class with p >= 0.99 (else the most confident of K); quality 0: plain draws."""
    from tests.test_image import run_in_chunks

    model = runtime.load("video", models_dir=models)
    rule = model.images().rule()
    clf = model.images().session("classifier")
    rng = np.random.default_rng(3)
    labels = np.random.default_rng(3).integers(0, 10, size=12)
    tiles, drawn = model.opening_digits(rng, 12, 0.5)
    np.testing.assert_array_equal(drawn, labels)
    logp = run_in_chunks(clf, tiles, labels.astype(np.int64))
    assert (logp >= rule.log_class_prob).mean() >= 0.9
    plain, _ = model.opening_digits(np.random.default_rng(3), 12, 0.0)
    again, _ = model.opening_digits(np.random.default_rng(3), 12, 0.0)
    np.testing.assert_array_equal(plain, again)
    assert np.abs(plain - tiles).max() > 0.5      # the class head changed some digits
    assert (run_in_chunks(clf, plain, labels.astype(np.int64))
            >= rule.log_class_prob).mean() <= (logp >= rule.log_class_prob).mean()


def test_frames_are_copies_of_the_previous_frame(models):
    """Every pixel of frame t+1 is a pixel of frame t up to 3 px away (or background)."""
    v = runtime.generate("video", frames=8, seed=2, models_dir=models).astype(np.int16)
    for prev, nxt in zip(v[1:-1], v[2:]):
        pad = np.pad(prev, 3, constant_values=0)
        shifted = np.stack([pad[dy:dy + 48, dx:dx + 48] for dy in range(7) for dx in range(7)])
        assert (np.abs(shifted - nxt[None]) <= 1).any(0).all()   # uint8 rounding


@pytest.mark.parametrize("opts", [
    {"frames": 0}, {"frames": 257}, {"frames": 3.0}, {"frames": "8"}, {"frames": True},
    {"frames": None}, {"digits": 0}, {"digits": 3}, {"digits": 1.5},
    {"n": 4}, {"quality": 1.5}, {"quality": -0.1}, {"quality": "high"},
])
def test_bad_options_raise_value_error(models, opts):
    with pytest.raises(ValueError) as info:
        runtime.generate("video", seed=0, models_dir=models, **opts)
    assert next(iter(opts)) in str(info.value)


def test_int8_is_rejected_clearly(models):
    if "step_int8" in runtime.info("video", models)["files"]:
        pytest.skip("an int8 step model ships")
    with pytest.raises(ValueError, match="int8"):
        runtime.generate("video", seed=0, models_dir=models, precision="int8")


PHYSICS = {"canvas": 48, "tile": 28, "ink_threshold": 0.05, "speed_min": 1.0, "speed_max": 3.0}


def test_first_frames_follow_training_physics():
    tile = -np.ones((28, 28), np.float32)
    tile[4:24, 9:17] = 1.0                        # a narrow digit: 20 x 8 ink box
    tile[2, 2] = -0.95                            # a faint speck (ink 0.025) is cleared
    rng = np.random.default_rng(0)
    for _ in range(50):
        f = rvideo.first_frames(rng, tile[None], PHYSICS)
        assert f.shape == (2, 48, 48) and f.dtype == np.float32
        for frame in f:                           # the whole ink box is always visible
            assert (frame > 0).sum() == 160 and (frame == -1).sum() == 48 * 48 - 160
        d = np.linalg.norm(_centroid(f[1] > 0) - _centroid(f[0] > 0))
        assert d <= 3.0 * 2 ** 0.5 + 1e-9         # whole-pixel velocity, components <= 3


def test_bounce_reflects_at_the_visible_ink():
    lo, hi = rvideo.position_range((4, 9, 23, 16), 48)      # ink rows 4..23, cols 9..16
    np.testing.assert_array_equal(lo, [-4, -9])
    np.testing.assert_array_equal(hi, [24, 31])
    pos, v = rvideo.advance(np.array([10, 30]), np.array([0, 3]), lo, hi)
    np.testing.assert_array_equal(pos, [10, 29])             # 30 + 3 = 33 -> 31 - 2
    np.testing.assert_array_equal(v, [0, -3])


def test_motion_labels_reproduce_the_next_frame():
    """The simulator's per-pixel motion classes (the video model's training targets) copy
    frame t-1 into frame t exactly for one digit, bounces included."""
    from trainer.digits import moving_digits

    rng = np.random.default_rng(0)
    tiles = -np.ones((5, 28, 28), np.float32)
    for i, t in enumerate(tiles):
        t[4 + i:20, 6:22 - 2 * i] = rng.uniform(0.0, 1.0, (16 - i, 16 - 2 * i))
    clips, _, flow = moving_digits(tiles, None, 40, 20, rng=rng, n_digits=1, flows=True)
    pad = np.pad(clips, ((0, 0), (0, 0), (3, 3), (3, 3)), constant_values=-1.0)
    ys, xs = np.indices((48, 48))
    bounced = 0
    for t in range(1, 20):
        f = flow[:, t].astype(int)
        labelled = f >= 0
        assert labelled[clips[:, t] > -1].all()                # every ink pixel has a label
        src = pad[np.arange(40)[:, None, None], t - 1, ys + 3 + f // 7 - 3, xs + 3 + f % 7 - 3]
        np.testing.assert_array_equal(src[labelled], clips[:, t][labelled])
        if t > 1:
            bounced += int((flow[:, t] != flow[:, t - 1])[labelled].any())
    assert bounced > 0 and (flow[:, 0] == -1).all()


@pytest.mark.tf
def test_quick_profile_trains_exports_and_rolls_out(tmp_path):
    from trainer import image as timage
    from trainer import video as tvideo
    from trainer.export import read_manifest

    out = tmp_path / "out"
    icfg, vcfg = timage.PROFILES["quick"], tvideo.PROFILES["quick"]
    timage.train(icfg, tmp_path / "image")        # first frames come from the image GAN
    timage.export(icfg, tmp_path / "image", out)
    tvideo.train(vcfg, tmp_path / "video")
    assert (tmp_path / "video" / "learning_curve.png").exists()
    tvideo.export(vcfg, tmp_path / "video", out)
    entry = read_manifest(out)["models"]["video"]
    assert {"step", "physics"} <= set(entry["files"])
    assert entry["parity_max_abs_diff"] <= 1e-4
    # the step model ships as lean_step's graph (checked against TensorFlow at export); its
    # source, tf2onnx's graph, is not left behind
    import onnx

    ops = [n.op_type for n in onnx.load(out / entry["files"]["step"]["file"]).graph.node]
    assert "GatherElements" in ops and not {"GatherND", "Squeeze"} & set(ops)
    # its three decoder layers fold the upsampling into a ConvTranspose of the low input
    assert ops.count("ConvTranspose") == 3 and ops.count("Resize") == 1   # left: the prior's
    assert {p.name for p in out.glob("video-*")} == {f["file"] for f in entry["files"].values()}
    v = runtime.generate("video", frames=7, digits=2, seed=3, models_dir=out)
    assert v.shape == (7, 48, 48) and v.dtype == np.uint8
    np.testing.assert_array_equal(v, runtime.generate("video", frames=7, digits=2, seed=3,
                                                      models_dir=out))
    # the runtime rollout reproduces the TensorFlow step function (tf_functions: what the
    # benchmarks run) fed the same noise
    functions = tvideo.tf_functions(vcfg, tmp_path / "video")
    assert set(functions) == {"step"}
    step, signature = functions["step"]
    assert [s.name for s in signature] == ["context", "noise"]
    start = tvideo.make_pool(vcfg, "test", 2, 2, seed=5)[0]   # real contexts (no arg-max ties)
    onnx_clip = runtime.load("video", models_dir=out).rollout(np.random.default_rng(1), start, 3)
    rng = np.random.default_rng(1)
    ctx = np.transpose(start, (0, 2, 3, 1))
    for t in range(3):
        noise = rng.standard_normal((2, 48, 48, 1), dtype=np.float32)
        nxt = step(ctx, noise).numpy()
        np.testing.assert_allclose(onnx_clip[:, 2 + t], nxt, atol=1e-3)
        ctx = np.stack([ctx[..., 1], nxt], -1)


@pytest.mark.tf
def test_lean_step_refuses_other_graphs(models):
    """lean_step rewrites tf2onnx's step graph only: the shipped (already rewritten) step model
    and the image generator are an ExportError, never a wrong model."""
    onnx = pytest.importorskip("onnx")
    from runtime import registry
    from trainer.export import ExportError
    from trainer.graph_rewrites import lean_step

    for kind, role in (("video", "step"), ("image", "generator")):
        path = registry.resolve(models) / registry.file_entry(kind, role, models)["file"]
        with pytest.raises(ExportError, match="lean_step"):
            lean_step(onnx.load(path), canvas=48, motion_block=2)


def test_old_physics_side_file_is_a_clear_model_error(models, tmp_path, monkeypatch):
    from runtime import registry

    old = {"canvas": 48, "tile": 28, "ink_box": 20, "speed_min": 1.0, "speed_max": 3.0}
    read_json = registry.read_json
    monkeypatch.setattr(registry, "read_json", lambda kind, role, models_dir=None:
                        old if role == "physics" else read_json(kind, role, models_dir))
    with pytest.raises(runtime.ModelError, match="ink_threshold.*re-export video"):
        runtime.load("video", models_dir=models).generate(seed=0)


@pytest.mark.tf
@pytest.mark.parametrize("block", [1, 2])
def test_advect_copies_each_pixel_from_its_blocks_offset(block):
    """The exported (hard) advection and the training (straight-through) one make the same
    frame: pixel p copies the padded frame at p + the arg-max offset of p's block."""
    import tensorflow as tf

    from trainer import video_layers as L

    rng = np.random.default_rng(block)
    frame = rng.uniform(-1, 1, (2, 8, 8, 1)).astype(np.float32)
    logits = rng.normal(size=(2, 8 // block, 8 // block, 9)).astype(np.float32)
    pair = [tf.constant(logits), tf.constant(frame)]
    hard = L.Advect(3, "hard", block)(pair).numpy()[..., 0]
    soft = L.Advect(3, "straight_through", block)(pair).numpy()[..., 0]
    pad = np.pad(frame[..., 0], ((0, 0), (1, 1), (1, 1)), constant_values=-1.0)
    best = logits.argmax(-1)
    ref = np.empty((2, 8, 8), np.float32)
    for n, y, x in np.ndindex(ref.shape):
        o = best[n, y // block, x // block]
        ref[n, y, x] = pad[n, y + o // 3, x + o % 3]
    np.testing.assert_array_equal(hard, ref)
    np.testing.assert_allclose(soft, ref, atol=1e-6)


@pytest.mark.tf
@pytest.mark.parametrize("stride", [1, 2])
def test_cost_volume_is_the_absolute_difference_at_every_offset(stride):
    import tensorflow as tf

    from trainer import video_layers as L

    rng = np.random.default_rng(0)
    cur, prev = (rng.uniform(-1, 1, (2, 6, 7, 1)).astype(np.float32) for _ in range(2))
    vol = L.CostVolume(5, stride)([tf.constant(cur), tf.constant(prev)])
    vol = vol.numpy()
    pad = np.pad(prev[..., 0], ((0, 0), (2, 2), (2, 2)), constant_values=-1.0)
    ref = np.stack([np.abs(cur[..., 0] - pad[:, dy:dy + 6, dx:dx + 7])
                    for dy in range(5) for dx in range(5)], -1)[:, ::stride, ::stride]
    np.testing.assert_allclose(vol, ref, atol=1e-6)
