"""Video GAN: a next-frame generator for moving digits, trained adversarially on
(context, next frame) triples plus an L1 reconstruction term, with unrolled (autoregressive)
training so that it stays stable when the runtime rolls it forward for many frames.

Data: Moving-MNIST style clips built from the 1,438 held-in upscaled digits (trainer.digits):
1 or 2 digits (28x28 tiles, 20x20 ink box) on a 48x48 canvas, whole-pixel velocity
rint(s (sin a, cos a)) with s in 1..3 px/frame, bouncing off the edges. A fresh pool of clips
is drawn by the trainer (seeded); nothing is downloaded.

Step generator G (fully convolutional; cost volume + dynamic advection, after PWC-Net and
Finn et al. 2016):
    SAD_o(p) = |f_t(p) - f_{t-1}(p + o)| for the 49 offsets o in a 7x7 window, averaged over
    4x4 blocks and then over 5x5-block (20 px, digit-sized) windows (the aperture problem)
    -> with both frames folded into the blocks (space-to-depth 4), noise and coordinates:
       Conv1 (2w) -> 3 x Conv3 residual (2w) -> per 4x4 block: 2k correction logits and 2 bounce
       gates (both averaged over digit-sized windows so a digit moves as one piece)
    -> logits = corrections + the constant-velocity prior -beta * SAD (its vertical/horizontal
       log-sum-exp marginals), mirrored per axis by the bounce gates
    -> f_{t+1} = f_t advected by a separable per-pixel softmax kernel over offsets -3..3: every
       output pixel is a convex mixture of nearby current-frame pixels, so ink is moved, never
       invented, and a peaked kernel keeps the digit sharp over long rollouts.
Discriminator D (spectral norm, hinge loss) judges triples [f_{t-1}, f_t, f_{t+1}] so it sees
both appearance and motion consistency. G is trained on ``unroll`` consecutive predictions
fed back as its own context (the D triples use the contexts G actually saw), with
loss = rec_weight * L1 + adv_weight * hinge-G.

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
    width: int = 16           # G width at 24x24 (2x at 12x12)
    kernel: int = 7           # advection neighbourhood (k x k): moves up to k // 2 px/frame
    cost_window: int = 5      # matching costs averaged over cost_window x cost_window blocks
    d_width: int = 16
    pool_clips: int = 3000    # clips in the training pool
    pool_frames: int = 12     # frames per pool clip (windows of 2 + unroll are sampled)
    max_digits: int = 2
    speed_min: float = 1.0
    speed_max: float = 3.0    # whole-pixel velocity components, so at most 3 px per frame
    batch: int = 16
    steps: int = 2000
    unroll: int = 4           # autoregressive steps per training window
    lr_g: float = 3e-4
    lr_d: float = 3e-4
    rec_weight: float = 20.0  # L1 (per pixel, [-1, 1] scale) weight
    entropy_weight: float = 0.02  # pushes the advection kernels to be peaked (no smearing)
    sharpen: float = 2.0      # logits scale of the exported model (>1: more decisive kernels)
    adv_weight: float = 0.1
    adv_start: int = 600      # adversarial term off for the first steps (L1 warm-up)
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
            grid = tf.tile(grid, [tf.shape(x)[0], 1, 1, 1])
            return tf.concat([x, grid], -1)

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

    class DepthToSpace(keras.layers.Layer):
        def call(self, x):
            return tf.nn.depth_to_space(x, 2)

        def compute_output_shape(self, s):
            return (s[0], s[1] * 2, s[2] * 2, s[3] // 4)

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

        def __init__(self, k, **kw):
            super().__init__(**kw)
            self.k = k

        def call(self, pair):
            cur, prev = pair
            r, h, w = self.k // 2, cur.shape[1], cur.shape[2]
            pp = tf.pad(prev, [[0, 0], [r, r], [r, r], [0, 0]], constant_values=-1.0)
            return tf.concat([tf.abs(cur - pp[:, dy:dy + h, dx:dx + w, :])
                              for dy in range(self.k) for dx in range(self.k)], -1)

        def compute_output_shape(self, s):
            return (*s[0][:-1], self.k * self.k)

    class SadPrior(keras.layers.Layer):
        """Block SAD volume [.., k*k] -> separable logits [.., 2k]: the vertical and horizontal
        marginals (log-sum-exp) of -beta * SAD, beta learned (starts at 20)."""

        def __init__(self, k, **kw):
            super().__init__(**kw)
            self.k = k

        def build(self, s):
            self.beta = self.add_weight(name="beta", shape=(),
                                        initializer=keras.initializers.Constant(20.0))

        def call(self, vol):
            k = self.k
            sh = tf.shape(vol)
            v = -self.beta * tf.reshape(vol, tf.concat([sh[:-1], [k, k]], 0))
            return tf.concat([tf.reduce_logsumexp(v, -1), tf.reduce_logsumexp(v, -2)], -1)

        def compute_output_shape(self, s):
            return (*s[:-1], 2 * self.k)

    class Advect(keras.layers.Layer):
        """Separable dynamic advection. logits [N, H, W, 2k] -> a vertical and a horizontal
        softmax over offsets -k//2..k//2 per pixel:
            g(q)    = sum_dx b(q)_dx * f(q + (0, dx))          (horizontal pass)
            next(p) = sum_dy a(p)_dy * g(p + (dy, 0))          (vertical pass)
        A pure translation is a one-hot a and b, so shapes move exactly; outside the canvas
        is background (-1). Built from Pad/Slice/Mul/Add/Softmax for a plain ONNX export."""

        def __init__(self, k, sharpen=1.0, **kw):
            super().__init__(**kw)
            self.k, self.sharpen = k, float(sharpen)

        def call(self, pair):
            logits, frame = pair
            if self.sharpen != 1.0:
                logits = logits * self.sharpen
            k, r = self.k, self.k // 2
            h, w = frame.shape[1], frame.shape[2]
            a = tf.nn.softmax(logits[..., :k], -1)
            b = tf.nn.softmax(logits[..., k:], -1)
            fp = tf.pad(frame, [[0, 0], [r, r], [r, r], [0, 0]], constant_values=-1.0)
            bp = tf.pad(b, [[0, 0], [r, r], [0, 0], [0, 0]], constant_values=1.0 / k)
            g = tf.add_n([bp[..., dx:dx + 1] * fp[:, :, dx:dx + w, :] for dx in range(k)])
            return tf.add_n([a[..., dy:dy + 1] * g[:, dy:dy + h] for dy in range(k)])

        def compute_output_shape(self, s):
            return (*s[1][:-1], 1)

    class BouncePrior(keras.layers.Layer):
        """[prior logits (.., 2k), gate logits (.., 2)] -> per axis, a mix of the prior and its
        mirror image (offset o -> -o, i.e. the velocity component reflected, as in a bounce),
        weighted by sigmoid(gate)."""

        def __init__(self, k, **kw):
            super().__init__(**kw)
            self.k = k

        def call(self, pair):
            prior, gates = pair
            k = self.k
            s = tf.sigmoid(gates)
            a, b = prior[..., :k], prior[..., k:]
            a = (1.0 - s[..., 0:1]) * a + s[..., 0:1] * tf.reverse(a, [-1])
            b = (1.0 - s[..., 1:2]) * b + s[..., 1:2] * tf.reverse(b, [-1])
            return tf.concat([a, b], -1)

        def compute_output_shape(self, s):
            return s[0]

    L.update(BouncePrior=BouncePrior, AddCoords=AddCoords, SpaceToDepth=SpaceToDepth, DepthToSpace=DepthToSpace,
             Frame=Frame, CostVolume=CostVolume, SadPrior=SadPrior, Advect=Advect)
    return L


def build_step_generator(cfg: Config, name="step_generator", sharpen: float = 1.0):
    """Cost volume + dynamic advection. The matching cost of every offset o in a k x k window,
    SAD_o(p) = |f_t(p) - f_{t-1}(p + o)|, is averaged over 4x4 blocks; a small conv net on it
    (plus block-pooled frames, noise and coordinates) predicts, per 4x4 block, a horizontal and
    a vertical softmax over offsets; the next frame is f_t advected by that kernel. The logits
    start from the constant-velocity prior -beta * SAD (soft arg-min over offsets), so the net
    only has to learn the corrections (bounces, whole-pixel rounding)."""
    import keras
    from keras import layers

    L = _video_layers()
    c, w, k = cfg.canvas, cfg.width, cfg.kernel
    ctx = keras.Input((c, c, 2), name="context")
    noise = keras.Input((c, c, 1), name="noise")
    prev, cur = L["Frame"](0)(ctx), L["Frame"](1)(ctx)
    vol = layers.AveragePooling2D(4)(L["CostVolume"](k)([cur, prev]))    # c/4, k*k
    # aggregate matching costs over ~digit-sized windows (aperture problem: a 4x4 block of a
    # straight stroke matches many offsets)
    vol = layers.AveragePooling2D(cfg.cost_window, strides=1, padding="same")(vol)
    # both frames at full resolution, folded into the 4x4 blocks (exact ink positions: a
    # bounce depends on the pixel distance to the wall)
    frames = layers.Concatenate()([L["SpaceToDepth"](4)(ctx), layers.AveragePooling2D(4)(noise)])
    h = L["AddCoords"]()(layers.Concatenate()([vol, frames]))
    h = layers.LeakyReLU(0.2)(layers.Conv2D(2 * w, 1)(h))
    for _ in range(3):
        r = layers.LeakyReLU(0.2)(layers.Conv2D(2 * w, 3, padding="same")(h))
        h = layers.Add()([h, r])
    learned = layers.Conv2D(2 * k, 1, kernel_initializer=keras.initializers.RandomNormal(
        stddev=0.01, seed=3))(h)
    # corrections (e.g. a bounce) are averaged over digit-sized windows too, so that all blocks
    # of a digit switch together and the digit moves rigidly
    learned = layers.AveragePooling2D(cfg.cost_window, strides=1, padding="same")(learned)
    # bounce gates: per block and axis, how much to reflect the constant-velocity prior
    gates = layers.Conv2D(2, 1, kernel_initializer=keras.initializers.RandomNormal(
        stddev=0.1, seed=4), bias_initializer=keras.initializers.Constant(-1.0))(h)
    gates = layers.AveragePooling2D(cfg.cost_window, strides=1, padding="same")(gates)
    prior = L["BouncePrior"](k)([L["SadPrior"](k)(vol), gates])
    logits = layers.Add()([learned, prior])
    logits = layers.UpSampling2D(4, interpolation="nearest", name="motion_logits")(logits)
    out = L["Advect"](k, sharpen)([logits, cur])
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
            self.g = build_step_generator(cfg)
            self.d = build_discriminator(cfg)
            self.opt_g = keras.optimizers.Adam(cfg.lr_g, beta_1=0.5, beta_2=0.999)
            self.opt_d = keras.optimizers.Adam(cfg.lr_d, beta_1=0.5, beta_2=0.999)
            self.opt_g.build(self.g.trainable_variables)
            self.opt_d.build(self.d.trainable_variables)

    def trackables(self) -> dict:
        return dict(g=self.g, d=self.d, opt_g=self.opt_g, opt_d=self.opt_d)


def make_pool(cfg: Config, split: str, n_clips: int, n_frames: int, seed: int,
              n_digits: int | None = None):
    """Moving digits clips (float32 [-1, 1]) and their digit labels from one split."""
    from trainer.digits import load_digits_images, moving_digits

    data = load_digits_images()
    x, y = data[f"x_{split}"], data[f"y_{split}"]
    return moving_digits(x, y, n_clips, n_frames, canvas=cfg.canvas, max_digits=cfg.max_digits,
                         speed=(cfg.speed_min, cfg.speed_max), rng=np.random.default_rng(seed),
                         n_digits=n_digits)


def _dataset(cfg: Config, pool: np.ndarray, global_batch: int, seed: int):
    """Random windows of 2 + unroll frames from the pool (uint8 in memory, [-1, 1] out)."""
    import tensorflow as tf

    win = 2 + cfg.unroll
    pool_u8 = np.rint((pool + 1) * 127.5).astype(np.uint8)
    n, t = pool_u8.shape[:2]
    starts = t - win + 1
    pool_t = tf.constant(pool_u8)

    def window(i):
        c, s = i // starts, i % starts
        clip = tf.cast(pool_t[c, s:s + win], tf.float32) / 127.5 - 1.0
        return tf.transpose(clip, [1, 2, 0])                      # H, W, frames
    ds = tf.data.Dataset.range(n * starts).shuffle(n * starts, seed=seed).repeat()
    return ds.map(window).batch(global_batch, drop_remainder=True).prefetch(2)


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
    keys = ("l1", "g_adv", "d_loss", "copy_l1", "kernel_entropy")
    history = {k: saved.get(k, []) for k in keys}

    pool, _ = make_pool(cfg, "train", cfg.pool_clips, cfg.pool_frames, cfg.seed)
    replicas = strategy.num_replicas_in_sync
    gb = cfg.batch * replicas
    it = iter(strategy.experimental_distribute_dataset(_dataset(cfg, pool, gb, cfg.seed + start)))
    del pool
    c, K, k = cfg.canvas, cfg.unroll, cfg.kernel

    def _entropy(logits):
        logp = tf.nn.log_softmax(logits, -1)
        return -tf.reduce_mean(tf.reduce_sum(tf.exp(logp) * logp, -1))

    def step_fn(clip, adv_w):
        bs = tf.shape(clip)[0]
        with tf.GradientTape() as tape:
            prev2, prev1 = clip[..., 0:1], clip[..., 1:2]
            triples, preds, ent = [], [], 0.0
            for k in range(K):
                noise = tf.random.normal((bs, c, c, 1))
                pred, logits = m.g([tf.concat([prev2, prev1], -1), noise], training=True)
                ent = ent + _entropy(logits[..., :k]) + _entropy(logits[..., k:])
                triples.append(tf.concat([prev2, prev1, pred], -1))
                preds.append(pred)
                prev2, prev1 = prev1, pred
            preds_t = tf.concat(preds, -1)
            l1 = tf.reduce_mean(tf.abs(preds_t - clip[..., 2:]))
            fake = tf.concat(triples, 0)
            g_adv = -tf.reduce_mean(m.d(fake, training=True))
            ent = ent / K
            g_loss = (cfg.rec_weight * l1 + adv_w * g_adv + cfg.entropy_weight * ent) / replicas
        grads = tape.gradient(g_loss, m.g.trainable_variables)
        m.opt_g.apply_gradients(zip(grads, m.g.trainable_variables))
        real = tf.concat([clip[..., k:k + 3] for k in range(K)], 0)
        fake = tf.stop_gradient(fake)
        with tf.GradientTape() as tape:
            d_loss = (tf.reduce_mean(tf.nn.relu(1.0 - m.d(real, training=True)))
                      + tf.reduce_mean(tf.nn.relu(1.0 + m.d(fake, training=True)))) / replicas
        grads = tape.gradient(d_loss, m.d.trainable_variables)
        # the D update is skipped (scaled to 0) during the L1 warm-up
        on = tf.cast(adv_w > 0, tf.float32)
        m.opt_d.apply_gradients(zip([g * on for g in grads], m.d.trainable_variables))
        copy_l1 = tf.reduce_mean(tf.abs(clip[..., 1:2] - clip[..., 2:]))
        return l1 / replicas, g_adv / replicas, d_loss, copy_l1 / replicas, ent / replicas

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
                                   title=f"video next-frame GAN (L1 over {K} unrolled frames)")
    print(f"video: trained {cfg.steps - start} steps in {time.time() - t0:.0f}s", flush=True)


def load_trained(cfg: Config, work_dir: Path) -> _Models:
    import tensorflow as tf

    from trainer import common

    m = _Models(cfg, tf.distribute.get_strategy())
    if common.Checkpointer(work_dir, **m.trackables()).restore() == 0:
        raise FileNotFoundError(f"no video checkpoint in {work_dir}: train first")
    return m


def export(cfg: Config, work_dir: Path, out_dir: Path) -> None:
    import tensorflow as tf

    from trainer import common
    from trainer.export import export_tf_function, write_entry, write_json

    m = load_trained(cfg, work_dir)
    c = cfg.canvas
    g = build_step_generator(cfg, name="step_export", sharpen=cfg.sharpen)
    g.set_weights(m.g.get_weights())

    def step(context, noise):
        return tf.identity(g([context, noise], training=False)[0][..., 0], name="next_frame")

    pool, _ = make_pool(cfg, "test", 3, 3, cfg.seed + 7)
    rng = np.random.default_rng(cfg.seed)
    samples = [[np.transpose(pool[i, :2], (1, 2, 0)).copy()[None],
                rng.standard_normal((1, c, c, 1)).astype(np.float32)] for i in range(3)]
    samples.append([rng.uniform(-1, 1, (4, c, c, 2)).astype(np.float32),
                    rng.standard_normal((4, c, c, 1)).astype(np.float32)])
    g_entry = export_tf_function(
        step, [tf.TensorSpec([None, c, c, 2], tf.float32, name="context"),
               tf.TensorSpec([None, c, c, 1], tf.float32, name="noise")],
        kind=KIND, role="step", out_dir=out_dir, sample_inputs=samples)
    physics = write_json({"canvas": c, "tile": 28, "ink_box": 20, "speed_min": cfg.speed_min,
                          "speed_max": cfg.speed_max, "max_digits": cfg.max_digits},
                         kind=KIND, role="physics", out_dir=out_dir)
    notes = ("step: context float32 [N, 48, 48, 2] (frames t-1, t in [-1, 1]) + noise float32 "
             "[N, 48, 48, 1] ~ N(0, 1) -> next_frame [N, 48, 48]. First frames: the image "
             "generator's digits placed on the canvas (runtime/video.py). physics: canvas and "
             "speed range of the training clips.")
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
        "generated_1digit": {**clip_metrics(clf, gen1), "seconds": round(secs, 2)},
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

