"""The video kind's evaluation: clips generated through the runtime (the shipped files) against
real moving-digit clips of held-out digits and a copy-the-last-frame baseline; a separately
trained digit classifier (trainer.digits) reads each frame's digit."""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from trainer.video import Config

KIND = "video"


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
    from trainer.video import make_pool

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
    with runtime.load(KIND, models_dir=models_dir) as model:
        pred = model.rollout(rng, real1[:, :2], t - 2)
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
                             "first_frame_quality": rv.OPTIONS["quality"].default},
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
