"""Model registry: finds ``manifest.json``, verifies files and builds sessions.

Every file is read once per build, its sha256 compared with the manifest *before*
onnxruntime sees it, and the verified bytes are what the session is built from (no
check-then-reload race). Caching belongs to the model objects (``runtime.model``); this module
only caches the parsed manifest (re-read when the file changes).
"""
from __future__ import annotations

import functools
import hashlib
import json
import mmap
import os
import sys
import threading
import weakref
from pathlib import Path

import numpy as np
import numpy.random  # noqa: F401  (every kind draws from it: loaded with the runtime, not later)

from runtime.errors import ModelError, is_out_of_memory, out_of_memory

# onnxruntime's telemetry writes ~/.cache/Microsoft/DeveloperTools/.onnxruntime/onnxruntime.db
# when onnxruntime is imported (and warns on stderr where that folder is read-only): off unless
# the app asks for it. Takes effect when the runtime is imported before onnxruntime.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")


def _pin_unwinder() -> None:
    """Load libgcc_s now, while memory is there. glibc loads it on first need to unwind, and
    when that first need is onnxruntime throwing std::bad_alloc under a memory limit, the
    load fails and glibc aborts the process ("libgcc_s.so.1 must be installed for unwinding
    to work") instead of letting the error reach Python."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL("libgcc_s.so.1")
        except OSError:
            pass


_pin_unwinder()

MANIFEST = "manifest.json"
MODEL_FORMATS = ("onnx", "ort")
FORMAT_VERSION = 1
_PACKAGE_DIR = Path(__file__).resolve().parent
_lock = threading.RLock()
_manifests: dict[Path, tuple[float, dict]] = {}
_manifest_paths: dict[Path, str] = {}     # root -> str path of its manifest (joined once)
_session_files: "weakref.WeakKeyDictionary[object, Path]" = weakref.WeakKeyDictionary()

_ORT_TYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(int64)": "int64",
              "tensor(int32)": "int32", "tensor(uint8)": "uint8", "tensor(bool)": "bool"}


def _initial_settings() -> dict:
    """Session settings from the environment, read once at import: RUNTIME_THREADS (an
    integer >= 1), RUNTIME_LOW_MEMORY=1 and RUNTIME_MODEL_FORMAT (onnx or ort).
    ``configure()`` overrides them."""
    threads = os.environ.get("RUNTIME_THREADS", "")
    model_format = os.environ.get("RUNTIME_MODEL_FORMAT", "")
    return {"threads": max(1, int(threads)) if threads.isdigit() else 1,
            "low_memory": os.environ.get("RUNTIME_LOW_MEMORY") == "1",
            "model_format": model_format if model_format in MODEL_FORMATS else None}


_settings = _initial_settings()


def configure(*, threads: int | None = None, low_memory: bool | None = None,
              model_format: str | None = None) -> None:
    """Session settings; models rebuild their sessions with them on their next call.

    ``threads``: intra-op threads per session (default 1: the models are small, and one thread
    gives the lowest per-call latency and lets an app run several generators side by side).
    ``low_memory``: turn off onnxruntime's memory arena and memory-pattern planning (lowest
    peak RSS on small devices, slightly slower). The environment variables RUNTIME_THREADS and
    RUNTIME_LOW_MEMORY=1 give the values at import; ``configure`` wins over them.
    ``model_format``: ``"onnx"`` or ``"ort"`` (the ORT-format files that ``python -m
    trainer.edge`` makes, what onnxruntime's minimal builds read), or ``"auto"``: the models
    folder's own format (the device wheel ships ORT files, a checkout ``.onnx``). Also settable
    with RUNTIME_MODEL_FORMAT=onnx|ort.
    """
    from runtime.options import check_bool, check_choice, check_int

    with _lock:
        if threads is not None:
            _settings["threads"] = check_int("threads", threads, 1, 256)
        if low_memory is not None:
            _settings["low_memory"] = check_bool("low_memory", low_memory)
        if model_format is not None:
            fmt = check_choice("model_format", model_format, MODEL_FORMATS + ("auto",))
            if _settings["model_format"] != (None if fmt == "auto" else fmt):
                _settings["model_format"] = None if fmt == "auto" else fmt
                _manifests.clear()     # models rebuild their sessions for a new manifest object


def settings() -> tuple[int, bool]:
    """(threads, low_memory) that new sessions are built with (the model format: see
    ``model_format()``)."""
    return _settings["threads"], _settings["low_memory"]


def default_models_dir() -> Path:
    """``RUNTIME_MODELS_DIR``, else the models installed with the package, else the checkout's."""
    return _default_dir(os.environ.get("RUNTIME_MODELS_DIR") or None)


@functools.lru_cache(maxsize=8)
def _default_dir(env_value: str | None) -> Path:
    """Decided once per process (per value of the variable): every ``generate`` resolves the
    models dir, and building and stat-ing paths each time was a tenth of a small model's call.
    One Path object per dir also keeps the session-cache keys cheap to hash."""
    if env_value:
        return Path(env_value)
    installed = _PACKAGE_DIR / "exported"
    if (installed / MANIFEST).exists():
        return installed
    return _PACKAGE_DIR.parent / "exported"


def resolve(models_dir) -> Path:
    if models_dir is None:
        return default_models_dir()
    if isinstance(models_dir, Path):
        return models_dir
    if not isinstance(models_dir, (str, os.PathLike)):
        raise ValueError(f"models_dir must be a path, got {type(models_dir).__name__}")
    return Path(models_dir)


def manifest(models_dir=None) -> dict:
    """The parsed manifest (re-read when the file changes).

    Every ``generate`` asks for it, so the hot path is one stat of a str path (joining Path
    objects cost more than the stat) and a lock-free cache hit (dict reads are atomic)."""
    root = resolve(models_dir)
    path = _manifest_paths.get(root)
    if path is None:
        path = _manifest_paths[root] = os.path.join(root, MANIFEST)
    try:
        mtime = os.stat(path).st_mtime_ns
    except FileNotFoundError:
        if not root.exists():
            raise ModelError(f"models directory {root} does not exist: pass models_dir= or set "
                             f"RUNTIME_MODELS_DIR, or reinstall the package") from None
        raise ModelError(f"{root / MANIFEST} is missing: run `python -m trainer export all` or "
                         f"restore the exported/ folder") from None
    cached = _manifests.get(root)
    if cached and cached[0] == mtime:
        return cached[1]
    return _load_manifest(root, mtime)


def _load_manifest(root: Path, mtime: int) -> dict:
    path = root / MANIFEST
    with _lock:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(f"{path} is not valid JSON ({exc}): restore it from the "
                             f"distribution or re-export") from None
        if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
            raise ModelError(f"{path} has no 'models' table: restore it or re-export")
        version = data.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ModelError(f"{path} has format_version {version!r}; this runtime reads up to "
                             f"{FORMAT_VERSION}: upgrade the runtime package")
        _manifests[root] = (mtime, data)
        return data


def entry(kind: str, models_dir=None) -> dict:
    models = manifest(models_dir)["models"]
    if kind not in models:
        raise ModelError(f"no model for {kind!r} in {resolve(models_dir) / MANIFEST}; "
                         f"available: {', '.join(sorted(models)) or 'none'}")
    return models[kind]


def file_entry(kind: str, role: str, models_dir=None) -> dict:
    return _pick(kind, role, entry(kind, models_dir).get("files", {}))


def _pick(kind: str, role: str, files: dict) -> dict:
    if role not in files:
        raise ModelError(f"the manifest entry of {kind!r} has no {role!r} file "
                         f"(has: {', '.join(sorted(files))}): re-export {kind}")
    return files[role]


def read_verified(kind: str, role: str, models_dir=None, fe: dict | None = None) -> bytes:
    """The bytes of a model file after checking size and sha256 against the manifest
    (``fe``: the file entry to read, by default the manifest's entry of ``role``)."""
    root = resolve(models_dir)
    fe = fe or file_entry(kind, role, root)
    path = root / fe["file"]
    try:
        data = path.read_bytes()
    except MemoryError:
        raise out_of_memory(path, "reading") from None
    except FileNotFoundError:
        raise ModelError(f"{path} is missing (listed in the manifest for {kind!r}): restore "
                         f"exported/ or re-export {kind}") from None
    if len(data) != fe.get("bytes", len(data)):
        raise ModelError(f"{path} has {len(data)} bytes, the manifest says {fe['bytes']}: the "
                         f"file is truncated or replaced; restore it or re-export {kind}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != fe.get("sha256"):
        raise ModelError(f"{path} fails its sha256 check (got {digest[:12]}..., manifest "
                         f"{str(fe.get('sha256'))[:12]}...): the file is corrupted or tampered "
                         f"with; restore it or re-export {kind}")
    return data


def resolve_precision(kind: str, precision: str, models_dir=None) -> str:
    """``precision`` ("auto", "fp32" or "int8") as the concrete one ``kind`` can serve from
    ``models_dir``: "auto" is the entry's ``default_precision`` (fp32 unless the trainer says
    otherwise). ``ValueError`` if the folder lacks it (``ModelError`` if the kind has no model).

    The device wheel leaves out files marked ``checkout_only`` (the text kind's fp32 model),
    so there a kind can be int8 only."""
    e = entry(kind, models_dir)
    if precision == "auto":
        precision = e.get("default_precision", "fp32")
    if precision not in ("fp32", "int8"):
        raise ValueError(f"precision must be one of auto, fp32, int8; got {precision!r}")
    files = e.get("files", {})
    int8 = [role for role in files if role.endswith("_int8")]
    if precision == "int8" and not int8:
        raise ValueError(f"precision='int8' is not available for {kind!r}: it ships fp32 only")
    if precision == "fp32" and any(role[:-len("_int8")] not in files for role in int8):
        raise ValueError(f"precision='fp32' is not available for {kind!r} in "
                         f"{resolve(models_dir)}: this install ships its int8 model only (the "
                         f"device wheel leaves the fp32 one out; a checkout's exported/ has "
                         f"it); use precision='int8' or 'auto'")
    return precision


def _role_for(kind: str, role: str, precision: str, files: dict) -> str:
    """The file role that serves ``role`` at ``precision``: at int8 its ``_int8`` variant, or
    the float file where that role has none (the image classifier)."""
    if precision == "fp32":
        return role
    if precision != "int8":
        raise ValueError(f"precision must be one of fp32, int8; got {precision!r}")
    if f"{role}_int8" in files:
        return f"{role}_int8"
    if not any(r.endswith("_int8") for r in files):
        raise ValueError(f"precision='int8' is not available for {kind!r}: it ships fp32 only")
    return role


def load_session(kind: str, role: str, models_dir=None, precision: str = "fp32"):
    """A new onnxruntime session for ``kind``'s ``role`` file (its int8 variant at int8),
    built from bytes verified against the manifest, inputs and outputs checked."""
    root = resolve(models_dir)
    files = entry(kind, root).get("files", {})
    role = _role_for(kind, role, precision, files)
    fe = in_format(kind, _pick(kind, role, files), root, _settings["model_format"])
    return _load_session(kind, role, root, fe, settings())


def model_format(models_dir=None) -> str:
    """The format sessions are built from: configure()'s, else the folder's own (its
    manifest's ``model_format``: the device wheel's says ``ort``), else ``onnx``."""
    return _settings["model_format"] or manifest(models_dir).get("model_format", "onnx")


def in_format(kind: str, fe: dict, root: Path, wanted: str | None) -> dict:
    """The file entry to load for ``fe`` in the format ``wanted`` (None: as listed).

    ORT files are listed in the manifest's ``ort`` section by the ``.onnx`` file they were made
    from (sha256 and size checked like any model file); a folder whose entries already point at
    ORT files (the device wheel's) has no ``.onnx`` to fall back to."""
    has = "onnx" if fe["file"].endswith(".onnx") else "ort" if fe["file"].endswith(".ort") else None
    if wanted is None or has is None or has == wanted:
        return fe             # auto: the file the manifest lists (a wheel may mix, see setup.py)
    if has == "ort":
        raise ModelError(f"{root} ships {kind}'s models in ORT format only ({fe['file']}); "
                         f"use model_format='ort' or 'auto' (RUNTIME_MODEL_FORMAT=ort)")
    if fe.get("checkout_only"):
        raise ModelError(f"{root / fe['file']} has no ORT-format file: it is a checkout-only "
                         f"model (no device reads it); use model_format='onnx', or the "
                         f"precision that {kind} ships for devices (precision='auto')")
    conv = (manifest(root).get("ort") or {}).get("files", {}).get(fe["file"])
    if not conv or conv.get("source_sha256") != fe.get("sha256"):
        raise ModelError(f"{root / fe['file']} has no current ORT-format file in "
                         f"{root / MANIFEST}: run `python -m trainer.edge` after exporting "
                         f"{kind}, or use model_format='onnx'")
    return {**fe, "file": conv["file"], "sha256": conv["sha256"], "bytes": conv["bytes"]}


def _load_session(kind: str, role: str, root: Path, fe: dict, session_settings: tuple):
    try:
        import onnxruntime as ort
    except (ImportError, MemoryError) as exc:   # its extension fails to load when memory is out
        if is_out_of_memory(exc):
            raise out_of_memory(root / fe["file"], "importing onnxruntime to load") from None
        raise
    data = read_verified(kind, role, root, fe)
    opts = ort.SessionOptions()
    threads, low_memory = session_settings
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    if low_memory:
        opts.enable_cpu_mem_arena = False
        opts.enable_mem_pattern = False
    try:
        sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises several private exception types
        if is_out_of_memory(exc):
            raise out_of_memory(root / fe["file"], "loading") from None
        raise ModelError(f"{root / fe['file']} cannot be loaded by onnxruntime "
                         f"{ort.__version__}: {str(exc).splitlines()[0][:300]}; re-export "
                         f"{kind} with a compatible opset") from None
    _check_io(sess.get_inputs(), fe.get("inputs"), "inputs", root / fe["file"], kind)
    _check_io(sess.get_outputs(), fe.get("outputs"), "outputs", root / fe["file"], kind)
    _session_files[sess] = root / fe["file"]
    return sess


def _check_io(actual, expected, what: str, path: Path, kind: str) -> None:
    if expected is None:
        return
    got = [(a.name, _ORT_TYPES.get(a.type, a.type)) for a in actual]
    want = [(e["name"], e["dtype"]) for e in expected]
    if got != want:
        raise ModelError(f"{path} has {what} {got} but the manifest declares {want}: the model "
                         f"and manifest do not belong together; re-export {kind}")


def read_json(kind: str, role: str, models_dir=None):
    """A verified, parsed JSON side file (vocabulary, catalogue, templates)."""
    root = resolve(models_dir)
    data = read_verified(kind, role, root)
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{root / file_entry(kind, role, root)['file']} is not valid JSON "
                         f"({exc}); re-export {kind}") from None


# Address space a run must find free in low-memory mode before onnxruntime gets it: some of
# its kernels (the int8 QDQ convolutions) crash the process instead of failing when an
# allocation fails, which no Python code can catch.
LOW_MEMORY_HEADROOM = 8 << 20


def _check_headroom(sess) -> None:
    try:
        mmap.mmap(-1, LOW_MEMORY_HEADROOM).close()    # reserved, never touched: no RAM used
    except (OSError, MemoryError):
        path = _session_files.get(sess, "a model") if _weakrefable(sess) else "a model"
        raise out_of_memory(path, "running") from None


def run(sess, feeds: dict, outputs: list[str] | None = None) -> list[np.ndarray]:
    """``sess.run`` with onnxruntime failures turned into ModelError (never a raw traceback);
    running out of memory says so and names the model file. In low-memory mode a run first
    checks that ``LOW_MEMORY_HEADROOM`` bytes of address space are free."""
    if _settings["low_memory"]:
        _check_headroom(sess)
    try:
        return sess.run(outputs, feeds)
    except Exception as exc:      # MemoryError included
        path = _session_files.get(sess, "a model") if _weakrefable(sess) else "a model"
        if is_out_of_memory(exc):
            raise out_of_memory(path, "running") from None
        raise ModelError(f"onnxruntime failed to run {path}: "
                         f"{str(exc).splitlines()[0][:300]}") from None


def _weakrefable(obj) -> bool:
    return hasattr(type(obj), "__weakref__")


def clear_cache() -> None:
    """Forget the parsed manifests (models drop their sessions when the manifest changes)."""
    with _lock:
        _manifests.clear()
