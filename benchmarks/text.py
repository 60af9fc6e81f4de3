"""Text benchmark: ``python -m benchmarks text [--quick] [--models-dir DIR] [--json PATH]``.

Side by side in one run, same machine, batch 1, the shipped ``text`` model's weights:

1. Per-token latency and tokens/s of a generation loop (one step + sampling per subword token):
   - runtime fp32 and int8: ``runtime.generate("text", ...)`` (onnxruntime, 1 intra-op thread,
     the registry's default; sampling in numpy),
   - TensorFlow ``tf.function``: the same weights in the trainer's Keras model
     (Embedding -> GRU -> Dense), one ``model(x, states, return_state=True)`` call per
     token wrapped in ``tf.function`` (traced once, before timing),
   - TensorFlow eager Keras: the same call without ``tf.function``.
   TensorFlow runs with its default thread pools (it may use every core); onnxruntime with one
   thread. Both sample with ``runtime.text_sampling.sample_next`` (same temperature 0.8).
   Rounds alternate between the contenders (the machine may be shared); the median round and
   the best round are reported.
2. Cold start and memory, each in a fresh subprocess (the runtime at its default precision): time from the first line of the script to
   the first generated token (imports, model load and, for TensorFlow, building the Keras
   model and setting its weights included), then 200 more tokens, then the process'
   peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``).

The Keras model's weights are read from the shipped ONNX file's initializers (found by
following the graph from its inputs); the benchmark checks that Keras reproduces
onnxruntime's logits.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
TEMPERATURE = 0.8


# ---------------------------------------------------------------------------- weights
def onnx_weights(models_dir: Path) -> dict:
    """emb [V,E], w_in [E,3H], b_in, u [H,3H], b_h, w_o [H,V], b_o from the shipped fp32 step
    (found by following the graph from its inputs)."""
    import onnx
    from onnx import numpy_helper

    from runtime import registry

    fe = registry.file_entry("text", "step", models_dir)
    graph = onnx.load(str(Path(models_dir) / fe["file"])).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    consumers: dict = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def matmul_add(source: str):
        mm = next(n for n in consumers[source] if n.op_type == "MatMul")
        add = consumers[mm.output[0]][0]
        return inits[mm.input[1]], inits[next(i for i in add.input if i in inits)]

    gather = next(n for n in graph.node if n.op_type == "Gather")
    w_in, b_in = matmul_add(gather.output[0])
    u, b_h = matmul_add(graph.input[1].name)
    last = next(n for n in graph.node if n.op_type == "MatMul" and n.input[1] in inits
                and inits[n.input[1]].shape[1] == inits[gather.input[0]].shape[0])
    w_o, b_o = matmul_add(last.input[0])
    return {"emb": inits[gather.input[0]], "w_in": w_in, "b_in": b_in, "u": u, "b_h": b_h,
            "w_o": w_o, "b_o": b_o}


def keras_weights(w: dict) -> list[np.ndarray]:
    """Weights of TextGenerator(V, E, H): embeddings, kernel, recurrent, bias, W_o, b_o."""
    bias = np.stack([w["b_in"], w["b_h"]]).astype(np.float32)
    return [w["emb"], w["w_in"], w["u"], bias, w["w_o"], w["b_o"]]


def build_keras(models_dir: Path):
    """The Keras model holding the shipped weights (+ max |logit diff| vs onnxruntime)."""
    from runtime import registry
    from trainer.text_lm import build_model

    w = onnx_weights(models_dir)
    vocab_size, embed_dim = w["emb"].shape
    hidden = w["u"].shape[0]
    model = build_model(vocab_size, embed_dim, hidden)
    model.set_weights(keras_weights(w))
    rng = np.random.default_rng(0)
    seq = rng.integers(1, vocab_size, size=(1, 20)).astype(np.int32)
    want = model(seq).numpy()[0]
    sess = registry.load_session("text", "step", models_dir)
    names = [i.name for i in sess.get_inputs()]
    state = np.zeros((1, hidden), np.float32)
    diff = 0.0
    for t in range(seq.shape[1]):
        logits, state = sess.run(None, {names[0]: seq[:, t].astype(np.int64), names[1]: state})
        diff = max(diff, float(np.abs(logits[0] - want[t]).max()))
    return model, (vocab_size, embed_dim, hidden), diff


# ---------------------------------------------------------------------------- loops
def runtime_loop(models_dir: Path, precision: str, n: int):
    import runtime

    def run(seed: int) -> float:
        t = time.perf_counter()
        out = runtime.generate("text", seed=seed, models_dir=models_dir, precision=precision,
                               max_tokens=n, temperature=TEMPERATURE)
        dt = time.perf_counter() - t
        assert len(out.tokens) == n
        return dt / n
    run(0)  # warm (session load)
    return run


def tf_loop(model, hidden: int, n: int, compiled: bool):
    import tensorflow as tf

    from runtime.text_sampling import sample_next

    def call(x, states):
        return model(x, states=states, return_state=True)

    fn = tf.function(call) if compiled else call
    start = 2

    def run(seed: int) -> float:
        rng = np.random.default_rng(seed)
        states = tf.zeros((1, hidden))
        x = tf.constant([[start]], tf.int32)
        t = time.perf_counter()
        for _ in range(n):
            logits, states = fn(x, states)
            row = logits.numpy()[0, -1]
            row[0] = -np.inf
            j = sample_next(row, rng, TEMPERATURE, 0, 1.0)
            x = tf.constant([[j]], tf.int32)
        return (time.perf_counter() - t) / n
    run(0) if compiled else None  # trace once before timing
    return run


# ---------------------------------------------------------------------------- cold start
RUNTIME_CHILD = r"""
import time; t0 = time.perf_counter()
import json, resource, sys
sys.path.insert(0, {root!r})
import runtime
first = runtime.generate("text", seed=0, models_dir={models!r}, max_tokens=1)
t1 = time.perf_counter()
runtime.generate("text", seed=0, models_dir={models!r}, max_tokens=200)
print(json.dumps({{"first_token_s": t1 - t0,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "vmhwm_mb": {hwm},
                  "tf_loaded": "tensorflow" in sys.modules}}))
"""

TF_CHILD = r"""
import time; t0 = time.perf_counter()
import json, os, resource, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, {root!r})
import numpy as np
import tensorflow as tf
from trainer.text_lm import build_model
w = np.load({weights!r})
v, e, h = (int(x) for x in w["shape"])
model = build_model(v, e, h)
model.set_weights([w[f"w{{i}}"] for i in range(6)])
rng = np.random.default_rng(0)
def step(j, states):
    logits, states = model(tf.constant([[j]], tf.int32), states=states, return_state=True)
    p = tf.nn.softmax(logits[0, -1] / 0.8).numpy().astype(np.float64); p[0] = 0
    return int(rng.choice(len(p), p=p / p.sum())), states
j, states = step(2, tf.zeros((1, h)))
t1 = time.perf_counter()
for _ in range(200):
    j, states = step(j, states)
print(json.dumps({{"first_token_s": t1 - t0,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "vmhwm_mb": {hwm}}}))
"""


HWM = ("next((int(l.split()[1]) / 1024 for l in open('/proc/self/status') "
       "if l.startswith('VmHWM')), None)")


def child(code: str) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=tempfile.gettempdir(), timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"child failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------- main
def _fmt_ms(s: float) -> str:
    return f"{s * 1e3:8.3f} ms"


def print_cold_start(rt: dict, tfc: dict, default: str) -> None:
    print("\nfresh process: import + load + first token, then 200 tokens; peak RSS")
    print(f"{'':16s} {'first token':>12s} {'ru_maxrss':>10s} {'VmHWM':>8s}")
    print(f"{'runtime ' + default:16s} {rt['first_token_s']:11.2f}s {rt['peak_rss_mb']:8.0f}MB "
          f"{rt['vmhwm_mb'] or 0:6.0f}MB   (TensorFlow imported: {rt['tf_loaded']})")
    print(f"{'TF eager Keras':16s} {tfc['first_token_s']:11.2f}s {tfc['peak_rss_mb']:8.0f}MB "
          f"{tfc['vmhwm_mb'] or 0:6.0f}MB")
    print(f"{'ratio TF/runtime':16s} {tfc['first_token_s'] / rt['first_token_s']:11.1f}x "
          f"{tfc['peak_rss_mb'] / rt['peak_rss_mb']:8.1f}x")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks text", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", default=str(ROOT / "exported"))
    parser.add_argument("--quick", action="store_true", help="fewer tokens and rounds")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    models = Path(args.models_dir).resolve()
    rounds = args.rounds or (2 if args.quick else 5)
    n_rt, n_tf, n_eager = (100, 50, 10) if args.quick else (400, 100, 25)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    # 1. cold start + peak RSS first, while this parent process is still small: on Linux a
    #    child's ru_maxrss starts from the parent's RSS at fork time (it is kept across exec),
    #    so the runtime child is spawned before this process imports anything heavy. Each
    #    child also reports VmHWM (/proc/self/status), which exec resets.
    rt = child(RUNTIME_CHILD.format(root=str(ROOT), models=str(models), hwm=HWM))
    import onnxruntime as ort

    import runtime

    w = onnx_weights(models)
    with tempfile.TemporaryDirectory() as tmp:
        wpath = Path(tmp) / "w.npz"
        np.savez(wpath, shape=np.array([*w["emb"].shape, w["u"].shape[0]]),
                 **{f"w{i}": a for i, a in enumerate(keras_weights(w))})
        tfc = child(TF_CHILD.format(root=str(ROOT), weights=str(wpath), hwm=HWM))
    del w

    # 2. per-token latency
    model, (vocab_size, embed_dim, hidden), diff = build_keras(models)
    import tensorflow as tf

    print(f"text benchmark: H={hidden}, E={embed_dim}, vocab={vocab_size} subword tokens; "
          f"onnxruntime {ort.__version__} (1 intra-op thread), TensorFlow {tf.__version__} "
          f"(default thread pools, {os.cpu_count()} CPUs); Keras vs onnxruntime max |logit "
          f"diff| {diff:.2e}")
    contenders = {
        "runtime fp32": runtime_loop(models, "fp32", n_rt),
        "runtime int8": runtime_loop(models, "int8", n_rt),
        "TF tf.function": tf_loop(model, hidden, n_tf, compiled=True),
        "TF eager Keras": tf_loop(model, hidden, n_eager, compiled=False),
    }
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for r in range(rounds):
        for name, run in contenders.items():
            times[name].append(run(r + 1))
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    print(f"\nper-token latency, batch 1 ({rounds} alternating rounds; median / best)")
    print(f"{'':16s} {'median':>11s} {'best':>11s} {'tokens/s':>10s} {'vs tf.function':>15s} "
          f"{'vs eager':>9s}")
    for k in contenders:
        print(f"{k:16s} {_fmt_ms(med[k])} {_fmt_ms(best[k])} {1 / med[k]:10.0f} "
              f"{med['TF tf.function'] / med[k]:14.1f}x {med['TF eager Keras'] / med[k]:8.1f}x")

    default = runtime.load("text", models_dir=models).precision    # what the child ran
    print_cold_start(rt, tfc, default)
    int8_bytes = runtime.info("text", models)["files"]["step_int8"]["bytes"]
    checks = {
        f"default precision ({default}) >= 4x faster than tf.function":
            med["TF tf.function"] / med[f"runtime {default}"] >= 4,
        "int8 per-token latency <= 1 ms": med["runtime int8"] <= 1e-3,
        "int8 model <= 10 MB": int8_bytes <= 10_000_000,
        "runtime peak RSS <= 200 MB": rt["peak_rss_mb"] <= 200,
    }
    print("\ntargets: " + "; ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in checks.items()))
    result = {"per_token_s_median": med, "per_token_s_best": best, "rounds": rounds,
              "runtime_process": rt, "tf_process": tfc, "keras_onnx_max_abs_diff": diff,
              "targets": checks}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
