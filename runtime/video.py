"""Moving handwritten digits: ``generate("video", frames=16, digits=1, seed=1)``.

The result is a ``Video`` array, ``numpy.uint8`` of shape ``(frames, 48, 48)`` (0 background,
255 full ink), whose ``.digits`` are the classes of the digits it opens with.

How a clip is made
------------------
1. ``digits`` digits of random classes are drawn from the image GAN (``runtime.image``) as
   28x28 tiles, each the first of up to K samples that the image ``classifier`` (the GAN
   discriminator's class head) reads as its class with p >= 0.99 (see ``quality``); ink
   fainter than the ``physics`` ink threshold (0.05) is cleared, so each digit's ink box holds
   all of it.
2. Each tile is placed at a uniform whole-pixel position with its ink box inside the 48x48
   canvas, with a whole-pixel velocity rint(s (sin a, cos a)), a uniform direction, s uniform
   in the trained range (1..3 px/frame, from the ``physics`` side file); frame 1 is the same
   digits moved one step (a digit bounces when its ink box touches an edge), composited with
   ``max``. These two frames open the clip.
3. The exported next-frame generator (``step``: frames t-1 and t plus Gaussian noise ->
   frame t+1) is called once per further frame, fed its own output. It copies every pixel
   of frame t+1 from frame t at an offset of up to 3 px per axis that it predicts per 2x2
   pixel block (arg-max of 49 logits), so digits keep their ink and sharpness over long
   clips; the motion, the bounces included, is the model's.

Options
-------
``frames``  an integer in [1, 256] (default 16).
``digits``  1 or 2 (default 1).
``quality``  a number in [0, 1] (default 0.1): at most K = 1 + round(31 q) samples per
            opening digit (4 at the default; the image kind's K), drawn one at a time until
            the class head accepts one (it accepts 80% of draws: 1.25 draws on average at
            the default), else the most confident; 0 keeps the first sample. Unlike ``generate("image", quality=...)``
            there is no density-ratio resampling: the opening digit has to be legible, and
            stopping at the first accepted sample keeps a clip's cost low.
``precision``  "fp32" only (no int8 variant ships for the video kind); the opening digits
             come from the image kind at its default precision.

Caps: frames <= 256 (at most 256 x 48 x 48 bytes = 0.6 MB out). Same seed -> same clip.
"""
from __future__ import annotations

import numpy as np

from runtime import image as _image
from runtime import media
from runtime.errors import ModelError
from runtime.model import Model, Option, Options, TaggedArray

KIND = "video"
MAX_FRAMES = 256
NOISE_BLOCK = 16        # steps whose noise is drawn at once
OPTIONS = Options(
    Option("frames", 16, "int", "number of frames", lo=1, hi=MAX_FRAMES),
    Option("digits", 1, "int", "moving digits in the clip", lo=1, hi=2),
    Option("quality", 0.1, "float", "effort spent on legible opening digits: up to "
           "1 + round(31 q) draws each until the class head accepts one", lo=0.0, hi=1.0),
)


class Video(TaggedArray):
    """uint8 frames ``(frames, H, W)`` with ``.digits`` (int64, the opening digits' classes);
    a slice or a computed array is a plain view whose ``digits`` is None."""
    tag = "digits"
    suffix = ".gif"
    digits: np.ndarray | None

    def save(self, path) -> str:
        """An animated GIF; returns a summary with a strip of frames as text."""
        frames = np.asarray(self)
        media.write_gif(path, frames)
        every = max(1, len(frames) // 6)
        return (f"{frames.shape[0]} frames of {frames.shape[1]}x{frames.shape[2]} (digits "
                f"{' '.join(map(str, self.digits))}); one frame in {every}:\n"
                f"{media.ascii_strip(frames[::every], step=3)}")


def to_uint8(frames: np.ndarray) -> np.ndarray:
    return _image.to_uint8(frames)


def clear_faint(ink: np.ndarray, threshold: float) -> np.ndarray:
    """Ink (values in [0, 1]) at or below ``threshold`` set to 0: the bouncing box then holds
    all of the digit, so no faint halo is cut off at a wall."""
    return np.where(ink > threshold, ink, 0.0).astype(np.float32)


def ink_bounds(ink: np.ndarray, threshold: float) -> tuple[int, int, int, int]:
    """(top, left, bottom, right), inclusive, of the pixels of a tile ``ink`` (values in [0, 1])
    above ``threshold``: the box that bounces off the walls (the visible digit, so a narrow 1
    bounces when its strokes touch the wall, exactly as it looks)."""
    rows = np.flatnonzero((ink > threshold).any(1))
    cols = np.flatnonzero((ink > threshold).any(0))
    if not len(rows):
        return 0, 0, ink.shape[0] - 1, ink.shape[1] - 1
    return int(rows[0]), int(cols[0]), int(rows[-1]), int(cols[-1])


def position_range(bounds, canvas: int) -> tuple[np.ndarray, np.ndarray]:
    """Range of the tile's top-left corner keeping its ink box inside the canvas."""
    top, left, bottom, right = bounds
    return np.array([-top, -left]), np.array([canvas - 1 - bottom, canvas - 1 - right])


def advance(pos: np.ndarray, v: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple:
    """One frame of motion: move by ``v``; a component that overshoots the range is reflected
    (position and velocity), the Moving-MNIST bounce."""
    pos, v = pos + v, v.copy()
    for ax in range(2):
        if pos[ax] < lo[ax]:
            pos[ax], v[ax] = 2 * lo[ax] - pos[ax], -v[ax]
        elif pos[ax] > hi[ax]:
            pos[ax], v[ax] = 2 * hi[ax] - pos[ax], -v[ax]
    return pos, v


def initial_motion(rng: np.random.Generator, lo, hi, speed) -> tuple:
    """Uniform whole-pixel start position in [lo, hi] and whole-pixel velocity
    rint(s (sin a, cos a)) != (0, 0), a uniform direction, s uniform in ``speed``."""
    pos = np.array([rng.integers(lo[0], hi[0] + 1), rng.integers(lo[1], hi[1] + 1)])
    while True:
        ang = rng.uniform(0, 2 * np.pi)
        v = np.rint(rng.uniform(*speed) * np.array([np.sin(ang), np.cos(ang)])).astype(int)
        if v.any():
            return pos, v


def first_frames(rng: np.random.Generator, tiles: np.ndarray, physics: dict) -> np.ndarray:
    """Two opening frames float32 (2, C, C) in [-1, 1] from tiles (k, 28, 28) in [-1, 1]:
    the Moving-MNIST recipe the step model was trained on (trainer.digits.moving_digits)."""
    c, tile = int(physics["canvas"]), int(physics["tile"])
    speed = (physics["speed_min"], physics["speed_max"])
    big = np.zeros((2, c + 2 * tile, c + 2 * tile), np.float32)
    for t_img in tiles:
        ink = clear_faint((t_img + 1.0) * 0.5, physics["ink_threshold"])
        lo, hi = position_range(ink_bounds(ink, physics["ink_threshold"]), c)
        pos, v = initial_motion(rng, lo, hi, speed)
        for t in range(2):
            r, q = pos + tile
            np.maximum(big[t, r:r + tile, q:q + tile], ink, out=big[t, r:r + tile, q:q + tile])
            pos, v = advance(pos, v, lo, hi)
    return big[:, tile:tile + c, tile:tile + c] * 2.0 - 1.0


PHYSICS_KEYS = ("canvas", "tile", "ink_threshold", "speed_min", "speed_max")


class VideoModel(Model):
    kind = KIND
    options = OPTIONS

    def images(self) -> _image.ImageModel:
        """The image kind's model (generator and classifier, at the image kind's default
        precision) that draws the opening digits."""
        return self.cached("images", lambda: _image.ImageModel(self.models_dir, "auto",
                                                                self._factory))

    def physics(self) -> dict:
        physics = self.json("physics")
        missing = [k for k in PHYSICS_KEYS if k not in physics]
        if missing:
            raise ModelError(f"{self.models_dir}: the video physics side file lacks "
                             f"{', '.join(missing)} (made for an older runtime): re-export video")
        return physics

    def opening_digits(self, rng: np.random.Generator, n: int,
                       quality: float) -> tuple[np.ndarray, np.ndarray]:
        """``n`` digits float32 (n, 28, 28) in [-1, 1] of random classes, and the classes.
        Random stream: the n labels, then one latent per draw, digit after digit."""
        images = self.images()
        if quality == 0:
            return images.sample_float(rng, n)          # the same stream, plain draws
        gen = images.session("generator")
        zd = int(gen.get_inputs()[0].shape[1])
        labels = rng.integers(0, _image.N_CLASSES, size=n).astype(np.int64)
        rule = images.rule()
        clf = images.session("classifier")
        tiles = np.empty((n, 28, 28), np.float32)
        for i, label in enumerate(labels[:, None]):
            best = -np.inf
            for _ in range(_image.candidates_per_image(quality, rule.max_extra)):
                digit = _image._run_chunked(gen, rng.standard_normal((1, zd), dtype=np.float32),
                                            label)
                logp = float(_image._run_chunked(clf, digit, label)[0])
                if logp > best:
                    best, tiles[i] = logp, digit[0]
                if logp >= rule.log_class_prob:
                    break
        return tiles, labels

    def rollout(self, rng: np.random.Generator, start: np.ndarray, steps: int) -> np.ndarray:
        """Roll the step model forward: start float32 (N, 2, C, C) in [-1, 1] -> float32
        (N, 2 + steps, C, C). Public for evaluation (prediction from real contexts)."""
        sess = self.session("step")
        names = [i.name for i in sess.get_inputs()]
        start = np.asarray(start, np.float32)
        n, _, h, w = start.shape
        out = np.empty((n, 2 + steps, h, w), np.float32)
        out[:, :2] = start
        ctx = np.ascontiguousarray(np.transpose(start, (0, 2, 3, 1)))
        for t in range(steps):
            if t % NOISE_BLOCK == 0:    # one draw per block of steps: the same stream
                noise = rng.standard_normal((min(NOISE_BLOCK, steps - t), n, h, w, 1),
                                            dtype=np.float32)
            nxt = self.run(sess, {names[0]: ctx, names[1]: noise[t % NOISE_BLOCK]})[0]
            out[:, 2 + t] = nxt
            ctx = np.stack([ctx[..., 1], nxt], -1)
        return out

    def _generate(self, rng, *, frames, digits, quality) -> Video:
        self.session("step")                              # fails early on a damaged model
        physics = self.physics()
        tiles, labels = self.opening_digits(rng, digits, quality)
        start = first_frames(rng, tiles, physics)
        clip = self.rollout(rng, start[None], max(0, frames - 2))[0, :frames]
        return Video(to_uint8(clip), labels)


MODEL = VideoModel
