"""Model registry: finds ``manifest.json``, verifies files and caches sessions per process.

Every file is read once, its sha256 compared with the manifest *before* onnxruntime sees it,
and the verified bytes are what the session is built from (no check-then-reload race).
Sessions and JSON side files are cached per (models dir, file) behind a lock, so threads share
one session per model; onnxruntime's ``run`` is itself thread-safe.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from pathlib import Path

import numpy as np

from runtime.errors import ModelError

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
_PACKAGE_DIR = Path(__file__).resolve().parent
_lock = threading.RLock()
_manifests: dict[Path, tuple[float, dict]] = {}
_sessions: dict[tuple, object] = {}
_json_files: dict[tuple, object] = {}
_manifest_paths: dict[Path, str] = {}     # root -> str path of its manifest (joined once)
_session_hits: dict[tuple, tuple] = {}    # (root, kind, role, precision) -> (manifest, settings, sess)
_settings = {"threads": 1, "low_memory": False}

_ORT_TYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(int64)": "int64",
              "tensor(int32)": "int32", "tensor(uint8)": "uint8", "tensor(bool)": "bool"}


def configure(*, threads: int | None = None, low_memory: bool | None = None) -> None:
    """Session settings for sessions created from now on.

    ``threads``: intra-op threads per session (default 1: the models are small, and one thread
    gives the lowest per-call latency and lets an app run several generators side by side).
    ``low_memory``: turn off onnxruntime's memory arena and memory-pattern planning (lowest
    peak RSS on small devices, slightly slower). Also settable with the environment variables
    RUNTIME_THREADS and RUNTIME_LOW_MEMORY=1.
    """
    from runtime.options import check_bool, check_int

    with _lock:
        if threads is not None:
            _settings["threads"] = check_int("threads", threads, 1, 256)
        if low_memory is not None:
            _settings["low_memory"] = check_bool("low_memory", low_memory)


def _env_settings() -> tuple[int, bool]:
    """(threads, low_memory): configure()'s values, overridden by the environment."""
    threads, low_memory = _settings["threads"], _settings["low_memory"]
    env_threads = os.environ.get("RUNTIME_THREADS", "")
    if env_threads.isdigit():
        threads = max(1, int(env_threads))
    if os.environ.get("RUNTIME_LOW_MEMORY") == "1":
        low_memory = True
    return threads, low_memory


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


def read_verified(kind: str, role: str, models_dir=None) -> bytes:
    """The bytes of a model file after checking size and sha256 against the manifest."""
    root = resolve(models_dir)
    fe = file_entry(kind, role, root)
    path = root / fe["file"]
    try:
        data = path.read_bytes()
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


def _role_for(kind: str, role: str, precision: str, files: dict) -> str:
    if precision == "fp32":
        return role
    if precision != "int8":
        raise ValueError(f"precision must be one of fp32, int8; got {precision!r}")
    if f"{role}_int8" not in files:
        raise ValueError(f"precision='int8' is not available for {kind!r}: it ships fp32 only")
    return f"{role}_int8"


def session(kind: str, role: str, models_dir=None, precision: str = "fp32"):
    """A verified, cached ``onnxruntime.InferenceSession`` for ``kind``'s ``role`` model.

    Called on every ``generate``: one manifest check (a stat), then a lock-free cache hit,
    valid while the manifest object (replaced whenever the file changes) and the session
    settings are the ones it was found under; the lock is only taken to build a session."""
    root = resolve(models_dir)
    data = manifest(root)
    settings = _env_settings()
    hit = _session_hits.get((root, kind, role, precision))
    if hit is not None and hit[0] is data and hit[1] == settings:
        return hit[2]
    sess = _find_session(kind, role, root, precision, settings)
    _session_hits[root, kind, role, precision] = (data, settings, sess)
    return sess


def _find_session(kind: str, role: str, root: Path, precision: str, settings: tuple):
    files = entry(kind, root).get("files", {})
    role = _role_for(kind, role, precision, files)
    fe = _pick(kind, role, files)
    hints = fe.get("disabled_optimizers")          # part of the key: the session is built with them
    key = (root, fe["file"], fe["sha256"], *settings, hints and repr(hints))
    sess = _sessions.get(key)
    if sess is None:
        with _lock:
            sess = _sessions.get(key)
            if sess is None:
                sess = _load_session(kind, role, root, fe, settings)
                _sessions[key] = sess
    return sess


def _load_session(kind: str, role: str, root: Path, fe: dict, settings: dict):
    import onnxruntime as ort

    data = read_verified(kind, role, root)
    opts = ort.SessionOptions()
    threads, low_memory = settings
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    if low_memory:
        opts.enable_cpu_mem_arena = False
        opts.enable_mem_pattern = False
    # graph optimizers the export measured to slow this model down (manifest, per file)
    disabled = fe.get("disabled_optimizers", [])
    if not (isinstance(disabled, list) and all(isinstance(d, str) for d in disabled)):
        raise ModelError(f"{root / MANIFEST}: {kind}/{role} disabled_optimizers must be a list of "
                         f"optimizer names, got {disabled!r}: re-export {kind}")
    try:
        sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"],
                                    **({"disabled_optimizers": disabled} if disabled else {}))
    except Exception as exc:  # onnxruntime raises several private exception types
        raise ModelError(f"{root / fe['file']} cannot be loaded by onnxruntime "
                         f"{ort.__version__}: {str(exc).splitlines()[0][:300]}; re-export "
                         f"{kind} with a compatible opset") from None
    _check_io(sess.get_inputs(), fe.get("inputs"), "inputs", root / fe["file"], kind)
    _check_io(sess.get_outputs(), fe.get("outputs"), "outputs", root / fe["file"], kind)
    return sess


def _check_io(actual, expected, what: str, path: Path, kind: str) -> None:
    if expected is None:
        return
    got = [(a.name, _ORT_TYPES.get(a.type, a.type)) for a in actual]
    want = [(e["name"], e["dtype"]) for e in expected]
    if got != want:
        raise ModelError(f"{path} has {what} {got} but the manifest declares {want}: the model "
                         f"and manifest do not belong together; re-export {kind}")


def load_json(kind: str, role: str, models_dir=None):
    """A verified, cached JSON side file (vocabulary, catalogue, templates)."""
    root = resolve(models_dir)
    fe = file_entry(kind, role, root)
    key = (root, fe["file"], fe["sha256"])
    hit = _json_files.get(key)
    if hit is not None:
        return hit
    with _lock:
        if key not in _json_files:
            data = read_verified(kind, role, root)
            try:
                _json_files[key] = json.loads(data.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ModelError(f"{root / fe['file']} is not valid JSON ({exc}); re-export "
                                 f"{kind}") from None
        return _json_files[key]


def run(sess, feeds: dict) -> list[np.ndarray]:
    """``sess.run`` with onnxruntime failures turned into ModelError (never a raw traceback).

    Calls the C-level session where there is one: the Python wrapper re-checks feed names and
    OrtValue ownership on every call (~10 us, a tenth of a small model's reply) although the
    feeds are built by this package from the verified inputs; the C level still rejects a
    wrong shape or dtype, and a missing input fails the run (a ModelError either way)."""
    native = getattr(sess, "_sess", None)
    try:
        if native is not None:
            return native.run([o.name for o in sess._outputs_meta], feeds, None)
        return sess.run(None, feeds)
    except Exception as exc:
        raise ModelError(f"onnxruntime failed to run a model: {str(exc).splitlines()[0][:300]}") \
            from None


def clear_cache() -> None:
    with _lock:
        _manifests.clear()
        _session_hits.clear()
        _sessions.clear()
        _json_files.clear()


def session_count() -> int:
    return len(_sessions)
