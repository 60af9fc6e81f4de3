"""Size / speed / memory of every kind: runtime fp32 and int8 against TensorFlow, one run.

    python -m benchmarks edge [--kinds text,image] [--repeats 100] [--rounds 5] [--no-tf]

Each row runs in its own fresh subprocess, so import time and peak RSS are those of a process
that does only that: ``import runtime`` (and for TensorFlow rows, TensorFlow + the trainer's
models) + ``runtime.load`` + the first ``generate`` (seconds), then ``--repeats`` timed calls
(p50, p95, calls/s) and the process's peak RSS. Every row is measured ``--rounds`` times, the
rows of a kind taking turns (fp32, int8, tensorflow, fp32, ...), so a slow spell of this shared
machine hits all engines alike; the table pools the timed calls of all rounds (p50, p95,
calls/s) and gives the median start-up and the largest peak RSS. The rows:

- ``fp32`` / ``int8``: the runtime as shipped (onnxruntime, ``precision=``).
- ``tensorflow``: the *same generation code* (the kind's runtime model) with every session
  built by :func:`tensorflow_factory` through the runtime's public hook
  ``runtime.load(kind, session_factory=...)``: each role's TensorFlow function from the
  trainer's per-kind factory ``trainer.<kind>.tf_functions(config, work_dir)``, on the
  weights of the ``runs/<kind>/full`` checkpoint (without one: freshly initialised weights of
  the same graphs, which cost the same; the table says which). The difference is the engine
  alone, including the models of other kinds a generation runs (video's first frames come
  from the image generator and classifier). TensorFlow keeps its default threads (all cores;
  the runtime uses one).
- ``tensorflow 1 thread``: the same, with one intra-op and one inter-op thread: the runtime's
  own layout, and faster than TensorFlow's default at these model sizes.

The last column divides the faster TensorFlow row's p50 (default threads or one thread) by the
row's p50; the target is >= 3x. Kinds in ``ENGINE_ONCE`` read their whole Q-table through the
engine once per model and then sample in numpy: after the first call both engines run the same
code, so their ratio is ~1x by construction and the target does not apply to them.
``python -m benchmarks edge`` prints the table; ``python -m benchmarks`` (the runner) stores it
in ``benchmarks/results.md``.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# One representative call per kind.
WORK = {
    "text": {"prompt": "The ", "max_tokens": 64, "temperature": 0.8},
    "image": {"n": 1},
    "video": {"frames": 16},
    "level": {"size": 16, "difficulty": 0.5},
    "music": {"bars": 4, "key": "C"},
    "dialogue": {"history": ["I want cheap italian food in the north"]},
    "recommend": {"history": [3, 17, 42], "k": 5},
}
# kinds whose runtime reads a whole Q-table through the engine once per model, then samples in
# numpy: no engine work per call after the first (the target does not apply)
ENGINE_ONCE = ("level", "music")
TARGET = 3.0      # runtime p50 <= 1/3 of TensorFlow's
TF_ENGINES = ("tensorflow", "tensorflow 1 thread")   # TensorFlow's default threads, and one

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
def peak_rss_mb():
    # VmHWM: this process's own peak (ru_maxrss can inherit the parent's figure across exec)
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
kind, engine, repeats, opts = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
precision = "int8" if engine == "int8" else "fp32"
factory = None
if engine.startswith("tensorflow"):
    sys.path.insert(0, sys.argv[5])
    import benchmarks.edge as edge
    factory = edge.tensorflow_factory(threads=1 if engine == "tensorflow 1 thread" else None)
import runtime
model = runtime.load(kind, precision=precision, session_factory=factory)
model.generate(seed=0, **opts)
if factory is not None and not factory.weights:
    sys.exit(f"the {kind} model built no session through session_factory: no TensorFlow row")
first = time.perf_counter() - t0
times = []
for i in range(repeats):
    t = time.perf_counter(); model.generate(seed=i + 1, **opts); times.append(time.perf_counter() - t)
times.sort()
weights = factory.weights if factory is not None else None
print(json.dumps({"first_s": first, "times": times, "peak_rss_mb": peak_rss_mb(),
                  "tf_weights": weights}))
"""


class TFSession:
    """Looks like an onnxruntime session to runtime/<kind>.py; runs a tf.function."""

    class _Arg:
        _TYPES = {"float32": "tensor(float)", "int64": "tensor(int64)", "int32": "tensor(int32)"}

        def __init__(self, name, shape=None, dtype="float32"):
            self.name, self.shape, self.type = name, shape, self._TYPES.get(dtype, dtype)

    def __init__(self, fn, signature, outputs):
        self.fn, self.signature = fn, signature
        self._inputs = [self._Arg(s.name, [d if d is not None else "batch" for d in s.shape.as_list()],
                                  s.dtype.name) for s in signature]
        self._outputs = [self._Arg(o["name"], o["shape"], o["dtype"]) for o in outputs]

    def get_inputs(self):
        return self._inputs

    def get_outputs(self):
        return self._outputs

    def run(self, output_names, feeds):
        import tensorflow as tf

        out = self.fn(*[tf.constant(feeds[s.name]) for s in self.signature])
        if isinstance(out, dict):
            out = [out[k] for k in sorted(out)]
        elif not isinstance(out, (list, tuple)):
            out = [out]
        values = [o.numpy() for o in out]
        if output_names:
            index = {a.name: i for i, a in enumerate(self._outputs)}
            values = [values[index[n]] for n in output_names]
        return values


class TensorFlowFactory:
    """``factory(kind, role, precision)`` for ``runtime.load(kind, session_factory=...)``: a
    :class:`TFSession` per role from ``trainer.<kind>.tf_functions`` (built once per kind, for
    the kind asked and for the kinds its generation draws on). ``weights`` records, per kind,
    whether the functions run the ``runs/<kind>/full`` checkpoint or fresh weights."""

    def __init__(self, root: Path = ROOT):
        self.root = Path(root)
        self.sessions: dict = {}
        self.weights: dict = {}

    def __call__(self, kind: str, role: str, precision: str = "fp32"):
        if kind not in self.weights:
            self._build(kind)
        if (kind, role) not in self.sessions:
            raise KeyError(f"trainer.{kind}.tf_functions gives no {role!r} role")
        return self.sessions[kind, role]

    def _build(self, kind: str) -> None:
        import tensorflow as tf

        import runtime

        module = importlib.import_module(f"trainer.{kind}")
        if not hasattr(module, "tf_functions"):
            raise NotImplementedError(f"trainer.{kind} has no tf_functions(config, work_dir) "
                                      f"factory: no TensorFlow row for {kind}")
        work = self.root / "runs" / kind / "full"
        trained = (work / "checkpoints" / "checkpoint").exists()
        if not trained:
            print(f"note: no checkpoint in {work}: TensorFlow runs freshly initialised weights "
                  f"of the same graphs (the same cost; `python -m trainer train {kind}` for the "
                  f"trained ones)", file=sys.stderr)
        functions = module.tf_functions(module.PROFILES["full"], work if trained else None)
        shipped = runtime.info(kind)["files"]
        for role, (fn, signature) in functions.items():
            self.sessions[kind, role] = TFSession(
                tf.function(fn, input_signature=signature), signature,
                shipped.get(role, {}).get("outputs", []))
        self.weights[kind] = "checkpoint" if trained else "untrained"


def tensorflow_factory(threads: int | None = None, root: Path = ROOT) -> TensorFlowFactory:
    """A session factory running the trainer's TensorFlow functions; ``threads``: TensorFlow's
    intra-op threads, with one inter-op thread (None: its defaults). Set threads in a fresh
    process (TensorFlow refuses once it has run anything)."""
    import tensorflow as tf

    if threads is not None:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    return TensorFlowFactory(root)


def engines(has_int8: bool, tf: bool) -> list[str]:
    return ["fp32"] + (["int8"] if has_int8 else []) + (list(TF_ENGINES) if tf else [])


def measure(kind: str, engine: str, repeats: int) -> dict:
    """One fresh process: start-up, the timed calls and peak RSS (or an error)."""
    cmd = [sys.executable, "-c", CHILD, kind, engine, str(repeats), json.dumps(WORK[kind]),
           str(ROOT)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=1800)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1][:200]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_kind(kind: str, rows: list[str], repeats: int, rounds: int) -> dict:
    """Every row ``rounds`` times, the rows taking turns; pooled per row."""
    runs = {row: [] for row in rows}
    for _ in range(rounds):
        for row in rows:
            runs[row].append(measure(kind, row, repeats))
    return {row: pool_runs(results) for row, results in runs.items()}


def pool_runs(results: list[dict]) -> dict:
    failed = [r for r in results if "error" in r]
    if failed:
        return failed[0]
    times = sorted(t for r in results for t in r["times"])
    starts = sorted(r["first_s"] for r in results)
    return {"first_s": starts[len(starts) // 2], "p50_s": times[len(times) // 2],
            "p95_s": times[min(len(times) - 1, int(0.95 * len(times)))],
            "per_s": len(times) / sum(times),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in results), "rounds": len(results),
            "tf_weights": results[0].get("tf_weights")}


def sizes(kind: str) -> tuple[int, int | None]:
    import runtime

    files = runtime.info(kind)["files"]
    # what a device needs: "optional" files (image's whole discriminator) are never read
    models = {r: f for r, f in files.items()
              if f["file"].endswith(".onnx") and not f.get("optional")}
    fp32 = sum(f["bytes"] for r, f in models.items() if not r.endswith("_int8"))
    if not any(r.endswith("_int8") for r in models):
        return fp32, None
    int8 = sum(models.get(f"{r}_int8", f)["bytes"] for r, f in models.items()
               if not r.endswith("_int8"))
    return fp32, int8


def _p50_ratio(results: dict, engine: str) -> float | None:
    """The faster TensorFlow row's p50 over ``engine``'s (None without both)."""
    tf = [results[e]["p50_s"] for e in TF_ENGINES if "p50_s" in results.get(e, {})]
    row = results.get(engine, {})
    return min(tf) / row["p50_s"] if tf and "p50_s" in row else None


def _row_ratio(results: dict, engine: str) -> float | None:
    return None if engine in TF_ENGINES else _p50_ratio(results, engine)


def _target_line(measured: dict) -> str:
    """Which kinds' runtime fp32 meets the target; ``ENGINE_ONCE`` kinds are listed apart
    (no engine work per call: ~1x by construction)."""
    met, missed, once = [], [], []
    for kind, results in measured.items():
        ratio = _p50_ratio(results, "fp32")
        if ratio is None:
            continue
        int8 = _p50_ratio(results, "int8")
        figures = f"{kind} ({ratio:.1f}x" + (f", int8 {int8:.1f}x" if int8 else "") + ")"
        if kind in ENGINE_ONCE:
            once.append(figures)
        else:
            (met if ratio >= TARGET else missed).append(figures)
    if not (met or missed or once):
        return "Target: not measured (no TensorFlow rows)."
    text = (f"Target: runtime fp32 p50 <= 1/3 of TensorFlow's, the faster of its default "
            f"threads and one thread. Met by {', '.join(met) or 'none'}.")
    if missed:
        text += f" Not met by {', '.join(missed)}."
    if once:
        text += (f" Not applicable to {', '.join(once)}: they read their Q-table through the "
                 f"engine once per model, then both rows run the same numpy code.")
    return text


def _weights_line(measured: dict) -> str:
    """Which weights the TensorFlow rows ran, per kind."""
    seen: dict = {}
    for results in measured.values():
        for engine in TF_ENGINES:
            seen.update(results.get(engine, {}).get("tf_weights") or {})
    if not seen:
        return ""
    return ("TensorFlow weights: " + ", ".join(f"{k} {v}" for k, v in sorted(seen.items()))
            + " (untrained: no runs/<kind>/full checkpoint here; the same graphs and cost).\n")


def _fmt_ms(s):
    return f"{s * 1000:.2f}" if s is not None else "-"


def table(measured: dict, sizes_of: dict, repeats: int, rounds: int) -> str:
    """The markdown table of ``measured`` (kind -> row -> pooled results)."""
    kinds = list(measured)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    header = (f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()} "
              f"({os.cpu_count()} cores, load average {load} at the end, Python "
              f"{platform.python_version()}), {rounds} "
              f"processes per row (the rows of a kind taking turns), {repeats} timed "
              f"calls after the first in each. Work per call: "
              + "; ".join(f"{k}: {json.dumps(WORK[k])}" for k in kinds) + ".\n\n"
              + _target_line(measured) + "\n" + _weights_line(measured))
    lines = [header,
             "| kind | engine | model bytes | import + first result s | p50 ms | p95 ms | "
             "calls/s | peak RSS MB | faster TF p50 / this p50 |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for kind, results in measured.items():
        fp32_bytes, int8_bytes = sizes_of[kind]
        for engine, r in results.items():
            nbytes = int8_bytes if engine == "int8" else fp32_bytes
            if "error" in r:
                lines.append(f"| {kind} | {engine} | {nbytes or '-'} | error: {r['error']} "
                             f"| | | | | |")
                continue
            ratio = _row_ratio(results, engine)
            lines.append(f"| {kind} | {engine} | {nbytes:,} | {r['first_s']:.2f} "
                         f"| {_fmt_ms(r['p50_s'])} | {_fmt_ms(r['p95_s'])} | {r['per_s']:.1f} "
                         f"| {r['peak_rss_mb']:.0f} | {'' if ratio is None else f'{ratio:.1f}x'} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks edge")
    parser.add_argument("--kinds", default=None, help="comma separated (default: all shipped)")
    parser.add_argument("--repeats", type=int, default=100, help="timed calls per process")
    parser.add_argument("--rounds", type=int, default=5,
                        help="processes per row, the rows taking turns")
    parser.add_argument("--no-tf", action="store_true", help="skip the TensorFlow rows")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import runtime

    kinds = args.kinds.split(",") if args.kinds else runtime.available()
    measured, sizes_of = {}, {}
    for kind in kinds:
        sizes_of[kind] = sizes(kind)
        measured[kind] = measure_kind(kind, engines(bool(sizes_of[kind][1]), not args.no_tf),
                                      args.repeats, args.rounds)
        for engine, r in measured[kind].items():
            print(kind, engine, json.dumps({k: v for k, v in r.items() if k != "times"}),
                  file=sys.stderr)
    print(table(measured, sizes_of, args.repeats, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
