"""Dialogue: simulator speed, DQN training throughput and runtime reply latency.

    python -m benchmarks dialogue [--env-steps 20000] [--train-steps 0] [--latency-calls 300]
                                  [--json PATH]

1. ``simulator``: ``DialogueEnv.step`` (tracker + featurisation + user + NLU channel) with the
   rule policy, environment transitions per second (no learning).
2. ``trainer.dqn`` (only with ``--train-steps N``, needs TensorFlow): ``train_dqn`` with the
   shipped dialogue full-profile settings for N transitions, learning included.
3. ``generate("dialogue")`` on the shipped models in exported/: the cold first call (session
   creation and JSON loading included), then p50/p95 over ``--latency-calls`` calls whose
   history has 1 to 15 turns (the whole history is re-read on every call).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def bench_env(steps: int) -> dict:
    from trainer.dialogue_sim import DialogueEnv, SimConfig, make_catalogue, rule_policy

    env = DialogueEnv(make_catalogue(0), SimConfig(error_rate=0.2), seed=0)
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


def _histories(n: int, seed: int = 0) -> list[list[str]]:
    """Real conversation prefixes: simulated users talking to the rule policy in text."""
    from runtime.dialogue import Catalogue, render, replay, resolve_action
    from trainer.dialogue_sim import (LEXICON, SYSTEM_TEMPLATES, make_catalogue, rule_policy,
                                      text_dialogue)

    cat = Catalogue(make_catalogue(0))

    def reply(history, s):
        rng = np.random.default_rng(s)
        t = replay(history, cat, SYSTEM_TEMPLATES, LEXICON)
        return render(resolve_action(t, rule_policy(t), rng), cat, SYSTEM_TEMPLATES, rng)

    out, i = [], 0
    while len(out) < n:
        h = text_dialogue(reply, cat, seed=seed + i)["history"]
        out += [h[:k] for k in range(1, len(h), 2)]
        i += 1
    return out[:n]


def bench_latency(calls: int, models_dir: Path) -> dict:
    import runtime
    from runtime import registry

    if "dialogue" not in runtime.available(models_dir):
        return {"skipped": f"no dialogue model in {models_dir}"}
    registry.clear_cache()
    histories = _histories(calls)
    t0 = time.perf_counter()
    runtime.generate("dialogue", history=histories[0], seed=0, models_dir=models_dir)
    cold = time.perf_counter() - t0
    times = []
    for i, h in enumerate(histories):
        t0 = time.perf_counter()
        runtime.generate("dialogue", history=h, seed=i, models_dir=models_dir)
        times.append(time.perf_counter() - t0)
    ms = 1000 * np.array(times)
    return {"calls": calls, "cold_ms": 1000 * cold, "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)),
            "mean_history_turns": float(np.mean([len(h) for h in histories]))}


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
    results["reply_latency"] = bench_latency(args.latency_calls, Path(args.models_dir))
    lat = results["reply_latency"]
    if "skipped" in lat:
        print(f"reply latency: skipped ({lat['skipped']})")
    else:
        print(f"reply latency: cold {lat['cold_ms']:.1f} ms, p50 {lat['p50_ms']:.2f} ms, "
              f"p95 {lat['p95_ms']:.2f} ms (history {lat['mean_history_turns']:.1f} turns)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
