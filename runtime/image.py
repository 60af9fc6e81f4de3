"""``generate("image", n=16, quality=0.0, seed=...)``: handwritten digits from the GAN.

Returns ``numpy.uint8`` of shape ``(n, 28, 28)``: 0 is the background, 255 full ink.

Options
-------
``n``        number of images, an integer in [1, 1024] (default 16).
``quality``  a number in [0, 1] (default 0): discriminator rejection sampling (Azadi et al.,
             2019, in its top-k form). ``quality=0`` is plain sampling: ``n`` latent vectors
             z ~ N(0, I), one generator call. ``quality=q > 0`` draws
             ``m = ceil(n * (1 + 7 q))`` candidates (8x at q=1), scores each with the shipped
             discriminator (a logit calibrated with the logistic loss against the final
             generator, so it estimates log p_data(x) / p_g(x)), and keeps the ``n`` best,
             returned in the order they were drawn. Higher quality costs up to 8x generator time
             plus the discriminator; it trades a little diversity for cleaner digits (see the
             manifest metrics: confidence and Frechet distance at quality 0, 0.5, 1).
``precision``  "fp32" (default) or "int8" (a dynamically quantized generator; the
             discriminator always runs in fp32).

Caps: n <= 1024, so at most 8,192 candidates (25 MB of float32) are ever held at once.
Same seed and options give the same images. No TensorFlow: numpy + onnxruntime only.
"""
from __future__ import annotations

import math

import numpy as np

from runtime import options as _opt
from runtime import registry

KIND = "image"
OPTIONS = {"n": 16, "quality": 0.0}
MAX_N = 1024
OVERSAMPLE = 7          # quality=1 draws (1 + 7) x n candidates
CHUNK = 256             # generator/discriminator batch per onnxruntime call


def _run_chunked(sess, name: str, x: np.ndarray) -> np.ndarray:
    outs = [registry.run(sess, {name: x[i:i + CHUNK]})[0] for i in range(0, len(x), CHUNK)]
    return np.concatenate(outs)


def z_dim(models_dir, precision: str = "fp32") -> int:
    sess = registry.session(KIND, "generator", models_dir, precision)
    return int(sess.get_inputs()[0].shape[1])


def sample_float(rng: np.random.Generator, models_dir, n: int, quality: float = 0.0,
                 precision: str = "fp32") -> np.ndarray:
    """``n`` generated digits as float32 (n, 28, 28) in [-1, 1] (arguments already validated).
    Shared with runtime.video, which places them on its canvas."""
    gen = registry.session(KIND, "generator", models_dir, precision)
    zd = int(gen.get_inputs()[0].shape[1])
    m = n if quality <= 0 else int(math.ceil(n * (1.0 + OVERSAMPLE * quality)))
    z = rng.standard_normal((m, zd), dtype=np.float32)
    images = _run_chunked(gen, gen.get_inputs()[0].name, z)
    if m > n:
        disc = registry.session(KIND, "discriminator", models_dir, "fp32")
        scores = _run_chunked(disc, disc.get_inputs()[0].name, images).reshape(m)
        keep = np.sort(np.argsort(-scores, kind="stable")[:n])
        images = images[keep]
    return images


def to_uint8(images: np.ndarray) -> np.ndarray:
    """[-1, 1] floats -> uint8 0..255."""
    return np.rint((np.asarray(images, np.float32) + 1.0) * 127.5).clip(0, 255).astype(np.uint8)


def generate(*, rng: np.random.Generator, models_dir, precision: str = "fp32", n=16,
             quality=0.0) -> np.ndarray:
    n = _opt.check_int("n", n, 1, MAX_N)
    quality = _opt.check_float("quality", quality, 0.0, 1.0)
    return to_uint8(sample_float(rng, models_dir, n, quality, precision))
