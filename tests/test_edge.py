"""Edge deployment: low-resource mode, lazy loading, int8 variants, the graph rewrites behind
the shipped graphs, and the edge benchmark's bookkeeping. (ORT-format models:
tests/test_packaging.py.)"""
import numpy as np
import pytest

import runtime
from runtime import registry
from tests.conftest import shipped_kinds


def _same(a, b):
    return np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b


class Recorder:
    """A session factory (the runtime's public hook) that builds the usual verified sessions
    and records what it was asked for."""

    def __init__(self):
        self.calls, self.sessions = [], []

    def __call__(self, kind, role, precision):
        self.calls.append((kind, role, precision))
        sess = registry.load_session(kind, role, None, precision)
        self.sessions.append(sess)
        return sess


def _int8_keys(metrics, prefix="") -> list[str]:
    """Every metric key path that names int8 (nested dicts walked)."""
    out = []
    for key, value in metrics.items():
        path = f"{prefix}{key}"
        if "int8" in str(key):
            out.append(path)
        if isinstance(value, dict):
            out += _int8_keys(value, path + ".")
    return out


def test_low_resource_mode_gives_identical_results():
    kinds = shipped_kinds()
    if not kinds:
        pytest.skip("no shipped models")
    expected = {k: runtime.load(k).generate(seed=5) for k in kinds}
    recorder = Recorder()
    try:
        runtime.configure(threads=1, low_memory=True)
        for k in kinds:
            assert _same(runtime.load(k, session_factory=recorder).generate(seed=5),
                         expected[k]), k
    finally:
        runtime.configure(threads=1, low_memory=False)
    # every kind built its sessions through the hook (dialogue's default, an empty history,
    # is the system's greeting: no network runs)
    assert {kind for kind, _, _ in recorder.calls} == set(kinds) - {"dialogue"}
    for sess in recorder.sessions:
        opts = sess.get_session_options()
        assert opts.enable_cpu_mem_arena is False and opts.intra_op_num_threads == 1
    with pytest.raises(ValueError, match="threads"):
        runtime.configure(threads=0)


def test_models_load_lazily():
    kinds = shipped_kinds()
    if not kinds:
        pytest.skip("no shipped models")
    recorder = Recorder()
    model = runtime.load(kinds[0], session_factory=recorder)
    assert recorder.calls == []                        # loading reads the manifest only
    model.generate(seed=0)
    assert recorder.calls and {k for k, _, _ in recorder.calls} <= {kinds[0], "image"}  # video
    model.close()


def test_int8_variants_are_listed_with_size_and_quality():
    kinds = shipped_kinds()
    with_int8 = [k for k in kinds if any(r.endswith("_int8") for r in runtime.info(k)["files"])]
    if not with_int8:
        pytest.skip("no int8 variants shipped")
    for kind in with_int8:
        files = runtime.info(kind)["files"]
        for role, f in files.items():
            if role.endswith("_int8"):
                assert f["bytes"] < files[role[:-5]]["bytes"], f"{kind}: int8 not smaller"
        assert _int8_keys(runtime.info(kind)["metrics"]), f"{kind}: no int8 quality metric"
        fp32 = runtime.load(kind, precision="fp32").generate(seed=1)
        int8 = runtime.load(kind, precision="int8").generate(seed=1)
        assert type(int8) is type(fp32), kind
        if isinstance(fp32, np.ndarray):
            assert int8.shape == fp32.shape and int8.dtype == fp32.dtype, kind


def test_int8_generation_runs_the_int8_files():
    """precision="int8" asks for the int8 sessions (text: dynamic, image: static QDQ); the
    image variant stays close to fp32 and both are deterministic by seed."""
    kinds = [k for k in ("text", "image") if k in shipped_kinds()
             and any(r.endswith("_int8") for r in runtime.info(k)["files"])]
    if not kinds:
        pytest.skip("no int8 text or image model shipped")
    for kind in kinds:
        recorder = Recorder()
        model = runtime.load(kind, precision="int8", session_factory=recorder)
        out = model.generate(seed=3)
        assert recorder.calls and {p for _, _, p in recorder.calls} == {"int8"}, kind
        assert _same(model.generate(seed=3), out)
    if "image" in kinds:
        fp32 = runtime.generate("image", n=32, seed=4, precision="fp32").astype(np.float32)
        int8 = runtime.generate("image", n=32, seed=4, precision="int8")
        assert np.abs(fp32 - int8).mean() < 3          # same digits, ~1 grey level of error
        assert not np.array_equal(fp32, int8)          # and really the int8 files
        assert "static" in runtime.info("image")["files"]["generator_int8"]["quantization"]
        recorder = Recorder()                                      # quality > 0 in int8 too
        picked = runtime.load("image", precision="int8", session_factory=recorder).generate(
            n=4, quality=1.0, seed=5)
        assert {(r, p) for _, r, p in recorder.calls} == {("generator", "int8"),
                                                          ("classifier", "int8")}
        assert picked.shape == (4, 28, 28)
        if "classifier_int8" not in runtime.info("image")["files"]:
            # a role without an int8 variant is served by its float file at int8
            x = np.random.default_rng(0).uniform(-1, 1, (8, 28, 28)).astype(np.float32)
            feeds = {"images": x, "label": np.arange(8, dtype=np.int64)}
            at_int8 = registry.load_session("image", "classifier", None, "int8")
            at_fp32 = registry.load_session("image", "classifier", None, "fp32")
            assert np.array_equal(at_int8.run(None, feeds)[0], at_fp32.run(None, feeds)[0])


def _toy_generator(onnx, z_dim=8, channels=4):
    """z [N, z_dim] -> MatMul -> (N, channels, 3, 3) -> upsampling ConvTranspose -> tanh, plus a
    stride-1 ConvTranspose that the sub-pixel rewrite must leave alone."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = {"dense": rng.standard_normal((z_dim, channels * 9)).astype(np.float32) * 0.3,
         "shape": np.array([-1, channels, 3, 3], np.int64),
         "up": rng.standard_normal((channels, 3, 4, 4)).astype(np.float32) * 0.3,
         "up_b": rng.standard_normal(3).astype(np.float32) * 0.1,
         "same": rng.standard_normal((3, 2, 3, 3)).astype(np.float32) * 0.3}
    nodes = [helper.make_node("MatMul", ["z", "dense"], ["h"]),
             helper.make_node("Reshape", ["h", "shape"], ["x"]),
             helper.make_node("ConvTranspose", ["x", "up", "up_b"], ["y"], name="up",
                              kernel_shape=[4, 4], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("ConvTranspose", ["y", "same"], ["y2"], name="same",
                              kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Tanh", ["y2"], ["images"])]
    graph = helper.make_graph(
        nodes, "toy", [helper.make_tensor_value_info("z", TensorProto.FLOAT, [None, z_dim])],
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [None, 2, 6, 6])],
        [numpy_helper.from_array(v, k) for k, v in w.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def _run(model, z):
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"z": z})[0]


def test_subpixel_rewrite_is_exact():
    onnx = pytest.importorskip("onnx")
    from trainer.graph_rewrites import subpixel_conv_transpose

    z = np.random.default_rng(1).standard_normal((5, 8)).astype(np.float32)
    model = _toy_generator(onnx)
    want = _run(model, z)
    rewritten = subpixel_conv_transpose(_toy_generator(onnx))
    onnx.checker.check_model(rewritten, full_check=True)
    ops = [n.op_type for n in rewritten.graph.node]
    assert ops.count("ConvTranspose") == 1 and "DepthToSpace" in ops   # stride 1 left alone
    np.testing.assert_allclose(_run(rewritten, z), want, atol=1e-5)


def _toy_decoder(onnx, odd: bool = False):
    """z -> (N, 3, 5, 5) -> Conv 1x1 (low, 6 channels) -> Resize 2x nearest -> Concat with a
    skip (N, 2, 10, 10) -> Conv 3x3 -> LeakyRelu: a U-Net decoder layer. ``odd``: the same,
    with a Resize whose coordinate mode the fold must not touch."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    w = {"dense": rng.standard_normal((8, 3 * 25 + 2 * 100)).astype(np.float32) * 0.3,
         "low_w": rng.standard_normal((6, 3, 1, 1)).astype(np.float32) * 0.5,
         "dec_w": rng.standard_normal((4, 8, 3, 3)).astype(np.float32) * 0.3,
         "dec_b": rng.standard_normal(4).astype(np.float32) * 0.1,
         "split": np.array([75, 200], np.int64), "low_shape": np.array([-1, 3, 5, 5], np.int64),
         "skip_shape": np.array([-1, 2, 10, 10], np.int64),
         "scales": np.array([1, 1, 2, 2], np.float32), "roi": np.zeros(0, np.float32)}
    mode = b"half_pixel" if odd else b"asymmetric"
    nodes = [helper.make_node("MatMul", ["z", "dense"], ["h"]),
             helper.make_node("Split", ["h", "split"], ["h_low", "h_skip"], axis=1),
             helper.make_node("Reshape", ["h_low", "low_shape"], ["low_in"]),
             helper.make_node("Reshape", ["h_skip", "skip_shape"], ["skip"]),
             helper.make_node("Conv", ["low_in", "low_w"], ["low"], kernel_shape=[1, 1]),
             helper.make_node("Resize", ["low", "roi", "scales"], ["up"], mode="nearest",
                              coordinate_transformation_mode=mode, nearest_mode="floor"),
             helper.make_node("Concat", ["up", "skip"], ["cat"], axis=1),
             helper.make_node("Conv", ["cat", "dec_w", "dec_b"], ["dec"], name="dec",
                              kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("LeakyRelu", ["dec"], ["images"], alpha=0.2)]
    graph = helper.make_graph(
        nodes, "toy_decoder", [helper.make_tensor_value_info("z", TensorProto.FLOAT, [None, 8])],
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [None, 4, 10, 10])],
        [numpy_helper.from_array(v, k) for k, v in w.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def test_upsampling_folded_into_the_decoder_conv_is_exact():
    """trainer.graph_rewrites.fold_upsampling_into_convs: the 3x3 Conv over [upsampled low, skip]
    becomes a 4x4/2 ConvTranspose of low plus a 3x3 Conv of the skip, the same numbers; a
    Resize with other pixel centres is left alone."""
    onnx = pytest.importorskip("onnx")
    from trainer.graph_rewrites import fold_upsampling_into_convs

    z = np.random.default_rng(4).standard_normal((3, 8)).astype(np.float32)
    want = _run(_toy_decoder(onnx), z)
    rewritten = fold_upsampling_into_convs(_toy_decoder(onnx))
    onnx.checker.check_model(rewritten, full_check=True)
    ops = [n.op_type for n in rewritten.graph.node]
    assert "Resize" not in ops and "Concat" not in ops and ops.count("ConvTranspose") == 1
    np.testing.assert_allclose(_run(rewritten, z), want, atol=1e-5)
    untouched = fold_upsampling_into_convs(_toy_decoder(onnx, odd=True))
    assert "Resize" in [n.op_type for n in untouched.graph.node]


def test_quantize_static_writes_a_calibrated_int8_model(tmp_path):
    onnx = pytest.importorskip("onnx")
    from trainer.export import export_onnx_bytes, quantize_static

    entry = export_onnx_bytes(_toy_generator(onnx), kind="toy", role="g", out_dir=tmp_path,
                              opset=17)
    rng = np.random.default_rng(2)
    calibration = [{"z": rng.standard_normal((32, 8)).astype(np.float32)} for _ in range(4)]
    q = quantize_static(entry, kind="toy", role="g_int8", out_dir=tmp_path, calibration=calibration)
    assert q["quantized_from"] == entry["file"] and "128 samples" in q["quantization"]
    model = onnx.load(str(tmp_path / q["file"]))
    ops = {n.op_type for n in model.graph.node}
    assert "QuantizeLinear" in ops and "DepthToSpace" in ops
    z = rng.standard_normal((16, 8)).astype(np.float32)
    assert np.abs(_run(model, z) - _run(_toy_generator(onnx), z)).max() < 0.1


def test_benchmark_pools_the_rounds_of_a_row():
    """benchmarks/edge.py: a row's rounds are pooled call by call (not averaged p50s); start-up
    is the median round's, peak RSS the largest; a failed round makes the row an error."""
    from benchmarks.edge import pool_runs

    rounds = [{"first_s": 0.3, "times": [0.001] * 9 + [0.1], "peak_rss_mb": 70.0},
              {"first_s": 0.1, "times": [0.002] * 10, "peak_rss_mb": 80.0},
              {"first_s": 0.2, "times": [0.003] * 10, "peak_rss_mb": 75.0}]
    pooled = pool_runs(rounds)
    assert pooled["p50_s"] == 0.002 and pooled["p95_s"] == 0.003
    assert pooled["first_s"] == 0.2 and pooled["peak_rss_mb"] == 80.0 and pooled["rounds"] == 3
    assert pooled["per_s"] == pytest.approx(30 / (0.009 + 0.1 + 0.02 + 0.03))
    assert pool_runs(rounds + [{"error": "boom"}]) == {"error": "boom"}


def test_benchmark_target_line_and_rows():
    """benchmarks/edge.py: the target is judged against the faster of TensorFlow's two rows
    (default threads, one thread); kinds that read their Q-table once per model (~1x by
    construction) are listed apart, not as met or missed."""
    from benchmarks.edge import _target_line, engines

    def row(ms):
        return {"p50_s": ms / 1000}

    measured = {
        "image": {"fp32": row(0.5), "tensorflow": row(1.6), "tensorflow 1 thread": row(1.0)},
        "video": {"fp32": row(1.0), "int8": row(0.5), "tensorflow": row(4.0),
                  "tensorflow 1 thread": row(3.5)},
        "level": {"fp32": row(0.5), "tensorflow": row(0.5), "tensorflow 1 thread": row(0.5)},
    }
    line = _target_line(measured)
    assert "Met by video (3.5x, int8 7.0x)." in line
    assert "Not met by image (2.0x)." in line
    assert "Not applicable to level (1.0x)" in line
    assert engines(True, True) == ["fp32", "int8", "tensorflow", "tensorflow 1 thread"]
    assert engines(False, False) == ["fp32"]
    assert _target_line({"text": {"fp32": row(1.0)}}).startswith("Target: not measured")


def test_benchmark_runner_keeps_one_section_per_benchmark(tmp_path):
    """benchmarks/__main__.py writes the results file: a run replaces its own section (with
    its command line) and keeps the others'."""
    from benchmarks.__main__ import save_section, sections

    path = tmp_path / "results.md"
    save_section("edge", ["--rounds", "1"], "| a | b |\n| --- | --- |\n| 1 | 2 |\n", path)
    save_section("fastcore", [], "steps/s 123\n", path)
    save_section("edge", ["--rounds", "2"], "| a | b |\n| --- | --- |\n| 3 | 4 |\n", path)
    found = sections(path.read_text())
    assert sorted(found) == ["edge", "fastcore"]
    assert "`python -m benchmarks edge --rounds 2`" in found["edge"] and "| 3 | 4 |" in found["edge"]
    assert "| 1 | 2 |" not in found["edge"]
    assert "```\nsteps/s 123\n```" in found["fastcore"]


@pytest.mark.tf
def test_benchmark_runs_the_runtime_on_tensorflow(tmp_path):
    """The edge benchmark's TensorFlow rows: the image model's generation code with every
    session a TensorFlow function from trainer.image.tf_functions, plugged in through
    runtime.load(session_factory=...); without a checkpoint, fresh weights of the same graphs."""
    if "image" not in shipped_kinds():
        pytest.skip("no shipped image model")
    from benchmarks.edge import TFSession, tensorflow_factory

    factory = tensorflow_factory(root=tmp_path)
    model = runtime.load("image", session_factory=factory)
    x = model.generate(n=3, quality=1.0, seed=2)
    assert x.shape == (3, 28, 28) and x.dtype == np.uint8
    np.testing.assert_array_equal(model.generate(n=3, quality=1.0, seed=2), x)
    assert factory.weights == {"image": "untrained"}
    assert isinstance(model.session("generator"), TFSession)
    assert not np.array_equal(x, runtime.generate("image", n=3, quality=1.0, seed=2))
