"""Video GAN: a next-frame generator for moving digits, trained adversarially on
(context, next frame) triples plus an L1 reconstruction term and a motion term, with unrolled
(autoregressive) training so that it stays stable when the runtime rolls it forward.

Data: Moving-MNIST style clips built from the 1,438 held-in upscaled digits (trainer.digits):
1 or 2 digits (28x28 tiles) on a 48x48 canvas, whole-pixel velocity rint(s (sin a, cos a))
with s in 1..3 px/frame, bouncing when the digit's ink box touches an edge. Every frame is an
exact whole-pixel translation of each digit, so the simulator also yields, per pixel, the
offset its ink came from (``moving_digits(..., flows=True)``). Nothing is downloaded.

Step generator G (fully convolutional; cost volume + a U-Net + hard advection, after PWC-Net
and Finn et al. 2016):
    SAD_o(p) = |f_t(p) - f_{t-1}(p + o)| for the 49 source offsets o in a 7x7 window
    -> a U-Net over 24x24 / 12x12 / 6x6 / 3x3 (its 3x3 bottleneck sees the whole canvas, so a
       digit's every pixel knows how far the digit is from the wall it moves to) on both
       frames, noise, coordinates and the block-pooled cost volume
    -> per 2x2 pixel block (``motion_block``; a digit moves rigidly, so its pixels share one
       offset), 49 logits = the net's output + the constant-velocity prior -beta * SAD
       (SAD summed over a digit-sized 20x20 window: block matching, exact for a rigid move)
    -> f_{t+1}(p) = f_t(p + o*) with o* the arg-max offset of p's block: every pixel is copied
       from the current frame, so ink is never blurred, faded or invented, however long the
       rollout.
Width 16 at 24x24 (``Config.width``), offsets per 2x2 block (``motion_block``) and matching
costs on every 2nd pixel per axis (``cost_stride``).
Training uses the straight-through estimator (forward: the hard copy the runtime makes;
backward: the softmax mixture's gradient). Loss = motion_weight * cross-entropy of the logits
against the simulator's offsets (every pixel of a digit's box) + rec_weight * L1 + adv_weight *
hinge-G, over ``unroll`` predictions fed back as context. The discriminator D (spectral norm,
hinge loss) judges triples [f_{t-1}, f_t, f_{t+1}], appearance and motion together.

The runtime (runtime/video.py) builds the first two frames from the image generator's digits
placed on the canvas with a random velocity, then calls G once per further frame.
Models: trainer.video_model (layers in trainer.video_layers); export: trainer.video_export;
evaluation: trainer.video_eval.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainer.video_eval import evaluate
from trainer.video_export import export, tf_functions
from trainer.video_model import Models, build_discriminator, build_step_generator, load_trained

__all__ = ["KIND", "DATA", "CANVAS", "Config", "PROFILES", "Models", "build_step_generator",
           "build_discriminator", "make_pool", "train", "load_trained", "export", "tf_functions",
           "evaluate"]

KIND = "video"
DATA = ("Moving digits (the Moving-MNIST recipe) built from scikit-learn load_digits: 1 or 2 "
        "upscaled 28x28 digits on a 48x48 canvas, speed 1..3 px/frame (whole-pixel velocity) "
        "in a random direction, "
        "bouncing off the edges; training clips use the 1,438 held-in digits, evaluation clips "
        "the 359 held-out digits.")
CANVAS = 48


@dataclass
class Config:
    seed: int = 0
    canvas: int = CANVAS
    width: int = 16           # U-Net width at 24x24 (1.5x at 12x12, 2x at 6x6 and 3x3)
    motion_block: int = 2     # one offset per 2x2 pixels (logits at 24x24), or 1: per pixel
    cost_stride: int = 2      # matching costs at every 2nd pixel per axis (1: every pixel)
    kernel: int = 7           # source offsets -3..3 per axis: moves up to 3 px/frame
    cost_window: int = 5      # matching costs summed over 5x5 blocks of 4x4 px (20 px)
    d_width: int = 16
    pool_clips: int = 3000    # clips in the training pool
    pool_frames: int = 12     # frames per pool clip (windows of 2 + unroll are sampled)
    max_digits: int = 2
    speed_min: float = 1.0
    speed_max: float = 3.0    # whole-pixel velocity components, so at most 3 px per frame
    batch: int = 16
    steps: int = 12000
    unroll: int = 2           # autoregressive steps per training window
    lr_g: float = 1e-3
    lr_d: float = 3e-4
    decay_start: int = 6000   # both learning rates decay linearly from here to 0.1x at the end
    motion_weight: float = 1.0   # cross-entropy against the simulator's offsets
    rec_weight: float = 10.0  # L1 (per pixel, [-1, 1] scale) weight
    adv_weight: float = 0.05
    adv_start: int = 500      # adversarial term off for the first steps (warm-up)
    ckpt_every: int = 250
    log_every: int = 25
    eval_clips: int = 200
    eval_frames: int = 16


PROFILES = {
    "quick": Config(width=8, d_width=8, pool_clips=64, pool_frames=6, batch=8, steps=30,
                    unroll=2, adv_start=10, ckpt_every=30, log_every=10, eval_clips=20),
    "full": Config(),
}



def make_pool(cfg: Config, split: str, n_clips: int, n_frames: int, seed: int,
              n_digits: int | None = None, flows: bool = False):
    """Moving digits clips (float32 [-1, 1]), their digit labels and, with ``flows``, the
    per-pixel motion classes, from one split."""
    from trainer.digits import load_digits_images, moving_digits

    data = load_digits_images()
    x, y = data[f"x_{split}"], data[f"y_{split}"]
    return moving_digits(x, y, n_clips, n_frames, canvas=cfg.canvas, max_digits=cfg.max_digits,
                         speed=(cfg.speed_min, cfg.speed_max), rng=np.random.default_rng(seed),
                         n_digits=n_digits, flows=flows)


def _dataset(cfg: Config, pool: np.ndarray, flow: np.ndarray, global_batch: int, seed: int):
    """Random windows of 2 + unroll frames from the pool (uint8 in memory, [-1, 1] out) and the
    motion classes of their last ``unroll`` frames."""
    import tensorflow as tf

    win = 2 + cfg.unroll
    pool_u8 = np.rint((pool + 1) * 127.5).astype(np.uint8)
    n, t = pool_u8.shape[:2]
    starts = t - win + 1
    pool_t, flow_t = tf.constant(pool_u8), tf.constant(flow)

    def window(i):
        c, s = i // starts, i % starts
        clip = tf.cast(pool_t[c, s:s + win], tf.float32) / 127.5 - 1.0
        motion = tf.cast(flow_t[c, s + 2:s + win], tf.int32)
        return tf.transpose(clip, [1, 2, 0]), tf.transpose(motion, [1, 2, 0])   # H, W, frames
    ds = tf.data.Dataset.range(n * starts).shuffle(n * starts, seed=seed).repeat()
    return ds.map(window).batch(global_batch, drop_remainder=True).prefetch(2)


def _lr_scale(cfg: Config, step: int) -> float:
    """1 until ``decay_start``, then linear down to 0.1 at ``steps``."""
    if step < cfg.decay_start or cfg.steps <= cfg.decay_start:
        return 1.0
    return 1.0 - 0.9 * (step - cfg.decay_start) / (cfg.steps - cfg.decay_start)


def _motion_terms(logits, target, frame):
    """Cross-entropy and accuracy (on ink pixels) of the offset logits against the simulator's
    offsets on every labelled pixel: a digit's box grown by the top speed, whose pixels must
    all move with the digit (elsewhere any offset copies background). Pixels with ink in the
    target frame weigh 3x."""
    import tensorflow as tf

    labelled = tf.cast(target >= 0, tf.float32)
    ink = labelled * tf.cast(frame[..., 0] > -1.0, tf.float32)
    weight = labelled + 2.0 * ink
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.maximum(target, 0), logits=logits)
    hit = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), target), tf.float32)
    return (tf.reduce_sum(ce * weight) / (tf.reduce_sum(weight) + 1.0),
            tf.reduce_sum(hit * ink) / (tf.reduce_sum(ink) + 1.0))


def _train_step(cfg: Config, m: Models, replicas: int):
    """One G update over ``cfg.unroll`` predictions fed back as context (motion cross-entropy,
    L1, hinge-G), then one D update on real and generated triples (skipped during warm-up)."""
    import tensorflow as tf

    c, K = cfg.canvas, cfg.unroll

    def step_fn(batch, adv_w):
        clip, motion = batch
        bs = tf.shape(clip)[0]
        with tf.GradientTape() as tape:
            prev2, prev1 = clip[..., 0:1], clip[..., 1:2]
            triples, preds, ce, acc = [], [], 0.0, 0.0
            for j in range(K):
                noise = tf.random.normal((bs, c, c, 1))
                pred, logits = m.g([tf.concat([prev2, prev1], -1), noise], training=True)
                ce_j, acc_j = _motion_terms(logits, motion[..., j], clip[..., 2 + j:3 + j])
                ce, acc = ce + ce_j / K, acc + acc_j / K
                triples.append(tf.concat([prev2, prev1, pred], -1))
                preds.append(pred)
                prev2, prev1 = prev1, pred
            l1 = tf.reduce_mean(tf.abs(tf.concat(preds, -1) - clip[..., 2:]))
            fake = tf.concat(triples, 0)
            g_adv = -tf.reduce_mean(m.d(fake, training=True))
            g_loss = (cfg.motion_weight * ce + cfg.rec_weight * l1 + adv_w * g_adv) / replicas
        grads = tape.gradient(g_loss, m.g.trainable_variables)
        m.opt_g.apply_gradients(zip(grads, m.g.trainable_variables))
        real = tf.concat([clip[..., j:j + 3] for j in range(K)], 0)
        fake = tf.stop_gradient(fake)
        with tf.GradientTape() as tape:
            d_loss = (tf.reduce_mean(tf.nn.relu(1.0 - m.d(real, training=True)))
                      + tf.reduce_mean(tf.nn.relu(1.0 + m.d(fake, training=True)))) / replicas
        grads = tape.gradient(d_loss, m.d.trainable_variables)
        # the D update is skipped (scaled to 0) during the warm-up
        on = tf.cast(adv_w > 0, tf.float32)
        m.opt_d.apply_gradients(zip([g * on for g in grads], m.d.trainable_variables))
        copy_l1 = tf.reduce_mean(tf.abs(clip[..., 1:2] - clip[..., 2:]))
        return [v / replicas for v in (l1, ce, acc, g_adv)] + [d_loss, copy_l1 / replicas]

    return step_fn


KEYS = ("l1", "motion_ce", "motion_acc", "g_adv", "d_loss", "copy_l1")


def train(cfg: Config, work_dir: Path, *, strategy=None) -> None:
    """``cfg.steps`` training steps, resuming from the last checkpoint in ``work_dir``; leaves
    history.json and learning_curve.png there."""
    import tensorflow as tf

    from trainer import common

    run = common.resume(cfg, work_dir, Models, KEYS, strategy)
    work_dir, strategy, m, start, history = (run.work_dir, run.strategy, run.models, run.start,
                                             run.history)

    pool, _, flow = make_pool(cfg, "train", cfg.pool_clips, cfg.pool_frames, cfg.seed,
                              flows=True)
    replicas = strategy.num_replicas_in_sync
    it = iter(strategy.experimental_distribute_dataset(
        _dataset(cfg, pool, flow, cfg.batch * replicas, cfg.seed + start)))
    del pool, flow
    dist_step = common.distributed_step(strategy, _train_step(cfg, m, replicas))
    t0 = time.time()
    acc = []
    with common.Progress(cfg.steps, desc="video GAN", initial=start) as bar:
        for step in range(start, cfg.steps):
            adv_w = cfg.adv_weight if step >= cfg.adv_start else 0.0
            scale = _lr_scale(cfg, step)
            m.opt_g.learning_rate.assign(cfg.lr_g * scale)
            m.opt_d.learning_rate.assign(cfg.lr_d * scale)
            vals = [float(v) for v in dist_step(next(it), tf.constant(adv_w, tf.float32))]
            acc.append(vals)
            bar.update(1, **dict(zip(KEYS, vals)))
            if (step + 1) % cfg.log_every == 0:
                for k, v in zip(KEYS, np.mean(acc, 0)):
                    history[k].append(float(v))
                acc = []
            run.save(step + 1, cfg.ckpt_every, cfg.steps)
    if common.is_chief(strategy):
        common.save_learning_curve(work_dir / "learning_curve.png", history,
                                   xlabel=f"x{cfg.log_every} steps",
                                   title=f"video next-frame GAN ({cfg.unroll} unrolled frames)")
    print(f"video: trained {cfg.steps - start} steps in {time.time() - t0:.0f}s", flush=True)
