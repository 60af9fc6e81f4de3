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
Width 16, offsets per 2x2 block and matching costs on every 2nd pixel per axis: about a
quarter of the first version's convolution work (width 32, offsets and costs per pixel),
0.38 MB against 1.17 MB, 0.40 against 1.5 ms per step in onnxruntime on one thread (0.45
before ``lean_step``, whose folded decoder kernels make the file 0.05 MB larger).
Training uses the straight-through estimator (forward: the hard copy the runtime makes;
backward: the softmax mixture's gradient). Loss = motion_weight * cross-entropy of the logits
against the simulator's offsets (every pixel of a digit's box) + rec_weight * L1 + adv_weight *
hinge-G, over ``unroll`` predictions fed back as context. The discriminator D (spectral norm,
hinge loss) judges triples [f_{t-1}, f_t, f_{t+1}], appearance and motion together.

The runtime (runtime/video.py) builds the first two frames from the image generator's digits
placed on the canvas with a random velocity, then calls G once per further frame.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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


# --------------------------------------------------------------------------- models
def _video_layers():
    from trainer.image import _layers

    L = _layers()
    if "AddCoords" in L:
        return L
    import keras
    import tensorflow as tf

    class AddCoords(keras.layers.Layer):
        """Appends constant y and x coordinate planes in [-1, 1] (CoordConv): lets the fully
        convolutional generator know where the walls are."""

        def call(self, x):
            h, w = x.shape[1], x.shape[2]
            yy, xx = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
            grid = tf.constant(np.stack([yy, xx], -1)[None].astype(np.float32))
            # broadcast to the batch by arithmetic (no Shape/Tile ops in the exported graph)
            return tf.concat([x, x[..., :1] * 0.0 + grid], -1)

        def compute_output_shape(self, s):
            return (*s[:-1], s[-1] + 2)

    class SpaceToDepth(keras.layers.Layer):
        def __init__(self, block=2, **kw):
            super().__init__(**kw)
            self.block = block

        def call(self, x):
            return tf.nn.space_to_depth(x, self.block)

        def compute_output_shape(self, s):
            b = self.block
            return (s[0], s[1] // b, s[2] // b, s[3] * b * b)

    class Upsample(keras.layers.Layer):
        """Nearest-neighbour upsampling by an integer factor as one resize (Keras'
        UpSampling2D repeats along each axis: several reshape/tile ops once exported)."""

        def __init__(self, factor=2, **kw):
            super().__init__(**kw)
            self.factor = factor

        def call(self, x):
            f = self.factor
            # without half-pixel centres (the same pixels for an integer factor), so the
            # exported Resize uses no deprecated attribute
            return tf.raw_ops.ResizeNearestNeighbor(
                images=x, size=[x.shape[1] * f, x.shape[2] * f], half_pixel_centers=False)

        def compute_output_shape(self, s):
            return (s[0], s[1] * self.factor, s[2] * self.factor, s[3])

    class Frame(keras.layers.Layer):
        def __init__(self, i, **kw):
            super().__init__(**kw)
            self.i = i

        def call(self, x):
            return x[..., self.i:self.i + 1]

        def compute_output_shape(self, s):
            return (*s[:-1], 1)

    class CostVolume(keras.layers.Layer):
        """[cur, prev] -> |cur(p) - prev(p + o)| for the k*k offsets o (row-major, like Advect),
        background (-1) outside the canvas."""

        def __init__(self, k, stride=1, **kw):
            super().__init__(**kw)
            self.k, self.stride = k, stride

        def call(self, pair):
            cur, prev = pair
            r, h, w, s = self.k // 2, cur.shape[1], cur.shape[2], self.stride
            # built channel-first ([N, k*k, H, W]: each shifted copy is one contiguous block)
            # from k column shifts, then k row shifts of those (2k slices, not k*k), then one
            # subtraction and one abs for all offsets, then back to NHWC
            pp = tf.pad(tf.transpose(prev, [0, 3, 1, 2]), [[0, 0], [0, 0], [r, r], [r, r]],
                        constant_values=-1.0)
            cols = tf.concat([pp[:, :, :, dx:dx + w:s] for dx in range(self.k)], 1)
            shifted = tf.concat([cols[:, :, dy:dy + h:s, :] for dy in range(self.k)], 1)
            vol = tf.abs(tf.transpose(cur, [0, 3, 1, 2])[:, :, ::s, ::s] - shifted)
            return tf.transpose(vol, [0, 2, 3, 1])

        def compute_output_shape(self, s):
            n, h, w, st = *s[0][:3], self.stride
            return (n, -(-h // st), -(-w // st), self.k * self.k)

    class SadPrior(keras.layers.Layer):
        """SAD volume [.., k*k] -> logits -beta * SAD, beta learned (starts at 10): the
        constant-velocity prior (the offset that matched last frame's motion)."""

        def build(self, s):
            self.beta = self.add_weight(name="beta", shape=(),
                                        initializer=keras.initializers.Constant(10.0))

        def call(self, vol):
            return -self.beta * vol

        def compute_output_shape(self, s):
            return s

    class Advect(keras.layers.Layer):
        """Dynamic advection over the k*k source offsets (row-major, like CostVolume):
        next(p) = sum_o w_o(p) f(p + o), background (-1) outside the canvas.
        The logits may be given per ``block`` x ``block`` pixels (every pixel of a block
        takes its offset).
        mode "hard": w = one-hot(arg-max) (what ships: a pixel is copied, never mixed);
        "straight_through" (training): the same forward pass, the gradient of the softmax
        mixture w = softmax(logits)."""

        def __init__(self, k, mode="hard", block=1, **kw):
            super().__init__(**kw)
            self.k, self.mode, self.block = k, mode, block

        def call(self, pair):
            logits, frame = pair
            k, r, b = self.k, self.k // 2, self.block
            h, w = frame.shape[1], frame.shape[2]
            wp = w + 2 * r
            fp = tf.pad(frame, [[0, 0], [r, r], [r, r], [0, 0]], constant_values=-1.0)
            if self.mode == "hard":     # one gather instead of k*k shifted copies
                # padded source index = the pixel's own + its offset's (a 49-entry table)
                best = tf.argmax(logits, -1, output_type=tf.int32)        # N, H / b, W / b
                offset = np.arange(k * k)
                shift = tf.gather(tf.constant((offset // k * wp + offset % k).astype(np.int32)),
                                  tf.reshape(best, [-1, (h // b) * (w // b)]))
                yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
                if b > 1:       # each pixel takes its block's offset
                    block = (yy // b * (w // b) + xx // b).astype(np.int32).reshape(-1)
                    shift = tf.gather(shift, tf.constant(block), axis=1)
                src = shift + tf.constant((yy * wp + xx).astype(np.int32).reshape(1, -1))
                flat = tf.reshape(fp, [-1, (h + 2 * r) * wp])
                return tf.reshape(tf.gather(flat, src, batch_dims=1), [-1, h, w, 1])
            if b > 1:
                logits = tf.repeat(tf.repeat(logits, b, axis=1), b, axis=2)
            shifted = tf.concat([fp[:, dy:dy + h, dx:dx + w, :]
                                 for dy in range(k) for dx in range(k)], -1)
            hard = tf.one_hot(tf.argmax(logits, -1), k * k, dtype=logits.dtype)
            soft = tf.nn.softmax(logits, -1)
            weights = soft + tf.stop_gradient(hard - soft)
            return tf.reduce_sum(weights * shifted, -1, keepdims=True)

        def compute_output_shape(self, s):
            return (*s[1][:-1], 1)

    L.update(AddCoords=AddCoords, SpaceToDepth=SpaceToDepth, Upsample=Upsample, Frame=Frame,
             CostVolume=CostVolume, SadPrior=SadPrior, Advect=Advect)
    return L


def build_step_generator(cfg: Config, name="step_generator", mode: str = "hard"):
    """(context [N, C, C, 2] = frames t-1, t; noise [N, C, C, 1]) -> (frame t+1 [N, C, C, 1],
    offset logits [N, C, C, k*k]). See the module docstring."""
    import keras
    from keras import layers

    L = _video_layers()
    c, w, k = cfg.canvas, cfg.width, cfg.kernel
    w2, w3 = (3 * w) // 2, 2 * w

    def conv(x, ch, size=3, stride=1):
        return layers.LeakyReLU(0.2)(layers.Conv2D(ch, size, strides=stride, padding="same")(x))

    def up(x):
        return L["Upsample"](2)(x)

    ctx = keras.Input((c, c, 2), name="context")
    noise = keras.Input((c, c, 1), name="noise")
    prev, cur = L["Frame"](0)(ctx), L["Frame"](1)(ctx)
    # costs on every pixel, or every 2nd pixel per axis: a rigid move still costs exactly 0
    # on any subset of its pixels, for a quarter of the work
    sad = L["CostVolume"](k, cfg.cost_stride)([cur, prev])                    # C/s, k*k
    # block matching: the cost of each offset summed over digit-sized windows (4x4 blocks,
    # cost_window x cost_window of them) is exactly 0 for a rigid translation, whatever the
    # strokes look like inside the window (no aperture problem)
    half_sad = sad if cfg.cost_stride == 2 else layers.AveragePooling2D(2)(sad)  # C/2
    block_sad = layers.AveragePooling2D(2)(half_sad)                          # C/4
    window_sad = layers.AveragePooling2D(cfg.cost_window, strides=1, padding="same")(block_sad)
    b = cfg.motion_block
    prior = L["SadPrior"]()(L["Upsample"](4 // b)(window_sad))
    ctx_half = L["SpaceToDepth"](2)(ctx)                                      # C/2, 8
    x = layers.Concatenate()([ctx_half, L["SpaceToDepth"](2)(noise), half_sad])
    e1 = conv(conv(L["AddCoords"]()(x), w, 1), w)                             # 24x24
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
    out = L["Advect"](k, mode, b)([logits, cur])
    if b > 1:                   # per pixel, for the loss against the simulator's offsets
        logits = L["Upsample"](b)(logits)
    return keras.Model([ctx, noise], [out, logits], name=name)


def build_discriminator(cfg: Config, name="video_discriminator"):
    import keras
    from keras import layers

    L = _video_layers()
    c, w = cfg.canvas, cfg.d_width
    x = keras.Input((c, c, 3), name="triple")
    h = L["AddCoords"]()(x)
    h = layers.LeakyReLU(0.2)(L["SNConv2D"](w, 4, 2)(h))
    h = layers.LeakyReLU(0.2)(L["SNConv2D"](2 * w, 4, 2)(h))
    h = layers.LeakyReLU(0.2)(L["SNConv2D"](2 * w, 4, 2)(h))
    out = L["SNDense"](1)(layers.Flatten()(h))
    return keras.Model(x, out, name=name)


class _Models:
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


def train(cfg: Config, work_dir: Path, *, strategy=None) -> None:
    import tensorflow as tf

    from trainer import common

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    strategy = strategy or tf.distribute.get_strategy()
    common.set_seeds(cfg.seed)
    m = _Models(cfg, strategy)
    ckpt = common.Checkpointer(work_dir, strategy=strategy, **m.trackables())
    start = ckpt.restore()
    saved = common.load_json(work_dir / "history.json", {}) if start else {}
    keys = ("l1", "motion_ce", "motion_acc", "g_adv", "d_loss", "copy_l1")
    history = {k: saved.get(k, []) for k in keys}

    pool, _, flow = make_pool(cfg, "train", cfg.pool_clips, cfg.pool_frames, cfg.seed,
                              flows=True)
    replicas = strategy.num_replicas_in_sync
    gb = cfg.batch * replicas
    it = iter(strategy.experimental_distribute_dataset(
        _dataset(cfg, pool, flow, gb, cfg.seed + start)))
    del pool, flow
    c, K = cfg.canvas, cfg.unroll

    def motion_terms(logits, target, frame):
        """Cross-entropy and accuracy (on ink pixels) of the offset logits against the
        simulator's offsets on every labelled pixel: a digit's box grown by the top speed,
        whose pixels must all move with the digit (elsewhere any offset copies background).
        Pixels with ink in the target frame weigh 3x."""
        labelled = tf.cast(target >= 0, tf.float32)
        ink = labelled * tf.cast(frame[..., 0] > -1.0, tf.float32)
        weight = labelled + 2.0 * ink
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.maximum(target, 0), logits=logits)
        hit = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), target), tf.float32)
        return (tf.reduce_sum(ce * weight) / (tf.reduce_sum(weight) + 1.0),
                tf.reduce_sum(hit * ink) / (tf.reduce_sum(ink) + 1.0))

    def step_fn(batch, adv_w):
        clip, motion = batch
        bs = tf.shape(clip)[0]
        with tf.GradientTape() as tape:
            prev2, prev1 = clip[..., 0:1], clip[..., 1:2]
            triples, preds, ce, acc = [], [], 0.0, 0.0
            for j in range(K):
                noise = tf.random.normal((bs, c, c, 1))
                pred, logits = m.g([tf.concat([prev2, prev1], -1), noise], training=True)
                ce_j, acc_j = motion_terms(logits, motion[..., j], clip[..., 2 + j:3 + j])
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

    def _sum(v):
        return strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)

    @tf.function
    def dist_step(batch, adv_w):
        return [_sum(v) for v in strategy.run(step_fn, args=(batch, adv_w))]

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
            bar.update(1, **dict(zip(keys, vals)))
            if (step + 1) % cfg.log_every == 0:
                for k, v in zip(keys, np.mean(acc, 0)):
                    history[k].append(float(v))
                acc = []
            if (step + 1) % cfg.ckpt_every == 0 or step + 1 == cfg.steps:
                ckpt.save(step + 1)
                if common.is_chief(strategy):
                    common.save_json(work_dir / "history.json", history)
    if common.is_chief(strategy):
        common.save_learning_curve(work_dir / "learning_curve.png", history,
                                   xlabel=f"x{cfg.log_every} steps",
                                   title=f"video next-frame GAN ({K} unrolled frames)")
    print(f"video: trained {cfg.steps - start} steps in {time.time() - t0:.0f}s", flush=True)


def load_trained(cfg: Config, work_dir: Path) -> _Models:
    import tensorflow as tf

    from trainer import common

    m = _Models(cfg, tf.distribute.get_strategy())
    if common.Checkpointer(work_dir, **m.trackables()).restore() == 0:
        raise FileNotFoundError(f"no video checkpoint in {work_dir}: train first")
    return m


def lean_step(model, cfg: Config):
    """The step model's tf2onnx graph rebuilt in cheaper nodes; the same function:

    * the advection tail, bit for bit: GatherND with batch_dims=1 on [N, pixels] becomes
      GatherElements on axis 1 (no index Cast + Unsqueeze), and the Reshape + Slice + Squeeze
      at the end one Reshape (432 against 452 us per step);
    * the U-Net decoder's three upsample + concat + 3x3 convolutions: the upsampling and the
      upsampled half's convolution become one ConvTranspose of the low-resolution input
      (:func:`trainer.export.fold_upsampling_into_convs`; the same up to float rounding):
      401 against 432 us. (The same sums as a 2x2 Conv + DepthToSpace + crop: 421 us.)
    * the per-pixel source index: the block offsets broadcast onto the pixels instead of
      gathered, bit for bit (:func:`_broadcast_block_offsets`): 396 against 401 us.
    Measured on the step model (one onnxruntime thread, batch 1, 9 alternating rounds; the
    first item in an earlier run).
    Also tried and not kept, both exact: the cost volume's 2k strided Slices + Concats as one
    strided Conv with fixed {-1, 0, +1} taps (477 us), or as one Gather of the k*k shifted
    copies (630 us). Raises ExportError if ``model`` is not this module's step graph."""
    from onnx import helper, numpy_helper

    from trainer.export import ExportError, fold_upsampling_into_convs, prune_unused

    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    gathers = [n for n in graph.node if n.op_type == "GatherND"]
    node = producer.get(graph.output[0].name)
    chain = []          # Squeeze <- Slice <- Reshape (frame [N, C, C, 1] -> [N, C, C])
    while node is not None and len(chain) < 3:
        chain.append(node)
        node = producer.get(node.input[0])
    if len(gathers) != 1 or [n.op_type for n in chain] != ["Squeeze", "Slice", "Reshape"]:
        raise ExportError("lean_step: not the video step graph")
    gather = gathers[0]
    unsqueeze = producer.get(gather.input[1])
    cast = producer.get(unsqueeze.input[0]) if unsqueeze is not None else None
    if [a.i for a in gather.attribute if a.name == "batch_dims"] != [1] \
            or cast is None or unsqueeze.op_type != "Unsqueeze" or cast.op_type != "Cast":
        raise ExportError("lean_step: unexpected advection gather")
    # GatherND(data [N, P], idx [N, Q, 1], batch_dims=1) == GatherElements(data, idx [N, Q])
    elements = helper.make_node("GatherElements", [gather.input[0], cast.input[0]],
                                [gather.output[0]], name="lean/advect_gather", axis=1)
    graph.initializer.append(numpy_helper.from_array(
        np.array([-1, cfg.canvas, cfg.canvas], np.int64), "lean/frame_shape"))
    tail = helper.make_node("Reshape", [chain[2].input[0], "lean/frame_shape"],
                            [chain[0].output[0]], name="lean/next_frame")
    swaps = {id(gather): [elements], id(chain[0]): [tail]}
    if cfg.motion_block > 1:
        swaps.update(_broadcast_block_offsets(graph, producer, cast.input[0], cfg))
    body = [m for n in graph.node for m in swaps.get(id(n), [n])]
    del graph.node[:]
    graph.node.extend(body)
    prune_unused(graph)
    fold_upsampling_into_convs(model)
    model.producer_name = "trainer.video.lean_step"
    return model


def _broadcast_block_offsets(graph, producer: dict, index: str, cfg: Config) -> dict:
    """Nodes replacing the advection's per-pixel source index ``shift[block(p)] + base[p]``
    (a Gather of the 576 block offsets onto the 2,304 pixels, then an Add): the block offsets
    reshaped to [N, C/b, 1, C/b, 1] plus the pixel bases as [1, C/b, b, C/b, b], which
    broadcasts to the same raster-order indices without the gather (20 us of a 430 us step)."""
    from onnx import helper, numpy_helper

    from trainer.export import ExportError

    c, b = cfg.canvas, cfg.motion_block
    weights = {t.name: t for t in graph.initializer}
    add = producer.get(index)
    expand = None
    if add is not None and add.op_type == "Add":
        expand = next((producer[i] for i in add.input if i in producer), None)
        base_name = next((i for i in add.input if i in weights), None)
    if expand is None or expand.op_type != "Gather" or base_name is None \
            or expand.input[1] not in weights \
            or [a.i for a in expand.attribute if a.name == "axis"] != [1]:
        raise ExportError("lean_step: unexpected advection index")
    yy, xx = np.meshgrid(np.arange(c), np.arange(c), indexing="ij")
    block = numpy_helper.to_array(weights[expand.input[1]])
    base = numpy_helper.to_array(weights[base_name])
    if not (np.array_equal(block.ravel(), (yy // b * (c // b) + xx // b).ravel())
            and base.size == c * c):
        raise ExportError("lean_step: the advection index is not the raster block map")
    graph.initializer.extend([
        numpy_helper.from_array(np.array([-1, c // b, 1, c // b, 1], np.int64),
                                "lean/block_offsets_shape"),
        numpy_helper.from_array(base.reshape(1, c // b, b, c // b, b), "lean/pixel_base"),
        numpy_helper.from_array(np.array([-1, c * c], np.int64), "lean/index_shape")])
    return {id(expand): [helper.make_node("Reshape", [expand.input[0],
                                                      "lean/block_offsets_shape"],
                                          ["lean/block_offsets"], name="lean/block_offsets")],
            id(add): [helper.make_node("Add", ["lean/block_offsets", "lean/pixel_base"],
                                       ["lean/pixel_index"], name="lean/pixel_index"),
                      helper.make_node("Reshape", ["lean/pixel_index", "lean/index_shape"],
                                       [index], name="lean/pixel_index_flat")]}


def export(cfg: Config, work_dir: Path, out_dir: Path) -> None:
    import tensorflow as tf

    from trainer import common
    from trainer import digits as D
    from trainer.export import export_rewritten, export_tf_function, write_entry, write_json

    m = load_trained(cfg, work_dir)
    c = cfg.canvas
    g = build_step_generator(cfg, name="step_export", mode="hard")
    g.set_weights(m.g.get_weights())

    def step(context, noise):
        return tf.identity(g([context, noise], training=False)[0][..., 0], name="next_frame")

    # parity on real contexts: on random pixels two offsets can tie to ~1e-7 and the arg-max
    # may then differ between engines, which says nothing about the exported model
    pool, _ = make_pool(cfg, "test", 7, 3, cfg.seed + 7)
    rng = np.random.default_rng(cfg.seed)
    samples = [[np.transpose(pool[i, :2], (1, 2, 0)).copy()[None],
                rng.standard_normal((1, c, c, 1)).astype(np.float32)] for i in range(3)]
    samples.append([np.transpose(pool[3:, :2], (0, 2, 3, 1)).copy(),
                    rng.standard_normal((4, c, c, 1)).astype(np.float32)])
    sig = [tf.TensorSpec([None, c, c, 2], tf.float32, name="context"),
           tf.TensorSpec([None, c, c, 1], tf.float32, name="noise")]
    tf2onnx_entry = export_tf_function(step, sig, kind=KIND, role="step", out_dir=out_dir,
                                       sample_inputs=samples)
    # shipped: the same function in cheaper nodes (lean_step, 396 us per step here),
    # checked against TensorFlow again
    g_entry = export_rewritten(tf2onnx_entry, lambda model: lean_step(model, cfg), step, sig,
                               kind=KIND, role="step", out_dir=out_dir, samples=samples)
    physics = write_json({"canvas": c, "tile": 28, "ink_threshold": D.INK_THRESHOLD,
                          "speed_min": cfg.speed_min,
                          "speed_max": cfg.speed_max, "max_digits": cfg.max_digits},
                         kind=KIND, role="physics", out_dir=out_dir)
    notes = ("step: context float32 [N, 48, 48, 2] (frames t-1, t in [-1, 1]) + noise float32 "
             "[N, 48, 48, 1] ~ N(0, 1) -> next_frame [N, 48, 48], every pixel copied from frame t "
             "at its arg-max offset (tf2onnx's graph rebuilt in cheaper nodes by "
             "trainer.video.lean_step: advection tail, decoder upsampling folded into "
             "ConvTranspose). First frames: the image generator's digits placed on the "
             "canvas (runtime/video.py). physics: canvas, ink threshold of the bouncing box "
             "and speed range of the training clips.")
    write_entry(out_dir, KIND, {"step": g_entry, "physics": physics}, common.config_dict(cfg),
                notes=notes)


# --------------------------------------------------------------------------- evaluation
def _centroids(frames: np.ndarray) -> np.ndarray:
    """(..., H, W) in [-1, 1] -> (..., 2) ink centroid (y, x), ink = (f + 1) / 2."""
    ink = (np.asarray(frames, np.float64) + 1.0) / 2.0
    h, w = ink.shape[-2:]
    mass = ink.sum((-2, -1)) + 1e-6
    ys = (ink.sum(-1) * np.arange(h)).sum(-1) / mass
    xs = (ink.sum(-2) * np.arange(w)).sum(-1) / mass
    return np.stack([ys, xs], -1)


def _crops(frames: np.ndarray) -> np.ndarray:
    """28x28 crops centred on each frame's ink centroid (background outside the canvas)."""
    f = np.asarray(frames, np.float32).reshape(-1, *frames.shape[-2:])
    cen = _centroids(f)
    pad = 14
    big = np.pad(f, ((0, 0), (pad, pad), (pad, pad)), constant_values=-1.0)
    out = np.empty((len(f), 28, 28), np.float32)
    for i, (cy, cx) in enumerate(cen):
        y0, x0 = int(round(cy)), int(round(cx))       # centroid + pad - 14
        out[i] = big[i, y0:y0 + 28, x0:x0 + 28]
    return out.reshape(*frames.shape[:-2], 28, 28)


def clip_metrics(clf, clips: np.ndarray) -> dict:
    """clips float32 (N, T, H, W) in [-1, 1], one digit each."""
    n, t = clips.shape[:2]
    p = clf.probs(_crops(clips).reshape(n * t, 28, 28)).reshape(n, t, 10)
    pred = p.argmax(-1)
    agree = (pred == pred[:, :1]).mean()
    cen = _centroids(clips)
    disp = np.linalg.norm(np.diff(cen, axis=1), axis=-1).mean()
    change = np.abs(np.diff((clips + 1) / 2, axis=1)).mean()
    ink = ((clips + 1) / 2).sum((-2, -1))
    return {
        "clips": int(n), "frames": int(t),
        "class_agreement_with_first_frame": round(float(agree), 4),
        "confidence_first_frame": round(float(p[:, 0].max(-1).mean()), 4),
        "confidence_last_frame": round(float(p[:, -1].max(-1).mean()), 4),
        "mean_centroid_displacement_px": round(float(disp), 3),
        "mean_abs_pixel_change": round(float(change), 4),
        "ink_last_over_first": round(float((ink[:, -1] / (ink[:, 0] + 1e-6)).mean()), 3),
    }


def motion_metrics(clips: np.ndarray) -> dict:
    cen = _centroids(clips)
    ink = ((clips + 1) / 2).sum((-2, -1))
    return {
        "clips": int(len(clips)), "frames": int(clips.shape[1]),
        "mean_centroid_displacement_px": round(float(
            np.linalg.norm(np.diff(cen, axis=1), axis=-1).mean()), 3),
        "mean_abs_pixel_change": round(float(np.abs(np.diff((clips + 1) / 2, axis=1)).mean()), 4),
        "ink_last_over_first": round(float((ink[:, -1] / (ink[:, 0] + 1e-6)).mean()), 3),
    }


def evaluate(cfg: Config, work_dir: Path, models_dir: Path) -> dict:
    import runtime
    from runtime import video as rv
    from trainer import digits as D

    clf = D.DigitClassifier.load_or_train(Path(work_dir) / "classifier")
    n, t = cfg.eval_clips, cfg.eval_frames
    u = D.uint8_to_unit

    real1, _ = make_pool(cfg, "test", n, t, cfg.seed + 99, n_digits=1)
    real2, _ = make_pool(cfg, "test", n, t, cfg.seed + 98, n_digits=2)
    copy_last = np.repeat(real1[:, :1], t, axis=1)
    t0 = time.time()
    gen1 = np.stack([u(runtime.generate(KIND, frames=t, digits=1, seed=cfg.seed + 10_000 + i,
                                        models_dir=models_dir)) for i in range(n)])
    secs = time.time() - t0
    gen2 = np.stack([u(runtime.generate(KIND, frames=t, digits=2, seed=cfg.seed + 20_000 + i,
                                        models_dir=models_dir)) for i in range(n)])
    # the first frames' rejection sampling: the default against none and against 17 candidates
    by_quality = {q: np.stack([u(runtime.generate(KIND, frames=t, seed=cfg.seed + 10_000 + i,
                                                  quality=q, models_dir=models_dir))
                               for i in range(n)]) for q in (0.0, 0.5)}
    # next-frame prediction from real contexts (held-out digits): rollout vs ground truth
    rng = np.random.default_rng(cfg.seed + 5)
    pred = rv.rollout(rng, models_dir, real1[:, :2], t - 2)
    truth = (real1 + 1) / 2
    l1_model = np.abs((pred[:, 2:] + 1) / 2 - truth[:, 2:]).mean((0, 2, 3))
    l1_copy = np.abs(truth[:, 1:2] - truth[:, 2:]).mean((0, 2, 3))
    long = np.stack([u(runtime.generate(KIND, frames=128, seed=cfg.seed + 30_000 + i,
                                        models_dir=models_dir)) for i in range(20)])
    metrics = {
        "classifier_heldout_accuracy": round(clf.accuracy(D.load_digits_images()["x_test"],
                                                          D.load_digits_images()["y_test"]), 4),
        "notes": "one-digit clips: classifier on a 28x28 crop centred on the ink centroid; "
                 "displacement = mean |centroid(t) - centroid(t-1)| px; pixel change = mean "
                 "|f(t) - f(t-1)| with ink in [0, 1]",
        "real_clips_1digit": clip_metrics(clf, real1),
        "generated_1digit": {**clip_metrics(clf, gen1), "seconds": round(secs, 2),
                             "first_frame_quality": rv.OPTIONS["quality"]},
        **{f"generated_1digit_quality_{q}": clip_metrics(clf, clips)
           for q, clips in by_quality.items()},
        "copy_last_frame_1digit": clip_metrics(clf, copy_last),
        "real_clips_2digits": motion_metrics(real2),
        "generated_2digits": motion_metrics(gen2),
        "generated_128_frames_1digit": clip_metrics(clf, long),
        "prediction_from_real_context": {
            "frames_predicted": int(t - 2),
            "l1_model_per_step": [round(float(v), 4) for v in l1_model],
            "l1_copy_last_frame_per_step": [round(float(v), 4) for v in l1_copy],
            "l1_model_mean": round(float(l1_model.mean()), 4),
            "l1_copy_last_frame_mean": round(float(l1_copy.mean()), 4),
        },
    }
    g, r = metrics["generated_1digit"], metrics["real_clips_1digit"]
    metrics["targets"] = {
        "recognisable_agreement_ge_0.8": bool(g["class_agreement_with_first_frame"] >= 0.8),
        "moves_displacement_ge_half_real": bool(
            g["mean_centroid_displacement_px"] >= 0.5 * r["mean_centroid_displacement_px"]),
        "pixel_change_within_0.5x_2x_real": bool(
            0.5 * r["mean_abs_pixel_change"] <= g["mean_abs_pixel_change"]
            <= 2 * r["mean_abs_pixel_change"]),
        "beats_copy_last_frame_l1": bool(l1_model.mean() < l1_copy.mean()),
    }
    return metrics

