"""Packaging for devices: the pure-Python wheel, the ORT-format models, memory limits.

The targets: a ``py3-none-any`` wheel of at most 5 MB with the runtime and the models
it reads (ORT format) and nothing of the training side; ORT files that load and match the
``.onnx`` outputs within 1e-5; out of memory reported as a ``ModelError`` naming the file,
never a crash, and every kind working at 256 MiB of address space in low-memory mode.
"""
import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import tarfile
import zipfile

import numpy as np
import pytest

import runtime
from runtime import ModelError, registry
from tests.conftest import ROOT, shipped_kinds


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def models_copy(tmp_path, exported_dir):
    dst = tmp_path / "models"
    shutil.copytree(exported_dir, dst, ignore=shutil.ignore_patterns(".manifest.lock"))
    registry.clear_cache()
    yield dst
    runtime.configure(model_format="auto")
    registry.clear_cache()


def _onnx_files(manifest: dict) -> dict:
    return {f["file"]: (kind, role, f) for kind, e in manifest["models"].items()
            for role, f in e["files"].items()
            if f["file"].endswith(".onnx") and not f.get("optional")
            and not f.get("checkout_only")}


def _first_session(models_dir):
    """(file name, kind, role, session) of the first model listed in ``models_dir``."""
    onnx_files = _onnx_files(json.loads((models_dir / "manifest.json").read_text()))
    if not onnx_files:
        pytest.skip("no shipped models")
    name, (kind, role, _) = next(iter(onnx_files.items()))
    return name, kind, role, registry.load_session(kind, role, models_dir)


def _feeds(sess, rng, n=8) -> dict:
    """Random inputs of the session's declared shapes; integer inputs (labels, states,
    tokens) in 0..9, valid for every shipped model."""
    feeds = {}
    for i in sess.get_inputs():
        shape = [d if isinstance(d, int) else n for d in i.shape]
        feeds[i.name] = (rng.integers(0, 10, size=shape).astype(np.int64)
                         if i.type == "tensor(int64)" else rng.random(shape, dtype=np.float32))
    return feeds


def test_ort_files_are_current_and_match_the_onnx_outputs(exported_dir):
    """Every model the runtime reads has an ORT file made from its current bytes (sha256 and
    size recorded like the .onnx's), and both give the same outputs within 1e-5."""
    import hashlib

    import onnxruntime as ort

    manifest = json.loads((exported_dir / "manifest.json").read_text())
    onnx_files = _onnx_files(manifest)
    if not onnx_files:
        pytest.skip("no shipped models")
    conv = manifest.get("ort", {}).get("files", {})
    stale = [name for name, (_, _, f) in onnx_files.items()
             if conv.get(name, {}).get("source_sha256") != f["sha256"]]
    assert not stale, f"no current ORT file for {stale}: run `python -m trainer.edge`"
    config = manifest["ort"]["required_operators"]
    assert (exported_dir / config["file"]).read_text().count("ai.onnx;") >= 1
    rng = np.random.default_rng(0)
    for name, (kind, role, _) in onnx_files.items():
        data = (exported_dir / conv[name]["file"]).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == \
            (conv[name]["bytes"], conv[name]["sha256"]), name
        a = ort.InferenceSession(str(exported_dir / name), providers=["CPUExecutionProvider"])
        b = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        feeds = _feeds(a, rng)
        for x, y in zip(a.run(None, feeds), b.run(None, feeds)):
            diff = float(np.abs(x.astype(np.float64) - y).max()) if x.size else 0.0
            assert diff <= 1e-5, f"{kind}/{role}: ORT output differs by {diff}"


def test_model_format_setting_reads_and_verifies_the_ort_files(models_copy):
    """configure(model_format="ort") builds sessions from the ORT files, checked against the
    manifest like the .onnx files; a stale or damaged ORT file is a ModelError naming it."""
    manifest = json.loads((models_copy / "manifest.json").read_text())
    onnx_files = _onnx_files(manifest)
    if not onnx_files:
        pytest.skip("no shipped models")
    name, (kind, role, _) = next(iter(onnx_files.items()))
    ort_path = models_copy / manifest["ort"]["files"][name]["file"]
    with pytest.raises(ValueError, match="model_format"):
        runtime.configure(model_format="tflite")
    runtime.configure(model_format="ort")
    assert registry.load_session(kind, role, models_copy).get_inputs()
    ort_path.write_bytes(ort_path.read_bytes()[:-7])
    with pytest.raises(ModelError, match="truncated") as err:
        registry.load_session(kind, role, models_copy)
    assert ort_path.name in str(err.value)
    runtime.configure(model_format="onnx")               # the .onnx is untouched
    assert registry.load_session(kind, role, models_copy).get_inputs()
    manifest["ort"]["files"][name]["source_sha256"] = "0" * 64    # made from other bytes
    (models_copy / "manifest.json").write_text(json.dumps(manifest))
    runtime.configure(model_format="ort")
    with pytest.raises(ModelError, match="no current ORT-format file") as err:
        registry.load_session(kind, role, models_copy)
    assert name in str(err.value) and "trainer.edge" in str(err.value)


def test_checkout_only_models_have_no_ort_file_and_say_so(models_copy):
    """A checkout-only model (text's fp32) gets no ORT file; asking for it in ORT format is a
    ModelError naming the file and the way out, not 'run trainer.edge'."""
    manifest = json.loads((models_copy / "manifest.json").read_text())
    only = [(kind, role, f) for kind, e in manifest["models"].items()
            for role, f in e["files"].items() if f.get("checkout_only")]
    if not only:
        pytest.skip("no checkout-only model")
    kind, role, fe = only[0]
    assert fe["file"] not in manifest["ort"]["files"]
    runtime.configure(model_format="ort")
    with pytest.raises(ModelError, match="checkout-only") as err:
        registry.load_session(kind, role, models_copy, "fp32")
    assert fe["file"] in str(err.value) and "trainer.edge" not in str(err.value)


def test_out_of_memory_loading_or_running_names_the_file(models_copy, monkeypatch):
    """onnxruntime's allocation failures (std::bad_alloc while loading, a failed allocation
    or MemoryError while running) become ModelError saying "out of memory" with the file."""
    import onnxruntime as ort

    name, kind, role, sess = _first_session(models_copy)

    def no_memory(*args, **kwargs):
        raise MemoryError()
    monkeypatch.setattr(sess, "run", no_memory)
    with pytest.raises(ModelError, match="out of memory running") as err:
        registry.run(sess, {})
    assert name in str(err.value)

    def bad_alloc(*args, **kwargs):
        raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : Exception during loading: "
                           "std::bad_alloc")
    monkeypatch.setattr(ort, "InferenceSession", bad_alloc)
    with pytest.raises(ModelError, match="out of memory loading") as err:
        registry.load_session(kind, role, models_copy)
    assert name in str(err.value) and "opset" not in str(err.value)


def test_low_memory_runs_check_headroom_before_onnxruntime(models_copy, monkeypatch):
    """Some onnxruntime kernels crash instead of failing when an allocation fails: in
    low-memory mode a run whose headroom cannot be reserved is an out-of-memory ModelError
    naming the file, and onnxruntime is never called."""
    import mmap

    name, kind, role, sess = _first_session(models_copy)
    called = []
    monkeypatch.setattr(sess, "run", lambda *a, **k: called.append(a) or [])

    def no_address_space(*args, **kwargs):
        raise OSError(12, "Cannot allocate memory")
    monkeypatch.setattr(mmap, "mmap", no_address_space)
    assert registry.run(sess, {}) == [] and len(called) == 1     # not checked by default
    runtime.configure(low_memory=True)
    try:
        with pytest.raises(ModelError, match="out of memory running") as err:
            registry.run(sess, {})
    finally:
        runtime.configure(low_memory=False)
    assert name in str(err.value) and len(called) == 1


def test_importing_the_runtime_writes_nothing_under_home(tmp_path):
    """onnxruntime's telemetry wrote ~/.cache/Microsoft/.../onnxruntime.db on import."""
    kinds = shipped_kinds()
    if not kinds:
        pytest.skip("no shipped models")
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(ROOT)}
    env.pop("ORT_DISABLE_TELEMETRY", None)
    out = subprocess.run([sys.executable, "-c", f"import runtime; runtime.generate({kinds[0]!r}, "
                          f"seed=0)"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert [p for p in home.rglob("*")] == [] and out.stderr == ""


def _build_wheel(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                          "--no-build-isolation", "-w", str(tmp_path / "dist"), str(ROOT)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return next((tmp_path / "dist").glob("rlgen-*.whl"))


@pytest.mark.slow
def test_device_wheel_is_pure_small_and_generates_like_the_checkout(tmp_path):
    """py3-none-any, <= 5 MB, only `runtime` at the top level, numpy + onnxruntime only, the
    models in ORT format; unpacked on its own (no checkout on the path) it generates what the
    checkout generates from the same ORT files."""
    wheel = _build_wheel(tmp_path)
    problems = _script("wheel_lane").check_wheel(wheel)
    assert [p for p in problems if "bytes (>" not in p] == []     # size: see the next test
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    kinds = [k for k in ("text", "image", "video") if k in shipped_kinds()]
    code = ("import hashlib, json, numpy, runtime; print(json.dumps([runtime.__file__, "
            "runtime.registry.model_format()] + [hashlib.sha256(numpy.asarray(runtime.generate("
            f"k, seed=2)).tobytes()).hexdigest() for k in {kinds!r}]))")
    runs = {}
    for label, path, fmt in (("wheel", site, "auto"), ("checkout", ROOT, "ort")):
        env = {**os.environ, "PYTHONPATH": str(path), "RUNTIME_MODEL_FORMAT": fmt}
        env.pop("RUNTIME_MODELS_DIR", None)
        out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, f"{label}: {out.stderr[-2000:]}"
        runs[label] = json.loads(out.stdout.splitlines()[-1])
    assert runs["wheel"][0].startswith(str(site)) and runs["wheel"][1] == "ort"
    assert runs["checkout"][0].startswith(str(ROOT)) and runs["checkout"][1] == "ort"
    assert runs["wheel"][2:] == runs["checkout"][2:]


@pytest.mark.slow
def test_device_wheel_is_at_most_5_mb(tmp_path):
    wheel = _build_wheel(tmp_path)
    assert wheel.stat().st_size <= _script("wheel_lane").MAX_WHEEL_BYTES


@pytest.mark.slow
def test_sdist_has_no_tests_or_training_code_and_builds_the_wheel(tmp_path):
    """The sdist shipped tests/ that import trainer/ and benchmarks/, which it left out."""
    out = subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    sdist = next(tmp_path.glob("rlgen-*.tar.gz"))
    with tarfile.open(sdist) as tf:
        names = [n.split("/", 1)[1] for n in tf.getnames() if "/" in n]
        tf.extractall(tmp_path / "src")
    tops = {n.split("/")[0] for n in names}
    assert not tops & {"tests", "trainer", "fastcore", "benchmarks"}, sorted(tops)
    assert {"runtime", "exported", "setup.py", "pyproject.toml"} <= tops
    assert "exported/ort/required_operators.config" in names
    src = next((tmp_path / "src").iterdir())
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                            "--no-build-isolation", "-w", str(tmp_path / "w"), str(src)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-2000:]
    assert next((tmp_path / "w").glob("*.whl")).name.endswith("-py3-none-any.whl")


PROBE = """
import sys
try:
    import runtime                       # imports numpy: out of memory here is before the
except (MemoryError, ImportError):       # runtime has control, not its failure
    sys.exit(6)
try:
    runtime.generate({kind!r}, seed=0, **{opts!r})
except runtime.ModelError as exc:
    print(exc, file=sys.stderr)
    sys.exit(3 if "out of memory" in str(exc) else 4)
"""


def _limited(kind: str, mib: int) -> subprocess.CompletedProcess:
    opts = _script("memory_floor").WORK[kind]

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (mib << 20, mib << 20))
    env = {**os.environ, "RUNTIME_LOW_MEMORY": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", PROBE.format(kind=kind, opts=opts)], env=env,
                          capture_output=True, text=True, timeout=300, preexec_fn=cap)


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(runtime.KINDS))
def test_every_kind_works_at_256_mib_and_fails_cleanly_below(kind):
    """At 256 MiB of address space (RUNTIME_LOW_MEMORY=1) every kind generates; at every
    smaller limit down to where Python cannot import the runtime, it either generates or
    raises ModelError saying out of memory: no crash, abort or other exception."""
    if kind not in shipped_kinds():
        pytest.skip(f"no shipped {kind} model")
    ok = _limited(kind, 256)
    assert ok.returncode == 0, ok.stderr[-1500:]
    for mib in range(240, 95, -16):
        out = _limited(kind, mib)
        assert out.returncode in (0, 3, 6), f"{kind} at {mib} MiB: rc {out.returncode}: " \
                                            f"{out.stderr[-800:]}"
        if out.returncode == 6:
            break


@pytest.mark.slow
def test_ort_step_converts_what_is_stale_and_survives_a_re_export(tmp_path, exported_dir):
    """`python -m trainer.edge` over a models folder: every model the runtime reads gets an
    ORT file recorded in the manifest; after a kind's re-export (a new content-addressed
    .onnx), a re-run converts that one file only and drops the ORT file of the old one."""
    import hashlib

    from trainer.edge import export_ort, model_sources, stale

    models = tmp_path / "models"
    shutil.copytree(exported_dir, models, ignore=shutil.ignore_patterns(".manifest.lock", "ort"))
    manifest = json.loads((models / "manifest.json").read_text())
    if not model_sources(manifest):
        pytest.skip("no shipped models")
    assert stale(models) == sorted(model_sources(manifest))        # no ort/ folder yet
    export_ort(models)
    manifest = json.loads((models / "manifest.json").read_text())
    assert stale(models, manifest) == []
    ort_names = sorted(p.stem for p in (models / "ort").glob("*.ort"))
    assert ort_names == sorted(n[:-5] for n in model_sources(manifest))
    assert "ai.onnx;" in (models / "ort" / "required_operators.config").read_text()
    before = {p.name: p.read_bytes() for p in (models / "ort").glob("*.ort")}
    # a re-export of one kind: new bytes under a new name, the kind's entry replaced
    kind, entry = next(iter(manifest["models"].items()))
    role, fe = next((r, f) for r, f in entry["files"].items() if f["file"].endswith(".onnx"))
    other = next(n for n in sorted(model_sources(manifest)) if n != fe["file"])
    data = (models / other).read_bytes()          # other valid bytes stand in for the new model
    new = f"{kind}-{role}-{hashlib.sha256(data).hexdigest()[:8]}.onnx"
    (models / new).write_bytes(data)
    entry["files"][role] = {**fe, "file": new, "sha256": hashlib.sha256(data).hexdigest(),
                            "bytes": len(data)}
    (models / "manifest.json").write_text(json.dumps(manifest))
    assert stale(models) == [new]
    export_ort(models)
    after = {p.name: p.read_bytes() for p in (models / "ort").glob("*.ort")}
    assert set(after) == set(before) - {fe["file"][:-5] + ".ort"} | {new[:-5] + ".ort"}
    assert all(after[n] == before[n] for n in after if n in before)   # the rest untouched
    recorded = json.loads((models / "manifest.json").read_text())["ort"]["files"]
    assert fe["file"] not in recorded and recorded[new]["source_sha256"] == \
        hashlib.sha256(data).hexdigest()
