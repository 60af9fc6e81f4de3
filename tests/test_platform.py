"""Platform: registry, sha256 checks, error behaviour, CLI, import boundary, packaging."""
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import runtime
from runtime import ModelError, options, registry
from tests.conftest import ROOT, shipped_kinds

FORBIDDEN = ("tensorflow", "tf2onnx", "onnx", "keras", "trainer", "fastcore")


def _first_kind() -> str:
    kinds = shipped_kinds()
    if not kinds:
        pytest.skip("no shipped models")
    return kinds[0]


@pytest.fixture()
def models_copy(tmp_path, exported_dir):
    """A private copy of the shipped models that a test may damage."""
    dst = tmp_path / "models"
    shutil.copytree(exported_dir, dst, ignore=shutil.ignore_patterns(".manifest.lock"))
    registry.clear_cache()
    yield dst
    registry.clear_cache()


def test_manifest_lists_every_file_with_size_and_hash(exported_dir):
    manifest = json.loads((exported_dir / "manifest.json").read_text())
    assert manifest["format_version"] == 1
    import hashlib
    for kind, entry in manifest["models"].items():
        assert entry["metrics"], f"{kind} has no metrics"
        assert entry["bytes"] == sum(f["bytes"] for f in entry["files"].values())
        for role, f in entry["files"].items():
            data = (exported_dir / f["file"]).read_bytes()
            assert len(data) == f["bytes"] and hashlib.sha256(data).hexdigest() == f["sha256"]
            if f["file"].endswith(".onnx"):
                assert f["opset"] >= 13 and f["inputs"] and f["outputs"]
    total = sum((exported_dir / f["file"]).stat().st_size
                for e in manifest["models"].values() for f in e["files"].values())
    assert total < 30 * 2**20


def test_unknown_kind_lists_available():
    with pytest.raises(ValueError, match="available kinds"):
        runtime.generate("poetry")
    with pytest.raises(ValueError, match="unknown kind"):
        runtime.info(42)


def test_unknown_option_names_the_option():
    kind = _first_kind()
    with pytest.raises(ValueError, match="bogus_option"):
        runtime.generate(kind, bogus_option=1)


@pytest.mark.parametrize("seed", [-1, 1.5, "7", True, 2**64])
def test_bad_seed(seed):
    kind = _first_kind()
    with pytest.raises(ValueError, match="seed"):
        runtime.generate(kind, seed=seed)


def test_bad_precision():
    kind = _first_kind()
    with pytest.raises(ValueError, match="precision"):
        runtime.generate(kind, precision="fp16")


def test_option_validators():
    assert options.check_int("n", 3, 1, 5) == 3
    for bad in (0, 6, 2.0, True, "3", None):
        with pytest.raises(ValueError, match="n must be"):
            options.check_int("n", bad, 1, 5)
    for bad in (float("nan"), float("inf"), -0.1, "0.5", None):
        with pytest.raises(ValueError, match="q must be"):
            options.check_float("q", bad, 0.0, 1.0)
    with pytest.raises(ValueError, match="too many"):
        options.check_str_list("h", ["a"] * 11, max_items=10)
    with pytest.raises(ValueError, match=r"h\[1\]"):
        options.check_int_list("h", [1, "x"], 0, 9)


def test_tampered_model_raises_model_error_and_other_kinds_still_work(models_copy):
    kinds = runtime.available(models_copy)
    if not kinds:
        pytest.skip("no shipped models")
    victim = kinds[0]
    entry = runtime.info(victim, models_copy)
    onnx_files = [f for f in entry["files"].values() if f["file"].endswith(".onnx")]
    path = models_copy / onnx_files[0]["file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    role = next(r for r, f in entry["files"].items() if f["file"] == onnx_files[0]["file"])
    with pytest.raises(ModelError, match="sha256") as err:
        registry.load_session(victim, role, models_copy)
    assert onnx_files[0]["file"] in str(err.value)
    path.write_bytes(bytes(data[: len(data) // 3]))
    with pytest.raises(ModelError, match="truncated"):
        registry.load_session(victim, role, models_copy)
    path.unlink()
    with pytest.raises(ModelError, match="missing"):
        registry.load_session(victim, role, models_copy)
    for other in kinds[1:]:
        e = runtime.info(other, models_copy)
        for r, f in e["files"].items():
            if f["file"].endswith(".onnx"):
                sess = registry.load_session(other, r, models_copy)
                assert [i.name for i in sess.get_inputs()] == [i["name"] for i in f["inputs"]]


def test_manifest_faults(models_copy, tmp_path):
    manifest_path = models_copy / "manifest.json"
    good = manifest_path.read_text()
    manifest_path.write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        registry.manifest(models_copy)
    data = json.loads(good)
    data["format_version"] = 99
    manifest_path.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="format_version"):
        registry.manifest(models_copy)
    with pytest.raises(ModelError, match="does not exist"):
        registry.manifest(tmp_path / "nowhere")
    assert runtime.available(tmp_path / "nowhere") == []


def test_io_mismatch_is_model_error(models_copy):
    kind = _first_kind()
    manifest_path = models_copy / "manifest.json"
    data = json.loads(manifest_path.read_text())
    role, f = next((r, f) for r, f in data["models"][kind]["files"].items()
                   if f["file"].endswith(".onnx"))
    f["inputs"][0]["name"] = "renamed_input"
    manifest_path.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="do not belong together"):
        registry.load_session(kind, role, models_copy)


def test_model_object_owns_and_releases_its_sessions(exported_dir, monkeypatch):
    kind = _first_kind()
    role = next(r for r, f in runtime.info(kind)["files"].items()
                if f["file"].endswith(".onnx") and not f.get("optional"))
    built = []
    load_session = registry.load_session
    monkeypatch.setattr(registry, "load_session",
                        lambda *a, **k: built.append(a[:2]) or load_session(*a, **k))
    model = runtime.load(kind)
    assert model.session(role) is model.session(role) and len(built) == 1
    other = runtime.load(kind)                 # another object builds its own
    assert other.session(role) is not model.session(role) and len(built) == 2
    model.close()
    assert model.session(role) is not other.session(role) and len(built) == 3
    runtime.configure(threads=2)               # new settings: rebuilt on the next call
    try:
        model.session(role)
        assert len(built) == 4
    finally:
        runtime.configure(threads=1)


def test_load_checks_kind_precision_and_models(tmp_path):
    kind = _first_kind()
    with pytest.raises(ValueError, match="unknown kind"):
        runtime.load("poetry")
    with pytest.raises(ValueError, match="precision"):
        runtime.load(kind, precision="fp16")
    with pytest.raises(ModelError, match="does not exist"):
        runtime.load(kind, models_dir=tmp_path / "nowhere")
    fp32_only = [k for k in shipped_kinds()
                 if not any(r.endswith("_int8") for r in runtime.info(k)["files"])]
    for k in fp32_only:
        with pytest.raises(ValueError, match="fp32 only"):
            runtime.load(k, precision="int8")


def test_auto_precision_is_the_kinds_default_and_fp32_needs_its_file(tmp_path, exported_dir):
    """precision="auto" picks the manifest entry's default_precision (fp32 where unset); an
    install without the fp32 file (the device wheel leaves checkout-only files out) refuses
    precision="fp32" with a ValueError that says what to use instead."""
    for k in shipped_kinds():
        want = runtime.info(k).get("default_precision", "fp32")
        assert runtime.load(k).precision == want
        assert runtime.load(k, precision="fp32").precision == "fp32"
    kind = next((k for k in shipped_kinds()
                 if any(r.endswith("_int8") for r in runtime.info(k)["files"])), None)
    if kind is None:
        pytest.skip("no kind ships an int8 model")
    models = tmp_path / "models"
    shutil.copytree(exported_dir, models, ignore=shutil.ignore_patterns(".manifest.lock"))
    manifest = json.loads((models / "manifest.json").read_text())
    files = manifest["models"][kind]["files"]
    for role in [r for r in files if r + "_int8" in files]:
        del files[role]                           # as the device wheel ships text
    manifest["models"][kind]["default_precision"] = "int8"
    (models / "manifest.json").write_text(json.dumps(manifest))
    registry.clear_cache()
    try:
        assert runtime.load(kind, models_dir=models).precision == "int8"
        with pytest.raises(ValueError, match="precision='fp32' is not available.*'auto'"):
            runtime.load(kind, models_dir=models, precision="fp32")
    finally:
        registry.clear_cache()


def test_release_frees_the_generate_models(monkeypatch):
    kind = _first_kind()
    built = []
    load_session = registry.load_session
    monkeypatch.setattr(registry, "load_session",
                        lambda *a, **k: built.append(a[:2]) or load_session(*a, **k))
    runtime.release()
    first = runtime.generate(kind, seed=5)
    n = len(built)
    runtime.generate(kind, seed=5)
    assert len(built) == n > 0                 # kept between calls
    runtime.release(kind)
    again = runtime.generate(kind, seed=5)
    assert len(built) == 2 * n                 # rebuilt after release
    assert repr(again) == repr(first) or np.array_equal(again, first)


def test_configure_wins_over_the_environment():
    """RUNTIME_THREADS / RUNTIME_LOW_MEMORY give the settings at import; configure() wins."""
    code = ("import runtime; from runtime import registry; print(registry.settings()); "
            "runtime.configure(threads=2, low_memory=False); print(registry.settings())")
    env = {**os.environ, "RUNTIME_THREADS": "3", "RUNTIME_LOW_MEMORY": "1"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["(3, True)", "(2, False)"]


def test_every_kind_declares_typed_options():
    for kind in runtime.KINDS:
        opts = runtime.model_class(kind).options
        assert len(opts) and all(o.doc for o in opts), kind
        assert opts.resolve(kind, {}) == opts.defaults()
        with pytest.raises(ValueError, match="accepted"):
            opts.resolve(kind, {"nonsense": 1})


def test_generation_never_imports_tensorflow():
    kinds = shipped_kinds()
    if not kinds:
        pytest.skip("no shipped models")
    code = (
        "import sys, runtime\n"
        f"for kind in {kinds!r}:\n"
        "    runtime.generate(kind, seed=0)\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}]\n"
        "print('FORBIDDEN', bad)\n"
        "assert not bad, bad\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "FORBIDDEN []" in out.stdout


def test_runtime_sources_import_nothing_forbidden():
    import ast
    for path in (ROOT / "runtime").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN + ("sklearn", "music21"), \
                    f"{path.name} imports {name}"


def test_cli_list_and_generate(tmp_path):
    kind = _first_kind()
    out = subprocess.run([sys.executable, "-m", "runtime", "list"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and kind in out.stdout
    target = tmp_path / "sample"
    out = subprocess.run([sys.executable, "-m", "runtime", "generate", kind, "--seed", "3",
                          "--out", str(target)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert target.exists() and target.stat().st_size > 0 and "wrote" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "runtime", "generate", "poetry"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown kind" in bad.stderr and "Traceback" not in bad.stderr


def test_demo_writes_every_kind(tmp_path):
    kinds = shipped_kinds()
    if not kinds:
        pytest.skip("no shipped models")
    out = subprocess.run([sys.executable, "-m", "runtime", "demo", "--out", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    written = sorted(p.stem for p in tmp_path.iterdir())
    assert written == sorted(kinds)


def test_wheel_ships_models_and_needs_only_numpy_onnxruntime(tmp_path):
    """`pip install .` must carry exported/ and depend on numpy + onnxruntime only."""
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                          "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    wheel = next(tmp_path.glob("*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta = zf.read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "runtime/exported/manifest.json" in names
    assert wheel.name.endswith("-py3-none-any.whl")
    assert not any(n.startswith(("fastcore/", "trainer/")) for n in names)
    requires = [line.split(":", 1)[1].strip() for line in meta.splitlines()
                if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert sorted(r.split(">")[0].split("=")[0].strip() for r in requires) == ["numpy", "onnxruntime"]


@pytest.mark.tf
def test_export_parity_and_atomic_manifest(tmp_path):
    tf = pytest.importorskip("tensorflow")
    import keras
    from trainer import export as ex

    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="tanh"),
                              keras.layers.Dense(3)])
    sig = [tf.TensorSpec([None, 6], tf.float32, name="obs")]
    entry = ex.export_tf_function(lambda x: {"q": model(x)}, sig, kind="toy", role="q",
                                  out_dir=tmp_path)
    assert entry["parity_max_abs_diff"] < 1e-5
    assert entry["inputs"] == [{"name": "obs", "shape": [None, 6], "dtype": "float32"}]
    ex.write_entry(tmp_path, "toy", {"q": entry}, {"hidden": 8}, {"score": 1.0})
    sess = registry.load_session("toy", "q", tmp_path)
    x = np.random.default_rng(0).standard_normal((5, 6)).astype(np.float32)
    np.testing.assert_allclose(sess.run(None, {"obs": x})[0], model(x).numpy(), atol=1e-5)

    # A function that ONNX cannot reproduce within tolerance is refused, and nothing is written.
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ex.ExportError, match="differs"):
        ex.export_tf_function(lambda x: {"q": model(x)}, sig, kind="toy", role="q",
                              out_dir=tmp_path, tol=-1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == before

    # A new export replaces the entry atomically and removes the stale file.
    model.layers[-1].kernel.assign(model.layers[-1].kernel * 2.0)
    new = ex.export_tf_function(lambda x: {"q": model(x)}, sig, kind="toy", role="q",
                                out_dir=tmp_path)
    assert new["file"] != entry["file"] and (tmp_path / entry["file"]).exists()
    ex.write_entry(tmp_path, "toy", {"q": new}, {"hidden": 8})
    assert not (tmp_path / entry["file"]).exists()
    assert json.loads((tmp_path / "manifest.json").read_text())["models"]["toy"]["files"]["q"] \
        ["sha256"] == new["sha256"]


@pytest.mark.tf
def test_rewritten_graph_is_checked_against_tensorflow(tmp_path):
    """export_rewritten ships a rewritten graph only if it still reproduces TensorFlow."""
    tf = pytest.importorskip("tensorflow")
    import keras
    from onnx import numpy_helper

    from trainer import export as ex

    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    sig = [tf.TensorSpec([None, 6], tf.float32, name="obs")]
    fn = lambda x: {"q": model(x)}  # noqa: E731
    entry = ex.export_tf_function(fn, sig, kind="toy", role="q", out_dir=tmp_path)
    samples = [[np.random.default_rng(1).standard_normal((4, 6)).astype(np.float32)]]

    def scale_weights(factor):
        def rewrite(onnx_model):
            for t in onnx_model.graph.initializer:
                t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) * factor, t.name))
            return onnx_model
        return rewrite

    same = ex.export_rewritten(entry, scale_weights(1.0), fn, sig, kind="toy", role="q",
                               out_dir=tmp_path, samples=samples)
    assert same["parity_max_abs_diff"] < 1e-5 and same["parity_samples"] == 1
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ex.ExportError, match="rewritten graph differs"):
        ex.export_rewritten(entry, scale_weights(1.5), fn, sig, kind="toy", role="q",
                            out_dir=tmp_path, samples=samples)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.tf
def test_interrupted_export_keeps_previous_model_and_manifest(tmp_path, monkeypatch):
    tf = pytest.importorskip("tensorflow")
    import keras
    from trainer import export as ex

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    sig = [tf.TensorSpec([None, 4], tf.float32, name="obs")]
    fn = lambda x: {"q": model(x)}  # noqa: E731
    first = ex.export_tf_function(fn, sig, kind="toy", role="q", out_dir=tmp_path)
    ex.write_entry(tmp_path, "toy", {"q": first}, {})
    manifest_before = (tmp_path / "manifest.json").read_bytes()
    model.layers[-1].kernel.assign(model.layers[-1].kernel + 1.0)

    # 1) killed while writing the model file: no file under its final name, nothing changes
    real_fdopen = ex.os.fdopen

    def dying_fdopen(fd, mode):
        fh = real_fdopen(fd, mode)
        fh.write(b"partial")
        fh.close()
        raise KeyboardInterrupt

    monkeypatch.setattr(ex.os, "fdopen", dying_fdopen)
    with pytest.raises(KeyboardInterrupt):
        ex.export_tf_function(fn, sig, kind="toy", role="q", out_dir=tmp_path)
    monkeypatch.setattr(ex.os, "fdopen", real_fdopen)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == \
        sorted([first["file"], "manifest.json"])

    # 2) killed between writing the new model and replacing the manifest
    second = ex.export_tf_function(fn, sig, kind="toy", role="q", out_dir=tmp_path)
    monkeypatch.setattr(ex, "_write_manifest", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        ex.write_entry(tmp_path, "toy", {"q": second}, {})
    assert (tmp_path / "manifest.json").read_bytes() == manifest_before
    registry.clear_cache()
    sess = registry.load_session("toy", "q", tmp_path)   # verified against the old sha256
    x = np.ones((1, 4), np.float32)
    assert not np.allclose(sess.run(None, {"obs": x})[0], model(x).numpy())
