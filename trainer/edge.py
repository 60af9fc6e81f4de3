"""Edge deployment: ORT-format models and the operator list for an onnxruntime minimal build.

``python -m trainer export KIND|all --ort`` calls :func:`export_ort`, which copies the kinds'
ONNX files (fp32 and int8) of the manifest into ``<out>/ort/``, converts them with
onnxruntime's own tool (``onnxruntime.tools.convert_onnx_models_to_ort``) and leaves there:

- ``<file>.ort`` for every model (loadable by a minimal build, which cannot read ``.onnx``);
- ``required_operators.config``: the operators (and with type reduction, the types) the models
  use, to pass to onnxruntime's ``build.sh --minimal_build --include_ops_by_config``.

The ``ort/`` folder is a build artefact for device builds and is not part of the manifest.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from trainer.export import read_manifest


def export_ort(out_dir, kinds=None, *, type_reduction: bool = True) -> Path:
    out_dir = Path(out_dir)
    manifest = read_manifest(out_dir)
    kinds = kinds or sorted(manifest["models"])
    target = out_dir / "ort"
    target.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # convert every shipped model together so one config covers all kinds in ort/
        for entry in manifest["models"].values():
            for f in entry["files"].values():
                if f["file"].endswith(".onnx"):
                    shutil.copy(out_dir / f["file"], Path(tmp) / f["file"])
        cmd = [sys.executable, "-m", "onnxruntime.tools.convert_onnx_models_to_ort", tmp,
               "--output_dir", str(target), "--optimization_style", "Fixed"]
        if type_reduction:
            cmd.append("--enable_type_reduction")
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"ORT conversion failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    configs = sorted(target.glob("*.config"))
    if configs and configs[0].name != "required_operators.config":
        configs[0].replace(target / "required_operators.config")
    print(f"wrote {len(list(target.glob('*.ort')))} .ort models and "
          f"{target / 'required_operators.config'} for kinds {', '.join(kinds)}", file=sys.stderr)
    return target
