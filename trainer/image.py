"""Image GAN on handwritten digits: a small DCGAN made stable (hinge loss, spectral norm, TTUR,
EMA generator), plus a calibrated discriminator for discriminator rejection sampling.

Data: scikit-learn's 1,797 8x8 digits upscaled to 28x28 (see trainer.digits); 1,438 train.

Generator (pixel norm instead of BatchNorm, so training and inference behave the same):
    z (64) -> Dense 7*7*g -> LReLU, PixelNorm -> ConvT 4x4/2 (g/2) -> LReLU, PixelNorm
           -> ConvT 4x4/2 (g/4) -> LReLU, PixelNorm -> Conv 3x3 (1) -> tanh      (28x28 in [-1, 1])
Discriminator (spectral norm on every layer, one power iteration per step):
    x (28x28) -> SNConv 4x4/2 (d) -> LReLU -> SNConv 4x4/2 (2d) -> LReLU -> SNDense 1 (a logit)

Training (one ``tf.function`` step under ``strategy.run``): hinge loss, Adam(0, 0.9), TTUR
(lr_d = 4 x lr_g), the exported generator is an exponential moving average of G's weights.
After the GAN steps, a copy of D is fine-tuned for ``calib_steps`` with the logistic loss against
the frozen EMA generator (the discriminator rejection sampling recipe, Azadi et al. 2019: its
logit then estimates log p_data/p_g of a sample), and that calibrated D is exported as the
``discriminator`` role used by ``generate("image", quality=...)``.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

KIND = "image"
DATA = ("scikit-learn load_digits (1,797 handwritten 8x8 digits, no download), upscaled "
        "bicubically to 20x20 inside a 28x28 tile, scaled to [-1, 1]; stratified 80/20 split "
        "(seed 0): 1,438 train, 359 held out for evaluation.")


@dataclass
class Config:
    seed: int = 0
    z_dim: int = 64
    g_ch: int = 128           # generator width at 7x7 (then g/2 at 14x14, g/4 at 28x28)
    d_ch: int = 64            # discriminator width at 14x14 (2d at 7x7)
    batch: int = 64
    steps: int = 3000         # GAN steps (one D and one G update each)
    lr_g: float = 1e-4
    lr_d: float = 4e-4        # TTUR
    beta1: float = 0.0
    beta2: float = 0.9
    ema: float = 0.999        # generator weight EMA (warm-up: min(ema, (1+t)/(10+t)))
    calib_steps: int = 300    # logistic fine-tuning of a copy of D (rejection sampling)
    calib_lr: float = 1e-4
    ckpt_every: int = 500
    log_every: int = 25
    eval_samples: int = 1000


PROFILES = {
    "quick": Config(g_ch=32, d_ch=16, batch=32, steps=60, calib_steps=10, ckpt_every=50,
                    log_every=10, eval_samples=200),
    "full": Config(),
}


# --------------------------------------------------------------------------- layers
def _layers():
    """Custom layers, defined lazily so importing this module does not import TensorFlow."""
    if "SNConv2D" in _LAYERS:
        return _LAYERS
    import keras
    import tensorflow as tf

    class _SpectralNorm(keras.layers.Layer):
        """W / sigma(W), sigma from one power iteration per training call (Miyato et al.);
        the gradient flows through sigma with u, v held constant. Inference uses the stored u."""

        def _init_sn(self, kernel_shape, units):
            self.kernel = self.add_weight(name="kernel", shape=kernel_shape,
                                          initializer="glorot_uniform")
            self.u = self.add_weight(name="sn_u", shape=(1, units), trainable=False,
                                     initializer=keras.initializers.RandomNormal(seed=1))

        def _w(self, training):
            w = tf.reshape(self.kernel, (-1, self.kernel.shape[-1]))
            u = self.u
            v = tf.math.l2_normalize(tf.matmul(u, w, transpose_b=True))
            u_new = tf.math.l2_normalize(tf.matmul(v, w))
            u_new, v = tf.stop_gradient(u_new), tf.stop_gradient(v)
            if training:
                self.u.assign(u_new)
            sigma = tf.reduce_sum(tf.matmul(v, w) * u_new)
            return self.kernel / sigma

    class SNConv2D(_SpectralNorm):
        def __init__(self, filters, kernel_size, strides=1, **kw):
            super().__init__(**kw)
            self.filters, self.k, self.strides = filters, kernel_size, strides

        def build(self, input_shape):
            self._init_sn((self.k, self.k, int(input_shape[-1]), self.filters), self.filters)
            self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")

        def call(self, x, training=False):
            y = tf.nn.conv2d(x, self._w(training), self.strides, "SAME")
            return y + self.bias

        def compute_output_shape(self, s):
            return (s[0], math.ceil(s[1] / self.strides), math.ceil(s[2] / self.strides),
                    self.filters)

    class SNDense(_SpectralNorm):
        def __init__(self, units, **kw):
            super().__init__(**kw)
            self.units = units

        def build(self, input_shape):
            self._init_sn((int(input_shape[-1]), self.units), self.units)
            self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")

        def call(self, x, training=False):
            return tf.matmul(x, self._w(training)) + self.bias

        def compute_output_shape(self, s):
            return (s[0], self.units)

    class PixelNorm(keras.layers.Layer):
        """x / sqrt(mean over channels of x^2 + eps): per sample, no batch statistics."""

        def call(self, x):
            return x * tf.math.rsqrt(tf.reduce_mean(tf.square(x), axis=-1, keepdims=True) + 1e-8)

    _LAYERS.update(SNConv2D=SNConv2D, SNDense=SNDense, PixelNorm=PixelNorm)
    return _LAYERS


_LAYERS: dict = {}


def build_generator(cfg: Config, name="generator"):
    import keras
    from keras import layers

    L = _layers()
    g = cfg.g_ch
    z = keras.Input((cfg.z_dim,), name="z")
    h = layers.Dense(7 * 7 * g)(z)
    h = layers.Reshape((7, 7, g))(h)
    h = L["PixelNorm"]()(layers.LeakyReLU(0.2)(h))
    h = layers.Conv2DTranspose(g // 2, 4, strides=2, padding="same")(h)
    h = L["PixelNorm"]()(layers.LeakyReLU(0.2)(h))
    h = layers.Conv2DTranspose(g // 4, 4, strides=2, padding="same")(h)
    h = L["PixelNorm"]()(layers.LeakyReLU(0.2)(h))
    x = layers.Conv2D(1, 3, padding="same", activation="tanh")(h)
    return keras.Model(z, x, name=name)


def build_discriminator(cfg: Config, name="discriminator"):
    import keras
    from keras import layers

    L = _layers()
    x = keras.Input((28, 28, 1), name="images")
    h = layers.LeakyReLU(0.2)(L["SNConv2D"](cfg.d_ch, 4, 2)(x))
    h = layers.LeakyReLU(0.2)(L["SNConv2D"](cfg.d_ch * 2, 4, 2)(h))
    h = layers.Flatten()(h)
    out = L["SNDense"](1)(h)
    return keras.Model(x, out, name=name)


class _Models:
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

    def trackables(self) -> dict:
        return dict(g=self.g, g_ema=self.g_ema, d=self.d, d_cal=self.d_cal, opt_g=self.opt_g,
                    opt_d=self.opt_d, opt_cal=self.opt_cal)


def _dataset(x: np.ndarray, global_batch: int, seed: int):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(x[..., None].astype(np.float32))
    return (ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).repeat()
            .batch(global_batch, drop_remainder=True).prefetch(2))


def _history_path(work_dir: Path) -> Path:
    return Path(work_dir) / "history.json"


def train(cfg: Config, work_dir: Path, *, strategy=None) -> None:
    import tensorflow as tf

    from trainer import common
    from trainer.digits import load_digits_images

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    strategy = strategy or tf.distribute.get_strategy()
    common.set_seeds(cfg.seed)
    m = _Models(cfg, strategy)
    ckpt = common.Checkpointer(work_dir, strategy=strategy, **m.trackables())
    start = ckpt.restore()
    saved = common.load_json(_history_path(work_dir), {}) if start else {}
    history = {k: saved.get(k, []) for k in ("d_loss", "g_loss", "d_real", "d_fake", "calib_loss")}

    x = load_digits_images()["x_train"]
    replicas = strategy.num_replicas_in_sync
    gb = cfg.batch * replicas
    it = iter(strategy.experimental_distribute_dataset(_dataset(x, gb, cfg.seed + start)))
    zdim = cfg.z_dim

    def gan_step(real, ema_decay):
        bs = tf.shape(real)[0]
        z = tf.random.normal((bs, zdim))
        with tf.GradientTape() as tape:
            fake = m.g(z, training=True)
            d_real = m.d(real, training=True)
            d_fake = m.d(fake, training=True)
            d_loss = (tf.reduce_mean(tf.nn.relu(1.0 - d_real))
                      + tf.reduce_mean(tf.nn.relu(1.0 + d_fake))) / replicas
        grads = tape.gradient(d_loss, m.d.trainable_variables)
        m.opt_d.apply_gradients(zip(grads, m.d.trainable_variables))
        z = tf.random.normal((bs, zdim))
        with tf.GradientTape() as tape:
            g_loss = -tf.reduce_mean(m.d(m.g(z, training=True), training=True)) / replicas
        grads = tape.gradient(g_loss, m.g.trainable_variables)
        m.opt_g.apply_gradients(zip(grads, m.g.trainable_variables))
        for we, w in zip(m.g_ema.weights, m.g.weights):
            we.assign(ema_decay * we + (1.0 - ema_decay) * w)
        return d_loss, g_loss, tf.reduce_mean(d_real) / replicas, tf.reduce_mean(d_fake) / replicas

    def calib_step(real):
        bs = tf.shape(real)[0]
        fake = m.g_ema(tf.random.normal((bs, zdim)), training=False)
        with tf.GradientTape() as tape:
            lr_ = m.d_cal(real, training=True)
            lf = m.d_cal(fake, training=True)
            loss = (tf.reduce_mean(tf.nn.softplus(-lr_)) + tf.reduce_mean(tf.nn.softplus(lf))) \
                / replicas
        grads = tape.gradient(loss, m.d_cal.trainable_variables)
        m.opt_cal.apply_gradients(zip(grads, m.d_cal.trainable_variables))
        return loss

    def _sum(v):
        return strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)

    @tf.function
    def dist_gan_step(batch, ema_decay):
        return [_sum(v) for v in strategy.run(gan_step, args=(batch, ema_decay))]

    @tf.function
    def dist_calib_step(batch):
        return _sum(strategy.run(calib_step, args=(batch,)))

    total = cfg.steps + cfg.calib_steps
    t0 = time.time()
    with common.Progress(total, desc="image GAN", initial=start) as bar:
        acc = []
        for step in range(start, total):
            batch = next(it)
            if step < cfg.steps:
                decay = min(cfg.ema, (1.0 + step) / (10.0 + step))
                vals = [float(v) for v in dist_gan_step(batch, tf.constant(decay, tf.float32))]
                acc.append(vals)
                scal = dict(zip(("d_loss", "g_loss", "d_real", "d_fake"), vals))
            else:
                if step == cfg.steps:      # start calibration from the trained discriminator
                    m.d_cal.set_weights(m.d.get_weights())
                    acc = []
                loss = float(dist_calib_step(batch))
                acc.append([loss])
                scal = {"calib_loss": loss}
            if (step + 1) % cfg.log_every == 0:
                mean = np.mean(np.asarray(acc), 0)
                keys = ("d_loss", "g_loss", "d_real", "d_fake") if step < cfg.steps \
                    else ("calib_loss",)
                for k, v in zip(keys, mean):
                    history[k].append(float(v))
                acc = []
            bar.update(1, **scal)
            if (step + 1) % cfg.ckpt_every == 0 or step + 1 == total:
                ckpt.save(step + 1)
                if common.is_chief(strategy):
                    common.save_json(_history_path(work_dir), history)
    if common.is_chief(strategy):
        common.save_json(_history_path(work_dir), history)
        common.save_learning_curve(work_dir / "learning_curve.png",
                                   {k: v for k, v in history.items()},
                                   xlabel=f"x{cfg.log_every} steps", title="image GAN (hinge)")
    print(f"image: trained {total - start} steps in {time.time() - t0:.0f}s", flush=True)


def load_trained(cfg: Config, work_dir: Path) -> _Models:
    import tensorflow as tf

    from trainer import common

    m = _Models(cfg, tf.distribute.get_strategy())
    ckpt = common.Checkpointer(work_dir, **m.trackables())
    if ckpt.restore() == 0:
        raise FileNotFoundError(f"no image checkpoint in {work_dir}: train first")
    return m


def export(cfg: Config, work_dir: Path, out_dir: Path) -> None:
    import tensorflow as tf

    from trainer import common
    from trainer.export import export_tf_function, quantize_int8, write_entry

    m = load_trained(cfg, work_dir)
    rng = np.random.default_rng(cfg.seed)

    def gen(z):
        return tf.identity(m.g_ema(z, training=False)[..., 0], name="images")

    def disc(images):
        return tf.identity(m.d_cal(images[..., None], training=False)[:, 0], name="logits")

    z_samples = [[rng.standard_normal((b, cfg.z_dim)).astype(np.float32)] for b in (1, 7)]
    g_entry = export_tf_function(gen, [tf.TensorSpec([None, cfg.z_dim], tf.float32, name="z")],
                                 kind=KIND, role="generator", out_dir=out_dir,
                                 sample_inputs=z_samples)
    real = rng.uniform(-1, 1, (5, 28, 28)).astype(np.float32)
    d_entry = export_tf_function(disc, [tf.TensorSpec([None, 28, 28], tf.float32, name="images")],
                                 kind=KIND, role="discriminator", out_dir=out_dir,
                                 sample_inputs=[[real]])
    files = {"generator": g_entry, "discriminator": d_entry}
    notes = ("generator: z float32 [N, z_dim] ~ N(0, I) -> images float32 [N, 28, 28] in [-1, 1] "
             "(EMA weights). discriminator: images -> logits [N] (calibrated with the logistic "
             "loss; higher = more real), used by quality>0 rejection sampling.")
    if cfg.steps >= 1000:   # int8 only for real models (checked in evaluate)
        files["generator_int8"] = quantize_int8(g_entry, kind=KIND, role="generator_int8",
                                                out_dir=out_dir)
    write_entry(out_dir, KIND, files, common.config_dict(cfg), notes=notes)


# --------------------------------------------------------------------------- evaluation
def _runtime_samples(models_dir: Path, n: int, quality: float, seed: int,
                     precision: str = "fp32") -> np.ndarray:
    import runtime
    from trainer.digits import uint8_to_unit

    out, s = [], seed
    while sum(len(o) for o in out) < n:
        k = min(1000, n - sum(len(o) for o in out))
        out.append(runtime.generate(KIND, n=k, quality=quality, seed=s, models_dir=models_dir,
                                    precision=precision))
        s += 1
    return uint8_to_unit(np.concatenate(out))


def _nn_distance(samples: np.ndarray, train: np.ndarray) -> float:
    """Mean L2 distance (pixels in [-1, 1]) from each sample to its nearest training digit."""
    a = samples.reshape(len(samples), -1).astype(np.float32)
    b = train.reshape(len(train), -1).astype(np.float32)
    d2 = (a ** 2).sum(1)[:, None] + (b ** 2).sum(1)[None] - 2 * a @ b.T
    return round(float(np.sqrt(np.clip(d2.min(1), 0, None)).mean()), 3)


def evaluate(cfg: Config, work_dir: Path, models_dir: Path) -> dict:
    import keras

    from trainer import digits as D
    from trainer.export import read_manifest

    data = D.load_digits_images()
    clf = D.DigitClassifier.load_or_train(Path(work_dir) / "classifier")
    ref = clf.features(data["x_test"])
    n = cfg.eval_samples

    def row(x):
        r = D.sample_metrics(clf, x, ref)
        r["nn_dist_to_train"] = _nn_distance(x, data["x_train"])
        return r

    q = lambda x: np.rint((x + 1) * 127.5).clip(0, 255) / 127.5 - 1.0  # uint8 round trip
    rng = np.random.default_rng(cfg.seed + 123)
    keras.utils.set_random_seed(cfg.seed + 1)
    untrained = build_generator(cfg)
    z = rng.standard_normal((n, cfg.z_dim)).astype(np.float32)
    real_idx = rng.choice(len(data["x_train"]), min(n, len(data["x_train"])), replace=False)
    metrics = {
        "classifier_heldout_accuracy": round(clf.accuracy(data["x_test"], data["y_test"]), 4),
        "reference": f"FD against the {len(ref)} held-out real digits, classifier features "
                     f"(64-d penultimate layer); nn_dist_to_train = mean L2 distance to the "
                     f"nearest training digit (pixels in [-1, 1])",
        "real_train_digits": row(data["x_train"][real_idx]),
        "real_heldout_digits": {**row(data["x_test"]), "frechet_distance": 0.0},
        "untrained_generator": row(q(untrained(z, training=False).numpy()[..., 0])),
    }
    for quality in (0.0, 0.5, 1.0):
        t = time.time()
        x = _runtime_samples(models_dir, n, quality, seed=cfg.seed + 1000)
        metrics[f"generator_quality_{quality:g}"] = {**row(x), "seconds": round(time.time() - t, 2)}
    files = read_manifest(models_dir)["models"][KIND]["files"]
    if "generator_int8" in files:
        for quality in (0.0, 1.0):
            x = _runtime_samples(models_dir, n, quality, seed=cfg.seed + 1000, precision="int8")
            metrics[f"generator_int8_quality_{quality:g}"] = row(x)
    g0, g1 = metrics["generator_quality_0"], metrics["generator_quality_1"]
    metrics["targets"] = {
        "every_class_ge_4pct": bool(g0["min_class_share"] >= 0.04),
        "confidence_ge_0.8": bool(g0["confidence"] >= 0.8),
        "quality1_better_confidence": bool(g1["confidence"] > g0["confidence"]),
        "quality1_better_fd": bool(g1["frechet_distance"] < g0["frechet_distance"]),
    }
    return metrics


def config_for(profile: str, **changes) -> Config:
    return dataclasses.replace(PROFILES[profile], **changes)
