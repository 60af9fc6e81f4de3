"""The video kind's models: the next-frame step generator (cost volume + U-Net + hard
advection; trainer.video's docstring describes it) and the spectral-norm discriminator on
frame triples, and the checkpointed set of both. Importing this module does not import
TensorFlow; building a model does (layers in trainer.video_layers).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trainer.video import Config


def build_step_generator(cfg: Config, name="step_generator", mode: str = "hard"):
    """(context [N, C, C, 2] = frames t-1, t; noise [N, C, C, 1]) -> (frame t+1 [N, C, C, 1],
    offset logits [N, C, C, k*k]). See trainer.video's docstring."""
    import keras
    from keras import layers

    from trainer import video_layers as L

    c, w, k = cfg.canvas, cfg.width, cfg.kernel
    w2, w3 = (3 * w) // 2, 2 * w

    def conv(x, ch, size=3, stride=1):
        return layers.LeakyReLU(0.2)(layers.Conv2D(ch, size, strides=stride, padding="same")(x))

    def up(x):
        return L.Upsample(2)(x)

    ctx = keras.Input((c, c, 2), name="context")
    noise = keras.Input((c, c, 1), name="noise")
    prev, cur = L.Frame(0)(ctx), L.Frame(1)(ctx)
    # costs on every pixel, or every 2nd pixel per axis: a rigid move still costs exactly 0
    # on any subset of its pixels, for a quarter of the work
    sad = L.CostVolume(k, cfg.cost_stride)([cur, prev])                    # C/s, k*k
    # block matching: the cost of each offset summed over digit-sized windows (4x4 blocks,
    # cost_window x cost_window of them) is exactly 0 for a rigid translation, whatever the
    # strokes look like inside the window (no aperture problem)
    half_sad = sad if cfg.cost_stride == 2 else layers.AveragePooling2D(2)(sad)  # C/2
    block_sad = layers.AveragePooling2D(2)(half_sad)                          # C/4
    window_sad = layers.AveragePooling2D(cfg.cost_window, strides=1, padding="same")(block_sad)
    b = cfg.motion_block
    prior = L.SadPrior()(L.Upsample(4 // b)(window_sad))
    ctx_half = L.SpaceToDepth(2)(ctx)                                      # C/2, 8
    x = layers.Concatenate()([ctx_half, L.SpaceToDepth(2)(noise), half_sad])
    e1 = conv(conv(L.AddCoords()(x), w, 1), w)                             # 24x24
    e2 = conv(layers.Concatenate()([conv(e1, w2, 4, 2), window_sad]), w2, 1)  # 12x12
    e3 = conv(e2, w3, 4, 2)                                                   # 6x6
    e4 = conv(e3, w3, 3, 2)                                                   # 3x3: global
    d3 = conv(layers.Concatenate()([up(e4), e3]), w3)
    d2 = conv(layers.Concatenate()([up(d3), e2]), w2)
    d1 = conv(layers.Concatenate()([up(d2), e1]), w)
    # logits per pixel, or per 2x2 block at the 24x24 level (a digit moves rigidly, so its
    # pixels share one offset: 4x fewer logits to compute and compare)
    h = layers.Concatenate()([up(d1), ctx] if b == 1 else [d1, ctx_half])
    learned = layers.Conv2D(k * k, 1, kernel_initializer=keras.initializers.RandomNormal(
        stddev=0.01, seed=3))(h)
    logits = layers.Add(name="motion_logits")([learned, prior])
    out = L.Advect(k, mode, b)([logits, cur])
    if b > 1:                   # per pixel, for the loss against the simulator's offsets
        logits = L.Upsample(b)(logits)
    return keras.Model([ctx, noise], [out, logits], name=name)


def build_discriminator(cfg: Config, name="video_discriminator"):
    import keras
    from keras import layers

    from trainer import image_layers as IL
    from trainer import video_layers as L

    c, w = cfg.canvas, cfg.d_width
    x = keras.Input((c, c, 3), name="triple")
    h = L.AddCoords()(x)
    h = layers.LeakyReLU(0.2)(IL.SNConv2D(w, 4, 2)(h))
    h = layers.LeakyReLU(0.2)(IL.SNConv2D(2 * w, 4, 2)(h))
    h = layers.LeakyReLU(0.2)(IL.SNConv2D(2 * w, 4, 2)(h))
    out = IL.SNDense(1)(layers.Flatten()(h))
    return keras.Model(x, out, name=name)


class Models:
    def __init__(self, cfg: Config, strategy):
        import keras

        with strategy.scope():
            self.g = build_step_generator(cfg, mode="straight_through")
            self.d = build_discriminator(cfg)
            self.opt_g = keras.optimizers.Adam(cfg.lr_g, beta_1=0.5, beta_2=0.999)
            self.opt_d = keras.optimizers.Adam(cfg.lr_d, beta_1=0.5, beta_2=0.999)
            self.opt_g.build(self.g.trainable_variables)
            self.opt_d.build(self.d.trainable_variables)

    def trackables(self) -> dict:
        return dict(g=self.g, d=self.d, opt_g=self.opt_g, opt_d=self.opt_d)


def load_trained(cfg: Config, work_dir: Path) -> Models:
    import tensorflow as tf

    from trainer import common

    m = Models(cfg, tf.distribute.get_strategy())
    if common.Checkpointer(work_dir, **m.trackables()).restore() == 0:
        raise FileNotFoundError(f"no video checkpoint in {work_dir}: train first")
    return m
