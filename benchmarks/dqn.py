"""DQN training throughput and recommendation reply latency.

    python -m benchmarks dqn [--steps 20000] [--article-steps 100] [--latency-calls 300] [--json PATH]

1. ``article loop``: the original article's training loop, re-implemented faithfully on the same
   recommendation simulator (one-item slates): per environment step ``model.predict`` on the
   state to pick the action (epsilon-greedy), ``model.predict`` on the next state for the
   bootstrap max, and ``model.fit`` on that single sample -- Keras calls per step, one env.
   Run for ``--article-steps`` steps (it manages a handful of steps per second).
2. ``trainer.dqn``: ``train_dqn`` with the shipped ``recommend`` full-profile settings (16 envs in
   lock-step, one batched ``tf.function`` forward per vectorised step, a ``tf.function`` Double
   DQN update every 2 vectorised steps on batches of 128, replay, target network, checkpoints)
   for ``--steps`` environment steps, learning included (``learning_starts`` = 1,000).
3. ``generate("recommend")`` reply latency on the shipped models in exported/ (cold first call
   incl. session creation, then p50/p95 over ``--latency-calls`` calls with varied histories).

Steps/s are environment transitions per second of wall time.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._timing import Clock, percentiles, save_json  # noqa: E402


def article_loop(steps: int, seed: int = 0) -> dict:
    """The original loop: predict per step, predict next state, fit one sample."""
    import keras

    from trainer import recommend as rec
    from trainer.recsim import RecSimEnv

    cfg = rec.PROFILES["full"]
    env = RecSimEnv(rec.catalogue(cfg), rec.sim_config(cfg))
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((env.obs_dim,)), keras.layers.Dense(256, activation="relu"),
                              keras.layers.Dense(256, activation="relu"),
                              keras.layers.Dense(env.n_actions)])
    model.compile(optimizer=keras.optimizers.Adam(5e-4), loss="mse")
    rng = np.random.default_rng(seed)
    gamma, epsilon = 0.95, 1.0
    state, _ = env.reset(seed=seed)
    state = state[None]
    t0 = time.perf_counter()
    for _ in range(steps):
        q_values = model.predict(state, verbose=0)
        allowed = np.flatnonzero(~env.consumed)
        if rng.random() < epsilon:
            action = int(rng.choice(allowed))
        else:
            action = int(allowed[np.argmax(q_values[0][allowed])])
        next_state, reward, terminated, truncated, _ = env.step(action)
        next_state = next_state[None]
        target = reward if terminated else reward + gamma * np.max(model.predict(next_state, verbose=0))
        q_values[0][action] = target
        model.fit(state, q_values, epochs=1, verbose=0)
        epsilon = max(0.05, epsilon * 0.995)
        state = next_state
        if terminated or truncated:
            state = env.reset()[0][None]
    dt = time.perf_counter() - t0
    return {"steps": steps, "seconds": dt, "steps_per_second": steps / dt}


def batched_dqn(steps: int) -> dict:
    from trainer import recommend as rec
    from trainer.dqn import train_dqn
    from trainer.recsim import RecSimEnv

    cfg = dataclasses.replace(rec.PROFILES["full"], total_steps=steps, learning_starts=1000,
                              checkpoint_every=10 * steps)
    raw, sim = rec.catalogue(cfg), rec.sim_config(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        _, hist = train_dqn(lambda i: RecSimEnv(raw, sim), rec._dqn_config(cfg), Path(tmp),
                            action_mask_fn=rec.action_mask(cfg), progress_desc="bench dqn",
                            q_network_fn=lambda d, n, name: rec.make_q_network(cfg, name),
                            env_action_fn=rec.slate_builder(cfg))
        wall = time.perf_counter() - t0
    updates = len(hist["losses"])
    return {"steps": steps, "seconds_incl_setup": wall, "gradient_updates": updates,
            "num_envs": cfg.num_envs, "batch_size": cfg.batch_size,
            "steps_per_second": hist["steps_per_second"]}


def latency(calls: int) -> dict:
    import runtime

    models = ROOT / "exported"
    if "recommend" not in runtime.available(models):
        return {"skipped": "no recommend model in exported/"}
    rng = np.random.default_rng(0)
    with Clock() as cold:
        runtime.generate("recommend", history=[], k=5, seed=0, models_dir=models)
    n = len(runtime.registry.read_json("recommend", "catalogue", models)["items"])
    times = []
    for i in range(calls):
        hist = rng.choice(n, int(rng.integers(0, 30)), replace=False).tolist()
        with Clock() as clock:
            runtime.generate("recommend", history=hist, k=5, seed=i, models_dir=models)
        times.append(clock.wall)
    return {"cold_first_call_ms": cold.wall * 1e3, **percentiles(times),
            "calls_per_second": float(calls / sum(times))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks dqn", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--article-steps", type=int, default=100)
    ap.add_argument("--latency-calls", type=int, default=300)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    res = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
                      f"load avg {os.getloadavg()[0]:.1f}"}
    res["latency"] = latency(args.latency_calls)          # before TF is imported
    res["article_loop"] = article_loop(args.article_steps)
    res["trainer_dqn"] = batched_dqn(args.steps)
    res["speedup"] = res["trainer_dqn"]["steps_per_second"] / res["article_loop"]["steps_per_second"]
    a, d, lat = res["article_loop"], res["trainer_dqn"], res["latency"]
    print(f"\nDQN training throughput on the recommendation simulator ({res['machine']})")
    print("| loop | env steps | steps/s (learning included) |")
    print("| --- | ---: | ---: |")
    print(f"| article: model.predict + predict + fit per step, 1 env | {a['steps']:,} | {a['steps_per_second']:.1f} |")
    print(f"| trainer.dqn: {d['num_envs']} envs, batched tf.function acting, "
          f"{d['gradient_updates']:,} updates of {d['batch_size']} | {d['steps']:,} | {d['steps_per_second']:,.0f} |")
    print(f"speedup: {res['speedup']:.0f}x")
    if "skipped" in lat:
        print(f"generate('recommend') latency: skipped ({lat['skipped']})")
    else:
        print(f"generate('recommend', k=5) latency: cold first call {lat['cold_first_call_ms']:.1f} ms, "
              f"p50 {lat['p50_ms']:.2f} ms, p95 {lat['p95_ms']:.2f} ms, "
              f"{lat['calls_per_second']:,.0f} calls/s")
    return save_json(args.json, res)


if __name__ == "__main__":
    sys.exit(main())
