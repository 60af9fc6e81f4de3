"""Handwritten digits from the class-conditional GAN: ``generate("image", n=16, seed=1)``.

The result is an ``Images`` array, ``numpy.uint8`` of shape ``(n, 28, 28)`` (0 background, 255
full ink), whose ``.labels`` are the digits the images were drawn as.

Options
-------
``n``        number of images, an integer in [1, 1024] (default 16).
``digit``    ``None`` (default: each image's class drawn uniformly from 0..9, independently)
             or an integer 0..9 (all images show that digit).
``quality``  a number in [0, 1] (default 0): discriminator rejection sampling (after Azadi et
             al., 2019), done as sampling-importance-resampling. ``quality=0`` is plain
             sampling: one latent vector z ~ N(0, I) per image, one generator call.
             ``quality=q > 0`` draws ``K = 1 + floor(M q + 1/2)`` candidates per image, all of
             that image's class, with M = ``max_extra_candidates`` of the rejection side file
             (31 in the shipped models: K = 32 at q = 1, 17 at q = 0.5, 4 at q = 0.1), and
             scores each with two discriminators:
             * the shipped ``classifier``, p(label | x) (the GAN discriminator's auxiliary
               class head, a CNN trained on real digits); a candidate is *eligible* if
               p(label | x) >= ``class_prob`` (0.99);
             * the density-ratio discriminator of the side file: per class, the log ratio of
               two Gaussians (real training digits vs the generator's samples) in the top 12
               principal components of the real digits, ``s(x) = z' Q z + b' z + c`` with
               ``z = (x - mean) @ components.T``, an estimate of log p_data(x | y) / p_g(x | y).
             One eligible candidate is then kept at random with probability proportional to
             exp(s(x)) (one uniform draw per image from the seeded generator); if none of the
             K is eligible, the one with the highest p(label | x) is kept. As K grows the kept
             digits approach the real digits' distribution (to the extent that s is the true
             ratio): they become *more varied* where the generator is too narrow, instead of
             collapsing onto its favourite shapes as a keep-the-top-score rule does.
             Measured effect and cost: see docs/kinds/image.md. At most 8,192
             candidates (25 MB of float32) are held at once, whatever n and K.
             The GAN discriminator's realness logit is not used (it reduced diversity).
``precision``  "auto" (default: int8, the manifest's default_precision), "int8"
             (statically quantized generator and classifier, QDQ with calibrated
             activations; the density-ratio scores stay float64 numpy) or "fp32" (in a
             checkout only: the device wheel leaves the fp32 models out).

Caps: n <= 1024; candidates are generated and scored in blocks of at most 8,192.
Same seed and options give the same images. No TensorFlow: numpy + onnxruntime only.
"""
from __future__ import annotations

import math

import numpy as np

from runtime import media
from runtime.errors import ModelError
from runtime.model import Model, Option, Options, TaggedArray

KIND = "image"
MAX_N = 1024
N_CLASSES = 10
CHUNK = 256             # images per onnxruntime call
BLOCK = 8192            # candidates generated, scored and held at once


def candidates_per_image(quality: float, max_extra: int) -> int:
    return 1 + int(math.floor(max_extra * quality + 0.5))


OPTIONS = Options(
    Option("n", 16, "int", "number of images", lo=1, hi=MAX_N),
    Option("quality", 0.0, "float", "rejection sampling effort: 0 plain sampling, 1 resamples "
           "each image from 32 candidates (about 20x the cost)", lo=0.0, hi=1.0),
    Option("digit", None, "int", "the digit every image shows; None draws each image's digit "
           "uniformly", lo=0, hi=N_CLASSES - 1, optional=True),
)


class Images(TaggedArray):
    """uint8 images ``(n, H, W)`` with ``.labels`` (int64 ``(n,)``, the digit of each image);
    a slice or a computed array is a plain view whose ``labels`` is None."""
    tag = "labels"
    suffix = ".png"
    labels: np.ndarray | None

    def save(self, path) -> str:
        """A PNG grid of the images; returns a summary with a text preview."""
        pixels = np.asarray(self)
        media.write_png(path, pixels)
        return (f"{self.shape[0]} images of {self.shape[1]}x{self.shape[2]} (digits "
                f"{' '.join(map(str, self.labels[:16]))}); the first ones:\n"
                f"{media.ascii_strip(pixels)}")


def _run_chunked(sess, x: np.ndarray, labels: np.ndarray, output: int = 0) -> np.ndarray:
    a, b = (i.name for i in sess.get_inputs())
    if len(x) <= CHUNK:                 # the common case: one call, no copy
        return Model.run(sess, {a: x, b: labels})[output]
    outs = [Model.run(sess, {a: x[i:i + CHUNK], b: labels[i:i + CHUNK]})[output]
            for i in range(0, len(x), CHUNK)]
    return np.concatenate(outs)


class _Rule:
    """The rejection side file as arrays (checked once per loaded file)."""

    def __init__(self, raw: dict, where: str):
        try:
            lr = raw["log_ratio"]
            self.max_extra = int(raw["max_extra_candidates"])
            self.log_class_prob = math.log(float(raw["class_prob"]))
            self.mean = np.asarray(lr["mean"], np.float64)
            self.components = np.asarray(lr["components"], np.float64)
            self.quad = np.asarray([c["quad"] for c in lr["classes"]], np.float64)
            self.lin = np.asarray([c["lin"] for c in lr["classes"]], np.float64)
            self.const = np.asarray([c["const"] for c in lr["classes"]], np.float64)
            dim = len(self.components)
            ok = (1 <= self.max_extra <= 63 and self.mean.shape == (28 * 28,)
                  and self.components.shape == (dim, 28 * 28)
                  and self.quad.shape == (N_CLASSES, dim, dim)
                  and self.lin.shape == (N_CLASSES, dim) and self.const.shape == (N_CLASSES,))
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise ModelError(f"{where}: the image rejection side file is not the one this "
                             f"runtime reads (needs max_extra_candidates, class_prob and "
                             f"log_ratio): re-export image")

    def log_ratio(self, x: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """s(x) ~ log p_data(x | y) / p_g(x | y), float64 [N]."""
        # einsum's own loop, not BLAS: OpenBLAS aborts the process (uncatchable) when it
        # cannot allocate its work buffer under a memory limit
        z = np.einsum("nd,kd->nk", x.reshape(len(x), -1).astype(np.float64) - self.mean,
                      self.components)
        return (np.einsum("ni,nij,nj->n", z, self.quad[labels], z)
                + np.einsum("ni,ni->n", z, self.lin[labels]) + self.const[labels])


def select(class_logp: np.ndarray, log_ratio: np.ndarray, u: np.ndarray,
           log_class_prob: float) -> np.ndarray:
    """The rule on (images, K) scores: index of the kept candidate per image. Among the
    candidates with class_logp >= log_class_prob, candidate j is kept with probability
    exp(log_ratio_j) / sum over eligible exp(log_ratio) (inverse CDF at u in [0, 1));
    with none eligible, the highest class_logp."""
    ok = class_logp >= log_class_prob
    s = np.where(ok, log_ratio, -np.inf)
    any_ok = ok.any(1)
    s = np.where(any_ok[:, None], s - np.where(any_ok, s.max(1), 0.0)[:, None], 0.0)
    cum = np.cumsum(np.exp(s), 1)
    pick = np.minimum((cum <= u[:, None] * cum[:, -1:]).sum(1), s.shape[1] - 1)
    return np.where(any_ok, pick, class_logp.argmax(1))


def to_uint8(images: np.ndarray) -> np.ndarray:
    """[-1, 1] floats -> uint8 0..255."""
    return np.rint((np.asarray(images, np.float32) + 1.0) * 127.5).clip(0, 255).astype(np.uint8)


class ImageModel(Model):
    kind = KIND
    options = OPTIONS

    def rule(self) -> _Rule:
        """The rejection side file as arrays."""
        return self.cached("rule", lambda: _Rule(self.json("rejection"), str(self.models_dir)))

    def sample_float(self, rng: np.random.Generator, n: int, quality: float = 0.0,
                     digit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``n`` digits float32 (n, 28, 28) in [-1, 1] and their labels (arguments already
        validated). Shared with the video kind, which places them on its canvas.

        Random stream: labels (if ``digit`` is None), then z for all n x K candidates (image
        i owns rows i K .. i K + K - 1), then (K > 1) one uniform per image to resample."""
        gen = self.session("generator")
        zd = int(gen.get_inputs()[0].shape[1])
        if digit is None:
            labels = rng.integers(0, N_CLASSES, size=n).astype(np.int64, copy=False)
        else:
            labels = np.full(n, digit, np.int64)
        rule = self.rule() if quality > 0 else None
        k = candidates_per_image(quality, rule.max_extra) if rule else 1
        z = rng.standard_normal((n * k, zd), dtype=np.float32)
        if k == 1:
            return _run_chunked(gen, z, labels), labels
        u = rng.random(n)
        clf = self.session("classifier")
        out = np.empty((n, 28, 28), np.float32)
        per = max(1, BLOCK // k)                              # images per block
        for s in range(0, n, per):
            e = min(n, s + per)
            cand_labels = np.repeat(labels[s:e], k)
            cand = _run_chunked(gen, z[s * k:e * k], cand_labels)
            logp = _run_chunked(clf, cand, cand_labels).reshape(e - s, k)
            ratio = rule.log_ratio(cand, cand_labels).reshape(e - s, k)
            pick = select(logp, ratio, u[s:e], rule.log_class_prob)
            out[s:e] = cand.reshape(e - s, k, 28, 28)[np.arange(e - s), pick]
        return out, labels

    def _generate(self, rng, *, n, quality, digit) -> Images:
        images, labels = self.sample_float(rng, n, quality, digit)
        return Images(to_uint8(images), labels)


MODEL = ImageModel
