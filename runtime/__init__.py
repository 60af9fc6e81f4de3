"""Generate content on device from the shipped ONNX models (numpy + onnxruntime only).

    from runtime import generate, load
    generate("text", prompt="The ", max_tokens=80, seed=1)     # one line, typed result
    with load("image", precision="int8") as model:             # a model object you own
        images = model.generate(n=4, seed=3)

``available()`` lists the kinds whose models are present, ``info(kind)`` returns a kind's
manifest entry, ``configure(threads=, low_memory=)`` sets onnxruntime session options and
``release()`` frees the models that ``generate`` keeps loaded. This package never imports
TensorFlow, tf2onnx, onnx, trainer or fastcore.
"""
from __future__ import annotations

import importlib
import threading

from runtime import registry as _registry
from runtime.errors import ModelError
from runtime.model import PRECISIONS, Model, Option, Options
from runtime.registry import configure

__all__ = ["generate", "load", "available", "info", "configure", "release", "model_class",
           "Model", "Option", "Options", "ModelError", "KINDS", "PRECISIONS"]

# kind -> module implementing it (imported on first use, so unused kinds cost nothing)
KINDS = {
    "text": "runtime.text",
    "image": "runtime.image",
    "video": "runtime.video",
    "level": "runtime.level",
    "music": "runtime.music",
    "dialogue": "runtime.dialogue",
    "recommend": "runtime.recommend",
}


def available(models_dir=None) -> list[str]:
    """The kinds whose models are listed in the manifest (in a fixed order)."""
    try:
        models = _registry.manifest(models_dir)["models"]
    except ModelError:
        return []
    return [kind for kind in KINDS if kind in models]


def info(kind: str, models_dir=None) -> dict:
    """The manifest entry of ``kind``: files (name, bytes, sha256, io), config, metrics."""
    _check_kind(kind, models_dir)
    return _registry.entry(kind, models_dir)


def _check_kind(kind, models_dir) -> None:
    if not isinstance(kind, str) or kind not in KINDS:
        try:
            present = available(models_dir)
        except ValueError:
            present = []
        raise ValueError(f"unknown kind {kind!r}; available kinds: "
                         f"{', '.join(present) or 'none (no models found)'} "
                         f"(all kinds: {', '.join(KINDS)})")


def model_class(kind: str) -> type[Model]:
    """The ``Model`` subclass of ``kind`` (its module is imported on first use)."""
    _check_kind(kind, None)
    return importlib.import_module(KINDS[kind]).MODEL


def load(kind: str, *, precision: str = "auto", models_dir=None, session_factory=None) -> Model:
    """A model object for ``kind``: ``.generate(seed=, **options)``, ``.info``, ``.close()``.

    ``precision``: "auto" (the kind's default, from its manifest entry: int8 for text, fp32
    for the others), "fp32" or "int8". The manifest entry is checked now (``ModelError`` if
    the kind has no model); sessions are built on first use and kept until ``close()``."""
    _check_kind(kind, models_dir)
    return model_class(kind)(models_dir, precision, session_factory)


_loaded: dict[tuple, Model] = {}
_loaded_lock = threading.Lock()


def generate(kind: str, *, seed: int | None = None, models_dir=None, precision: str = "auto",
             **options):
    """Generate one sample of ``kind`` with a process-wide model (see ``load``).

    Same arguments and ``seed`` give the same result; ``seed=None`` draws fresh randomness.
    Bad options raise ``ValueError``; missing or damaged models raise ``ModelError``.
    """
    key = (kind, models_dir if models_dir is None else str(models_dir), precision)
    model = _loaded.get(key)
    if model is None:
        with _loaded_lock:
            model = _loaded.get(key)
            if model is None:
                model = _loaded[key] = load(kind, precision=precision, models_dir=models_dir)
    return model.generate(seed=seed, **options)


def release(kind: str | None = None) -> None:
    """Close the models ``generate`` keeps loaded (all kinds, or one)."""
    with _loaded_lock:
        for key in [k for k in _loaded if kind is None or k[0] == kind]:
            _loaded.pop(key).close()
    if kind is None:
        _registry.clear_cache()
