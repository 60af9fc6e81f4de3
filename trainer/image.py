"""Image GAN on handwritten digits: a small DCGAN made stable (hinge loss, spectral norm, TTUR,
EMA generator), plus a calibrated discriminator and a class head for rejection sampling.

Data: scikit-learn's 1,797 8x8 digits upscaled to 28x28 (see trainer.digits); 1,438 train.
Models: trainer.image_model (layers in trainer.image_layers).

Training (one ``tf.function`` step under ``strategy.run``): hinge loss, Adam(0, 0.9), TTUR
(lr_d = 4 x lr_g), the exported generator is an exponential moving average of G's weights.
After the GAN steps, a copy of D is fine-tuned for ``calib_steps`` with the logistic loss against
the frozen EMA generator (the discriminator rejection sampling recipe, Azadi et al. 2019: its
logit then estimates log p_data/p_g of a sample), while an auxiliary class head is trained on
the real digits.

Export (trainer.image_export): the EMA generator, the class head as the ``classifier`` role of
``generate("image", quality=...)``, the calibrated discriminator as an optional file for apps,
and the rule's side file with a density-ratio discriminator fitted at export (per-class
Gaussians in the top principal components of the real digits against generator samples).
Evaluation: trainer.image_eval.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainer.image_eval import evaluate
from trainer.image_export import export, tf_functions
from trainer.image_model import (N_CLASSES, PIXEL_NORM_EPS, Models, build_aux_classifier,
                                 build_discriminator, build_generator, dataset, diff_shift,
                                 load_trained)

__all__ = ["KIND", "DATA", "N_CLASSES", "PIXEL_NORM_EPS", "Config", "PROFILES", "Models",
           "build_generator", "build_discriminator", "build_aux_classifier", "train",
           "load_trained", "export", "tf_functions", "evaluate"]

KIND = "image"
DATA = ("scikit-learn load_digits (1,797 handwritten 8x8 digits, no download), upscaled "
        "bicubically to 20x20 inside a 28x28 tile, scaled to [-1, 1]; stratified 80/20 split "
        "(seed 0): 1,438 train, 359 held out for evaluation.")


@dataclass
class Config:
    seed: int = 0
    z_dim: int = 64
    g_ch: int = 128           # generator width at 7x7 (then g/2 at 14x14)
    d_ch: int = 64            # discriminator width at 14x14 (2d at 7x7)
    batch: int = 64
    steps: int = 3000         # GAN steps (one D and one G update each)
    lr_g: float = 2e-4
    lr_d: float = 4e-4        # TTUR
    beta1: float = 0.5
    beta2: float = 0.999
    shift: int = 2            # DiffAugment translation (pixels) on D's real and fake inputs
    ema: float = 0.999        # generator weight EMA (warm-up: min(ema, (1+t)/(10+t)))
    calib_steps: int = 1200   # rejection discriminator: logistic fine-tuning of a copy of D
    calib_lr: float = 1e-4    # plus training of its auxiliary class head (real digits only)
    aux_lr: float = 1e-3
    accept_class_prob: float = 0.99   # rejection rule: class head p(label | x) >= this
    max_extra_candidates: int = 31    # quality=1 draws 1 + 31 = 32 candidates per image
    ratio_components: int = 12        # density-ratio discriminator: top principal components
    ratio_shrink: float = 0.5         # of the real digits, per-class Gaussians, covariance
    ratio_fakes_per_class: int = 3000  # shrinkage; generator samples per class for its fit
    ckpt_every: int = 500
    log_every: int = 25
    eval_samples: int = 1000
    eval_repeats: int = 5     # independent draws of eval_samples per generated row


PROFILES = {
    "quick": Config(g_ch=32, d_ch=16, batch=32, steps=60, calib_steps=20, ckpt_every=50,
                    log_every=10, eval_samples=200, eval_repeats=1, ratio_fakes_per_class=300),
    # the shipped model (docs/kinds/image.md says why these sizes and this step count)
    "full": Config(z_dim=32, g_ch=64, d_ch=48, steps=4800),
}



def _gan_step(cfg: Config, m: Models, replicas: int):
    """One hinge-loss D update and one G update on a batch, then the EMA of G's weights."""
    import tensorflow as tf

    zdim = cfg.z_dim

    def aug(x):
        return diff_shift(x, cfg.shift) if cfg.shift else x

    def gan_step(batch, ema_decay):
        real, y_real = batch
        bs = tf.shape(real)[0]
        z = tf.random.normal((bs, zdim))
        y_fake = tf.random.uniform((bs,), 0, N_CLASSES, dtype=tf.int64)
        with tf.GradientTape() as tape:
            fake = m.g([z, y_fake], training=True)
            d_real = m.d([aug(real), y_real], training=True)
            d_fake = m.d([aug(fake), y_fake], training=True)
            d_loss = (tf.reduce_mean(tf.nn.relu(1.0 - d_real))
                      + tf.reduce_mean(tf.nn.relu(1.0 + d_fake))) / replicas
        grads = tape.gradient(d_loss, m.d.trainable_variables)
        m.opt_d.apply_gradients(zip(grads, m.d.trainable_variables))
        z = tf.random.normal((bs, zdim))
        y_fake = tf.random.uniform((bs,), 0, N_CLASSES, dtype=tf.int64)
        with tf.GradientTape() as tape:
            g_loss = -tf.reduce_mean(
                m.d([aug(m.g([z, y_fake], training=True)), y_fake], training=True)) / replicas
        grads = tape.gradient(g_loss, m.g.trainable_variables)
        m.opt_g.apply_gradients(zip(grads, m.g.trainable_variables))
        for we, w in zip(m.g_ema.weights, m.g.weights):
            we.assign(ema_decay * we + (1.0 - ema_decay) * w)
        return d_loss, g_loss, tf.reduce_mean(d_real) / replicas, tf.reduce_mean(d_fake) / replicas

    return gan_step


def _calib_step(cfg: Config, m: Models, replicas: int):
    """One logistic-loss update of the calibrated D against the frozen EMA generator, and one
    cross-entropy update of the class head on the real digits."""
    import tensorflow as tf

    zdim = cfg.z_dim

    def calib_step(batch):
        real, y_real = batch
        bs = tf.shape(real)[0]
        y_fake = tf.random.uniform((bs,), 0, N_CLASSES, dtype=tf.int64)
        fake = m.g_ema([tf.random.normal((bs, zdim)), y_fake], training=False)
        with tf.GradientTape() as tape:
            lr_ = m.d_cal([real, y_real], training=True)
            lf = m.d_cal([fake, y_fake], training=True)
            loss = (tf.reduce_mean(tf.nn.softplus(-lr_)) + tf.reduce_mean(tf.nn.softplus(lf))) \
                / replicas
        grads = tape.gradient(loss, m.d_cal.trainable_variables)
        m.opt_cal.apply_gradients(zip(grads, m.d_cal.trainable_variables))
        with tf.GradientTape() as tape:
            ce = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=y_real, logits=m.aux(diff_shift(real, 2), training=True))) / replicas
        grads = tape.gradient(ce, m.aux.trainable_variables)
        m.opt_aux.apply_gradients(zip(grads, m.aux.trainable_variables))
        return loss, ce

    return calib_step


GAN_KEYS = ("d_loss", "g_loss", "d_real", "d_fake")
CALIB_KEYS = ("calib_loss", "aux_ce")


def train(cfg: Config, work_dir: Path, *, strategy=None) -> None:
    """``cfg.steps`` GAN steps then ``cfg.calib_steps`` calibration steps, resuming from the
    last checkpoint in ``work_dir``; leaves history.json and learning_curve.png there."""
    import tensorflow as tf

    from trainer import common
    from trainer.digits import load_digits_images

    run = common.resume(cfg, work_dir, Models, GAN_KEYS + CALIB_KEYS, strategy)
    work_dir, strategy, m, start, history = (run.work_dir, run.strategy, run.models, run.start,
                                             run.history)
    data = load_digits_images()
    replicas = strategy.num_replicas_in_sync
    it = iter(strategy.experimental_distribute_dataset(
        dataset(data["x_train"], data["y_train"], cfg.batch * replicas, cfg.seed + start)))
    gan = common.distributed_step(strategy, _gan_step(cfg, m, replicas))
    calib = common.distributed_step(strategy, _calib_step(cfg, m, replicas))
    total = cfg.steps + cfg.calib_steps
    t0 = time.time()
    with common.Progress(total, desc="image GAN", initial=start) as bar:
        acc = []
        for step in range(start, total):
            batch = next(it)
            if step < cfg.steps:
                decay = min(cfg.ema, (1.0 + step) / (10.0 + step))
                vals = [float(v) for v in gan(batch, tf.constant(decay, tf.float32))]
            else:
                if step == cfg.steps:      # start calibration from the trained discriminator
                    m.d_cal.set_weights(m.d.get_weights())
                    acc = []
                vals = [float(v) for v in calib(batch)]
            keys = GAN_KEYS if step < cfg.steps else CALIB_KEYS
            acc.append(vals)
            if (step + 1) % cfg.log_every == 0:
                for k, v in zip(keys, np.mean(np.asarray(acc), 0)):
                    history[k].append(float(v))
                acc = []
            bar.update(1, **dict(zip(keys, vals)))
            run.save(step + 1, cfg.ckpt_every, total)
    if common.is_chief(strategy):
        common.save_json(work_dir / "history.json", history)
        common.save_learning_curve(work_dir / "learning_curve.png", history,
                                   xlabel=f"x{cfg.log_every} steps", title="image GAN (hinge)")
    print(f"image: trained {total - start} steps in {time.time() - t0:.0f}s", flush=True)
