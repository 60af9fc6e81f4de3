"""Shared data and evaluation tools for the ``image`` and ``video`` kinds (trainer side only).

* :func:`load_digits_images` -- scikit-learn's handwritten digits (1,797 images, 8x8, values
  0..16, bundled with the package: no download) upscaled to an MNIST-like 28x28 tile: the digit
  is resized to 20x20 with bicubic interpolation and padded by 4 pixels of background on every
  side, then scaled to [-1, 1] (background -1, ink +1). A fixed, stratified 80/20 split
  (seed 0, independent of the training seed) keeps 360 digits held out for evaluation.
* :func:`moving_digits` -- Moving-MNIST style clips on a square canvas: 1 or 2 digits with a
  random position and velocity that bounce off the edges, composited with ``max``.
* :class:`DigitClassifier` -- a small CNN trained on the held-in real digits (random shifts as
  augmentation). It is an *evaluation* instrument: it never ships to the runtime. It gives the
  top-class confidence, the predicted class and a 64-d penultimate feature used for a Frechet
  distance (FD, the FID recipe in this classifier's feature space).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

TILE = 28          # side of an image sample
DIGIT = 20         # side of the digit inside the tile (MNIST: 20x20 box in a 28x28 frame)
PAD = (TILE - DIGIT) // 2
SPLIT_SEED = 0     # the train/held-out split never depends on the training seed
HELD_OUT = 0.2


def _upscale(images8: np.ndarray) -> np.ndarray:
    """(N, 8, 8) values 0..16 -> (N, 28, 28) float32 in [-1, 1]."""
    import tensorflow as tf

    x = tf.convert_to_tensor(images8[..., None].astype(np.float32) / 16.0)
    x = tf.image.resize(x, (DIGIT, DIGIT), method="bicubic", antialias=False)
    x = tf.clip_by_value(x, 0.0, 1.0).numpy()[..., 0]
    out = np.zeros((len(x), TILE, TILE), np.float32)
    out[:, PAD:PAD + DIGIT, PAD:PAD + DIGIT] = x
    return out * 2.0 - 1.0


_CACHE: dict = {}


def load_digits_images() -> dict[str, np.ndarray]:
    """Returns {"x_train","y_train","x_test","y_test"}; x float32 (N, 28, 28) in [-1, 1],
    y int64. Train: 1,437 digits, held out: 360 (stratified)."""
    if "split" not in _CACHE:
        from sklearn.datasets import load_digits

        d = load_digits()
        x = _upscale(d.images)
        y = d.target.astype(np.int64)
        rng = np.random.default_rng(SPLIT_SEED)
        test_idx = []
        for c in range(10):
            idx = np.flatnonzero(y == c)
            rng.shuffle(idx)
            test_idx.extend(idx[: int(round(len(idx) * HELD_OUT))])
        test_mask = np.zeros(len(y), bool)
        test_mask[np.asarray(test_idx)] = True
        _CACHE["split"] = {
            "x_train": x[~test_mask], "y_train": y[~test_mask],
            "x_test": x[test_mask], "y_test": y[test_mask],
        }
    return {k: v.copy() for k, v in _CACHE["split"].items()}


# --------------------------------------------------------------------------- moving digits

INK_THRESHOLD = 0.05  # ink in [0, 1]: fainter pixels are cleared; the rest bounces as one box
OFFSETS = 7           # next-frame motion classes: source offsets -3..3 per axis (7 x 7)


def moving_digits(tiles: np.ndarray, tile_labels: np.ndarray | None, n_clips: int,
                  n_frames: int, *, canvas: int = 48, max_digits: int = 2,
                  speed: tuple[float, float] = (1.0, 3.0), rng: np.random.Generator,
                  n_digits: int | None = None, flows: bool = False):
    """Moving-MNIST recipe on ``tiles`` (N, 28, 28) in [-1, 1].

    Each clip holds ``n_digits`` digits (default: uniform in 1..max_digits). A digit starts at
    a uniform whole-pixel position with its ink box inside the canvas (ink at most
    ``INK_THRESHOLD`` is cleared first, so the box holds all of the digit) and moves with velocity rint(s * (sin a, cos a)), a uniform in
    [0, 2 pi), s uniform in ``speed`` (whole pixels per frame, never (0, 0)), bouncing (the
    velocity component is reflected, and so is the overshoot) when its ink box would leave the
    canvas. Whole-pixel positions and velocities make every frame an exact translation of the
    previous one, predictable from two frames. Digits are composited with ``max``.
    The physics is runtime.video's (``advance``), which makes the runtime's opening frames.

    Returns (clips float32 (n_clips, n_frames, canvas, canvas) in [-1, 1],
             labels int64 (n_clips, max_digits), -1 for absent digits or tile_labels=None)
    and, with ``flows=True``, motion labels int8 (n_clips, n_frames, canvas, canvas): for frame
    t >= 1 the class (oy + 3) * 7 + (ox + 3) of the source offset o with f_t(p) = f_{t-1}(p + o)
    of the digit that owns p (-1: no digit near p, a pixel shared by two digits, or t = 0).
    A digit owns the pixels of its ink box grown by the largest speed; where two boxes meet,
    the digit with more ink at p owns it (background pixels in both are left unlabelled).
    """
    from runtime.video import advance, clear_faint, initial_motion, ink_bounds, position_range

    r = OFFSETS // 2
    clips = np.zeros((n_clips, n_frames, canvas, canvas), np.float32)
    labels = np.full((n_clips, max_digits), -1, np.int64)
    flow = np.full((n_clips, n_frames, canvas, canvas), -1, np.int8) if flows else None
    off = TILE + r                                   # canvas offset inside the padded buffer
    size = canvas + 2 * off
    big = np.zeros((n_frames, size, size), np.float32)
    owner_ink = np.zeros((n_frames, size, size), np.float32)
    for c in range(n_clips):
        k = n_digits if n_digits is not None else int(rng.integers(1, max_digits + 1))
        big[:] = 0.0
        owner_ink[:] = -1.0
        lab = np.full((n_frames, size, size), -1, np.int16)
        for d in range(k):
            i = int(rng.integers(len(tiles)))
            tile = clear_faint((tiles[i] + 1.0) * 0.5, INK_THRESHOLD)   # [0, 1]
            if tile_labels is not None:
                labels[c, d] = tile_labels[i]
            box = ink_bounds(tile, INK_THRESHOLD)
            lo, hi = position_range(box, canvas)
            pos, v = initial_motion(rng, lo, hi, speed)
            prev = pos
            for t in range(n_frames):
                y, x = pos + off
                np.maximum(big[t, y:y + TILE, x:x + TILE], tile, out=big[t, y:y + TILE, x:x + TILE])
                if flows and t > 0:
                    oy, ox = prev - pos                          # source offset
                    cls = (oy + r) * OFFSETS + (ox + r)
                    y0, x0, y1, x1 = y + box[0] - r, x + box[1] - r, y + box[2] + r + 1, x + box[3] + r + 1
                    ink = np.zeros((size, size), np.float32)
                    ink[y:y + TILE, x:x + TILE] = tile
                    region = (slice(y0, y1), slice(x0, x1))
                    mine, best = ink[region], owner_ink[t][region]
                    take = mine > best
                    tie = (mine == best) & (mine <= 0)           # background in two boxes
                    lab[t][region][take] = cls
                    lab[t][region][tie] = -1
                    best[take] = mine[take]
                prev = pos
                pos, v = advance(pos, v, lo, hi)
        clips[c] = big[:, off:off + canvas, off:off + canvas] * 2.0 - 1.0
        if flows:
            flow[c] = lab[:, off:off + canvas, off:off + canvas]
    return (clips, labels, flow) if flows else (clips, labels)


# --------------------------------------------------------------------------- classifier

@dataclass
class ClassifierConfig:
    epochs: int = 60
    batch: int = 64
    lr: float = 1e-3
    shift: int = 2          # random shift augmentation, pixels
    seed: int = 0


class DigitClassifier:
    """Small CNN on 28x28 digits in [-1, 1]: conv16-conv32-dense64-10. Evaluation only."""

    def __init__(self, model):
        self.model = model
        import keras

        self.features_model = keras.Model(model.inputs, model.get_layer("features").output)

    @staticmethod
    def build():
        import keras
        from keras import layers

        inp = keras.Input((TILE, TILE, 1))
        h = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(inp)
        h = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(h)
        h = layers.Dropout(0.3)(layers.Flatten()(h))
        h = layers.Dense(64, activation="relu", name="features")(h)
        out = layers.Dense(10, name="logits")(h)
        return keras.Model(inp, out)

    @classmethod
    def load_or_train(cls, cache_dir: Path, cfg: ClassifierConfig | None = None,
                      verbose: bool = False) -> "DigitClassifier":
        """Loads cache_dir/digit_classifier.weights.h5 or trains it (~10 s) and stores it."""
        import tensorflow as tf

        cfg = cfg or ClassifierConfig()
        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
        path = cache_dir / "digit_classifier.weights.h5"
        import keras

        keras.utils.set_random_seed(cfg.seed)
        model = cls.build()
        if path.exists():
            model.load_weights(path)
            return cls(model)
        data = load_digits_images()
        x, y = data["x_train"][..., None], data["y_train"]
        opt = keras.optimizers.Adam(cfg.lr)
        rng = np.random.default_rng(cfg.seed)

        @tf.function
        def step(xb, yb):
            with tf.GradientTape() as tape:
                logits = model(xb, training=True)
                loss = tf.reduce_mean(
                    tf.nn.sparse_softmax_cross_entropy_with_logits(labels=yb, logits=logits))
            grads = tape.gradient(loss, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        s = cfg.shift
        for epoch in range(cfg.epochs):
            order = rng.permutation(len(x))
            for b in range(0, len(x), cfg.batch):
                idx = order[b:b + cfg.batch]
                xb = np.pad(x[idx], ((0, 0), (s, s), (s, s), (0, 0)), constant_values=-1.0)
                dx, dy = rng.integers(0, 2 * s + 1, size=2)
                xb = xb[:, dy:dy + TILE, dx:dx + TILE]
                loss = step(tf.constant(xb), tf.constant(y[idx]))
            if verbose:
                print(f"classifier epoch {epoch + 1}: loss {float(loss):.3f}")
        tmp = path.with_suffix(".tmp.weights.h5")
        model.save_weights(tmp)
        tmp.replace(path)
        return cls(model)

    # -- inference
    def _run(self, x: np.ndarray, feats: bool):
        x = np.asarray(x, np.float32)
        if x.ndim == 3:
            x = x[..., None]
        m = self.features_model if feats else self.model
        out = [m(x[i:i + 500], training=False).numpy() for i in range(0, len(x), 500)]  # noqa
        return np.concatenate(out) if out else np.zeros((0,), np.float32)

    def probs(self, x: np.ndarray) -> np.ndarray:
        logits = self._run(x, False)
        logits = logits - logits.max(1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(1, keepdims=True)

    def features(self, x: np.ndarray) -> np.ndarray:
        return self._run(x, True).astype(np.float64)

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        return float((self.probs(x).argmax(1) == y).mean())


def frechet_distance(f1: np.ndarray, f2: np.ndarray) -> float:
    """||mu1-mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2), the FID formula (scipy-free sqrtm via
    the eigenvalues of S1^1/2 S2 S1^1/2, which is symmetric PSD)."""
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    w, v = np.linalg.eigh(s1)
    s1h = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = s1h @ s2 @ s1h
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


def sample_metrics(clf: DigitClassifier, samples: np.ndarray, ref_feats: np.ndarray) -> dict:
    """samples (N, 28, 28) in [-1, 1] -> confidence, coverage, FD vs ref_feats."""
    p = clf.probs(samples)
    pred = p.argmax(1)
    cover = np.bincount(pred, minlength=10) / len(pred)
    return {
        "n": int(len(samples)),
        "confidence": round(float(p.max(1).mean()), 4),
        "coverage": [round(float(c), 4) for c in cover],
        "min_class_share": round(float(cover.min()), 4),
        "frechet_distance": round(frechet_distance(clf.features(samples), ref_feats), 3),
    }


def uint8_to_unit(x: np.ndarray) -> np.ndarray:
    """Runtime uint8 images (0 background .. 255 ink) -> float32 in [-1, 1]."""
    return np.asarray(x, np.float32) / 127.5 - 1.0
