"""Tests for generate("image"): runtime behaviour on the shipped models, and a tiny GAN trained,
exported and sampled end to end (marked tf)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import runtime
from runtime import registry


@pytest.fixture(scope="module")
def models(exported_dir):
    if "image" not in runtime.available(exported_dir):
        pytest.skip("no 'image' model in exported/ yet (python -m trainer train image)")
    return exported_dir


@pytest.fixture()
def model(models):
    with runtime.load("image", models_dir=models) as m:
        yield m


class CountingSession:
    """A session given through the runtime's public hook (``session_factory``): the usual
    verified session, recording the batch size of every run."""

    def __init__(self, sess):
        self.sess, self.batches = sess, []

    def get_inputs(self):
        return self.sess.get_inputs()

    def get_outputs(self):
        return self.sess.get_outputs()

    def run(self, names, feeds):
        self.batches.append(len(next(iter(feeds.values()))))
        return self.sess.run(names, feeds)


def counting_model(models):
    """An image model whose sessions are ``CountingSession``s, and those sessions by role."""
    sessions = {}

    def factory(kind, role, precision):
        sessions[role] = CountingSession(registry.load_session(kind, role, models, precision))
        return sessions[role]

    return runtime.load("image", models_dir=models, session_factory=factory), sessions


def run_in_chunks(sess, x, labels, chunk=256):
    """A generator or classifier session on ``(x, labels)``, ``chunk`` rows per call (the
    runtime's batching, so the numbers are the ones it sees)."""
    a, b = (i.name for i in sess.get_inputs())
    return np.concatenate([runtime.Model.run(sess, {a: x[i:i + chunk], b: labels[i:i + chunk]})[0]
                           for i in range(0, len(x), chunk)])


def test_shape_dtype_range(models):
    x = runtime.generate("image", n=5, seed=1, models_dir=models)
    assert isinstance(x, np.ndarray) and x.dtype == np.uint8
    assert x.shape == (5, 28, 28)
    assert x.max() > 200 and x.min() < 30          # ink on a dark background
    default = runtime.generate("image", seed=1, models_dir=models)
    assert default.shape == (16, 28, 28)
    assert x.labels.dtype == np.int64 and x.labels.shape == (5,)


def test_labels_are_the_drawn_digits(model):
    """The result's labels are the classes drawn from the seed (the documented first draws)."""
    x = model.generate(n=12, seed=4)
    np.testing.assert_array_equal(x.labels, np.random.default_rng(4).integers(0, 10, size=12))
    assert (model.generate(n=3, digit=7, seed=4).labels == 7).all()
    assert x[:2].labels is None                       # a slice is a plain view


def test_determinism_by_seed(models):
    a = runtime.generate("image", n=8, quality=0.5, seed=123, models_dir=models)
    b = runtime.generate("image", n=8, quality=0.5, seed=123, models_dir=models)
    c = runtime.generate("image", n=8, quality=0.5, seed=124, models_dir=models)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_samples_are_distinct(models):
    x = runtime.generate("image", n=32, seed=3, models_dir=models).astype(np.float32)
    d = np.abs(x[:, None] - x[None]).mean((-2, -1))
    assert d[~np.eye(32, dtype=bool)].min() > 1.0   # no two identical images (no collapse)


@pytest.mark.parametrize("quality", [0, 0.0, 0.25, 1, 1.0])
def test_quality_bounds_accepted(models, quality):
    assert runtime.generate("image", n=3, quality=quality, seed=0, models_dir=models).shape == \
        (3, 28, 28)


@pytest.mark.parametrize("opts", [
    {"quality": -0.01}, {"quality": 1.01}, {"quality": float("nan")}, {"quality": float("inf")},
    {"quality": "high"}, {"quality": True}, {"quality": None},
    {"n": 0}, {"n": -3}, {"n": 1025}, {"n": 2.0}, {"n": "4"}, {"n": True},
    {"digit": 10}, {"digit": -1}, {"digit": 1.0}, {"digit": "3"},
    {"size": 28}, {"frames": 4},
])
def test_bad_options_raise_value_error(models, opts):
    with pytest.raises(ValueError) as info:
        runtime.generate("image", seed=0, models_dir=models, **opts)
    assert next(iter(opts)) in str(info.value)


def _log_ratio(rule, x, labels):
    """The side file's density-ratio discriminator, written out per image (no runtime code)."""
    lr = rule["log_ratio"]
    mean, comps = np.asarray(lr["mean"]), np.asarray(lr["components"])
    out = np.empty(len(x))
    for i, (img, c) in enumerate(zip(x, labels)):
        z = comps @ (img.reshape(-1).astype(np.float64) - mean)
        cls = lr["classes"][c]
        out[i] = z @ np.asarray(cls["quad"]) @ z + np.asarray(cls["lin"]) @ z + cls["const"]
    return out


def _expected(model, n, quality, seed, digit=None):
    """The documented rule, recomputed from the seed's random stream with the raw sessions."""
    gen = model.session("generator")
    clf = model.session("classifier")
    rule = model.json("rejection")
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=n).astype(np.int64) if digit is None \
        else np.full(n, digit, np.int64)
    k = 1 + int(math.floor(rule["max_extra_candidates"] * quality + 0.5)) if quality > 0 else 1
    z = rng.standard_normal((n * k, gen.get_inputs()[0].shape[1]), dtype=np.float32)
    cand_labels = np.repeat(labels, k)
    cand = run_in_chunks(gen, z, cand_labels)
    if k > 1:
        u = rng.random(n)
        logp = run_in_chunks(clf, cand, cand_labels).reshape(n, k)
        ratio = _log_ratio(rule, cand, cand_labels).reshape(n, k)
        pick = np.empty(n, np.int64)
        for i in range(n):
            ok = np.flatnonzero(logp[i] >= np.log(rule["class_prob"]))
            if len(ok) == 0:
                pick[i] = logp[i].argmax()
                continue
            w = np.exp(ratio[i, ok] - ratio[i, ok].max())
            pick[i] = ok[np.searchsorted(np.cumsum(w), u[i] * w.sum(), side="right")]
        cand = cand.reshape(n, k, 28, 28)[np.arange(n), pick]
    return np.rint((cand + 1) * 127.5).clip(0, 255).astype(np.uint8), labels


@pytest.mark.parametrize("quality", [0.0, 0.3, 1.0])
def test_rejection_rule_is_the_documented_one(model, quality):
    got = model.generate(n=40, quality=quality, seed=9)
    want, _ = _expected(model, 40, quality, 9)
    np.testing.assert_array_equal(got, want)


def test_candidates_are_processed_in_bounded_blocks(models, model, monkeypatch):
    """Blocks of at most BLOCK candidates, same images as one block (n=10, K=32, BLOCK=64)."""
    from runtime import image as rimage

    want = model.generate(n=10, quality=1.0, seed=6)
    monkeypatch.setattr(rimage, "BLOCK", 64)
    counted, sessions = counting_model(models)
    with counted:
        got = counted.generate(n=10, quality=1.0, seed=6)
    np.testing.assert_array_equal(got, want)
    calls = sessions["generator"].batches
    assert max(calls) <= 64 and sum(calls) == 10 * 32


def test_quality_raises_class_probability(model):
    clf = model.session("classifier")

    def mean_logp(x, labels):
        return run_in_chunks(clf, x.astype(np.float32) / 127.5 - 1.0, labels).mean()

    plain, labels = _expected(model, 200, 0.0, 4)
    best, labels1 = _expected(model, 200, 1.0, 4)
    np.testing.assert_array_equal(labels, labels1)          # same classes, better digits
    assert mean_logp(best, labels) > mean_logp(plain, labels)


def test_resampling_follows_the_density_ratio(model):
    """Kept candidates score higher under the density-ratio discriminator than plain samples,
    but the rule is not a top-score rule: the kept one is often not the best of the K."""
    rule = model.json("rejection")
    plain, labels = _expected(model, 300, 0.0, 11)
    kept, _ = _expected(model, 300, 1.0, 11)
    r_plain = _log_ratio(rule, plain.astype(np.float32) / 127.5 - 1.0, labels)
    r_kept = _log_ratio(rule, kept.astype(np.float32) / 127.5 - 1.0, labels)
    assert r_kept.mean() > r_plain.mean() + 0.5
    # the best-scoring eligible candidate is kept for only a minority of images
    gen = model.session("generator")
    clf = model.session("classifier")
    rng = np.random.default_rng(11)
    rng.integers(0, 10, size=300)
    k = 1 + rule["max_extra_candidates"]
    z = rng.standard_normal((300 * k, gen.get_inputs()[0].shape[1]), dtype=np.float32)
    cl = np.repeat(labels, k)
    cand = run_in_chunks(gen, z, cl)
    ok = (run_in_chunks(clf, cand, cl) >= np.log(rule["class_prob"])).reshape(300, k)
    ratio = np.where(ok, _log_ratio(rule, cand, cl).reshape(300, k), -np.inf)
    best = np.rint((cand.reshape(300, k, 28, 28)[np.arange(300), ratio.argmax(1)] + 1) * 127.5)
    best = best.clip(0, 255)
    assert (best == kept).all((1, 2)).mean() < 0.5


def test_old_rejection_side_file_is_a_model_error(models, tmp_path):
    import hashlib
    import json
    import shutil

    out = tmp_path / "models"
    shutil.copytree(models, out)
    manifest = json.loads((out / "manifest.json").read_text())
    old = json.dumps({"class_prob": 0.99, "max_extra_candidates": 7}).encode()
    fe = manifest["models"]["image"]["files"]["rejection"]
    (out / fe["file"]).write_bytes(old)
    fe.update(bytes=len(old), sha256=hashlib.sha256(old).hexdigest())
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert runtime.generate("image", n=2, seed=0, models_dir=out).shape == (2, 28, 28)  # q=0
    with pytest.raises(runtime.ModelError, match="re-export image"):
        runtime.generate("image", n=2, quality=0.5, seed=0, models_dir=out)


def test_digit_option(model):
    for d in (0, 7):
        x = model.generate(n=4, digit=d, quality=0.5, seed=1)
        assert x.shape == (4, 28, 28)
    _, labels = _expected(model, 8, 0.0, 3, digit=5)
    assert (labels == 5).all()


def test_candidate_count_rule(models):
    model, sessions = counting_model(models)
    m = model.json("rejection")["max_extra_candidates"]
    assert m == 31                                  # K = 32 at quality=1 (documented)
    with model:
        for q, n in [(0.0, 10), (0.5, 10), (1.0, 10), (0.1, 3), (0.01, 3), (0.02, 3)]:
            model.generate(n=n, quality=q, seed=0)
            calls = sessions["generator"].batches
            assert sum(calls) == n * (1 + math.floor(m * q + 0.5))
            calls.clear()


def test_quality_reads_the_classifier_not_the_optional_discriminator(models, monkeypatch):
    """quality > 0 loads the generator and the class-head classifier only; the whole
    discriminator ships for apps ("optional") and is never read by the runtime."""
    files = runtime.info("image", models)["files"]
    assert files.get("discriminator", {}).get("optional", True)
    built = []
    load_session = registry.load_session

    def spy(kind, role, *args, **kwargs):
        built.append(role)
        return load_session(kind, role, *args, **kwargs)

    monkeypatch.setattr(registry, "load_session", spy)
    runtime.load("image", models_dir=models).generate(n=3, quality=1.0, seed=2)
    assert sorted(built) == ["classifier", "generator"]


def test_int8_variant_if_shipped(models):
    files = runtime.info("image", models)["files"]
    if "generator_int8" not in files:
        pytest.skip("no int8 image generator shipped")
    a = runtime.generate("image", n=16, seed=5, models_dir=models).astype(np.float32)
    b = runtime.generate("image", n=16, seed=5, models_dir=models, precision="int8")
    assert b.dtype == np.uint8 and b.shape == a.shape
    assert np.abs(a - b).mean() < 20          # same digits, small quantisation error


@pytest.mark.tf
def test_quick_profile_trains_exports_and_generates(tmp_path):
    from trainer import image as timage
    from trainer.export import read_manifest

    cfg = timage.PROFILES["quick"]
    work, out = tmp_path / "work", tmp_path / "out"
    timage.train(cfg, work)
    assert (work / "learning_curve.png").exists()
    timage.export(cfg, work, out)
    entry = read_manifest(out)["models"]["image"]
    assert set(entry["files"]) == {"generator", "classifier", "discriminator", "rejection"}
    assert entry["files"]["discriminator"]["optional"]      # shipped for apps, unread here
    # the generator ships as lean_generator's graph (checked against TensorFlow at export);
    # tf2onnx's own graph, its source, is not left behind
    import onnx

    ops = [n.op_type for n in onnx.load(out / entry["files"]["generator"]["file"]).graph.node]
    assert "Gather" in ops and not {"Transpose", "OneHot", "Concat"} & set(ops)
    assert ops.count("ConvTranspose") == 1 and ops.count("DepthToSpace") == 1   # subpixel head
    assert {p.name for p in out.glob("image-*")} == {f["file"] for f in entry["files"].values()}
    assert entry["parity_max_abs_diff"] <= 1e-4
    x = runtime.generate("image", n=6, quality=0.5, seed=2, models_dir=out)
    assert x.shape == (6, 28, 28) and x.dtype == np.uint8
    np.testing.assert_array_equal(
        x, runtime.generate("image", n=6, quality=0.5, seed=2, models_dir=out))

    # the exported generator is the EMA generator of the checkpoint, and the TensorFlow
    # functions the benchmarks run (tf_functions) are the exported ones
    m = timage.load_trained(cfg, work)
    with runtime.load("image", models_dir=out) as model:
        onnx_x, _ = model.sample_float(np.random.default_rng(4), 3)
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 10, size=3).astype(np.int64)
    z = rng.standard_normal((3, cfg.z_dim), dtype=np.float32)
    np.testing.assert_allclose(onnx_x, m.g_ema([z, labels], training=False).numpy()[..., 0],
                               atol=1e-4)
    functions = timage.tf_functions(cfg, work)
    assert set(functions) == {"generator", "classifier", "discriminator"}
    gen, signature = functions["generator"]
    assert [s.name for s in signature] == ["z", "label"]
    np.testing.assert_allclose(gen(z, labels).numpy(), onnx_x, atol=1e-4)

    # resuming a finished run trains nothing more and keeps the checkpoint step
    from trainer.common import Checkpointer

    timage.train(cfg, work)
    step = Checkpointer(work, **timage.load_trained(cfg, work).trackables()).restore()
    assert step == cfg.steps + cfg.calib_steps


@pytest.mark.tf
def test_lean_generator_refuses_other_graphs(models):
    """lean_generator rebuilds tf2onnx's generator graph only: anything else (here the shipped,
    already rebuilt generator and the classifier) is an ExportError, never a wrong model."""
    onnx = pytest.importorskip("onnx")
    from trainer.export import ExportError
    from trainer.graph_rewrites import lean_generator

    for role in ("generator", "classifier"):
        path = registry.resolve(models) / registry.file_entry("image", role, models)["file"]
        model = onnx.load(path)
        with pytest.raises(ExportError, match="not the image generator graph"):
            lean_generator(model, n_classes=10, pixel_norm_eps=1e-8)
