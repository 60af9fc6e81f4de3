"""The image kind's evaluation: samples drawn through the runtime (the shipped files) against the
held-out real digits, judged by a separately trained digit classifier (trainer.digits).

Rows: real digits, an untrained generator, and the shipped generator at quality 0 / 0.5 / 1
(and int8 where shipped), each the mean of ``eval_repeats`` independent draws of
``eval_samples`` with their spread; ``targets`` says which of the image kind's targets hold.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from trainer.image_model import N_CLASSES, build_generator

if TYPE_CHECKING:
    from trainer.image import Config

KIND = "image"


def _runtime_samples(models_dir: Path, n: int, quality: float, seed: int,
                     precision: str = "fp32", digit: int | None = None) -> np.ndarray:
    import runtime
    from trainer.digits import uint8_to_unit

    out, s = [], seed
    while sum(len(o) for o in out) < n:
        k = min(1000, n - sum(len(o) for o in out))
        out.append(np.asarray(runtime.generate(KIND, n=k, quality=quality, seed=s,
                                               models_dir=models_dir, precision=precision,
                                               digit=digit)))
        s += 1
    return uint8_to_unit(np.concatenate(out))


def _label_accuracy(clf, models_dir: Path, per_class: int, quality: float, seed: int,
                    precision: str = "fp32") -> float:
    """Share of digit=c samples that the classifier reads as c (conditioning works)."""
    hits = 0
    for c in range(N_CLASSES):
        x = _runtime_samples(models_dir, per_class, quality, seed + c, precision, digit=c)
        hits += int((clf.probs(x).argmax(1) == c).sum())
    return round(hits / (per_class * N_CLASSES), 4)


def _mean_rows(rows: list[dict]) -> dict:
    """Average metric rows of several independent draws; keep the spread of the key numbers."""
    out = {"draws": len(rows), "n_per_draw": rows[0]["n"]}
    for key in ("confidence", "frechet_distance", "min_class_share", "nn_dist_to_train"):
        v = np.array([r[key] for r in rows], np.float64)
        out[key] = round(float(v.mean()), 4)
        out[key + "_std"] = round(float(v.std()), 4)
    out["coverage"] = [round(float(c), 4) for c in np.mean([r["coverage"] for r in rows], 0)]
    return out


def _nn_distance(samples: np.ndarray, train: np.ndarray) -> float:
    """Mean L2 distance (pixels in [-1, 1]) from each sample to its nearest training digit."""
    a = samples.reshape(len(samples), -1).astype(np.float32)
    b = train.reshape(len(train), -1).astype(np.float32)
    d2 = (a ** 2).sum(1)[:, None] + (b ** 2).sum(1)[None] - 2 * a @ b.T
    return round(float(np.sqrt(np.clip(d2.min(1), 0, None)).mean()), 3)


def _uint8_round_trip(x: np.ndarray) -> np.ndarray:
    return np.rint((x + 1) * 127.5).clip(0, 255) / 127.5 - 1.0


def _reference_rows(cfg: Config, clf, data: dict, row) -> dict:
    """Real digits (train subset, held-out) and an untrained generator of the same config."""
    import keras

    n = cfg.eval_samples
    rng = np.random.default_rng(cfg.seed + 123)
    keras.utils.set_random_seed(cfg.seed + 1)
    untrained = build_generator(cfg)
    z = rng.standard_normal((n, cfg.z_dim)).astype(np.float32)
    y = rng.integers(0, N_CLASSES, n).astype(np.int64)
    # the real reference subset has its own stream: the same digits whatever the model's z_dim
    real_idx = np.random.default_rng(cfg.seed + 124).choice(
        len(data["x_train"]), min(n, len(data["x_train"])), replace=False)
    return {
        "classifier_heldout_accuracy": round(clf.accuracy(data["x_test"], data["y_test"]), 4),
        "reference": f"FD against the {len(data['x_test'])} held-out real digits, classifier "
                     f"features (64-d penultimate layer); nn_dist_to_train = mean L2 distance "
                     f"to the nearest training digit (pixels in [-1, 1]); label_accuracy = "
                     f"share of digit=c samples classified as c; generated rows: {n} samples "
                     f"through runtime.generate (digit=None)",
        "real_train_digits": row(data["x_train"][real_idx]),
        "real_heldout_digits": {**row(data["x_test"]), "frechet_distance": 0.0},
        "untrained_generator": row(_uint8_round_trip(
            untrained([z, y], training=False).numpy()[..., 0])),
    }


def _generated_rows(cfg: Config, clf, models_dir: Path, row, seeds: list[int]):
    """Rows of the shipped generator per quality (and int8 where shipped); the fp32 draws."""
    from trainer.export import read_manifest

    n, per_class = cfg.eval_samples, max(10, cfg.eval_samples // 10)
    metrics, draws = {}, {}
    for quality in (0.0, 0.5, 1.0):
        t = time.time()
        rows = draws[quality] = [row(_runtime_samples(models_dir, n, quality, seed=sd))
                                 for sd in seeds]
        metrics[f"generator_quality_{quality:g}"] = {
            **_mean_rows(rows), "seconds_per_draw": round((time.time() - t) / len(seeds), 2),
            "label_accuracy": _label_accuracy(clf, models_dir, per_class, quality, cfg.seed + 50)}
    if "generator_int8" in read_manifest(models_dir)["models"][KIND]["files"]:
        for quality in (0.0, 1.0):
            rows = [row(_runtime_samples(models_dir, n, quality, seed=sd, precision="int8"))
                    for sd in seeds]
            metrics[f"generator_int8_quality_{quality:g}"] = {
                **_mean_rows(rows), "label_accuracy": _label_accuracy(
                    clf, models_dir, per_class, quality, cfg.seed + 50, "int8")}
    return metrics, draws


def _targets(g0: dict, g1: dict) -> dict:
    """The image kind's targets: class coverage, confidence, and quality=1 better than plain
    sampling by more than the spread of the draws."""
    def beyond(a, b, key):   # a exceeds b by more than the draws' spread
        return bool(a[key] - b[key] > math.hypot(g0[key + "_std"], g1[key + "_std"]))

    return {
        "every_class_ge_4pct": bool(g0["min_class_share"] >= 0.04),
        "every_class_ge_4pct_quality1": bool(g1["min_class_share"] >= 0.04),
        "confidence_ge_0.8": bool(g0["confidence"] >= 0.8),
        "quality1_better_confidence": beyond(g1, g0, "confidence"),
        "quality1_better_fd_beyond_noise": beyond(g0, g1, "frechet_distance"),
        "quality1_fd_not_worse_beyond_noise": not beyond(g1, g0, "frechet_distance"),
    }


def evaluate(cfg: Config, work_dir: Path, models_dir: Path) -> dict:
    """Metrics of the models in ``models_dir`` (a digit classifier is trained once into
    ``work_dir/classifier``)."""
    from trainer import digits as D

    data = D.load_digits_images()
    clf = D.DigitClassifier.load_or_train(Path(work_dir) / "classifier")
    ref = clf.features(data["x_test"])

    def row(x):
        r = D.sample_metrics(clf, x, ref)
        r["nn_dist_to_train"] = _nn_distance(x, data["x_train"])
        return r

    metrics = _reference_rows(cfg, clf, data, row)
    seeds = [cfg.seed + 1000 + 17 * i for i in range(cfg.eval_repeats)]
    generated, draws = _generated_rows(cfg, clf, models_dir, row, seeds)
    metrics.update(generated)
    # the same seeds give both rows the same labels: the per-draw FD differences, for reference
    # (not a target: the draws of q=0 and q=1 share only labels, so pairing removes little noise)
    gain = np.subtract([r["frechet_distance"] for r in draws[0.0]],
                       [r["frechet_distance"] for r in draws[1.0]])
    metrics["quality1_fd_gain_per_draw"] = {
        "values": [round(float(v), 3) for v in gain], "mean": round(float(gain.mean()), 4),
        "std": round(float(gain.std()), 4)}
    metrics["targets"] = _targets(metrics["generator_quality_0"], metrics["generator_quality_1"])
    if "generator_int8_quality_0" in metrics:      # the default precision where it ships
        metrics["targets_int8"] = _targets(metrics["generator_int8_quality_0"],
                                           metrics["generator_int8_quality_1"])
    return metrics
