"""CI lane: the device wheel as an integrator gets it, on every Python 3.10-3.13 found.

    python scripts/wheel_lane.py [--pythons 3.10,3.11,3.12,3.13] [--keep DIR]

1. Builds the wheel from the checkout (``pip wheel --no-deps``) and checks it: tag
   ``py3-none-any``, at most 5 MB, the only top-level package ``runtime``, requirements numpy
   and onnxruntime only, every model the runtime reads inside (ORT format with
   ``required_operators.config``), no optional artefact.
2. For each Python found (``pythonX.Y`` on PATH that runs, or a pyenv install), makes a fresh
   venv outside the checkout, installs the wheel (numpy and onnxruntime from the package
   index), and in a temporary working directory with a fresh HOME generates every kind with
   fixed seeds; records a digest of each result, checks that no TensorFlow, trainer or
   fastcore was imported and that nothing was written under HOME (onnxruntime's telemetry
   database).
3. The digests must be the same on every Python, and the same as the checkout's own runtime
   reading the ORT files (``RUNTIME_MODEL_FORMAT=ort``).

A Python version that is not on the machine is skipped with a message; exit status 1 on any
failure. Takes about a minute per Python (mostly pip).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_WHEEL_BYTES = 5_000_000
VERSIONS = ("3.10", "3.11", "3.12", "3.13")
# Run inside each venv: every kind, two seeds, defaults plus one heavier call; prints JSON.
PROBE = r'''
import dataclasses, hashlib, json, os, sys
import numpy as np
import runtime
WORK = [("text", {"max_tokens": 40}), ("image", {"n": 4, "quality": 1.0}), ("video", {"frames": 6}),
        ("level", {}), ("music", {}), ("dialogue", {"history": ["I want cheap italian food"]}),
        ("recommend", {"history": [3, 17, 42], "k": 5})]
def digest(result):
    if isinstance(result, np.ndarray):
        data = np.ascontiguousarray(result).tobytes() + str(result.shape).encode()
    elif dataclasses.is_dataclass(result):
        data = repr(dataclasses.asdict(result)).encode()
    else:
        data = json.dumps(result, default=repr, sort_keys=True).encode()
    return hashlib.sha256(data).hexdigest()[:16]
out = {"python": sys.version.split()[0], "runtime": runtime.__file__,
       "format": runtime.registry.model_format(), "kinds": {}}
for kind, opts in WORK:
    try:
        out["kinds"][kind] = [digest(runtime.generate(kind, seed=s, **opts)) for s in (0, 1)]
    except Exception as exc:
        out["kinds"][kind] = f"{type(exc).__name__}: {exc}"[:300]
out["forbidden"] = sorted(m for m in ("tensorflow", "trainer", "fastcore", "onnx", "tf2onnx")
                          if m in sys.modules)
print("LANE " + json.dumps(out))
'''


def log(msg: str) -> None:
    print(f"[wheel-lane] {msg}", flush=True)


def build_wheel(dest: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(dest), str(ROOT)], check=True)
    return next(dest.glob("rlgen-*.whl"))


def check_wheel(wheel: Path) -> list[str]:
    """Problems with the wheel's tag, size, packages, requirements and models."""
    problems = []
    if not wheel.name.endswith("-py3-none-any.whl"):
        problems.append(f"{wheel.name} is not py3-none-any")
    if wheel.stat().st_size > MAX_WHEEL_BYTES:
        problems.append(f"{wheel.name} has {wheel.stat().st_size:,} bytes (> {MAX_WHEEL_BYTES:,})")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        meta = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        manifest = json.loads(zf.read("runtime/exported/manifest.json"))
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    if tops != {"runtime"}:
        problems.append(f"top-level entries {sorted(tops)}, expected only runtime")
    requires = sorted(line.split(":", 1)[1].split(">")[0].split("=")[0].split("<")[0].strip()
                      for line in meta.splitlines()
                      if line.startswith("Requires-Dist:") and "extra ==" not in line)
    if requires != ["numpy", "onnxruntime"]:
        problems.append(f"requires {requires}, expected numpy and onnxruntime")
    for kind, entry in manifest["models"].items():
        for role, f in entry["files"].items():
            if f.get("optional"):
                problems.append(f"{kind}/{role}: optional file {f['file']} in the wheel")
            if f"runtime/exported/{f['file']}" not in names:
                problems.append(f"{kind}/{role}: {f['file']} listed but not in the wheel")
            if f["file"].endswith(".onnx"):
                problems.append(f"{kind}/{role}: {f['file']} ships as .onnx (no current ORT file)")
    if "runtime/exported/ort/required_operators.config" not in names:
        problems.append("required_operators.config missing")
    return problems


def find_python(version: str) -> str | None:
    """A working interpreter for ``version`` (PATH shims that fail are passed over)."""
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}")),
                         reverse=True)
    for cand in filter(None, candidates):
        try:
            out = subprocess.run([cand, "-c", "import sys, venv; print('%d.%d' % sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0 and out.stdout.strip() == version:
            return cand
    return None


def probe(python: str, env_extra: dict, cwd: Path, home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "RUNTIME_"))}
    env.update(HOME=str(home), **env_extra)
    out = subprocess.run([python, "-c", PROBE], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=600)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("LANE ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"probe failed ({out.returncode}): {out.stderr[-1500:]}")
    result = json.loads(line[5:])
    result["home_files"] = sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())
    return result


def run_python(version: str, python: str, wheel: Path, work: Path) -> dict:
    venv = work / f"venv{version}"
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    vpy = venv / "bin" / "python"
    pip = [str(vpy), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)]
    for attempt in (1, 2):
        done = subprocess.run(pip, capture_output=True, text=True, timeout=900)
        if done.returncode == 0:
            break
        if attempt == 2:
            raise RuntimeError(f"pip install failed on Python {version}: {done.stderr[-1500:]}")
    home, cwd = work / f"home{version}", work / f"cwd{version}"
    home.mkdir()
    cwd.mkdir()
    return probe(str(vpy), {}, cwd, home)


def compare(results: dict, reference: dict) -> list[str]:
    problems = []
    for version, res in results.items():
        if "site-packages" not in res["runtime"] or str(ROOT) in res["runtime"]:
            problems.append(f"{version}: runtime imported from {res['runtime']}")
        if res["forbidden"]:
            problems.append(f"{version}: imported {res['forbidden']}")
        if res["home_files"]:
            problems.append(f"{version}: wrote under HOME: {res['home_files'][:3]}")
        if res["format"] != "ort":
            problems.append(f"{version}: models read as {res['format']}, expected ort")
        for kind, want in reference["kinds"].items():
            got = res["kinds"].get(kind)
            if isinstance(got, str):
                problems.append(f"{version} {kind}: {got}")
            elif got != want:
                problems.append(f"{version} {kind}: outputs {got} differ from the checkout's "
                                f"{want}")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pythons", default=",".join(VERSIONS))
    parser.add_argument("--keep", default=None, help="work in this folder and keep it")
    args = parser.parse_args(argv)
    t0 = time.monotonic()
    work = Path(args.keep or tempfile.mkdtemp(prefix="wheel-lane-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        wheel = build_wheel(work / "dist")
        problems = check_wheel(wheel)
        log(f"{wheel.name}: {wheel.stat().st_size:,} bytes; "
            f"{'ok' if not problems else '; '.join(problems)}")
        home = work / "home-checkout"
        home.mkdir()
        reference = probe(sys.executable, {"PYTHONPATH": str(ROOT), "RUNTIME_MODEL_FORMAT": "ort"},
                          work, home)
        problems += [f"checkout {k}: {v}" for k, v in reference["kinds"].items()
                     if isinstance(v, str)]
        results = {}
        for version in args.pythons.split(","):
            python = find_python(version)
            if python is None:
                log(f"Python {version}: SKIPPED (no working python{version} on this machine)")
                continue
            try:
                results[version] = run_python(version, python, wheel, work)
                log(f"Python {results[version]['python']}: {results[version]['kinds']}")
            except (RuntimeError, subprocess.SubprocessError) as exc:
                problems.append(f"Python {version}: {exc}")
        problems += compare(results, reference)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    for p in problems:
        log(f"FAIL {p}")
    log(f"{len(results)} Python(s) tested in {time.monotonic() - t0:.0f} s: "
        f"{'FAILED' if problems else 'all kinds identical on every Python'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
