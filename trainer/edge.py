"""Edge deployment: ORT-format models and the operator list for an onnxruntime minimal build.

    python -m trainer.edge [--out exported]          # re-runnable after any export
    python -m trainer export KIND|all --ort          # the same step after an export

:func:`export_ort` converts every ``.onnx`` file listed in the manifest (fp32 and int8; not the
files marked ``optional`` or ``checkout_only``, which no device reads) with onnxruntime's own tool
(``onnxruntime.tools.convert_onnx_models_to_ort``, ``Fixed`` optimization style, portable: no
x86-only NCHWc layout, type reduction on) and leaves in ``<out>/ort/``:

- ``<name>.ort`` for each model (``<name>`` is the ``.onnx`` file's content-addressed name);
- ``required_operators.config``: the operators and types the models use, for onnxruntime's
  ``build.sh --minimal_build --include_ops_by_config``.

The results are recorded in the manifest's top-level ``ort`` section, keyed by the ``.onnx``
file they were made from::

    "ort": {"files": {"text-step-bca9a75b.onnx": {"file": "ort/text-step-bca9a75b.ort",
                      "sha256": ..., "bytes": ..., "source_sha256": ...}, ...},
            "required_operators": {"file": "ort/required_operators.config", "sha256": ...,
                                   "bytes": ...}, "onnxruntime": "1.32.0"}

so the runtime verifies them like the ``.onnx`` files (``configure(model_format="ort")``),
and a kind's re-export, which replaces only its own entry under ``models``, leaves the section
alone: its new ``.onnx`` files (new names) simply have no ORT file until this step runs again.
Each run converts only the models without a current ORT file, then rewrites the operator
config over all of them and drops ORT files whose source left the manifest.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from trainer.export import MANIFEST, atomic_write_bytes, manifest_lock, read_manifest

ORT_DIR = "ort"
CONFIG = "required_operators.config"


def _record(path: Path, out_dir: Path) -> dict:
    data = path.read_bytes()
    return {"file": path.relative_to(out_dir).as_posix(),
            "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def model_sources(manifest: dict) -> dict[str, str]:
    """``{onnx file name: sha256}`` of every ONNX file a device reads: not ``optional``
    (never read by the runtime) nor ``checkout_only`` (left out of the device wheel)."""
    return {f["file"]: f["sha256"] for entry in manifest["models"].values()
            for f in entry["files"].values()
            if f["file"].endswith(".onnx") and not f.get("optional")
            and not f.get("checkout_only")}


def stale(out_dir, manifest: dict | None = None) -> list[str]:
    """The listed ONNX files without a current ORT file (missing, or made from other bytes)."""
    out_dir = Path(out_dir)
    manifest = manifest or read_manifest(out_dir)
    done = (manifest.get("ort") or {}).get("files", {})
    return sorted(name for name, sha in model_sources(manifest).items()
                  if done.get(name, {}).get("source_sha256") != sha
                  or not (out_dir / done[name]["file"]).exists())


def _convert(sources: list[Path], target: Path) -> None:
    """Run onnxruntime's converter over ``sources`` into ``target`` (.ort files)."""
    with tempfile.TemporaryDirectory() as tmp:
        for src in sources:
            shutil.copy(src, Path(tmp) / src.name)
        cmd = [sys.executable, "-m", "onnxruntime.tools.convert_onnx_models_to_ort", tmp,
               "--output_dir", str(target), "--optimization_style", "Fixed"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"ORT conversion failed:\n{result.stdout[-2000:]}\n"
                               f"{result.stderr[-2000:]}")


def export_ort(out_dir, kinds=None, *, type_reduction: bool = True, force: bool = False) -> Path:
    """Bring ``<out_dir>/ort/`` and the manifest's ``ort`` section up to date; return ort/.

    ``kinds`` is accepted for the trainer CLI's ``--ort`` and ignored: one operator config
    covers every shipped model, so the step always covers all kinds."""
    out_dir = Path(out_dir)
    target = out_dir / ORT_DIR
    target.mkdir(exist_ok=True)
    manifest = read_manifest(out_dir)
    sources = model_sources(manifest)
    todo = sorted(sources) if force else stale(out_dir, manifest)
    if todo:
        with tempfile.TemporaryDirectory() as tmp:
            _convert([out_dir / name for name in todo], Path(tmp))
            for name in todo:       # atomic: a crash leaves old files, never half-written ones
                ort_file = Path(tmp) / (Path(name).stem + ".ort")
                atomic_write_bytes(target / ort_file.name, ort_file.read_bytes())
    _write_config(out_dir, sorted(sources), type_reduction)   # covers every model: re-derived
    _update_manifest(out_dir, sources)
    print(f"ORT: converted {len(todo)} of {len(sources)} models; {target / CONFIG} covers all",
          file=sys.stderr)
    return target


def _write_config(out_dir: Path, names: list[str], type_reduction: bool) -> None:
    """required_operators.config from the ORT files of ``names`` (onnxruntime's own tool),
    its header listing the models by file name (not by this machine's paths)."""
    from onnxruntime.tools.ort_format_model import create_config_from_models

    files = [out_dir / ORT_DIR / (Path(n).stem + ".ort") for n in names]
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / CONFIG
        create_config_from_models(files, config, type_reduction)
        lines = config.read_text().splitlines()
    header = ["# Generated from model/s:"] + [f"# - {f.name}" for f in sorted(files)]
    body = [line for line in lines if not line.startswith("#")]
    atomic_write_bytes(out_dir / ORT_DIR / CONFIG, ("\n".join(header + body) + "\n").encode())


def _update_manifest(out_dir: Path, sources: dict[str, str]) -> None:
    """Record every current ORT file under the manifest lock; drop the rest from disk."""
    import onnxruntime

    with manifest_lock(out_dir):
        manifest = read_manifest(out_dir)
        current = model_sources(manifest)        # re-read: an export may have landed meanwhile
        files = {}
        for name, sha in sorted(current.items()):
            path = out_dir / ORT_DIR / (Path(name).stem + ".ort")
            if sources.get(name) == sha and path.exists():
                files[name] = {**_record(path, out_dir), "source_sha256": sha}
        manifest["ort"] = {"files": files,
                           "required_operators": _record(out_dir / ORT_DIR / CONFIG, out_dir),
                           "onnxruntime": onnxruntime.__version__}
        text = json.dumps(manifest, indent=2) + "\n"
        atomic_write_bytes(out_dir / MANIFEST, text.encode())
        keep = {Path(f["file"]).name for f in files.values()} | {CONFIG}
        for path in (out_dir / ORT_DIR).iterdir():
            if path.name not in keep and path.suffix in (".ort", ".config"):
                path.unlink()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.edge", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "exported"),
                        help="models directory (default: the checkout's exported/)")
    parser.add_argument("--force", action="store_true", help="re-convert every model")
    parser.add_argument("--check", action="store_true",
                        help="only list the models without a current ORT file (exit 1 if any)")
    args = parser.parse_args(argv)
    if args.check:
        missing = stale(args.out)
        for name in missing:
            print(f"no current ORT file for {name}")
        return 1 if missing else 0
    export_ort(args.out, force=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
