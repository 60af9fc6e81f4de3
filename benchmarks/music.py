"""Music benchmark: ``python -m benchmarks music [--quick] [--models-dir DIR]``.

1. Generation latency of the shipped model: ``runtime.load("music").generate(bars=8, seed=i)``
   (4/4, C major, runtime defaults), one onnxruntime thread, after one warm-up call; p50, p90
   and the mean events per melody. Target: p50 <= 5 ms.
2. Peak RSS of a fresh process that imports the runtime, loads the model and generates 20
   melodies (``resource.getrusage(RUSAGE_SELF).ru_maxrss``). Target: <= 200 MB.
3. The theory-reward kernel used in RL tuning: ``fastcore.melody_env.theory_parts_batch`` (C)
   against its pure-Python twin ``fastcore.reference_music.theory_parts_batch``, melodies per
   second on the same 8-bar melodies (skipped when fastcore is not built).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RSS_SCRIPT = """
import resource, sys
sys.path.insert(0, {root!r})
import runtime
m = runtime.load("music", models_dir={models!r})
for i in range(20):
    m.generate(seed=i, bars=8)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def latency(models_dir, n: int) -> dict:
    import runtime

    model = runtime.load("music", models_dir=models_dir)
    model.generate(seed=0, bars=8)
    times, events = [], []
    for i in range(n):
        t0 = time.perf_counter()
        mel = model.generate(seed=i, bars=8)
        times.append(time.perf_counter() - t0)
        events.append(len(mel.notes))
    ms = 1e3 * np.array(times)
    return {"p50_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)),
            "events": float(np.mean(events)), "melodies": n}


def peak_rss_mb(models_dir) -> float:
    out = subprocess.run([sys.executable, "-c", RSS_SCRIPT.format(root=str(ROOT),
                                                                 models=str(models_dir))],
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def kernel(models_dir, n: int) -> dict | None:
    try:
        from fastcore import melody_env
    except ImportError:
        return None
    import runtime
    from fastcore import reference_music
    from trainer.music_rewards import _arrays

    model = runtime.load("music", models_dir=models_dir)
    mels = [{"notes": model.generate(seed=i, bars=8).notes, "meter": "4/4", "minor": False}
            for i in range(n)]
    arrays = _arrays(mels)
    rates = {}
    for name, fn in (("C", melody_env.theory_parts_batch),
                     ("Python twin", reference_music.theory_parts_batch)):
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            fn(*arrays)
            best = min(best, time.perf_counter() - t0)
        rates[name] = n / best
    return rates


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks music")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--models-dir", default=str(ROOT / "exported"))
    args = parser.parse_args(argv)
    lat = latency(args.models_dir, 50 if args.quick else 300)
    print(f"generate(bars=8), 4/4, C: p50 {lat['p50_ms']:.2f} ms, p90 {lat['p90_ms']:.2f} ms "
          f"over {lat['melodies']} melodies ({lat['events']:.1f} events each); target p50 <= 5 ms")
    print(f"peak RSS of a fresh process (load + 20 melodies): {peak_rss_mb(args.models_dir):.0f} "
          f"MB; target <= 200 MB")
    rates = kernel(args.models_dir, 100 if args.quick else 500)
    if rates is None:
        print("theory-reward kernel: skipped (fastcore is not built)")
    else:
        print("theory-reward kernel (8-bar melodies per second): " + ", ".join(
            f"{k} {v:,.0f}" for k, v in rates.items())
            + f"; C is {rates['C'] / rates['Python twin']:.0f}x the twin")
    return 0


if __name__ == "__main__":
    sys.exit(main())
