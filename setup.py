"""Build script: the device distribution, and fastcore's kernels for the training side.

``pip install .`` / ``pip wheel .`` build the device distribution ``rlgen``: pure Python
(``py3-none-any``), the ``runtime`` package and the shipped models only. The models go in as
``runtime/exported/``, chosen from ``exported/manifest.json``:

- files marked ``optional`` in the manifest (the image discriminator, never read by the
  runtime) stay out, and so do files marked ``checkout_only`` (the text kind's fp32 model:
  its int8 model is the default and reads as well, at a quarter of the size);
- each ONNX model ships in ORT format (``exported/ort/*.ort``, made by ``python -m
  trainer.edge``; a full onnxruntime reads it like the ``.onnx``, a minimal build reads only
  it) with ``required_operators.config``; the wheel's manifest points at the ORT files.
  ``RLGEN_MODEL_FORMAT=onnx pip wheel .`` ships the ``.onnx`` files instead. A model whose
  ORT file is missing or stale ships as ``.onnx``, with a warning.

``python setup.py build_ext --inplace`` compiles every ``fastcore/*.pyx`` into
``fastcore.<name>`` next to its source: the training side's kernels, used from the checkout
(``make build``) and never part of the device distribution.
"""
import copy
import json
import os
import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent
EXPORTED = HERE / "exported"
MODEL_FORMATS = ("ort", "onnx")


def fastcore_extensions() -> list:
    """fastcore's Cython extensions (needs Cython and numpy: the train extra)."""
    import numpy
    from Cython.Build import cythonize
    from setuptools import Extension

    extensions = [
        Extension(
            f"fastcore.{pyx.stem}",
            [str(pyx.relative_to(HERE))],
            include_dirs=[numpy.get_include(), "fastcore"],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            extra_compile_args=["-O3", "-ffp-contract=off"],  # exact parity with the twins
        )
        for pyx in sorted((HERE / "fastcore").glob("*.pyx"))
    ]
    return cythonize(extensions, language_level=3, compiler_directives={
        "boundscheck": False, "wraparound": False, "cdivision": True})


def device_manifest(manifest: dict, model_format: str) -> tuple[dict, list[str], list[str]]:
    """(the wheel's manifest, the files it ships relative to exported/, warnings).

    Optional files are dropped; with ``model_format="ort"`` every ``.onnx`` file entry is
    replaced by its ORT file's (name, sha256, bytes) from the manifest's ``ort`` section,
    keeping the ONNX file's name and sha256 as ``source``."""
    out = copy.deepcopy(manifest)
    ort = out.pop("ort", {}) or {}
    ort_files = ort.get("files", {})
    ship, warnings = [], []
    for kind, entry in out.get("models", {}).items():
        files = {}
        for role, fe in entry.get("files", {}).items():
            if fe.get("optional") or fe.get("checkout_only"):
                continue
            conv = ort_files.get(fe["file"]) if fe["file"].endswith(".onnx") else None
            if model_format == "ort" and fe["file"].endswith(".onnx"):
                if conv and conv.get("source_sha256") == fe.get("sha256") \
                        and (EXPORTED / conv["file"]).exists():
                    fe = {**fe, "file": conv["file"], "sha256": conv["sha256"],
                          "bytes": conv["bytes"], "format": "ort",
                          "source": {"file": fe["file"], "sha256": fe["sha256"]}}
                else:
                    warnings.append(f"{kind}/{role}: no current ORT file for {fe['file']} "
                                    f"(run `python -m trainer.edge`); shipping the .onnx")
            files[role] = fe
            ship.append(fe["file"])
        entry["files"] = files
        entry["bytes"] = sum(f["bytes"] for f in files.values())
    if model_format == "ort":
        out["model_format"] = "ort"
        config = ort.get("required_operators")
        if config and (EXPORTED / config["file"]).exists():
            out["required_operators"] = config
            ship.append(config["file"])
    return out, ship, warnings


class BuildPy(build_py):
    """build_py that also lays the device models into ``runtime/exported`` of the build."""

    def run(self):
        if getattr(self, "editable_mode", False):
            return super().run()   # an editable install reads the checkout's exported/
        # pip builds in ./build: files of an earlier build (a deleted module, a replaced model)
        # must not leak into this one
        shutil.rmtree(Path(self.build_lib) / "runtime", ignore_errors=True)
        super().run()
        model_format = os.environ.get("RLGEN_MODEL_FORMAT", "ort")
        if model_format not in MODEL_FORMATS:
            sys.exit(f"RLGEN_MODEL_FORMAT must be one of {', '.join(MODEL_FORMATS)}, "
                     f"got {model_format!r}")
        manifest = json.loads((EXPORTED / "manifest.json").read_text(encoding="utf-8"))
        shipped, files, warnings = device_manifest(manifest, model_format)
        for line in warnings:
            print(f"warning: {line}", file=sys.stderr)
        target = Path(self.build_lib) / "runtime" / "exported"
        for name in files:
            self.mkpath(str((target / name).parent))
            self.copy_file(str(EXPORTED / name), str(target / name), preserve_mode=False)
        (target / "manifest.json").write_text(json.dumps(shipped, indent=2) + "\n",
                                              encoding="utf-8")


class Sdist(sdist):
    """The device sources: runtime/, the models a device wheel is built from, the build files.

    No tests, trainer, fastcore or benchmarks: those are the training side (a checkout)."""
    TRAINING_SIDE = ("tests/", "trainer/", "fastcore/", "benchmarks/", "scripts/", "docs/")

    def make_distribution(self):
        files = [f for f in self.filelist.files
                 if not f.replace(os.sep, "/").startswith(self.TRAINING_SIDE)]
        manifest = json.loads((EXPORTED / "manifest.json").read_text(encoding="utf-8"))
        names = {"manifest.json"}
        for entry in manifest.get("models", {}).values():
            names.update(f["file"] for f in entry.get("files", {}).values()
                         if not f.get("optional") and not f.get("checkout_only"))
        ort = manifest.get("ort", {}) or {}
        names.update(f["file"] for f in ort.get("files", {}).values())
        if ort.get("required_operators"):
            names.add(ort["required_operators"]["file"])
        files += [f"exported/{n}" for n in sorted(names) if (EXPORTED / n).exists()]
        self.filelist.files = sorted(set(files))
        super().make_distribution()


ext_modules = fastcore_extensions() if "build_ext" in sys.argv else []
setup(ext_modules=ext_modules, cmdclass={"build_py": BuildPy, "sdist": Sdist})
