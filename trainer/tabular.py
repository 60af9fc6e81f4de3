"""Scaffolding shared by the tabular Q-learning kinds (``level``, ``music``): the epsilon schedule,
the chunked fastcore training loop with resumable checkpoints (``work_dir/q.npy`` +
``work_dir/state.json``), the learning curve, the training summary for the metrics and the
Q-table ONNX export (``state`` int64 [None] -> ``q`` float32 [None, n_actions]).

What differs per kind (the environment, the C training call, which curves are recorded, the
side files) stays in the kind's module and is passed in.
"""
from __future__ import annotations

import dataclasses
import io
import json
import time
from pathlib import Path
from typing import Callable

import numpy as np


# ------------------------------------------------------------------------------ training
def epsilon_decay(cfg) -> float:
    """Per-episode epsilon decay reaching ``epsilon_min`` after 80% of the episodes."""
    if cfg.epsilon <= cfg.epsilon_min or cfg.epsilon_min <= 0:
        return 1.0
    return float((cfg.epsilon_min / cfg.epsilon) ** (1.0 / max(1, int(0.8 * cfg.episodes))))


def curve_points(values: np.ndarray, points: int) -> list[float]:
    """Block means of per-episode values, so that state.json stays small whatever the chunk."""
    if len(values) == 0:
        return []
    return [float(b.mean()) for b in np.array_split(values, min(points, len(values)))]


def updates_per_s(state: dict) -> float:
    """Q-update throughput of the C loop, timed over the training calls only."""
    return state["updates"] / max(state["seconds"], 1e-9)


def resume_or_start(cfg, work_dir: Path, shape: tuple, curves: tuple) -> tuple[np.ndarray, dict]:
    """The checkpoint in ``work_dir`` when it was trained with this very config, else zeros."""
    from trainer.common import load_json

    cfg_json = json.loads(json.dumps(dataclasses.asdict(cfg)))
    state = load_json(work_dir / "state.json", None)
    if state and state.get("config") == cfg_json and (work_dir / "q.npy").exists():
        q = np.load(work_dir / "q.npy")
        print(f"resumed from {work_dir / 'q.npy'} (chunk {state['chunk']}/{cfg.chunks})")
        return q, state
    state = {"config": cfg_json, "chunk": 0, "epsilon": cfg.epsilon,
             **{name: [] for name in curves}, "updates": 0, "seconds": 0.0}
    return np.zeros(shape, dtype=np.float64), state


def save_checkpoint(work_dir: Path, q: np.ndarray, state: dict) -> None:
    """q.npy before state.json (each atomic), so a saved chunk count never outruns its table."""
    from trainer.common import save_json
    from trainer.export import atomic_write_bytes

    buf = io.BytesIO()
    np.save(buf, q)
    atomic_write_bytes(work_dir / "q.npy", buf.getvalue())
    save_json(work_dir / "state.json", state)


def train_chunks(cfg, work_dir: Path, kind: str, q: np.ndarray, state: dict,
                 run_chunk: Callable, record: Callable) -> None:
    """Run the remaining chunks, checkpointing after each so that an interrupted run resumes.

    ``run_chunk(episodes, epsilon, epsilon_decay, seed)`` trains ``q`` in place and returns the
    C loop's stats; ``record(state, stats)`` appends the kind's curves to ``state`` and returns
    the scalars to show on the progress bar.
    """
    from trainer.common import Progress

    per_chunk = [len(a) for a in np.array_split(np.arange(cfg.episodes), cfg.chunks)]
    decay = epsilon_decay(cfg)
    with Progress(cfg.episodes, f"{kind} Q-learning", unit="episode",
                  initial=sum(per_chunk[:state["chunk"]])) as bar:
        for chunk in range(state["chunk"], cfg.chunks):
            t0 = time.time()
            stats = run_chunk(per_chunk[chunk], state["epsilon"], decay,
                              cfg.seed * 1_000_003 + chunk)
            state["seconds"] += time.time() - t0
            state["chunk"] = chunk + 1
            state["epsilon"] = stats["epsilon"]
            state["updates"] += stats["updates"]
            scalars = record(state, stats)
            save_checkpoint(work_dir, q, state)
            bar.update(per_chunk[chunk], **scalars, eps=state["epsilon"],
                       updates_per_s=updates_per_s(state))


def save_curve(cfg, work_dir: Path, state: dict, series: dict, title: str) -> None:
    """The learning curve, its x axis in the blocks of episodes that each stored point averages."""
    from trainer.common import save_learning_curve

    block = max(1, cfg.episodes // max(1, len(state["return"])))
    save_learning_curve(work_dir / "learning_curve.png", series,
                        xlabel=f"block of {block} episodes", title=title)


def training_summary(cfg, work_dir: Path, first: str, final: str) -> dict:
    """Training figures for the metrics from state.json; {} when nothing was trained there."""
    path = Path(work_dir) / "state.json"
    state = json.loads(path.read_text()) if path.exists() else {}
    if not state.get("return"):
        return {}
    return {"episodes": cfg.episodes, "updates": state.get("updates"),
            "updates_per_s": updates_per_s(state),
            first: state["return"][0], final: state["return"][-1]}


# ------------------------------------------------------------------------------ export
def load_q(work_dir: Path, shape: tuple) -> np.ndarray:
    """q.npy, refused when its shape no longer matches the runtime's state encoding."""
    q = np.load(Path(work_dir) / "q.npy")
    if q.shape != shape:
        raise ValueError(f"Q-table shape {q.shape} does not match the runtime's encoding "
                         f"({shape[0]}, {shape[1]})")
    return q


def export_q_table(q: np.ndarray, n_states: int, probe: list[int], *, kind: str,
                   out_dir: Path) -> dict:
    """The Q-table as an ONNX gather, parity-checked on every state and on ``probe``."""
    import tensorflow as tf

    from trainer.export import export_tf_function

    # a Variable (not a captured constant) so that tf2onnx freezes it into an initializer
    table = tf.Variable(q.astype(np.float32), trainable=False, name="q_table")

    @tf.function
    def q_values(state):
        # out-of-range indices are clamped (ONNX Gather would fail on them)
        return {"q": tf.gather(table, tf.clip_by_value(state, 0, n_states - 1))}

    spec = [tf.TensorSpec([None], tf.int64, name="state")]
    samples = [[np.arange(n_states, dtype=np.int64)], [np.array(probe, np.int64)]]
    return export_tf_function(q_values, spec, kind=kind, role="q", out_dir=out_dir,
                              sample_inputs=samples)
