"""The image GAN's models: class-conditional generator, projection discriminator with spectral
norm, the auxiliary class head of the rejection rule, and the checkpointed set of all of them.

Generator (pixel norm instead of BatchNorm, so training and inference behave the same):
    z -> Dense 7*7*g -> LReLU, PixelNorm -> ConvT 4x4/2 (g/2) -> LReLU, PixelNorm
      -> Conv 3x3 (4) -> DepthToSpace 2 -> tanh                          (28x28 in [-1, 1])
    The 14x14 features give the 2x2 pixels of each output block directly (a sub-pixel output
    layer, as in ESPCN).
Discriminator (spectral norm on every layer, one power iteration per step):
    x (28x28) -> SNConv 4x4/2 (d) -> LReLU -> SNConv 4x4/2 (2d) -> LReLU -> SNDense 2d
      -> realness logit + <embed(label), h> (projection discriminator)
Importing this module does not import TensorFlow; building a model does.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from trainer.image import Config

N_CLASSES = 10
PIXEL_NORM_EPS = 1e-8


def build_generator(cfg: Config, name="generator"):
    import keras
    from keras import layers

    from trainer import image_layers as L

    g = cfg.g_ch
    z = keras.Input((cfg.z_dim,), name="z")
    label = keras.Input((), dtype="int64", name="label")
    onehot = L.OneHot()(label)
    h = layers.Dense(7 * 7 * g)(layers.Concatenate()([z, onehot]))
    h = layers.Reshape((7, 7, g))(h)
    h = L.PixelNorm()(layers.LeakyReLU(0.2)(h))
    h = layers.Conv2DTranspose(g // 2, 4, strides=2, padding="same")(h)
    h = L.PixelNorm()(layers.LeakyReLU(0.2)(h))
    # sub-pixel output: 4 values per 14x14 pixel, interleaved into its 2x2 block of 28x28
    x = layers.Activation("tanh")(L.DepthToSpace()(layers.Conv2D(4, 3, padding="same")(h)))
    return keras.Model([z, label], x, name=name)


def build_discriminator(cfg: Config, name="discriminator"):
    import keras
    from keras import layers

    from trainer import image_layers as L

    x = keras.Input((28, 28, 1), name="images")
    label = keras.Input((), dtype="int64", name="label")
    h = layers.LeakyReLU(0.2)(L.SNConv2D(cfg.d_ch, 4, 2)(x))
    h = layers.LeakyReLU(0.2)(L.SNConv2D(cfg.d_ch * 2, 4, 2)(h))
    h = layers.Flatten()(h)
    h = layers.LeakyReLU(0.2)(L.SNDense(cfg.d_ch * 2)(h))
    # projection discriminator: psi(h) + <embed(y), h>
    proj = L.SNDense(cfg.d_ch * 2, use_bias=False)(L.OneHot()(label))
    out = layers.Add()([L.SNDense(1)(h), L.RowDot()([proj, h])])
    return keras.Model([x, label], out, name=name)


def build_aux_classifier(cfg: Config, name="aux_classifier"):
    """The rejection discriminator's auxiliary class head (AC-GAN style): a small CNN trained
    on the real training digits only, giving p(label | x) for generated candidates."""
    import keras
    from keras import layers

    c = max(8, cfg.d_ch // 2)
    x = keras.Input((28, 28, 1), name="images")
    h = layers.LeakyReLU(0.2)(layers.Conv2D(c, 4, strides=2, padding="same")(x))
    h = layers.LeakyReLU(0.2)(layers.Conv2D(2 * c, 4, strides=2, padding="same")(h))
    h = layers.Dropout(0.3)(layers.Flatten()(h))
    return keras.Model(x, layers.Dense(N_CLASSES)(h), name=name)


class Models:
    """Everything that is checkpointed, built inside ``strategy.scope()``."""

    def __init__(self, cfg: Config, strategy):
        import keras

        with strategy.scope():
            self.g = build_generator(cfg)
            self.g_ema = build_generator(cfg, name="generator_ema")
            self.d = build_discriminator(cfg)
            self.d_cal = build_discriminator(cfg, name="discriminator_calibrated")
            self.g_ema.set_weights(self.g.get_weights())
            self.opt_g = keras.optimizers.Adam(cfg.lr_g, beta_1=cfg.beta1, beta_2=cfg.beta2)
            self.opt_d = keras.optimizers.Adam(cfg.lr_d, beta_1=cfg.beta1, beta_2=cfg.beta2)
            self.opt_cal = keras.optimizers.Adam(cfg.calib_lr, beta_1=0.5, beta_2=0.999)
            self.opt_g.build(self.g.trainable_variables)
            self.opt_d.build(self.d.trainable_variables)
            self.opt_cal.build(self.d_cal.trainable_variables)
            self.aux = build_aux_classifier(cfg)
            self.opt_aux = keras.optimizers.Adam(cfg.aux_lr)
            self.opt_aux.build(self.aux.trainable_variables)

    def trackables(self) -> dict:
        return dict(g=self.g, g_ema=self.g_ema, d=self.d, d_cal=self.d_cal, opt_g=self.opt_g,
                    opt_d=self.opt_d, opt_cal=self.opt_cal, aux=self.aux, opt_aux=self.opt_aux)


def dataset(x: np.ndarray, y: np.ndarray, global_batch: int, seed: int):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x[..., None].astype(np.float32), y.astype(np.int64)))
    return (ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).repeat()
            .batch(global_batch, drop_remainder=True).prefetch(2))


def diff_shift(x, shift: int):
    """DiffAugment translation: each image moved by its own random (dy, dx) in
    [-shift, shift], background filled in; differentiable (two batched gathers)."""
    import tensorflow as tf

    bs, h, w = tf.shape(x)[0], x.shape[1], x.shape[2]
    xp = tf.pad(x, [[0, 0], [shift, shift], [shift, shift], [0, 0]], constant_values=-1.0)
    oy = tf.random.uniform((bs, 1), 0, 2 * shift + 1, dtype=tf.int32)
    ox = tf.random.uniform((bs, 1), 0, 2 * shift + 1, dtype=tf.int32)
    xp = tf.gather(xp, oy + tf.range(h)[None], axis=1, batch_dims=1)
    return tf.gather(xp, ox + tf.range(w)[None], axis=2, batch_dims=1)


def load_trained(cfg: Config, work_dir: Path) -> Models:
    import tensorflow as tf

    from trainer import common

    m = Models(cfg, tf.distribute.get_strategy())
    ckpt = common.Checkpointer(work_dir, **m.trackables())
    if ckpt.restore() == 0:
        raise FileNotFoundError(f"no image checkpoint in {work_dir}: train first")
    return m
