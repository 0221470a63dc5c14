"""Upsampling: resize in every interpolation mode, bed of nails, fixed-filter interpolation,
the FCN bilinear kernel, and resize-convolution.

The thread through this file is one identity: *interpolation is zero insertion followed by a
fixed filter*. Insert ``factor - 1`` zeros between samples (bed of nails), then convolve with

- a box of ``factor`` ones            -> nearest-neighbour upsampling, exact everywhere;
- the tent ``bilinear_kernel(2f - 1)`` -> linear interpolation that keeps the original samples
  and puts midpoints between them (align-corners-style sampling: 1, 1.5, 2, 2.5, ...); for
  f = 2 this is the slides' kernel [[.25, .5, .25], [.5, 1, .5], [.25, .5, .25]];
- ``bilinear_kernel(2f)`` (f even)    -> TensorFlow/Keras bilinear resize, which samples at
  half-pixel centres (1, 1.25, 1.75, 2.25, ...); the FCN kernel, (1/4, 3/4, 3/4, 1/4) for f = 2.

The last two agree with true interpolation in the interior only: past the border the zero
insertion sees zeros where a resize clamps to the edge, so the outermost output rows/columns
(``f // 2`` of them for the half-pixel kernel, ``f - 1`` at the far end for the tent) are darker.
A transposed convolution is exactly this zero-insertion-plus-filter with a *learned* filter
(Long, Shelhamer & Darrell, "Fully Convolutional Networks for Semantic Segmentation", CVPR 2015,
§3.3), which is why FCN initializes it with ``BilinearKernel``; resize-convolution
(Odena, Dumoulin & Olah, "Deconvolution and Checkerboard Artifacts", Distill 2016) keeps the
filter fixed and learns a convolution after it.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from segcourse.layers._validation import (
    check_choice,
    check_image_batch,
    require_tensorflow,
    to_pair,
)

#: Modes ``keras.ops.image.resize`` runs on every backend.
PORTABLE_INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
#: Modes ``keras.ops.image.resize`` runs on some backends only (read in Keras 3.6 and 3.15):
#: ``area`` on TensorFlow alone, Lanczos on TensorFlow and JAX but not PyTorch.
KERAS_BACKENDS = {"area": ("tensorflow",), "lanczos3": ("tensorflow", "jax"),
                  "lanczos5": ("tensorflow", "jax")}
#: Every mode ``keras.ops.image.resize`` offers, on one backend or another.
KERAS_INTERPOLATIONS = PORTABLE_INTERPOLATIONS + tuple(KERAS_BACKENDS)
#: Modes only TensorFlow's ``tf.image.resize`` has; used through TensorFlow directly, so they
#: need the TensorFlow backend (``Resize`` refuses them on another when it is made, as it
#: refuses a mode of :data:`KERAS_BACKENDS` on a backend that lacks it).
TENSORFLOW_ONLY_INTERPOLATIONS = ("gaussian", "mitchellcubic")
INTERPOLATIONS = KERAS_INTERPOLATIONS + TENSORFLOW_ONLY_INTERPOLATIONS

#: Fixed filters for :func:`interpolate_by_zero_insertion`.
ZERO_INSERTION_FILTERS = ("nearest", "bilinear", "align_corners")

register = keras.saving.register_keras_serializable(package="segcourse")


def resize_images(images, size, interpolation="bilinear", antialias=False):
    """Resize a batch ``(B, H, W, C)`` to ``size = (h, w)`` in any of :data:`INTERPOLATIONS`.

    The portable ``keras.ops.image.resize`` is used when it can be: the mode is one of
    :data:`KERAS_INTERPOLATIONS` and the size is known when the graph is built. Otherwise
    (``gaussian``, ``mitchellcubic``, or a size only known at run time, e.g. a model built on
    ``keras.Input((None, None, C))``) TensorFlow's ``tf.image.resize`` does it, which needs the
    TensorFlow backend; on another a ``ValueError`` says what to use instead (JAX knows every
    size when it traces, so there only the two modes lead to it). The result has the input's
    dtype.
    """
    check_choice(interpolation, INTERPOLATIONS, "interpolation", "resize_images")
    static_size = all(isinstance(s, (int, np.integer)) for s in size)
    if static_size and _keras_runs(interpolation):
        size = tuple(int(s) for s in size)
        out = ops.image.resize(images, size, interpolation=interpolation, antialias=antialias)
        return ops.cast(out, images.dtype)
    # TensorFlow-only: keras.ops.image.resize has no gaussian or mitchellcubic kernel, and it
    # wants the size as Python integers, which TensorFlow cannot give for a size unknown until
    # run time (a graph's shape holds None there; tf.image.resize takes the size as a tensor).
    if not _keras_runs(interpolation):
        _require_tensorflow("resize_images", f"interpolation={interpolation!r}")
    else:
        _require_tensorflow("resize_images", f"a size given as a tensor ({size})",
                            "Give the size as Python integers, e.g. tuple(x.shape[1:3])")
    import tensorflow as tf

    out = tf.image.resize(images, size, method=interpolation, antialias=antialias)
    return ops.cast(out, images.dtype)


def _keras_runs(interpolation) -> bool:
    """Whether ``keras.ops.image.resize`` runs ``interpolation`` on this Keras backend."""
    return interpolation in KERAS_INTERPOLATIONS and (
        interpolation not in KERAS_BACKENDS
        or keras.backend.backend() in KERAS_BACKENDS[interpolation])


def _require_tensorflow(owner, reason, fix=None):
    """Refuse what only TensorFlow's ``tf.image.resize`` can do on another backend."""
    require_tensorflow(owner, f"{reason} (tf.image.resize)", fix or (
        f"Use one of {PORTABLE_INTERPOLATIONS}, which run on every backend ('bicubic' is the "
        "nearest smooth one)"))


def zero_insertion(x, factor):
    """Bed of nails: put each sample at the top-left of a ``factor`` block of zeros.

    ``[[1, 2], [3, 4]]`` with factor 2 -> ``[[1,0,2,0],[0,0,0,0],[3,0,4,0],[0,0,0,0]]``.
    Works on ``(B, H, W, C)`` with sizes unknown until run time.
    """
    fh, fw = to_pair(factor, "factor", "zero_insertion")
    batch, height, width, channels = ops.shape(x)
    x = ops.reshape(x, (batch, height, 1, width, 1, channels))
    x = ops.pad(x, [(0, 0), (0, 0), (0, fh - 1), (0, 0), (0, fw - 1), (0, 0)])
    return ops.reshape(x, (batch, height * fh, width * fw, channels))


def bilinear_kernel_1d(size):
    """The 1-D bilinear (tent) filter of ``size`` taps, as in FCN's ``upsample_filt``.

    ``size = 2f`` gives the kernel of a factor-``f`` bilinear upsampler (``(1/4, 3/4, 3/4, 1/4)``
    for f = 2); an odd ``size = 2f - 1`` gives the tent that keeps the samples
    (``(1/2, 1, 1/2)`` for f = 2).
    """
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"bilinear_kernel_1d: size must be a positive integer; got {size!r}.")
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    return 1.0 - np.abs(np.arange(size) - center) / factor


def bilinear_kernel(size):
    """The 2-D bilinear filter ``outer(k, k)`` of ``bilinear_kernel_1d(size)``.

    ``bilinear_kernel(3)`` is the slides' ``[[.25, .5, .25], [.5, 1, .5], [.25, .5, .25]]``.
    """
    k = bilinear_kernel_1d(size)
    return np.outer(k, k)


def zero_insertion_filter(method, factor):
    """The fixed 1-D filter and its offset that turn zero insertion into ``method``.

    Returns ``(taps, offset)`` such that ``out[j] = sum_i x[i] * taps[j - factor * i + offset]``.
    """
    check_choice(method, ZERO_INSERTION_FILTERS, "method", "zero_insertion_filter")
    if method == "nearest":
        return np.ones(factor), 0
    if method == "align_corners":
        return bilinear_kernel_1d(2 * factor - 1), factor - 1
    # Half-pixel bilinear: weight 1 - |d|/f at the distance d between centres, which is the
    # tent of 2f - (f mod 2) taps placed floor(f/2) taps before the sample.
    return bilinear_kernel_1d(2 * factor - factor % 2), factor // 2


def interpolate_by_zero_insertion(x, factor=2, method="bilinear"):
    """Upsample ``(B, H, W, C)`` as zero insertion followed by a fixed depthwise filter.

    ``method="nearest"`` equals nearest resize exactly. ``"bilinear"`` equals
    ``resize_images(..., "bilinear")`` away from the border; ``"align_corners"`` equals
    align-corners linear interpolation (``tf.compat.v1.image.resize(align_corners=True)`` to
    size ``f (n - 1) + 1``) on its first ``f (n - 1) + 1`` rows and columns. The rest is the
    border, where the filter meets the zero padding (see the module docstring).
    """
    fh, fw = to_pair(factor, "factor", "interpolate_by_zero_insertion")
    taps_h, offset_h = zero_insertion_filter(method, fh)
    taps_w, offset_w = zero_insertion_filter(method, fw)
    channels = x.shape[-1]
    kernel = np.outer(taps_h, taps_w)[::-1, ::-1]  # convolution = correlation with a flip
    kernel = np.tile(kernel[:, :, None, None], (1, 1, channels, 1)).astype("float32")
    z = zero_insertion(x, (fh, fw))
    pads = [(len(taps) - 1 - off, off) for taps, off in ((taps_h, offset_h), (taps_w, offset_w))]
    z = ops.pad(z, [(0, 0), pads[0], pads[1], (0, 0)])
    return ops.depthwise_conv(z, ops.cast(kernel, z.dtype), strides=1, padding="valid")


@register
class Resize(keras.layers.Layer):
    """Resize feature maps by an integer ``scale``, to a fixed ``size``, or to a reference.

    Exactly one of ``scale`` and ``size``; with neither, call the layer on ``[x, reference]``
    to resize ``x`` to the reference's height and width (how FCN, PSPNet and DeepLab bring a
    coarse map back to the input size). ``interpolation`` is any of :data:`INTERPOLATIONS`:
    the six of ``keras.ops.image.resize`` run on any backend; ``gaussian`` and
    ``mitchellcubic`` use ``tf.image.resize`` (TensorFlow backend only: on another the layer is
    refused when it is made). Sampling is at half-pixel centres, as in ``tf.image.resize``.
    Channels last.
    """

    def __init__(self, scale=None, size=None, interpolation="bilinear", antialias=False, **kwargs):
        super().__init__(**kwargs)
        if scale is not None and size is not None:
            raise ValueError(
                f"Resize: give `scale` or `size`, not both (got scale={scale!r}, size={size!r})."
            )
        self.scale = None if scale is None else to_pair(scale, "scale", "Resize")
        self.size = None if size is None else to_pair(size, "size", "Resize")
        check_choice(interpolation, INTERPOLATIONS, "interpolation", "Resize")
        if not _keras_runs(interpolation):
            _require_tensorflow("Resize", f"interpolation={interpolation!r}")  # now, not later
        self.interpolation = interpolation
        self.antialias = bool(antialias)

    def _split(self, inputs):
        if isinstance(inputs, (list, tuple)):
            if len(inputs) != 2 or self.scale is not None or self.size is not None:
                raise ValueError(
                    "Resize: call it on [x, reference] only when neither `scale` nor `size` is "
                    f"set; got {len(inputs)} inputs with scale={self.scale}, size={self.size}."
                )
            return inputs
        if self.scale is None and self.size is None:
            raise ValueError(
                "Resize: without `scale` or `size`, call the layer on [x, reference] to resize "
                "x to the reference's height and width."
            )
        return inputs, None

    def _target(self, shape, reference_shape):
        if reference_shape is not None:
            return reference_shape[1], reference_shape[2]
        if self.size is not None:
            return self.size
        scaled = zip(shape[1:3], self.scale, strict=True)
        return tuple(None if s is None else s * f for s, f in scaled)

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple)):
            shape, reference_shape = input_shape
        else:
            shape, reference_shape = input_shape, None
        return (shape[0], *self._target(shape, reference_shape), shape[3])

    def build(self, input_shape):
        if isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple)):
            input_shape = input_shape[0]
        check_image_batch(input_shape, "Resize")

    def call(self, inputs):
        x, reference = self._split(inputs)
        shape = ops.shape(x)
        reference_shape = None if reference is None else ops.shape(reference)
        return resize_images(x, self._target(shape, reference_shape), self.interpolation,
                             self.antialias)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "size": self.size,
                "interpolation": self.interpolation, "antialias": self.antialias}


@register
class BedOfNails(keras.layers.Layer):
    """Bed-of-nails upsampling: each value at the top-left of a ``factor`` block of zeros.

    No weights, no interpolation: the "unpooling" of Zeiler & Fergus with the position fixed
    (compare :class:`segcourse.layers.MaxUnpooling2D`, which remembers where the maximum was).
    """

    def __init__(self, factor=2, **kwargs):
        super().__init__(**kwargs)
        self.factor = to_pair(factor, "factor", "BedOfNails")

    def build(self, input_shape):
        check_image_batch(input_shape, "BedOfNails")

    def call(self, x):
        return zero_insertion(x, self.factor)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        fh, fw = self.factor
        return (b, None if h is None else h * fh, None if w is None else w * fw, c)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@register
class BilinearKernel(keras.initializers.Initializer):
    """Initializer for ``Conv2DTranspose`` that makes it a bilinear upsampler (FCN §3.3).

    Use kernel size ``2 * factor`` and ``strides=factor``, ``padding="same"``; each channel is
    upsampled on its own (the kernel, stored ``(kh, kw, out, in)``, is diagonal in the channels),
    so input and output channels must match, as in FCN's score upsampling. For even factors
    the result equals ``tf.image.resize(..., "bilinear")`` away from the border; the outermost
    ``factor // 2`` rows and columns differ because the transposed convolution sees zeros past
    the edge where a resize repeats the edge.
    """

    def __call__(self, shape, dtype=None):
        if len(shape) != 4 or shape[0] != shape[1] or shape[2] != shape[3]:
            raise ValueError(
                "BilinearKernel fills a square Conv2DTranspose kernel (k, k, channels, channels) "
                f"that upsamples each channel on its own; got kernel shape {tuple(shape)}. Use "
                "kernel_size=2*factor and as many filters as input channels."
            )
        size, channels = shape[0], shape[2]
        kernel = np.zeros(shape, dtype="float32")
        kernel[:, :, np.arange(channels), np.arange(channels)] = bilinear_kernel(size)[:, :, None]
        return ops.convert_to_tensor(kernel, dtype=dtype or "float32")

    def get_config(self):
        return {}


@register
class ResizeConv(keras.layers.Layer):
    """Resize-convolution: fixed interpolation, then a learned ``kernel_size`` convolution.

    Odena, Dumoulin & Olah (2016) propose it as the checkerboard-free replacement for a
    transposed convolution: every output pixel receives the same number of filter taps, so an
    uneven overlap cannot arise. Nearest-neighbour resize is their recommended choice.
    """

    def __init__(self, filters, factor=2, kernel_size=3, interpolation="nearest",
                 activation=None, use_bias=True, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.factor = to_pair(factor, "factor", "ResizeConv")
        self.kernel_size = to_pair(kernel_size, "kernel_size", "ResizeConv")
        self.interpolation = interpolation
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.resize = Resize(scale=self.factor, interpolation=interpolation, name="resize")
        self.conv = keras.layers.Conv2D(
            filters, self.kernel_size, padding="same", activation=activation, use_bias=use_bias,
            kernel_initializer=self.kernel_initializer, name="conv")

    def build(self, input_shape):
        check_image_batch(input_shape, "ResizeConv")
        self.resize.build(input_shape)
        self.conv.build(self.resize.compute_output_shape(input_shape))

    def call(self, x):
        return self.conv(self.resize(x))

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(self.resize.compute_output_shape(input_shape))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "factor": self.factor,
                "kernel_size": self.kernel_size, "interpolation": self.interpolation,
                "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}
