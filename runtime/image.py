"""``generate("image", n=16, quality=0.0, digit=None, seed=...)``: handwritten digits from the
class-conditional GAN.

Returns ``numpy.uint8`` of shape ``(n, 28, 28)``: 0 is the background, 255 full ink.

Options
-------
``n``        number of images, an integer in [1, 1024] (default 16).
``digit``    ``None`` (default: each image's class drawn uniformly from 0..9, independently)
             or an integer 0..9 (all images show that digit).
``quality``  a number in [0, 1] (default 0): discriminator rejection sampling (after Azadi et
             al., 2019). ``quality=0`` is plain sampling: one latent vector z ~ N(0, I) per
             image, one generator call. ``quality=q > 0`` draws ``K = 1 + floor(7 q + 1/2)``
             candidates per image (K = 8 at q = 1, 5 at q = 0.5), all of that image's class,
             and runs the shipped discriminator on them. Rule: the first candidate (in drawing
             order) that the discriminator's class head reads as the requested digit with
             p(label | x) >= 0.99 is accepted; if none passes, the candidate with the highest
             p(label | x) is kept. Accepting the *first* passing candidate (rather than the
             top-scoring one) keeps the diversity of plain sampling; the rule only rejects
             ambiguous or wrong-class digits. Cost: K x the generator and the discriminator.
             (The discriminator's realness logit is shipped too; selecting on it was measured to
             reduce diversity, see the manifest notes and metrics.)
``precision``  "fp32" (default) or "int8" (a dynamically quantized generator; the
             discriminator always runs in fp32).

Caps: n <= 1024, so at most 8,192 candidates (25 MB of float32) are held at once.
Same seed and options give the same images. No TensorFlow: numpy + onnxruntime only.
"""
from __future__ import annotations

import math

import numpy as np

from runtime import options as _opt
from runtime import registry

KIND = "image"
OPTIONS = {"n": 16, "quality": 0.0, "digit": None}
MAX_N = 1024
MAX_EXTRA = 7           # quality=1 draws 1 + 7 = 8 candidates per image
N_CLASSES = 10
CHUNK = 256             # images per onnxruntime call


def candidates_per_image(quality: float) -> int:
    return 1 + int(math.floor(MAX_EXTRA * quality + 0.5))


def _run_chunked(sess, x: np.ndarray, labels: np.ndarray, output: int = 0) -> np.ndarray:
    a, b = (i.name for i in sess.get_inputs())
    outs = [registry.run(sess, {a: x[i:i + CHUNK], b: labels[i:i + CHUNK]})[output]
            for i in range(0, len(x), CHUNK)]
    return np.concatenate(outs)


def sample_float(rng: np.random.Generator, models_dir, n: int, quality: float = 0.0,
                 precision: str = "fp32", digit: int | None = None) -> np.ndarray:
    """``n`` generated digits as float32 (n, 28, 28) in [-1, 1] (arguments already validated).
    Shared with runtime.video, which places them on its canvas."""
    gen = registry.session(KIND, "generator", models_dir, precision)
    zd = int(gen.get_inputs()[0].shape[1])
    if digit is None:
        labels = rng.integers(0, N_CLASSES, size=n).astype(np.int64)
    else:
        labels = np.full(n, digit, np.int64)
    k = candidates_per_image(quality)
    z = rng.standard_normal((n * k, zd), dtype=np.float32)
    cand_labels = np.repeat(labels, k)                  # image i owns rows i*k .. i*k + k - 1
    images = _run_chunked(gen, z, cand_labels)
    if k > 1:
        rule = registry.load_json(KIND, "rejection", models_dir)
        disc = registry.session(KIND, "discriminator", models_dir, "fp32")
        logp = _run_chunked(disc, images, cand_labels, output=1).reshape(n, k)
        ok = logp >= math.log(float(rule["class_prob"]))
        pick = np.where(ok.any(1), ok.argmax(1), logp.argmax(1))   # first passing, else best
        images = images.reshape(n, k, *images.shape[1:])[np.arange(n), pick]
    return images


def to_uint8(images: np.ndarray) -> np.ndarray:
    """[-1, 1] floats -> uint8 0..255."""
    return np.rint((np.asarray(images, np.float32) + 1.0) * 127.5).clip(0, 255).astype(np.uint8)


def generate(*, rng: np.random.Generator, models_dir, precision: str = "fp32", n=16,
             quality=0.0, digit=None) -> np.ndarray:
    n = _opt.check_int("n", n, 1, MAX_N)
    quality = _opt.check_float("quality", quality, 0.0, 1.0)
    if digit is not None:
        digit = _opt.check_int("digit", digit, 0, N_CLASSES - 1)
    return to_uint8(sample_float(rng, models_dir, n, quality, precision, digit))
