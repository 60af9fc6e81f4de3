"""Measure each kind's memory floor: the smallest address-space limit (RLIMIT_AS, what
``ulimit -v`` sets) at which a cold process imports the runtime and generates one sample in
low-memory mode.

    python scripts/memory_floor.py [--kinds text,image] [--lo 96] [--hi 512] [--models-dir DIR]

Each probe is a fresh ``python -c`` under that limit with ``RUNTIME_LOW_MEMORY=1``; a probe
passes when it exits 0 and fails *cleanly* when it exits 3 after a ``ModelError`` whose
message says "out of memory". Anything else (a crash, an abort, another
exception) is reported as unclean. Prints one row per kind: floor MiB and what happened just
below it. Same workload as docs/edge.md's table (``WORK``).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

WORK = {
    "text": {"prompt": "The ", "max_tokens": 64},
    "image": {"n": 16, "quality": 1.0},
    "video": {"frames": 16},
    "level": {"size": 32, "difficulty": 0.5},
    "music": {"bars": 4, "key": "C"},
    "dialogue": {"history": ["I want cheap italian food in the north"]},
    "recommend": {"history": [3, 17, 42], "k": 5},
}
PROBE = """
import sys
try:
    import runtime
    runtime.generate({kind!r}, seed=0, **{opts!r})
except runtime.ModelError as exc:
    print("ModelError:", exc, file=sys.stderr)
    sys.exit(3 if "out of memory" in str(exc) else 4)
except MemoryError as exc:
    print("MemoryError:", exc, file=sys.stderr)
    sys.exit(5)
"""


def probe(kind: str, mib: int, models_dir: str | None, python: str) -> tuple[int, str]:
    env = dict(os.environ, RUNTIME_LOW_MEMORY="1")
    if models_dir:
        env["RUNTIME_MODELS_DIR"] = models_dir
    code = PROBE.format(kind=kind, opts=WORK[kind])
    limit = mib * 1024 * 1024

    def cap():                      # in the child, before exec: the address-space limit
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    out = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300, preexec_fn=cap)
    last = (out.stderr.strip().splitlines() or [""])[-1][:160]
    return out.returncode, last


def floor(kind: str, lo: int, hi: int, models_dir, python) -> dict:
    """Bisect on whole MiB between a failing ``lo`` and a passing ``hi``."""
    rc, _ = probe(kind, hi, models_dir, python)
    if rc != 0:
        return {"kind": kind, "floor_mib": None, "note": f"fails at {hi} MiB"}
    below = None
    while hi - lo > 2:
        mid = (lo + hi) // 2
        rc, msg = probe(kind, mid, models_dir, python)
        if rc == 0:
            hi = mid
        else:
            lo, below = mid, (rc, msg)
    rc, msg = below or probe(kind, lo, models_dir, python)
    return {"kind": kind, "floor_mib": hi, "below_rc": rc,
            "below": "clean out-of-memory ModelError" if rc == 3 else msg}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", default=",".join(WORK))
    parser.add_argument("--lo", type=int, default=64)
    parser.add_argument("--hi", type=int, default=512)
    parser.add_argument("--models-dir", default=None)
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args(argv)
    rows = [floor(k, args.lo, args.hi, args.models_dir, args.python)
            for k in args.kinds.split(",")]
    for row in rows:
        print(json.dumps(row))
    return 0 if all(r["floor_mib"] and r["below_rc"] == 3 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
