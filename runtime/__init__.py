"""Generate content on device from the shipped ONNX models (numpy + onnxruntime only).

    from runtime import generate
    generate("text", prompt="The ", max_tokens=80, seed=1)
    generate("level", size=16, difficulty=0.7, seed=3)

``available()`` lists the kinds whose models are present, ``info(kind)`` returns a kind's
manifest entry and ``configure(threads=, low_memory=)`` sets onnxruntime session options.
This package never imports TensorFlow, tf2onnx, onnx, trainer or fastcore.
"""
from __future__ import annotations

import importlib

import numpy as _np

from runtime import options as _options
from runtime import registry as _registry
from runtime.errors import ModelError
from runtime.registry import configure

__all__ = ["generate", "available", "info", "configure", "ModelError", "KINDS"]

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
PRECISIONS = ("fp32", "int8")


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


_modules: dict = {}


def kind_module(kind: str):
    module = _modules.get(kind)
    if module is None:
        module = _modules[kind] = importlib.import_module(KINDS[kind])
    return module


def generate(kind: str, *, seed: int | None = None, models_dir=None, precision: str = "fp32",
             **options):
    """Generate one sample of ``kind``; see the README for each kind's options.

    Same arguments and ``seed`` give the same result; ``seed=None`` draws fresh randomness.
    Bad options raise ``ValueError``; missing or damaged models raise ``ModelError``.
    """
    _check_kind(kind, models_dir)
    seed = _options.check_seed(seed)
    if not (isinstance(precision, str) and precision in PRECISIONS):   # message only on failure
        _options.check_choice("precision", precision, PRECISIONS)
    root = _registry.resolve(models_dir)
    module = kind_module(kind)
    defaults = module.OPTIONS
    if not options.keys() <= defaults.keys():
        unknown = sorted(set(options) - set(defaults))
        raise ValueError(f"unknown option(s) {', '.join(map(repr, unknown))} for kind {kind!r}; "
                         f"accepted: {', '.join(defaults) or 'none'}, seed, precision, "
                         f"models_dir")
    return module.generate(rng=_np.random.default_rng(seed), models_dir=root,
                           precision=precision, **{**defaults, **options})
