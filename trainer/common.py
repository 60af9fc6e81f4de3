"""Shared training utilities: progress, checkpoints, strategies, seeds, curves and model cards."""
from __future__ import annotations

import dataclasses
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np


# ---------------------------------------------------------------------------- progress
class Progress:
    """tqdm progress bar with running scalars (loss, reward, ...), rate and ETA.

    Falls back to one line every few seconds when stderr is not a terminal (CI logs).
    """

    def __init__(self, total: int, desc: str, unit: str = "step", initial: int = 0):
        from tqdm import tqdm

        self._bar = tqdm(total=total, desc=desc, unit=unit, initial=initial, dynamic_ncols=True,
                         mininterval=0.5 if sys.stderr.isatty() else 5.0, file=sys.stderr)

    def update(self, n: int = 1, **scalars) -> None:
        if scalars:
            self._bar.set_postfix({k: _fmt(v) for k, v in scalars.items()}, refresh=False)
        self._bar.update(n)

    def write(self, message: str) -> None:
        self._bar.write(message, file=sys.stderr)

    def close(self) -> None:
        self._bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _fmt(value) -> str:
    value = float(value)
    return f"{value:.4g}"


# ---------------------------------------------------------------------------- seeds, strategy
def set_seeds(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    import tensorflow as tf

    tf.random.set_seed(seed)


def make_strategy(name: str = "default"):
    """``default`` (one device), ``mirrored`` (all local devices) or ``multiworker``
    (reads the standard ``TF_CONFIG`` environment variable)."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--strategy multiworker needs TF_CONFIG (see README, 'Training on "
                             "several machines')")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"strategy must be one of default, mirrored, multiworker; got {name!r}")


def is_chief(strategy=None) -> bool:
    """True on the worker that writes files (single-process strategies always are)."""
    resolver = getattr(getattr(strategy, "extended", None), "_cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0)


def distributed_step(strategy, step):
    """``step`` run on every replica of ``strategy`` in one ``tf.function``, each of its outputs
    summed over the replicas (the losses are already divided by the replica count)."""
    import tensorflow as tf

    @tf.function
    def run(*args):
        return [strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                for v in strategy.run(step, args=args)]

    return run


# ---------------------------------------------------------------------------- checkpoints
class Checkpointer:
    """``tf.train.CheckpointManager`` over the given trackables plus a ``step`` counter.

    ``restore()`` returns the step of the last checkpoint (0 when starting fresh), so a training
    loop written as ``for step in range(ckpt.restore(), total)`` resumes after a crash.
    Non-chief workers of a multi-worker run write to ``checkpoints-<task>-<id>`` beside the
    chief's (every worker must take part in a save; only the chief's is used for export).
    """

    def __init__(self, work_dir, max_to_keep: int = 2, strategy=None, **trackables):
        import tensorflow as tf

        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="checkpoint_step")
        self.directory = Path(work_dir) / "checkpoints"
        if not is_chief(strategy):
            # every worker must take part in the save; non-chiefs write beside the chief's
            resolver = strategy.extended._cluster_resolver
            self.directory = Path(work_dir) / f"checkpoints-{resolver.task_type}-{resolver.task_id}"
        self.checkpoint = tf.train.Checkpoint(step=self.step, **trackables)
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(self.directory),
                                                  max_to_keep=max_to_keep)

    def restore(self) -> int:
        if self.manager.latest_checkpoint:
            self.checkpoint.restore(self.manager.latest_checkpoint).expect_partial()
            print(f"resumed from {self.manager.latest_checkpoint} (step {int(self.step)})",
                  file=sys.stderr)
        return int(self.step)

    def save(self, step: int) -> str:
        self.step.assign(step)
        return self.manager.save(checkpoint_number=step)

    @property
    def latest(self) -> str | None:
        return self.manager.latest_checkpoint


@dataclasses.dataclass
class Resumed:
    """A trainer's state after ``resume``: its models, checkpointer, first step and history."""
    work_dir: Path
    strategy: object
    models: object
    ckpt: Checkpointer
    start: int
    history: dict

    def save(self, step: int, every: int, last: int) -> None:
        """The checkpoint (and history.json, on the chief) after ``step`` steps, every ``every``
        steps and at the ``last`` one."""
        if step % every == 0 or step == last:
            self.ckpt.save(step)
            if is_chief(self.strategy):
                save_json(self.work_dir / "history.json", self.history)


def resume(cfg, work_dir, models_cls, keys, strategy=None) -> Resumed:
    """The opening of a checkpointed trainer: ``work_dir`` made, the seeds set from
    ``cfg.seed``, ``models_cls(cfg, strategy)`` built and restored from the last checkpoint,
    and the history (lists per name in ``keys``) read back when resuming."""
    import tensorflow as tf

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    strategy = strategy or tf.distribute.get_strategy()
    set_seeds(cfg.seed)
    models = models_cls(cfg, strategy)
    ckpt = Checkpointer(work_dir, strategy=strategy, **models.trackables())
    start = ckpt.restore()
    saved = load_json(work_dir / "history.json", {}) if start else {}
    return Resumed(work_dir, strategy, models, ckpt, start, {k: saved.get(k, []) for k in keys})


# ---------------------------------------------------------------------------- layers
def gru_update(gx, state, u, b_h):
    """One update of Keras' GRU (reset_after=True; gates z, r, candidate h) in TensorFlow: the
    new state from the input projection ``gx`` ([B, 3H], input bias included), ``state``
    ([B, H]), the recurrent kernel ``u`` and the recurrent bias ``b_h``."""
    import tensorflow as tf

    gh = tf.matmul(state, u) + b_h
    xz, xr, xh = tf.split(gx, 3, axis=-1)
    hz, hr, hh = tf.split(gh, 3, axis=-1)
    z = tf.sigmoid(xz + hz)
    r = tf.sigmoid(xr + hr)
    c = tf.tanh(xh + r * hh)
    return c + z * (state - c)             # = z * state + (1 - z) * c


# ---------------------------------------------------------------------------- json state
def save_json(path, obj) -> None:
    from trainer.export import _json_default, atomic_write_bytes

    atomic_write_bytes(Path(path), json.dumps(obj, indent=2, default=_json_default).encode())


def load_json(path, default=None):
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else default


# ---------------------------------------------------------------------------- reports
def save_learning_curve(path, series: dict, xlabel: str = "step", title: str = "") -> None:
    """One PNG with one panel per series (e.g. loss, reward), smoothed lines over raw ones."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {k: np.asarray(v, dtype=float) for k, v in series.items() if len(v)}
    if not series:
        return
    fig, axes = plt.subplots(1, len(series), figsize=(4.2 * len(series), 3.2), squeeze=False)
    for ax, (name, values) in zip(axes[0], series.items()):
        ax.plot(values, alpha=0.35, lw=0.8)
        window = max(1, len(values) // 50)
        if window > 1:
            smooth = np.convolve(values, np.ones(window) / window, mode="valid")
            ax.plot(np.arange(window - 1, len(values)), smooth, lw=1.6)
        ax.set_title(name)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def config_dict(cfg) -> dict:
    return dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else dict(cfg)


def write_model_card(path, kind: str, cfg, metrics: dict, files: dict, data: str = "") -> None:
    lines = [f"# Model card: {kind}", ""]
    if data:
        lines += ["## Data", data, ""]
    lines += ["## Config", "```json", json.dumps(config_dict(cfg), indent=2, default=str), "```", ""]
    lines += ["## Files", "| role | file | bytes |", "| --- | --- | --- |"]
    lines += [f"| {role} | {f['file']} | {f['bytes']:,} |" for role, f in files.items()]
    lines += ["", "## Metrics (with baselines)", "```json",
              json.dumps(metrics, indent=2, default=str), "```", "",
              f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')}.", ""]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines))
