"""``generate("video", frames=16, digits=1, seed=...)``: moving handwritten digits.

Returns ``numpy.uint8`` of shape ``(frames, 48, 48)``: 0 background, 255 full ink.

How a clip is made
------------------
1. ``digits`` digits are drawn from the image GAN (``runtime.image``, rejection sampling at
   quality 0.5 for clean first frames) as 28x28 tiles.
2. Each tile is placed at a uniform whole-pixel position on the 48x48 canvas (its 20x20 ink box
   inside the canvas) with a whole-pixel velocity rint(s (sin a, cos a)), a uniform direction,
   s uniform in the trained range (1..3 px/frame, from the ``physics`` side file); frame 1 is
   the same digits moved one step (bouncing off the edges), composited with ``max``. These two frames are the first frames of
   the clip.
3. The exported next-frame generator (``step``: frames t-1 and t plus Gaussian noise ->
   frame t+1) is called once per further frame, fed its own float output.

Options
-------
``frames``  an integer in [1, 256] (default 16).
``digits``  1 or 2 (default 1).
``precision``  "fp32" only (no int8 variant ships for the video kind).

Caps: frames <= 256 (at most 256 x 48 x 48 bytes = 0.6 MB out). Same seed -> same clip.
"""
from __future__ import annotations

import numpy as np

from runtime import image as _image
from runtime import options as _opt
from runtime import registry

KIND = "video"
OPTIONS = {"frames": 16, "digits": 1}
MAX_FRAMES = 256
FIRST_FRAME_QUALITY = 0.5


def to_uint8(frames: np.ndarray) -> np.ndarray:
    return _image.to_uint8(frames)


def first_frames(rng: np.random.Generator, tiles: np.ndarray, physics: dict) -> np.ndarray:
    """Two opening frames float32 (2, C, C) in [-1, 1] from tiles (k, 28, 28) in [-1, 1]:
    the Moving-MNIST recipe the step model was trained on (see trainer/digits.py)."""
    c, tile, box = int(physics["canvas"]), int(physics["tile"]), int(physics["ink_box"])
    pad = (tile - box) // 2
    lo, hi = -pad, c - box - pad
    big = np.zeros((2, c + 2 * pad, c + 2 * pad), np.float32)
    for t_img in tiles:
        ink = (t_img + 1.0) * 0.5
        pos = rng.integers(lo, hi + 1, size=2)
        while True:     # whole-pixel velocity, never (0, 0): trainer.digits.initial_motion
            ang = rng.uniform(0, 2 * np.pi)
            v = np.rint(rng.uniform(physics["speed_min"], physics["speed_max"])
                        * np.array([np.sin(ang), np.cos(ang)])).astype(int)
            if v.any():
                break
        for t in range(2):
            r, q = pos + pad
            np.maximum(big[t, r:r + tile, q:q + tile], ink, out=big[t, r:r + tile, q:q + tile])
            pos = pos + v
            for ax in range(2):
                if pos[ax] < lo:
                    pos[ax], v[ax] = 2 * lo - pos[ax], -v[ax]
                elif pos[ax] > hi:
                    pos[ax], v[ax] = 2 * hi - pos[ax], -v[ax]
    return big[:, pad:pad + c, pad:pad + c] * 2.0 - 1.0


def rollout(rng: np.random.Generator, models_dir, start: np.ndarray, steps: int,
            precision: str = "fp32") -> np.ndarray:
    """Roll the step model forward: start float32 (N, 2, C, C) in [-1, 1] -> float32
    (N, 2 + steps, C, C). Exposed for evaluation (prediction from real contexts)."""
    sess = registry.session(KIND, "step", models_dir, precision)
    names = [i.name for i in sess.get_inputs()]
    start = np.asarray(start, np.float32)
    n, _, h, w = start.shape
    out = np.empty((n, 2 + steps, h, w), np.float32)
    out[:, :2] = start
    ctx = np.ascontiguousarray(np.transpose(start, (0, 2, 3, 1)))
    for t in range(steps):
        noise = rng.standard_normal((n, h, w, 1), dtype=np.float32)
        nxt = registry.run(sess, {names[0]: ctx, names[1]: noise})[0]
        out[:, 2 + t] = nxt
        ctx = np.stack([ctx[..., 1], nxt], -1)
    return out


def generate(*, rng: np.random.Generator, models_dir, precision: str = "fp32", frames=16,
             digits=1) -> np.ndarray:
    frames = _opt.check_int("frames", frames, 1, MAX_FRAMES)
    digits = _opt.check_int("digits", digits, 1, 2)
    registry.session(KIND, "step", models_dir, precision)     # fails early on a bad precision
    physics = registry.load_json(KIND, "physics", models_dir)
    tiles = _image.sample_float(rng, models_dir, digits, FIRST_FRAME_QUALITY)
    start = first_frames(rng, tiles, physics)
    clip = rollout(rng, models_dir, start[None], max(0, frames - 2), precision)[0, :frames]
    return to_uint8(clip)
