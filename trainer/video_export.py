"""The video kind's export: the step model (hard advection) -> ONNX, rebuilt in cheaper nodes by
:func:`trainer.graph_rewrites.lean_step` and checked against TensorFlow, plus the ``physics``
side file (canvas, ink threshold and speed range of the training clips)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from trainer.video_model import Models, build_step_generator, load_trained

if TYPE_CHECKING:
    from trainer.video import Config

KIND = "video"
NOTES = ("step: context float32 [N, 48, 48, 2] (frames t-1, t in [-1, 1]) + noise float32 "
         "[N, 48, 48, 1] ~ N(0, 1) -> next_frame [N, 48, 48], every pixel copied from frame t "
         "at its arg-max offset (tf2onnx's graph rebuilt in cheaper nodes by "
         "trainer.graph_rewrites.lean_step: advection tail, decoder upsampling folded into "
         "ConvTranspose). First frames: the image generator's digits placed on the "
         "canvas (runtime/video.py). physics: canvas, ink threshold of the bouncing box "
         "and speed range of the training clips.")


def signatures(cfg: Config) -> dict:
    """The ONNX inputs of each role, as named ``tf.TensorSpec`` lists."""
    import tensorflow as tf

    c = cfg.canvas
    return {"step": [tf.TensorSpec([None, c, c, 2], tf.float32, name="context"),
                     tf.TensorSpec([None, c, c, 1], tf.float32, name="noise")]}


def functions_of(cfg: Config, m: Models) -> dict:
    """role -> the Python function that role's ONNX file computes: the step generator with
    hard advection (what ships) on the trained weights of ``m``."""
    import tensorflow as tf

    g = build_step_generator(cfg, name="step_export", mode="hard")
    g.set_weights(m.g.get_weights())

    def step(context, noise):
        return tf.identity(g([context, noise], training=False)[0][..., 0], name="next_frame")

    return {"step": step}


def tf_functions(cfg: Config, work_dir: Path | None) -> dict:
    """role -> (Python function, input signature) of every ONNX role, for running the same
    model in TensorFlow (benchmarks): the checkpoint in ``work_dir``, or with ``work_dir``
    None freshly initialised weights (the same graph and cost, for timing only)."""
    import tensorflow as tf

    m = Models(cfg, tf.distribute.get_strategy()) if work_dir is None \
        else load_trained(cfg, work_dir)
    sigs = signatures(cfg)
    return {role: (fn, sigs[role]) for role, fn in functions_of(cfg, m).items()}


def _parity_samples(cfg: Config) -> list:
    """Real contexts (held-out digits) and noise: on random pixels two offsets can tie to
    ~1e-7 and the arg-max may then differ between engines, which says nothing about the
    exported model."""
    from trainer.video import make_pool

    c = cfg.canvas
    pool, _ = make_pool(cfg, "test", 7, 3, cfg.seed + 7)
    rng = np.random.default_rng(cfg.seed)
    samples = [[np.transpose(pool[i, :2], (1, 2, 0)).copy()[None],
                rng.standard_normal((1, c, c, 1)).astype(np.float32)] for i in range(3)]
    samples.append([np.transpose(pool[3:, :2], (0, 2, 3, 1)).copy(),
                    rng.standard_normal((4, c, c, 1)).astype(np.float32)])
    return samples


def export(cfg: Config, work_dir: Path, out_dir: Path) -> None:
    """Export the checkpoint in ``work_dir`` to ``out_dir`` and write the manifest entry."""
    from trainer import common
    from trainer import digits as D
    from trainer.export import export_rewritten, export_tf_function, write_entry, write_json
    from trainer.graph_rewrites import lean_step

    step, sig = functions_of(cfg, load_trained(cfg, work_dir))["step"], signatures(cfg)["step"]
    samples = _parity_samples(cfg)
    tf2onnx_entry = export_tf_function(step, sig, kind=KIND, role="step", out_dir=out_dir,
                                       sample_inputs=samples)
    # shipped: the same function in cheaper nodes, checked against TensorFlow again
    g_entry = export_rewritten(
        tf2onnx_entry, lambda model: lean_step(model, canvas=cfg.canvas,
                                               motion_block=cfg.motion_block),
        step, sig, kind=KIND, role="step", out_dir=out_dir, samples=samples)
    physics = write_json({"canvas": cfg.canvas, "tile": 28, "ink_threshold": D.INK_THRESHOLD,
                          "speed_min": cfg.speed_min,
                          "speed_max": cfg.speed_max, "max_digits": cfg.max_digits},
                         kind=KIND, role="physics", out_dir=out_dir)
    write_entry(out_dir, KIND, {"step": g_entry, "physics": physics}, common.config_dict(cfg),
                notes=NOTES)
