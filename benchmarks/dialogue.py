"""Dialogue: simulator speed, DQN training throughput and runtime reply latency.

    python -m benchmarks dialogue [--env-steps 20000] [--train-steps 0] [--latency-calls 300]
                                  [--json PATH]

1. ``simulator``: ``DialogueEnv.step`` (user, phrasing, typo channel, the runtime's
   understanding, tracker, featurisation) with the rule policy at 20% typos, environment
   transitions per second (no learning).
2. ``trainer.dqn`` (only with ``--train-steps N``, needs TensorFlow): ``train_dqn`` with the
   shipped dialogue full-profile settings for N transitions, learning included.
3. ``runtime.load("dialogue")`` on the shipped models in exported/, fp32 and int8: the cold
   first call (session creation and JSON loading included), then p50/p95 per reply over real
   conversation prefixes, with ``history=`` (the whole conversation re-read on every call) and
   with ``state=`` (the previous reply's state passed back). Target: p95 <= 2 ms.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._timing import Clock, percentiles, save_json

ROOT = Path(__file__).resolve().parent.parent


def bench_env(steps: int) -> dict:
    from runtime.dialogue_domain import Catalogue
    from trainer.dialogue_lexicon import make_catalogue
    from trainer.dialogue_sim import DialogueEnv, SimConfig, rule_policy

    env = DialogueEnv(Catalogue(make_catalogue(0)), SimConfig(noise=0.2), seed=0)
    env.reset(seed=0)
    t0 = time.perf_counter()
    for _ in range(steps):
        _, _, term, trunc, _ = env.step(rule_policy(env.tracker))
        if term or trunc:
            env.reset()
    dt = time.perf_counter() - t0
    return {"steps": steps, "steps_per_second": steps / dt}


def bench_train(steps: int) -> dict:
    import dataclasses

    from trainer import dialogue

    cfg = dataclasses.replace(dialogue.PROFILES["full"], total_steps=steps,
                              checkpoint_every=10 * steps, eval_dialogues=0)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        dialogue.train(cfg, Path(tmp))
        dt = time.perf_counter() - t0
        summary = json.loads((Path(tmp) / "train_summary.json").read_text())
    return {"steps": steps, "steps_per_second_loop": summary["steps_per_second"],
            "wall_s_incl_setup": dt}


def _conversations(n: int, seed: int = 0) -> list[list[str]]:
    """Real conversations in text: simulated users (training bank, 10% typos) talking to the
    rule policy; each is the list of turns, user first."""
    from runtime.dialogue_domain import Catalogue
    from runtime.dialogue_replies import render
    from trainer.dialogue_lexicon import SYSTEM_TEMPLATES, make_catalogue
    from trainer.dialogue_sim import DialogueEnv, SimConfig, rule_policy

    cat = Catalogue(make_catalogue(0))
    out = []
    for i in range(n):
        env = DialogueEnv(cat, SimConfig(noise=0.1), seed=seed + i)
        _, info = env.reset(seed=seed + i)
        turns, rng = [info["user_text"]], np.random.default_rng(i)
        while True:
            _, _, term, trunc, info = env.step(rule_policy(env.tracker))
            if term or trunc:
                break
            turns += [render(info["system"], cat, SYSTEM_TEMPLATES, rng), info["user_text"]]
        out.append(turns)
    return out


def _percentiles(clocks: list) -> dict:
    """Wall and thread CPU percentiles of the ``Clock`` of every call."""
    return {"calls": len(clocks), **percentiles([c.wall for c in clocks]),
            **percentiles([c.cpu for c in clocks], prefix="cpu_")}


def bench_latency(calls: int, models_dir: Path, precision: str = "fp32") -> dict:
    """Per reply: ``history=`` (the whole conversation re-read on every call) and ``state=``
    (the app passes the previous reply's state back), on real conversation prefixes."""
    import runtime

    if "dialogue" not in runtime.available(models_dir):
        return {"skipped": f"no dialogue model in {models_dir}"}
    convs = _conversations(max(1, calls // 4))
    with Clock() as cold:
        model = runtime.load("dialogue", models_dir=models_dir, precision=precision)
        model.generate(history=convs[0][:1], seed=0)
    hist, turns = [], []
    for i, conv in enumerate(convs):
        for k in range(0, len(conv), 2):
            with Clock() as clock:
                model.generate(history=conv[:k + 1], seed=i)
            hist.append(clock)
            turns.append(k + 1)
    model.close()
    state = []           # a fresh model: no turn has been read before
    model = runtime.load("dialogue", models_dir=models_dir, precision=precision)
    for i, conv in enumerate(convs):
        reply = None
        for k in range(0, len(conv), 2):
            with Clock() as clock:
                reply = model.generate(history=[conv[k]], seed=i) if reply is None else \
                    model.generate(state=reply.state, history=[conv[k]], seed=i)
            state.append(clock)
    model.close()
    return {"precision": precision, "cold_ms": 1000 * cold.wall, "history": _percentiles(hist),
            "state": _percentiles(state), "mean_history_turns": float(np.mean(turns))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks dialogue", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-steps", type=int, default=20_000)
    parser.add_argument("--train-steps", type=int, default=0)
    parser.add_argument("--latency-calls", type=int, default=300)
    parser.add_argument("--models-dir", default=str(ROOT / "exported"))
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    results = {"simulator": bench_env(args.env_steps)}
    print(f"simulator: {results['simulator']['steps_per_second']:,.0f} env steps/s")
    if args.train_steps:
        results["train_dqn"] = bench_train(args.train_steps)
        print(f"train_dqn: {results['train_dqn']['steps_per_second_loop']:,.0f} env steps/s "
              f"with learning")
    for precision in ("fp32", "int8"):
        lat = results[f"reply_latency_{precision}"] = bench_latency(
            args.latency_calls, Path(args.models_dir), precision)
        if "skipped" in lat:
            print(f"reply latency: skipped ({lat['skipped']})")
            break
        h, st = lat["history"], lat["state"]
        print(f"reply latency {precision}: cold {lat['cold_ms']:.1f} ms; history= p50 "
              f"{h['p50_ms']:.2f} ms, p95 {h['p95_ms']:.2f} ms (CPU p95 {h['cpu_p95_ms']:.2f} "
              f"ms; mean {lat['mean_history_turns']:.1f} turns); state= p50 {st['p50_ms']:.2f} "
              f"ms, p95 {st['p95_ms']:.2f} ms (CPU p95 {st['cpu_p95_ms']:.2f} ms); target wall "
              f"p95 <= 2 ms: {'met' if max(h['p95_ms'], st['p95_ms']) <= 2.0 else 'NOT met'}")
    return save_json(args.json, results)


if __name__ == "__main__":
    raise SystemExit(main())
