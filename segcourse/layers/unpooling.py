"""Max pooling that remembers where each maximum was, and max unpooling that puts it back.

SegNet (Badrinarayanan, Kendall & Cipolla, "SegNet: A Deep Convolutional Encoder-Decoder
Architecture for Image Segmentation", TPAMI 2017, §3 and Fig. 3) stores the argmax of every
2×2 pooling window in the encoder and lets the decoder place each value back at that position,
zeros elsewhere: sharp boundaries at the cost of a few bits per window.

TensorFlow has ``tf.nn.max_pool_with_argmax``, but it has no portable ``keras.ops`` form and no
XLA kernel, so it breaks under Keras' default ``jit_compile="auto"``. These layers instead cut the
input into non-overlapping windows with reshapes and pick the maximum with ``keras.ops``, which
every backend and XLA compile. The index they return is the position *inside the window*
(row-major, ``0 .. ph * pw - 1``), which is all unpooling needs; :func:`flat_indices` converts
it to TensorFlow's flattened ``(y * W + x) * C + c`` for comparison. Ties go to the first
position in row-major order, always.

Indices only mean something with the pool size that made them, so :class:`MaxUnpooling2D` checks
what it can: integer indices and a pool size that fits the pooling (when it is called on a
``MaxPoolingWithArgmax2D``'s output, and against the reference's size) when the model is built,
and the index range when called eagerly. Inside a compiled graph the range is not checked: an
index outside its window would put its value nowhere.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from segcourse import graph
from segcourse.layers._validation import check_choice, check_image_batch, concrete, to_pair

register = keras.saving.register_keras_serializable(package="segcourse")


def _windows(x, pool):
    """``(B, H, W, C)`` with H, W multiples of the pool -> ``(B, H/ph, W/pw, C, ph * pw)``."""
    ph, pw = pool
    batch, height, width, channels = ops.shape(x)
    x = ops.reshape(x, (batch, height // ph, ph, width // pw, pw, channels))
    x = ops.transpose(x, (0, 1, 3, 5, 2, 4))
    return ops.reshape(x, (batch, height // ph, width // pw, channels, ph * pw))


def _pooled_size(size, pool, padding):
    if size is None:
        return None
    return -(-size // pool) if padding == "same" else size // pool


def _check_integer_indices(dtype, owner):
    dtype = keras.backend.standardize_dtype(dtype)
    if not dtype.startswith(("int", "uint")):
        raise ValueError(
            f"{owner}: indices must be integers, the window positions MaxPoolingWithArgmax2D "
            f"returns (int32); got dtype {dtype}. A float index would be truncated to another "
            "position: pass the pooling layer's second output unchanged.")


def _check_index_range(indices, pool_size, owner):
    """Window positions must lie in ``0 .. ph * pw - 1`` (NumPy values)."""
    ph, pw = pool_size
    bad = (indices < 0) | (indices >= ph * pw)
    if bad.any():
        values, count = np.unique(indices[bad]), int(bad.sum())
        raise ValueError(
            f"{owner}: indices are positions inside a {ph}x{pw} window, 0..{ph * pw - 1}; got "
            f"{values[:8].tolist()} in {count} place{'' if count == 1 else 's'}, which would put "
            "their values nowhere. Were they made by a pooling with another pool_size (a 3x3 "
            "window gives 0..8)? Give the pooling and the unpooling the same pool_size.")


def _check_pooled_size(pooled, reference, pool_size, owner, source="the reference",
                       fix="Give the unpooling the pool_size of the MaxPoolingWithArgmax2D that "
                           "made the indices, and that pooling's input as the reference."):
    """The pooled height and width must be what pooling ``source`` (its input) gives."""
    for axis, name in ((1, "height"), (2, "width")):
        size, ref, pool = pooled[axis], reference[axis], pool_size[axis - 1]
        if not (isinstance(size, int | np.integer) and isinstance(ref, int | np.integer)):
            continue  # unknown until run
        valid, same = ref // pool, -(-ref // pool)
        if size not in (valid, same):
            expected = (f"{valid}" if valid == same
                        else f"{valid} (padding 'valid') or {same} (padding 'same')")
            raise ValueError(
                f"{owner}: {source}'s {name} {ref} pools with a window of {pool} to "
                f"{expected}, but the pooled {name} is {size}. " + fix)


@register
class MaxPoolingWithArgmax2D(keras.layers.Layer):
    """Max pooling (stride = pool size) that returns ``[pooled, indices]``.

    ``padding="valid"`` drops rows/columns that do not fill a window (as ``MaxPooling2D``);
    ``"same"`` pads them with -inf so they form a window of their own. Gradients flow to the
    chosen position of each window, as in ``MaxPooling2D``.
    """

    def __init__(self, pool_size=2, padding="valid", **kwargs):
        super().__init__(**kwargs)
        self.pool_size = to_pair(pool_size, "pool_size", "MaxPoolingWithArgmax2D")
        check_choice(padding, ("valid", "same"), "padding", "MaxPoolingWithArgmax2D")
        self.padding = padding

    def build(self, input_shape):
        check_image_batch(input_shape, "MaxPoolingWithArgmax2D")

    def call(self, x):
        ph, pw = self.pool_size
        _, height, width, _ = ops.shape(x)
        if self.padding == "same":
            fill = ops.cast(float("-inf"), x.dtype)
            pads = [(0, 0), (0, (-height) % ph), (0, (-width) % pw), (0, 0)]
            x = ops.pad(x, pads, constant_values=fill)
        else:
            x = x[:, : (height // ph) * ph, : (width // pw) * pw, :]
        windows = _windows(x, self.pool_size)
        best = ops.max(windows, axis=-1, keepdims=True)
        positions = ops.arange(ph * pw, dtype="int32")
        # The lowest position holding the maximum: deterministic, unlike an argmax on ties.
        indices = ops.min(ops.where(windows == best, positions, ph * pw), axis=-1)
        pooled = ops.take_along_axis(windows, indices[..., None], axis=-1)[..., 0]
        return [pooled, indices]

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        shape = (b, _pooled_size(h, self.pool_size[0], self.padding),
                 _pooled_size(w, self.pool_size[1], self.padding), c)
        return [shape, shape]

    def compute_output_spec(self, x):
        pooled, indices = self.compute_output_shape(x.shape)
        return [keras.KerasTensor(pooled, dtype=x.dtype), keras.KerasTensor(indices, "int32")]

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "padding": self.padding}


@register
class MaxUnpooling2D(keras.layers.Layer):
    """Place each value at the position its ``indices`` recorded, zeros elsewhere (SegNet).

    Call on ``[values, indices]`` to get ``(B, h * ph, w * pw, C)``, or on
    ``[values, indices, reference]`` to get the reference's height and width (cropping the
    padding a ``"same"`` pooling added, or restoring with zeros what a ``"valid"`` one dropped).

    ``indices`` are the integer window positions of a :class:`MaxPoolingWithArgmax2D` with the
    same ``pool_size``, and the reference is that pooling's input. Refused when the model is
    built: float indices, indices straight from a pooling with another ``pool_size``, and a
    reference whose size does not pool to the values' size. Refused in eager calls: an index
    outside ``0 .. ph * pw - 1``. Inside a compiled graph the range is the caller's contract.
    """

    def __init__(self, pool_size=2, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = to_pair(pool_size, "pool_size", "MaxUnpooling2D")

    @property
    def _owner(self):
        return f"MaxUnpooling2D '{self.name}' (pool_size={self.pool_size})"

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) not in (2, 3):
            raise ValueError(
                "MaxUnpooling2D is called on [values, indices] or [values, indices, reference] "
                f"(the outputs of MaxPoolingWithArgmax2D); got input shape {input_shape}."
            )
        check_image_batch(input_shape[0], "MaxUnpooling2D")
        if tuple(input_shape[0]) != tuple(input_shape[1]):
            raise ValueError(
                f"MaxUnpooling2D: values {tuple(input_shape[0])} and indices "
                f"{tuple(input_shape[1])} must have the same shape; pass both outputs of the "
                "same MaxPoolingWithArgmax2D."
            )
        if len(input_shape) == 3:
            if len(input_shape[2]) != 4:
                raise ValueError(
                    f"{self._owner}: the reference is the pooling's input, (batch, height, "
                    f"width, channels); got shape {tuple(input_shape[2])}.")
            _check_pooled_size(input_shape[0], input_shape[2], self.pool_size, self._owner)

    def compute_output_spec(self, inputs):
        """Symbolic call (a functional model being built): check the indices' dtype and, when
        they come straight from a pooling layer, that layer's pool size."""
        _check_integer_indices(inputs[1].dtype, self._owner)
        made_by = graph.producer(inputs[1])
        source = made_by.operation if made_by else None
        if isinstance(source, MaxPoolingWithArgmax2D) and source.pool_size != self.pool_size:
            raise ValueError(
                f"{self._owner}: its indices come from {source.name!r}, a pooling with "
                f"pool_size={source.pool_size}; window positions only mean something with the "
                f"window that made them. Use MaxUnpooling2D({source.pool_size}) here, or the "
                "same pool_size in both layers.")
        return super().compute_output_spec(inputs)

    def call(self, inputs):
        values, indices = inputs[0], inputs[1]
        _check_integer_indices(indices.dtype, self._owner)
        found = concrete(indices)
        if found is not None:  # eager: the values are here, look at them
            _check_index_range(found, self.pool_size, self._owner)
        ph, pw = self.pool_size
        batch, height, width, channels = ops.shape(values)
        one_hot = ops.one_hot(ops.cast(indices, "int32"), ph * pw, dtype=values.dtype)
        out = ops.reshape(values[..., None] * one_hot, (batch, height, width, channels, ph, pw))
        out = ops.transpose(out, (0, 1, 4, 2, 5, 3))
        out = ops.reshape(out, (batch, height * ph, width * pw, channels))
        if len(inputs) == 3:
            reference_shape = ops.shape(inputs[2])
            _check_pooled_size(ops.shape(values), reference_shape, self.pool_size, self._owner)
            _, ref_height, ref_width, _ = reference_shape
            out = out[:, :ref_height, :ref_width, :]
            out = ops.pad(out, [(0, 0), (0, ops.maximum(ref_height - height * ph, 0)),
                                (0, ops.maximum(ref_width - width * pw, 0)), (0, 0)])
        return out

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape[0]
        if len(input_shape) == 3:
            return (b, input_shape[2][1], input_shape[2][2], c)
        ph, pw = self.pool_size
        return (b, None if h is None else h * ph, None if w is None else w * pw, c)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size}


def flat_indices(window_indices, input_shape, pool_size=2):
    """Window positions -> TensorFlow's ``max_pool_with_argmax`` indices ``(y * W + x) * C + c``.

    NumPy in, NumPy out; ``input_shape`` is the pooled layer's input ``(B, H, W, C)`` and
    ``pool_size`` the pooling's. Float indices, positions outside the window and shapes that do
    not fit ``input_shape`` with that ``pool_size`` are refused with a ``ValueError``.
    """
    owner = "flat_indices"
    ph, pw = to_pair(pool_size, "pool_size", owner)
    window_indices = np.asarray(window_indices)
    _check_integer_indices(window_indices.dtype, owner)
    input_shape = tuple(input_shape)
    if window_indices.ndim != 4 or len(input_shape) != 4:
        raise ValueError(
            f"{owner}: window_indices {window_indices.shape} and input_shape {input_shape} must "
            "both be (batch, height, width, channels): the pooling's indices and its input's "
            "shape.")
    _check_index_range(window_indices, (ph, pw), owner)
    _check_pooled_size(window_indices.shape, input_shape, (ph, pw),
                       f"{owner} (pool_size={(ph, pw)})", source="input_shape",
                       fix="Give the pool_size the pooling used, and the shape of its input.")
    for axis, name in ((0, "batch"), (3, "channels")):
        if window_indices.shape[axis] != input_shape[axis]:
            raise ValueError(
                f"{owner}: window_indices have {window_indices.shape[axis]} {name} but "
                f"input_shape {input_shape} has {input_shape[axis]}; give the shape of the "
                "input that was pooled.")
    _, _, width, channels = input_shape
    _, rows, cols, chans = np.indices(window_indices.shape)
    y = rows * ph + window_indices // pw
    x = cols * pw + window_indices % pw
    return (y * width + x) * channels + chans
