"""The image kind's export: TensorFlow functions -> ONNX files, the rejection rule's side file
and the int8 variants, written through trainer.export.

Roles: ``generator`` (EMA weights; tf2onnx's graph rebuilt by
:func:`trainer.graph_rewrites.lean_generator`), ``classifier`` (the class head of the rejection
rule), ``discriminator`` (optional: realness logit + class head, for apps; the runtime never
reads it), ``rejection`` (JSON: the quality > 0 rule's constants and density-ratio
discriminator), and for trained models ``generator_int8`` (static int8). The classifier has no
int8 variant: onnxruntime 1.23 (the last release for Python 3.10) ran a statically quantized
classifier non-deterministically (its fused int8 kernels; a float classifier gives the same
bits on 1.23 and 1.32), so ``precision="int8"`` pairs the int8 generator with it.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from trainer.image_model import N_CLASSES, PIXEL_NORM_EPS, Models, load_trained

if TYPE_CHECKING:
    from trainer.image import Config

KIND = "image"
NOTES = (
    "class-conditional: generator (z float32 [N, z_dim] ~ N(0, I), label int64 [N] in "
    "0..9) -> images float32 [N, 28, 28] in [-1, 1] (EMA weights; tf2onnx's graph "
    "rebuilt in fewer nodes by trainer.graph_rewrites.lean_generator); classifier "
    "(images, label) -> class_logprob [N]: log p(label | image) from the rejection "
    "discriminator's auxiliary class head, trained on real digits; discriminator "
    "(optional, not read by the runtime): (images, label) -> (realness logit [N] of "
    "the projection D fine-tuned with the logistic loss against the final generator, "
    "class_logprob [N] as the classifier's); rejection: the "
    "quality > 0 rule of runtime/image.py (class-head threshold, candidate count, and "
    "the density-ratio discriminator log p_data(x | y) / p_g(x | y) fitted at export "
    "as per-class Gaussians in the top principal components of the real digits, used "
    "for sampling-importance-resampling among the candidates). The rule does not "
    "use the realness logit: selecting on it raised the Frechet distance "
    "(docs/kinds/image.md).")
INT8_NOTES = (
    " generator_int8 (used by precision='int8' with the float classifier): "
    "static int8 (QDQ; quantized from tf2onnx's generator graph with its "
    "ConvTranspose as sub-pixel Conv + DepthToSpace) calibrated on 1,024 latents; "
    "shipped while the int8 FD at quality 0 and 1 is within the fp32 FD + the "
    "draws' spread and confidence and label accuracy within 0.01 of fp32 "
    "(metrics generator_int8_quality_*). int8 is the default (precision='auto'); the "
    "fp32 generator is checkout-only (not in the device wheel).")


def signatures(cfg: Config) -> dict:
    """The ONNX inputs of each role, as named ``tf.TensorSpec`` lists."""
    import tensorflow as tf

    images = [tf.TensorSpec([None, 28, 28], tf.float32, name="images"),
              tf.TensorSpec([None], tf.int64, name="label")]
    return {"generator": [tf.TensorSpec([None, cfg.z_dim], tf.float32, name="z"),
                          tf.TensorSpec([None], tf.int64, name="label")],
            "classifier": images, "discriminator": images}


def functions_of(m: Models) -> dict:
    """role -> the Python function that role's ONNX file computes, on the models ``m``."""
    import tensorflow as tf

    def gen(z, label):
        return tf.identity(m.g_ema([z, label], training=False)[..., 0], name="images")

    def class_logprob(images, label):
        logp = tf.nn.log_softmax(m.aux(images[..., None], training=False), -1)
        return tf.gather(logp, tf.cast(label, tf.int32), axis=1, batch_dims=1)

    def disc(images, label):
        return m.d_cal([images[..., None], label], training=False)[:, 0], \
            class_logprob(images, label)

    def classify(images, label):
        return tf.identity(class_logprob(images, label), name="class_logprob")

    return {"generator": gen, "classifier": classify, "discriminator": disc}


def tf_functions(cfg: Config, work_dir: Path | None) -> dict:
    """role -> (Python function, input signature) of every ONNX role, for running the same
    models in TensorFlow (benchmarks): the checkpoint in ``work_dir``, or with ``work_dir``
    None freshly initialised weights (the same graphs and cost, for timing only)."""
    import tensorflow as tf

    m = Models(cfg, tf.distribute.get_strategy()) if work_dir is None \
        else load_trained(cfg, work_dir)
    sigs = signatures(cfg)
    return {role: (fn, sigs[role]) for role, fn in functions_of(m).items()}


def export(cfg: Config, work_dir: Path, out_dir: Path) -> None:
    """Export the checkpoint in ``work_dir`` to ``out_dir`` and write the manifest entry."""
    from trainer import common
    from trainer.export import export_rewritten, export_tf_function, write_entry, write_json
    from trainer.graph_rewrites import lean_generator

    m = load_trained(cfg, work_dir)
    fns, sigs = functions_of(m), signatures(cfg)
    rng = np.random.default_rng(cfg.seed)
    z_samples = [[rng.standard_normal((b, cfg.z_dim)).astype(np.float32),
                  rng.integers(0, N_CLASSES, b).astype(np.int64)] for b in (1, 7, 10)]
    d_samples = [[rng.uniform(-1, 1, (b, 28, 28)).astype(np.float32),
                  rng.integers(0, N_CLASSES, b).astype(np.int64)] for b in (1, 10)]
    g_tf2onnx = export_tf_function(fns["generator"], sigs["generator"], kind=KIND,
                                   role="generator", out_dir=out_dir, sample_inputs=z_samples)
    # shipped: the same function in fewer, cheaper nodes, checked against TensorFlow again;
    # the int8 variant is still quantized from tf2onnx's graph
    g_entry = export_rewritten(
        g_tf2onnx, lambda model: lean_generator(model, n_classes=N_CLASSES,
                                                pixel_norm_eps=PIXEL_NORM_EPS),
        fns["generator"], sigs["generator"], kind=KIND, role="generator", out_dir=out_dir,
        samples=z_samples)
    # the rule needs only the class head, exported alone; the whole discriminator (realness
    # logit + class head) ships for apps, unread by the runtime ("optional")
    files = {"generator": g_entry}
    for role in ("classifier", "discriminator"):
        files[role] = export_tf_function(fns[role], sigs[role], kind=KIND, role=role,
                                         out_dir=out_dir, sample_inputs=d_samples)
    files["discriminator"]["optional"] = True
    files["rejection"] = write_json(rejection_rule(cfg, m), kind=KIND, role="rejection",
                                    out_dir=out_dir)
    notes, default_precision = NOTES, None
    if cfg.steps >= 1000:   # int8 only for real models (checked in evaluate)
        files.update(_int8_files(cfg, g_tf2onnx, g_entry, out_dir))
        notes += INT8_NOTES
        # int8 matches fp32 within the draws' spread (gated), is faster and 40% of the
        # size: the default, with the fp32 generator kept in the checkout only
        files["generator"]["checkout_only"] = True
        default_precision = "int8"
    write_entry(out_dir, KIND, files, common.config_dict(cfg), notes=notes,
                default_precision=default_precision)


def _int8_files(cfg: Config, g_tf2onnx: dict, g_entry: dict, out_dir: Path) -> dict:
    """Static int8 generator (from tf2onnx's graph), calibrated on what the runtime feeds it
    (the classifier stays float: see the module docstring)."""
    from trainer.export import quantize_static

    gen = quantize_static(g_tf2onnx, kind=KIND, role="generator_int8", out_dir=out_dir,
                          calibration=_latents(cfg))
    gen["quantized_from"] = g_entry["file"]   # its tf2onnx graph
    return {"generator_int8": gen}


def fit_log_ratio(x_real: np.ndarray, y_real: np.ndarray, x_fake: np.ndarray,
                  y_fake: np.ndarray, components: int, shrink: float) -> dict:
    """The density-ratio discriminator of the rejection rule (quadratic discriminant analysis).

    Images are projected on the top ``components`` principal components of the real digits
    (``z = (x - mean) @ components.T``, x flattened to 784 values in [-1, 1]); per class, one
    Gaussian is fitted to the real digits and one to the generator's samples, each covariance
    shrunk toward (trace / dim) I by ``shrink``. Their log density ratio is the quadratic
    ``log r(z) = z' Q z + b' z + c`` ~ log p_data(x | y) / p_g(x | y); stored per class as
    ``quad`` (dim x dim), ``lin`` (dim) and ``const``. It sees the digit's shape, not pixel-level
    cues (the generator's faint background ink, real digits' saturated strokes) that let a CNN
    tell real from fake almost perfectly without ranking generated digits by how real their
    shape is. The fit uses the training digits only (never the held-out digits)."""
    xr = x_real.reshape(len(x_real), -1).astype(np.float64)
    xf = x_fake.reshape(len(x_fake), -1).astype(np.float64)
    mean = xr.mean(0)
    comps = np.linalg.svd(xr - mean, full_matrices=False)[2][:components]
    zr, zf = (xr - mean) @ comps.T, (xf - mean) @ comps.T

    def gauss(z):
        mu, cov = z.mean(0), np.cov(z, rowvar=False)
        cov = (1 - shrink) * cov + shrink * np.trace(cov) / len(cov) * np.eye(len(cov))
        prec = np.linalg.inv(cov)
        return mu, prec, np.linalg.slogdet(cov)[1]

    def r6(a):   # 6 significant digits keep the JSON small and the scores exact enough
        return [float(f"{v:.6g}") for v in np.ravel(a)]

    classes = []
    for c in range(N_CLASSES):
        (mr, pr, ldr), (mf, pf, ldf) = gauss(zr[y_real == c]), gauss(zf[y_fake == c])
        quad = -0.5 * (pr - pf)
        classes.append({
            "quad": [r6(row) for row in quad], "lin": r6(pr @ mr - pf @ mf),
            "const": r6(-0.5 * (mr @ pr @ mr - mf @ pf @ mf) - 0.5 * (ldr - ldf))[0]})
    return {"dim": int(components), "shrink": float(shrink), "mean": r6(mean),
            "components": [r6(row) for row in comps], "classes": classes,
            "fit": {"real": int(len(xr)), "generated": int(len(xf))}}


def rejection_rule(cfg: Config, m: Models) -> dict:
    """The side file of runtime/image.py's quality > 0 rule (see its docstring)."""
    from trainer.digits import load_digits_images

    data = load_digits_images()
    real_scores = np.concatenate([
        m.d_cal([data["x_train"][i:i + 500, ..., None], data["y_train"][i:i + 500]],
                training=False).numpy()[:, 0] for i in range(0, len(data["x_train"]), 500)])
    rng = np.random.default_rng(cfg.seed + 9)     # own seed: the export's other draws stay put
    y_fake = np.repeat(np.arange(N_CLASSES, dtype=np.int64), cfg.ratio_fakes_per_class)
    z = rng.standard_normal((len(y_fake), cfg.z_dim)).astype(np.float32)
    x_fake = np.concatenate([m.g_ema([z[i:i + 1000], y_fake[i:i + 1000]], training=False)
                             .numpy()[..., 0] for i in range(0, len(z), 1000)])
    return {
        "max_extra_candidates": int(cfg.max_extra_candidates),
        "class_prob": cfg.accept_class_prob,
        "log_ratio": fit_log_ratio(data["x_train"], data["y_train"], x_fake, y_fake,
                                   cfg.ratio_components, cfg.ratio_shrink),
        # for apps that want their own (stricter, less diverse) rule on the shipped
        # discriminator's realness logit
        "realness_percentiles_of_real_digits": {
            str(p): round(float(np.percentile(real_scores, p)), 4) for p in (5, 10, 25, 50)}}


def _latents(cfg: Config, n: int = 1024, batch: int = 64) -> list[dict]:
    """Calibration feeds for the static int8 generator: what the runtime feeds it,
    z ~ N(0, I) and uniform labels (its own seed, so the export's other draws stay put)."""
    rng = np.random.default_rng(cfg.seed + 8)
    return [{"z": rng.standard_normal((batch, cfg.z_dim), dtype=np.float32),
             "label": rng.integers(0, N_CLASSES, batch).astype(np.int64)}
            for _ in range(n // batch)]
