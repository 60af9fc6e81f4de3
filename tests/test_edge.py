"""Edge deployment: ORT-format export, low-resource mode, int8 variants listed with metrics."""
import shutil

import numpy as np
import pytest

import runtime
from runtime import registry
from tests.conftest import shipped_kinds


def _same(a, b):
    return np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b


def test_low_resource_mode_gives_identical_results():
    kinds = shipped_kinds()
    if not kinds:
        pytest.skip("no shipped models")
    expected = {k: runtime.generate(k, seed=5) for k in kinds}
    try:
        registry.clear_cache()
        runtime.configure(threads=1, low_memory=True)
        for k in kinds:
            assert _same(runtime.generate(k, seed=5), expected[k]), k
        sess_opts = next(iter(registry._sessions.values())).get_session_options()
        assert sess_opts.enable_cpu_mem_arena is False and sess_opts.intra_op_num_threads == 1
    finally:
        runtime.configure(threads=1, low_memory=False)
        registry.clear_cache()
    with pytest.raises(ValueError, match="threads"):
        runtime.configure(threads=0)


def test_models_load_lazily():
    kinds = shipped_kinds()
    if len(kinds) < 2:
        pytest.skip("needs two kinds")
    registry.clear_cache()
    runtime.generate(kinds[0], seed=0)
    loaded = {key[1].split("-")[0] for key in registry._sessions}
    assert loaded <= {kinds[0], "image"}   # video may reuse the image generator


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
        assert "int8" in str(runtime.info(kind)["metrics"]), f"{kind}: no int8 quality metric"
        out = runtime.generate(kind, seed=1, precision="int8")
        assert out is not None


@pytest.mark.tf
def test_ort_export_writes_loadable_models_and_operator_config(tmp_path, exported_dir):
    ort = pytest.importorskip("onnxruntime")
    from trainer.edge import export_ort

    models = tmp_path / "models"
    shutil.copytree(exported_dir, models, ignore=shutil.ignore_patterns(".manifest.lock", "ort"))
    target = export_ort(models)
    onnx_files = sorted(p.stem for p in models.glob("*.onnx"))
    assert sorted(p.stem for p in target.glob("*.ort")) == onnx_files
    config = (target / "required_operators.config").read_text()
    assert "ai.onnx" in config
    for path in target.glob("*.ort"):
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert sess.get_inputs()
