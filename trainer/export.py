"""One export path for every model: TensorFlow function -> ONNX -> checks -> atomic write -> manifest.

Every file in ``exported/`` is content addressed (``<kind>-<role>-<sha8>.<ext>``) and written
through a temporary file + rename, and the manifest is replaced atomically under a file lock
only after all files of an entry are in place. A crash at any point leaves the previous manifest
pointing at the previous, intact files; files no entry references are removed afterwards.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import os
import platform
import tempfile
from pathlib import Path

import numpy as np

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
PARITY_TOL = 1e-4


class ExportError(RuntimeError):
    """The exported model does not reproduce TensorFlow, or fails the ONNX checker."""


# ---------------------------------------------------------------------------- atomic files
def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; models are shipped data
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_addressed(data: bytes, *, kind: str, role: str, ext: str, out_dir: Path) -> dict:
    """Write ``data`` as ``<kind>-<role>-<sha8>.<ext>``; return its file entry."""
    digest = _sha256(data)
    name = f"{kind}-{role}-{digest[:8]}.{ext}"
    atomic_write_bytes(Path(out_dir) / name, data)
    return {"file": name, "sha256": digest, "bytes": len(data)}


# ---------------------------------------------------------------------------- ONNX export
def _random_inputs(input_signature, rng: np.random.Generator) -> list[np.ndarray]:
    arrays = []
    for spec in input_signature:
        shape = [1 if d is None else int(d) for d in spec.shape]
        dtype = spec.dtype.as_numpy_dtype
        if np.issubdtype(dtype, np.floating):
            arrays.append(rng.standard_normal(shape).astype(dtype))
        elif dtype == np.bool_:
            arrays.append(rng.random(shape) < 0.5)
        else:
            arrays.append(rng.integers(0, 2, size=shape).astype(dtype))
    return arrays


def _io_signature(values) -> list[dict]:
    out = []
    for v in values:
        shape = [d.dim_value if d.HasField("dim_value") else None
                 for d in v.type.tensor_type.shape.dim]
        import onnx
        dtype = onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type)
        out.append({"name": v.name, "shape": shape, "dtype": np.dtype(dtype).name})
    return out


def _flatten_outputs(result) -> list[np.ndarray]:
    if isinstance(result, dict):
        result = [result[k] for k in sorted(result)]
    if not isinstance(result, (list, tuple)):
        result = [result]
    return [np.asarray(r) for r in result]


def _parity(onnx_bytes: bytes, fn, input_signature, samples: list[list[np.ndarray]]) -> float:
    import onnxruntime as ort
    import tensorflow as tf

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    worst = 0.0
    for arrays in samples:
        tf_out = _flatten_outputs(fn(*[tf.constant(a) for a in arrays]))
        ort_out = sess.run(None, dict(zip(names, arrays)))
        if len(tf_out) != len(ort_out):
            raise ExportError(f"TensorFlow gives {len(tf_out)} outputs, ONNX {len(ort_out)}")
        for t, o in zip(tf_out, ort_out):
            if t.shape != o.shape:
                raise ExportError(f"output shape differs: TensorFlow {t.shape}, ONNX {o.shape}")
            if np.issubdtype(t.dtype, np.floating):
                worst = max(worst, float(np.max(np.abs(t.astype(np.float64) - o))) if t.size else 0.0)
            elif not np.array_equal(t, o):
                raise ExportError("integer outputs of TensorFlow and ONNX differ")
    return worst


def export_tf_function(fn, input_signature, *, kind: str, role: str, out_dir, sample_inputs=None,
                       opset: int = 17, tol: float = PARITY_TOL, n_parity: int = 4,
                       seed: int = 0) -> dict:
    """Convert ``fn`` to ONNX, check it against TensorFlow and write it atomically.

    ``input_signature`` is a list of named ``tf.TensorSpec``; the names become the ONNX input
    names. ``sample_inputs`` (a list of arrays, or a list of such lists) are run through both
    TensorFlow and onnxruntime; by default random inputs are drawn from the signature.
    Raises ``ExportError`` if the max abs difference of float outputs exceeds ``tol``.
    """
    import tensorflow as tf

    for spec in input_signature:
        if not spec.name:
            raise ValueError("every TensorSpec in input_signature needs a name (the ONNX input name)")
    tf_fn = tf.function(fn, input_signature=input_signature)  # fine if fn already is one
    import tf2onnx

    model_proto, _ = tf2onnx.convert.from_function(tf_fn, input_signature=input_signature,
                                                    opset=opset)
    rng = np.random.default_rng(seed)
    if sample_inputs is None:
        samples = [_random_inputs(input_signature, rng) for _ in range(n_parity)]
    elif sample_inputs and isinstance(sample_inputs[0], (list, tuple)):
        samples = [list(s) for s in sample_inputs]
    else:
        samples = [list(sample_inputs)]
    return _check_and_write(model_proto, tf_fn, input_signature, samples, kind=kind, role=role,
                            out_dir=out_dir, opset=opset, tol=tol, subject="onnxruntime")


def export_rewritten(entry: dict, rewrite, fn, input_signature, *, kind: str, role: str,
                     out_dir, samples: list[list[np.ndarray]], tol: float = PARITY_TOL) -> dict:
    """Rewrite an exported ONNX graph for speed (``rewrite``: ModelProto -> ModelProto, the same
    function), check the result against TensorFlow like :func:`export_tf_function` and write it
    as ``role``. The source file stays on disk until the manifest stops referencing it.
    Rewrites live in :mod:`trainer.graph_rewrites`."""
    import onnx
    import tensorflow as tf

    model = rewrite(onnx.load(Path(out_dir) / entry["file"]))
    return _check_and_write(model, tf.function(fn, input_signature=input_signature),
                            input_signature, samples, kind=kind, role=role, out_dir=out_dir,
                            opset=entry.get("opset", 17), tol=tol, subject="the rewritten graph")


def _check_and_write(model_proto, tf_fn, input_signature, samples, *, kind: str, role: str,
                     out_dir, opset: int, tol: float, subject: str) -> dict:
    """ONNX checker, parity against TensorFlow on ``samples``, then the atomic write."""
    import onnx

    try:
        onnx.checker.check_model(model_proto, full_check=True)
    except Exception as exc:  # the checker's exception types vary between onnx versions
        raise ExportError(f"{kind}/{role}: ONNX checker failed: {exc}") from exc
    data = model_proto.SerializeToString()
    diff = _parity(data, tf_fn, input_signature, samples)
    if diff > tol:
        raise ExportError(f"{kind}/{role}: {subject} differs from TensorFlow by {diff:.3g} "
                          f"(tolerance {tol:g})")
    entry = _write_addressed(data, kind=kind, role=role, ext="onnx", out_dir=Path(out_dir))
    entry.update(opset=opset, inputs=_io_signature(model_proto.graph.input),
                 outputs=_io_signature(model_proto.graph.output),
                 parity_max_abs_diff=diff, parity_samples=len(samples))
    return entry


def export_onnx_bytes(model_proto, *, kind: str, role: str, out_dir, opset: int) -> dict:
    """Write an already built/checked ONNX model (e.g. a quantized one) and describe it."""
    data = model_proto.SerializeToString()
    entry = _write_addressed(data, kind=kind, role=role, ext="onnx", out_dir=out_dir)
    entry.update(opset=opset, inputs=_io_signature(model_proto.graph.input),
                 outputs=_io_signature(model_proto.graph.output))
    return entry


def quantize_int8(entry: dict, *, kind: str, role: str, out_dir, op_types=None) -> dict:
    """Dynamic int8 quantization (weights int8, activations quantized on the fly)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes((out_dir / entry["file"]).read_bytes())
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8,
                         op_types_to_quantize=op_types)
        model = onnx.load(str(dst))
    onnx.checker.check_model(model)
    q = export_onnx_bytes(model, kind=kind, role=role, out_dir=out_dir,
                          opset=entry.get("opset", 17))
    q["quantized_from"] = entry["file"]
    return q


def quantize_static(entry: dict, *, kind: str, role: str, out_dir, calibration: list[dict],
                    per_channel: bool = False) -> dict:
    """Static int8 in QDQ format: weights and activations int8, each activation's range
    calibrated (min/max) on ``calibration``, a list of feed dicts drawn like the runtime's inputs
    (latents and labels for a generator, digits for a discriminator).

    For convolutional models: dynamic quantization (:func:`quantize_int8`) leaves their
    ConvTranspose layers in float and measures every activation's range again on each call.
    ConvTranspose layers are rewritten as sub-pixel convolutions first
    (:func:`trainer.graph_rewrites.subpixel_conv_transpose`, the same numbers in float):
    onnxruntime's CPU provider has no int8 ConvTranspose, so a quantized one would run in float
    with its weights dequantized on every call. Activations uint8, weights int8: onnxruntime's
    default for x86 and ARM."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static as ort_quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from trainer.graph_rewrites import subpixel_conv_transpose

    class Feeds(CalibrationDataReader):
        def __init__(self):
            self.feeds = iter(calibration)

        def get_next(self):
            return next(self.feeds, None)

    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory() as tmp:
        src, pre, dst = (Path(tmp) / f"{name}.onnx" for name in ("fp32", "pre", "int8"))
        onnx.save(subpixel_conv_transpose(onnx.load(out_dir / entry["file"])), src)
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        ort_quantize_static(str(pre), str(dst), Feeds(), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            per_channel=per_channel)
        model = onnx.load(str(dst))
    onnx.checker.check_model(model)
    q = export_onnx_bytes(model, kind=kind, role=role, out_dir=out_dir,
                          opset=entry.get("opset", 17))
    samples = sum(len(next(iter(feeds.values()))) for feeds in calibration)
    q["quantized_from"] = entry["file"]
    q["quantization"] = (f"static int8 (QDQ: uint8 activations, int8 weights "
                         f"{'per channel' if per_channel else 'per tensor'}), min/max "
                         f"calibration on {samples} samples")
    return q


def write_json(obj, *, kind: str, role: str, out_dir) -> dict:
    """Write a JSON side file (vocabulary, catalogue, templates) content-addressed."""
    data = json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
    return _write_addressed(data, kind=kind, role=role, ext="json", out_dir=out_dir)


# ---------------------------------------------------------------------------- manifest
@contextlib.contextmanager
def manifest_lock(out_dir: Path):
    """The lock every writer of ``out_dir``'s manifest takes (exports, ``trainer.edge``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / ".manifest.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def read_manifest(out_dir) -> dict:
    path = Path(out_dir) / MANIFEST
    if not path.exists():
        return {"format_version": FORMAT_VERSION, "models": {}}
    return json.loads(path.read_text())


def _write_manifest(out_dir: Path, manifest: dict) -> None:
    manifest["format_version"] = FORMAT_VERSION
    manifest["models"] = dict(sorted(manifest["models"].items()))
    text = json.dumps(manifest, indent=2, sort_keys=False, default=_json_default) + "\n"
    atomic_write_bytes(out_dir / MANIFEST, text.encode())


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in ("tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "numpy"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[dist] = md.version(dist)
    return out


def _remove_unreferenced(out_dir: Path, manifest: dict) -> None:
    referenced = {f["file"] for e in manifest["models"].values() for f in e["files"].values()}
    for path in out_dir.iterdir():
        if path.suffix in (".onnx", ".json", ".ort") and path.name != MANIFEST \
                and path.name not in referenced and "-" in path.name:
            path.unlink()


def write_entry(out_dir, kind: str, files: dict, config: dict, metrics: dict | None = None,
                notes: str = "", default_precision: str | None = None) -> dict:
    """Atomically add/replace the manifest entry of ``kind`` (all its files already written).

    ``default_precision`` is what the runtime's ``precision="auto"`` picks (fp32 if unset)."""
    out_dir = Path(out_dir)
    for role, f in files.items():
        data = (out_dir / f["file"]).read_bytes()
        if _sha256(data) != f["sha256"]:
            raise ExportError(f"{f['file']} changed on disk before the manifest was written")
    entry = {
        "kind": kind,
        "files": files,
        "bytes": sum(f["bytes"] for f in files.values()),
        "config": config,
        "metrics": metrics or {},
        "parity_max_abs_diff": max((f.get("parity_max_abs_diff", 0.0) for f in files.values()),
                                   default=0.0),
        "versions": versions(),
        "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if notes:
        entry["notes"] = notes
    if default_precision:
        entry["default_precision"] = default_precision
    with manifest_lock(out_dir):
        manifest = read_manifest(out_dir)
        manifest["models"][kind] = entry
        _write_manifest(out_dir, manifest)
        _remove_unreferenced(out_dir, manifest)
    return entry


def update_metrics(out_dir, kind: str, metrics: dict) -> None:
    out_dir = Path(out_dir)
    with manifest_lock(out_dir):
        manifest = read_manifest(out_dir)
        if kind not in manifest["models"]:
            raise ExportError(f"no manifest entry for {kind!r} in {out_dir}: export it first")
        manifest["models"][kind]["metrics"] = json.loads(json.dumps(metrics, default=_json_default))
        _write_manifest(out_dir, manifest)
