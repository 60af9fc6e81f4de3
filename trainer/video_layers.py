"""Keras layers of the video step model (imports TensorFlow: import it from functions that
build models, never at the top of a module the CLI or the runtime may import)."""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


class AddCoords(keras.layers.Layer):
    """Appends constant y and x coordinate planes in [-1, 1] (CoordConv): lets the fully
    convolutional generator know where the walls are."""

    def call(self, x):
        h, w = x.shape[1], x.shape[2]
        yy, xx = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
        grid = tf.constant(np.stack([yy, xx], -1)[None].astype(np.float32))
        # broadcast to the batch by arithmetic (no Shape/Tile ops in the exported graph)
        return tf.concat([x, x[..., :1] * 0.0 + grid], -1)

    def compute_output_shape(self, s):
        return (*s[:-1], s[-1] + 2)


class SpaceToDepth(keras.layers.Layer):
    def __init__(self, block=2, **kw):
        super().__init__(**kw)
        self.block = block

    def call(self, x):
        return tf.nn.space_to_depth(x, self.block)

    def compute_output_shape(self, s):
        b = self.block
        return (s[0], s[1] // b, s[2] // b, s[3] * b * b)


class Upsample(keras.layers.Layer):
    """Nearest-neighbour upsampling by an integer factor as one resize (Keras'
    UpSampling2D repeats along each axis: several reshape/tile ops once exported)."""

    def __init__(self, factor=2, **kw):
        super().__init__(**kw)
        self.factor = factor

    def call(self, x):
        f = self.factor
        # without half-pixel centres (the same pixels for an integer factor), so the
        # exported Resize uses no deprecated attribute
        return tf.raw_ops.ResizeNearestNeighbor(
            images=x, size=[x.shape[1] * f, x.shape[2] * f], half_pixel_centers=False)

    def compute_output_shape(self, s):
        return (s[0], s[1] * self.factor, s[2] * self.factor, s[3])


class Frame(keras.layers.Layer):
    def __init__(self, i, **kw):
        super().__init__(**kw)
        self.i = i

    def call(self, x):
        return x[..., self.i:self.i + 1]

    def compute_output_shape(self, s):
        return (*s[:-1], 1)


class CostVolume(keras.layers.Layer):
    """[cur, prev] -> |cur(p) - prev(p + o)| for the k*k offsets o (row-major, like Advect),
    background (-1) outside the canvas."""

    def __init__(self, k, stride=1, **kw):
        super().__init__(**kw)
        self.k, self.stride = k, stride

    def call(self, pair):
        cur, prev = pair
        r, h, w, s = self.k // 2, cur.shape[1], cur.shape[2], self.stride
        # built channel-first ([N, k*k, H, W]: each shifted copy is one contiguous block)
        # from k column shifts, then k row shifts of those (2k slices, not k*k), then one
        # subtraction and one abs for all offsets, then back to NHWC
        pp = tf.pad(tf.transpose(prev, [0, 3, 1, 2]), [[0, 0], [0, 0], [r, r], [r, r]],
                    constant_values=-1.0)
        cols = tf.concat([pp[:, :, :, dx:dx + w:s] for dx in range(self.k)], 1)
        shifted = tf.concat([cols[:, :, dy:dy + h:s, :] for dy in range(self.k)], 1)
        vol = tf.abs(tf.transpose(cur, [0, 3, 1, 2])[:, :, ::s, ::s] - shifted)
        return tf.transpose(vol, [0, 2, 3, 1])

    def compute_output_shape(self, s):
        n, h, w, st = *s[0][:3], self.stride
        return (n, -(-h // st), -(-w // st), self.k * self.k)


class SadPrior(keras.layers.Layer):
    """SAD volume [.., k*k] -> logits -beta * SAD, beta learned (starts at 10): the
    constant-velocity prior (the offset that matched last frame's motion)."""

    def build(self, s):
        self.beta = self.add_weight(name="beta", shape=(),
                                    initializer=keras.initializers.Constant(10.0))

    def call(self, vol):
        return -self.beta * vol

    def compute_output_shape(self, s):
        return s


class Advect(keras.layers.Layer):
    """Dynamic advection over the k*k source offsets (row-major, like CostVolume):
    next(p) = sum_o w_o(p) f(p + o), background (-1) outside the canvas.
    The logits may be given per ``block`` x ``block`` pixels (every pixel of a block
    takes its offset).
    mode "hard": w = one-hot(arg-max) (what ships: a pixel is copied, never mixed);
    "straight_through" (training): the same forward pass, the gradient of the softmax
    mixture w = softmax(logits)."""

    def __init__(self, k, mode="hard", block=1, **kw):
        super().__init__(**kw)
        self.k, self.mode, self.block = k, mode, block

    def call(self, pair):
        logits, frame = pair
        k, r, b = self.k, self.k // 2, self.block
        h, w = frame.shape[1], frame.shape[2]
        wp = w + 2 * r
        fp = tf.pad(frame, [[0, 0], [r, r], [r, r], [0, 0]], constant_values=-1.0)
        if self.mode == "hard":     # one gather instead of k*k shifted copies
            # padded source index = the pixel's own + its offset's (a 49-entry table)
            best = tf.argmax(logits, -1, output_type=tf.int32)        # N, H / b, W / b
            offset = np.arange(k * k)
            shift = tf.gather(tf.constant((offset // k * wp + offset % k).astype(np.int32)),
                              tf.reshape(best, [-1, (h // b) * (w // b)]))
            yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
            if b > 1:       # each pixel takes its block's offset
                block = (yy // b * (w // b) + xx // b).astype(np.int32).reshape(-1)
                shift = tf.gather(shift, tf.constant(block), axis=1)
            src = shift + tf.constant((yy * wp + xx).astype(np.int32).reshape(1, -1))
            flat = tf.reshape(fp, [-1, (h + 2 * r) * wp])
            return tf.reshape(tf.gather(flat, src, batch_dims=1), [-1, h, w, 1])
        if b > 1:
            logits = tf.repeat(tf.repeat(logits, b, axis=1), b, axis=2)
        shifted = tf.concat([fp[:, dy:dy + h, dx:dx + w, :]
                             for dy in range(k) for dx in range(k)], -1)
        hard = tf.one_hot(tf.argmax(logits, -1), k * k, dtype=logits.dtype)
        soft = tf.nn.softmax(logits, -1)
        weights = soft + tf.stop_gradient(hard - soft)
        return tf.reduce_sum(weights * shifted, -1, keepdims=True)

    def compute_output_shape(self, s):
        return (*s[1][:-1], 1)
