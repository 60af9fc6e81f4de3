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
_NP_DTYPES = {"float32": np.float32, "float64": np.float64, "int64": np.int64, "int32": np.int32,
              "uint8": np.uint8, "bool": np.bool_}


class ExportError(RuntimeError):
    """The exported model does not reproduce TensorFlow, or fails the ONNX checker."""


# When set (see capture_tf_functions), exports record their TensorFlow functions instead of
# converting and writing anything: benchmarks use this to run the runtime's own generation
# loop with TensorFlow as the engine, on the same weights.
_capture: dict | None = None


@contextlib.contextmanager
def capture_tf_functions():
    """Within this block a kind's ``export()`` writes nothing and fills the yielded dict with
    ``(kind, role) -> (tf.function, input_signature)``."""
    global _capture
    previous, _capture = _capture, {}
    try:
        yield _capture
    finally:
        _capture = previous


def capturing() -> bool:
    """True inside ``capture_tf_functions()``: exports may skip work that only feeds files."""
    return _capture is not None


def _captured_entry(kind: str, role: str) -> dict:
    return {"file": f"{kind}-{role}-captured", "sha256": "", "bytes": 0}


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
def _spec_shape(spec) -> list:
    return [None if d is None else int(d) for d in spec.shape]


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
    if _capture is not None:
        _capture[(kind, role)] = (tf_fn, input_signature)
        return _captured_entry(kind, role)
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
    as ``role``. The source file stays on disk until the manifest stops referencing it."""
    if _capture is not None:
        return _captured_entry(kind, role)
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
    if _capture is not None:
        return _captured_entry(kind, role)
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
    (:func:`subpixel_conv_transpose`, the same numbers in float): onnxruntime's CPU provider has
    no int8 ConvTranspose, so a quantized one would run in float with its weights dequantized
    on every call. Activations uint8, weights int8: onnxruntime's default for x86 and ARM."""
    if _capture is not None:
        return _captured_entry(kind, role)
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static as ort_quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

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


def subpixel_conv_transpose(model):
    """Rewrite every ConvTranspose with 4x4 kernels, stride 2 and padding 1 (the DCGAN
    upsampling layer) as a 3x3 Conv with 4x the output channels + DepthToSpace(2).

    Output pixel (2i + a, 2j + b) of the transposed convolution sums input rows i - 1 .. i + 1
    against kernel rows (3, 1, -) for a = 0 and (-, 2, 0) for a = 1 (columns alike), so each of
    the four output phases is a 3x3 convolution with some taps zero; DepthToSpace (DCR)
    interleaves the phases. Same numbers in float; other ConvTranspose shapes are left alone."""
    from onnx import helper, numpy_helper

    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    nodes = []
    for node in graph.node:
        if not _is_upsampling_conv_transpose(node, weights):
            nodes.append(node)
            continue
        w = numpy_helper.to_array(weights[node.input[1]])            # (in, out, 4, 4)
        bias = (numpy_helper.to_array(weights[node.input[2]]) if len(node.input) > 2
                else np.zeros(w.shape[1], w.dtype))
        names = [f"{node.name}/subpixel_{x}" for x in ("kernel", "bias", "phases")]
        graph.initializer.extend([numpy_helper.from_array(_subpixel_kernel(w), names[0]),
                                  numpy_helper.from_array(np.tile(bias, 4), names[1])])
        nodes += [helper.make_node("Conv", [node.input[0], names[0], names[1]], [names[2]],
                                   name=names[2] + "_conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
                  helper.make_node("DepthToSpace", [names[2]], [node.output[0]],
                                   name=names[2] + "_interleave", blocksize=2, mode="DCR")]
    del graph.node[:]
    graph.node.extend(nodes)
    prune_unused(graph)
    return model


def fold_upsampling_into_convs(model):
    """Rewrite every ``Conv3x3(Concat([Resize2x(low), skip]))`` (a U-Net decoder layer:
    nearest-neighbour upsampling by 2, concatenated with a skip connection, then a 3x3 Conv,
    stride 1, padding 1) so that the upsampling and the upsampled half's convolution are one
    ConvTranspose of ``low``: ``ConvTranspose4x4/2(low) + Conv3x3(skip)``.

    On a nearest-upsampled input, output row 2m reads low rows m - 1 (kernel row 0) and m
    (rows 1 + 2), row 2m + 1 reads rows m (0 + 1) and m + 1 (row 2), columns alike; a 4x4
    transposed convolution with stride 2 and padding 1 makes exactly these sums with kernel
    rows (w2, w1 + w2, w0 + w1, w0). The same function up to float rounding; the upsampled
    half costs 4 x 4 instead of 4 x 9 multiply-adds per low-resolution pixel, and no upsampled
    copy is made. Other Resize / Concat / Conv shapes are left alone."""
    from onnx import helper, numpy_helper

    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    readers: dict = {}
    for n in graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    replace, drop = {}, set()
    for conv in graph.node:
        concat = producer.get(conv.input[0])
        if not (_is_same_3x3_conv(conv, weights) and concat is not None
                and concat.op_type == "Concat" and len(concat.input) == 2
                and _attr(concat, "axis") == 1 and len(readers[concat.output[0]]) == 1):
            continue
        resize = producer.get(concat.input[0])
        if resize is None or not _is_nearest_2x(resize, weights) \
                or len(readers[resize.output[0]]) != 1:
            continue
        w = numpy_helper.to_array(weights[conv.input[1]])             # (out, up + skip, 3, 3)
        up = _channels_of(resize.input[0], producer, weights)
        if up is None or not 0 < up < w.shape[1]:
            continue
        name = conv.name or conv.output[0]
        names = {x: f"{name}/folded_{x}" for x in ("up_kernel", "skip_kernel", "up", "skip")}
        graph.initializer.extend([
            numpy_helper.from_array(_upsampled_conv_transpose_kernel(w[:, :up]),
                                    names["up_kernel"]),
            numpy_helper.from_array(np.ascontiguousarray(w[:, up:]), names["skip_kernel"])])
        replace[id(conv)] = [
            helper.make_node("ConvTranspose", [resize.input[0], names["up_kernel"]],
                             [names["up"]], name=names["up"], kernel_shape=[4, 4],
                             strides=[2, 2], pads=[1, 1, 1, 1]),
            helper.make_node("Conv", [concat.input[1], names["skip_kernel"], *conv.input[2:]],
                             [names["skip"]], name=names["skip"], kernel_shape=[3, 3],
                             pads=[1, 1, 1, 1]),
            helper.make_node("Add", [names["up"], names["skip"]], [conv.output[0]],
                             name=f"{name}/folded_sum")]
        drop.update({id(concat), id(resize)})
    nodes = []
    for node in graph.node:
        if id(node) not in drop:
            nodes += replace.get(id(node), [node])
    del graph.node[:]
    graph.node.extend(nodes)
    prune_unused(graph)
    return model


def _attr(node, name, default=None):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _is_same_3x3_conv(node, weights: dict) -> bool:
    return (node.op_type == "Conv" and node.input[1] in weights
            and (len(node.input) < 3 or node.input[2] in weights)
            and _attr(node, "kernel_shape") == [3, 3] and _attr(node, "pads") == [1, 1, 1, 1]
            and _attr(node, "strides", [1, 1]) == [1, 1] and _attr(node, "group", 1) == 1
            and _attr(node, "dilations", [1, 1]) == [1, 1]
            and _attr(node, "auto_pad", b"NOTSET") == b"NOTSET")


def _is_nearest_2x(node, weights: dict) -> bool:
    """Resize of an NCHW tensor by exactly 2 per spatial axis, nearest, pixel (i, j) <- (i // 2,
    j // 2) (asymmetric coordinates with floor, the TensorFlow export's form)."""
    from onnx import numpy_helper

    if node.op_type != "Resize" or len(node.input) < 3 or node.input[2] not in weights \
            or (len(node.input) > 3 and node.input[3]):
        return False
    scales = numpy_helper.to_array(weights[node.input[2]])
    return (scales.tolist() == [1.0, 1.0, 2.0, 2.0] and _attr(node, "mode") == b"nearest"
            and _attr(node, "coordinate_transformation_mode") == b"asymmetric"
            and _attr(node, "nearest_mode", b"round_prefer_floor") == b"floor")


def _channels_of(name: str, producer: dict, weights: dict) -> int | None:
    """Channel count of an activation made by a Conv (or an activation of one), else None."""
    node = producer.get(name)
    while node is not None and node.op_type in ("LeakyRelu", "Relu"):
        node = producer.get(node.input[0])
    if node is None or node.op_type != "Conv" or node.input[1] not in weights:
        return None
    return int(weights[node.input[1]].dims[0])


def _upsampled_conv_transpose_kernel(w: np.ndarray) -> np.ndarray:
    """(out, in, 3, 3) kernel of a 3x3 Conv on a 2x nearest-upsampled input -> the (in, out, 4,
    4) kernel of the 4x4/2 ConvTranspose (padding 1) on the low-resolution input: kernel row k
    sums the 3x3 rows (2), (1, 2), (0, 1), (0) for k = 0 .. 3, columns alike."""
    taps = ((2,), (1, 2), (0, 1), (0,))
    k = np.zeros((w.shape[1], w.shape[0], 4, 4), w.dtype)
    for ky, rows in enumerate(taps):
        for kx, cols in enumerate(taps):
            k[:, :, ky, kx] = w[:, :, list(rows)][:, :, :, list(cols)].sum((2, 3)).T
    return k


def prune_unused(graph) -> None:
    """Drop the nodes whose outputs nothing reads (after a rewrite rewired their consumers),
    then the initializers no node reads."""
    needed = {o.name for o in graph.output}
    kept = []
    for node in reversed(list(graph.node)):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(node.input)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    used = {name for node in graph.node for name in node.input}
    inits = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(inits)


def _is_upsampling_conv_transpose(node, weights: dict) -> bool:
    from onnx import helper

    if node.op_type != "ConvTranspose" or node.input[1] not in weights \
            or (len(node.input) > 2 and node.input[2] not in weights):
        return False
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    return (attrs.get("kernel_shape") == [4, 4] and attrs.get("strides") == [2, 2]
            and attrs.get("pads") == [1, 1, 1, 1] and attrs.get("group", 1) == 1
            and attrs.get("dilations", [1, 1]) == [1, 1] and not attrs.get("output_padding")
            and not attrs.get("output_shape") and attrs.get("auto_pad", b"NOTSET") == b"NOTSET")


def _subpixel_kernel(w: np.ndarray) -> np.ndarray:
    """(in, out, 4, 4) ConvTranspose kernel -> (4 * out, in, 3, 3) Conv kernel, phase-major."""
    taps = ((3, 1, None), (None, 2, 0))     # kernel row feeding input row i - 1 + r, per phase
    k = np.zeros((2, 2, w.shape[1], w.shape[0], 3, 3), w.dtype)
    for a in (0, 1):
        for b in (0, 1):
            for r, ky in enumerate(taps[a]):
                for c, kx in enumerate(taps[b]):
                    if ky is not None and kx is not None:
                        k[a, b, :, :, r, c] = w[:, :, ky, kx].T
    return k.reshape(4 * w.shape[1], w.shape[0], 3, 3)


def write_json(obj, *, kind: str, role: str, out_dir) -> dict:
    """Write a JSON side file (vocabulary, catalogue, templates) content-addressed."""
    data = json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
    return _write_addressed(data, kind=kind, role=role, ext="json", out_dir=out_dir)


# ---------------------------------------------------------------------------- manifest
@contextlib.contextmanager
def _manifest_lock(out_dir: Path):
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
                notes: str = "") -> dict:
    """Atomically add/replace the manifest entry of ``kind`` (all its files already written)."""
    if _capture is not None:
        return {}
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
    with _manifest_lock(out_dir):
        manifest = read_manifest(out_dir)
        manifest["models"][kind] = entry
        _write_manifest(out_dir, manifest)
        _remove_unreferenced(out_dir, manifest)
    return entry


def update_metrics(out_dir, kind: str, metrics: dict) -> None:
    out_dir = Path(out_dir)
    with _manifest_lock(out_dir):
        manifest = read_manifest(out_dir)
        if kind not in manifest["models"]:
            raise ExportError(f"no manifest entry for {kind!r} in {out_dir}: export it first")
        manifest["models"][kind]["metrics"] = json.loads(json.dumps(metrics, default=_json_default))
        _write_manifest(out_dir, manifest)
