"""Keras layers of the image GAN (imports TensorFlow: import it from functions that build
models, never at the top of a module the CLI or the runtime may import)."""
from __future__ import annotations

import math

import keras
import tensorflow as tf

from trainer.image_model import N_CLASSES, PIXEL_NORM_EPS


class _SpectralNorm(keras.layers.Layer):
    """W / sigma(W), sigma from one power iteration per training call (Miyato et al.);
    the gradient flows through sigma with u, v held constant. Inference uses the stored u."""

    def _init_sn(self, kernel_shape, units):
        self.kernel = self.add_weight(name="kernel", shape=kernel_shape,
                                      initializer="glorot_uniform")
        self.u = self.add_weight(name="sn_u", shape=(1, units), trainable=False,
                                 initializer=keras.initializers.RandomNormal(seed=1))

    def _w(self, training):
        w = tf.reshape(self.kernel, (-1, self.kernel.shape[-1]))
        u = self.u
        v = tf.math.l2_normalize(tf.matmul(u, w, transpose_b=True))
        u_new = tf.math.l2_normalize(tf.matmul(v, w))
        u_new, v = tf.stop_gradient(u_new), tf.stop_gradient(v)
        if training:
            self.u.assign(u_new)
        sigma = tf.reduce_sum(tf.matmul(v, w) * u_new)
        return self.kernel / sigma


class SNConv2D(_SpectralNorm):
    def __init__(self, filters, kernel_size, strides=1, **kw):
        super().__init__(**kw)
        self.filters, self.k, self.strides = filters, kernel_size, strides

    def build(self, input_shape):
        self._init_sn((self.k, self.k, int(input_shape[-1]), self.filters), self.filters)
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")

    def call(self, x, training=False):
        y = tf.nn.conv2d(x, self._w(training), self.strides, "SAME")
        return y + self.bias

    def compute_output_shape(self, s):
        return (s[0], math.ceil(s[1] / self.strides), math.ceil(s[2] / self.strides),
                self.filters)


class SNDense(_SpectralNorm):
    def __init__(self, units, use_bias=True, **kw):
        super().__init__(**kw)
        self.units, self.use_bias = units, use_bias

    def build(self, input_shape):
        self._init_sn((int(input_shape[-1]), self.units), self.units)
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")

    def call(self, x, training=False):
        y = tf.matmul(x, self._w(training))
        return y + self.bias if self.use_bias else y

    def compute_output_shape(self, s):
        return (s[0], self.units)


class PixelNorm(keras.layers.Layer):
    """x / sqrt(mean over channels of x^2 + eps): per sample, no batch statistics."""

    def call(self, x):
        return x * tf.math.rsqrt(tf.reduce_mean(tf.square(x), axis=-1, keepdims=True)
                                + PIXEL_NORM_EPS)


class OneHot(keras.layers.Layer):
    """int64 class ids [N] -> float32 one-hot [N, 10]."""

    def call(self, y):
        return tf.one_hot(tf.cast(y, tf.int32), N_CLASSES, dtype=tf.float32)

    def compute_output_shape(self, s):
        return (s[0], N_CLASSES)


class DepthToSpace(keras.layers.Layer):
    """[N, H, W, 4] -> [N, 2H, 2W, 1] (DCR order): channel 2a + b is pixel (2i+a, 2j+b)."""

    def call(self, x):
        return tf.nn.depth_to_space(x, 2)

    def compute_output_shape(self, s):
        return (s[0], s[1] * 2, s[2] * 2, s[3] // 4)


class RowDot(keras.layers.Layer):
    def call(self, pair):
        a, b = pair
        return tf.reduce_sum(a * b, axis=-1, keepdims=True)

    def compute_output_shape(self, s):
        return (s[0][0], 1)
