"""Benchmark: the image and video GANs in the runtime (numpy + onnxruntime) vs the same
generators called from TensorFlow (a ``tf.function`` around the trained Keras model restored
from the training checkpoint), side by side.

    .venv/bin/python -m benchmarks.gan [--models exported] [--runs runs] [--profile full]
                                       [--seconds 2] [--threads 1]

Rows:
  image  batch 1 / batch 64  images per second: runtime.generate("image", n=B) vs the
         trainer's generator function (trainer.image.tf_functions) for the same batch (both
         include drawing z and labels; the runtime also converts to uint8).
  image  batch 64, quality=1  images/s with discriminator rejection sampling (the class head
         and the density ratio, 32 candidates per image).
  video  frames per second: runtime.generate("video", frames=64) (incl. first frames from the
         image GAN) vs a tf.function loop rolling the trainer's step function
         (trainer.video.tf_functions) for 64 frames.
Both sides use ``--threads`` intra-op threads (default 1, the runtime's default).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _rate(fn, items: int, seconds: float) -> float:
    fn()                                        # warm-up (session load / tracing)
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= seconds and n >= 3:
            return items * n / dt


def _tf_functions(runs: Path, profile: str) -> dict:
    """kind -> its trainer's TensorFlow function (image: the generator, video: the step model)
    on the checkpoint's weights; a kind without a checkpoint or TensorFlow is left out."""
    import tensorflow as tf

    from trainer import image as timage
    from trainer import video as tvideo

    out = {}
    for kind, module, role in (("image", timage, "generator"), ("video", tvideo, "step")):
        try:
            fn, sig = module.tf_functions(module.PROFILES[profile], runs / kind / profile)[role]
        except Exception as exc:  # no checkpoint / no TensorFlow: runtime column only
            print(f"({kind} TF side unavailable: {exc})", file=sys.stderr)
            continue
        out[kind] = (tf.function(fn, input_signature=sig), sig)
    return out


def _image_rows(models: Path, tf_fns: dict, seconds: float, seed) -> list:
    import runtime

    rows = []
    for batch in (1, 64):
        rt = _rate(lambda: runtime.generate("image", n=batch, seed=next(seed), models_dir=models),
                   batch, seconds)
        tfr = None
        if "image" in tf_fns:
            fn, sig = tf_fns["image"]
            zd = sig[0].shape[-1]
            rng = np.random.default_rng(0)

            def tf_batch(batch=batch):
                z = rng.standard_normal((batch, zd), dtype=np.float32)
                y = rng.integers(0, 10, batch).astype(np.int64)
                return fn(z, y).numpy()
            tfr = _rate(tf_batch, batch, seconds)
        rows.append((f"image, batch {batch}", "images/s", rt, tfr))
    rt = _rate(lambda: runtime.generate("image", n=64, quality=1.0, seed=next(seed),
                                        models_dir=models), 64, seconds)
    rows.append(("image, batch 64, quality=1", "images/s", rt, None))
    return rows


def _video_row(models: Path, tf_fns: dict, seconds: float, seed, frames: int = 64) -> tuple:
    import runtime

    rt = _rate(lambda: runtime.generate("video", frames=frames, seed=next(seed),
                                        models_dir=models), frames, seconds)
    tfr = None
    if "video" in tf_fns:
        import tensorflow as tf

        step, sig = tf_fns["video"]
        c = sig[0].shape[1]

        @tf.function
        def roll(ctx):
            outs = []
            for _ in range(frames - 2):
                nxt = step(ctx, tf.random.normal((1, c, c, 1)))[..., None]
                outs.append(nxt)
                ctx = tf.concat([ctx[..., 1:2], nxt], -1)
            return tf.concat(outs, -1)

        start = tf.constant(np.random.default_rng(0).uniform(-1, 1, (1, c, c, 2))
                            .astype(np.float32))
        tfr = _rate(lambda: roll(start).numpy(), frames, seconds)
    return (f"video, {frames} frames", "frames/s", rt, tfr)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=str(ROOT / "exported"))
    ap.add_argument("--runs", default=str(ROOT / "runs"))
    ap.add_argument("--profile", default="full")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-tf", action="store_true", help="runtime column only")
    args = ap.parse_args(argv)

    import runtime

    runtime.configure(threads=args.threads)
    models = Path(args.models)
    have = runtime.available(models)
    if "image" not in have:
        print(f"no image model in {models}: python -m trainer train image", file=sys.stderr)
        return 1
    tf_fns = {}
    if not args.no_tf:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        tf_fns = _tf_functions(Path(args.runs), args.profile)
    seed = iter(range(10**6))
    rows = _image_rows(models, tf_fns, args.seconds, seed)
    if "video" in have:
        rows.append(_video_row(models, tf_fns, args.seconds, seed))
    print(f"\nGAN generation speed (threads={args.threads}; runtime = numpy + onnxruntime "
          f"{__import__('onnxruntime').__version__})")
    print(f"{'case':30s} {'unit':9s} {'runtime':>10s} {'TensorFlow':>11s} {'runtime/TF':>11s}")
    for name, unit, rt, tfr in rows:
        tf_s = f"{tfr:11.1f}" if tfr else f"{'-':>11s}"
        ratio = f"{rt / tfr:10.2f}x" if tfr else f"{'-':>11s}"
        print(f"{name:30s} {unit:9s} {rt:10.1f} {tf_s} {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
