"""Convolution arithmetic: output sizes, and convolution written as a matrix.

Output sizes follow Dumoulin & Visin, "A guide to convolution arithmetic for deep learning"
(2016), with Keras' two padding words: 'valid' pads nothing; 'same' pads ``max(k' - s, 0)`` in
all when ``s`` divides the input (in general enough to give ``ceil(n / s)`` outputs), the smaller
half first, where ``k' = d (k - 1) + 1`` is the dilated kernel's span.

A convolution is linear in its input, so it is a matrix ``X`` with ``y = X a``; the transposed
convolution is ``Xᵀ`` — the same weights, run backwards (it is the gradient of the convolution
with respect to its input). :func:`conv_matrix` builds ``X`` for 1-D and 2-D inputs and
:func:`symbolic_convolution` writes its rows out with letters, as on the slides.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np

Padding = str | int | tuple[int, int]


def span(kernel_size: int, dilation: int = 1) -> int:
    """Input pixels covered by a dilated kernel: ``d (k - 1) + 1``."""
    return dilation * (kernel_size - 1) + 1


def same_padding(length: int, kernel_size: int, stride: int = 1,
                 dilation: int = 1) -> tuple[int, int]:
    """(before, after) padding of Keras/TensorFlow 'same': ``ceil(n / s)`` outputs."""
    total = max((math.ceil(length / stride) - 1) * stride + span(kernel_size, dilation) - length, 0)
    return total // 2, total - total // 2


def resolve_padding(padding: Padding, length: int, kernel_size: int, stride: int = 1,
                    dilation: int = 1) -> tuple[int, int]:
    """Turn 'valid', 'same', an int or a (before, after) pair into (before, after)."""
    if padding == "valid":
        return 0, 0
    if padding == "same":
        return same_padding(length, kernel_size, stride, dilation)
    if isinstance(padding, int) and padding >= 0:
        return padding, padding
    if (isinstance(padding, tuple | list) and len(padding) == 2
            and all(isinstance(p, int) and p >= 0 for p in padding)):
        return int(padding[0]), int(padding[1])
    raise ValueError(f"padding must be 'valid', 'same', a non-negative int or a (before, after) "
                     f"pair; got {padding!r}.")


def conv_output_length(length: int, kernel_size: int, stride: int = 1, padding: Padding = "valid",
                       dilation: int = 1) -> int:
    """``floor((n + p_before + p_after - k') / s) + 1`` outputs (0 if the kernel does not fit)."""
    before, after = resolve_padding(padding, length, kernel_size, stride, dilation)
    room = length + before + after - span(kernel_size, dilation)
    return room // stride + 1 if room >= 0 else 0


def pool_output_length(length: int, pool_size: int, stride: int | None = None,
                       padding: Padding = "valid") -> int:
    """Pooling is a convolution's window without weights; the stride defaults to the pool size."""
    return conv_output_length(length, pool_size, pool_size if stride is None else stride, padding)


def transposed_output_length(length: int, kernel_size: int, stride: int = 1,
                             padding: str = "valid", output_padding: int | None = None,
                             dilation: int = 1) -> int:
    """Output length of a Keras ``ConvNDTranspose``.

    Without ``output_padding``: 'valid' gives ``(n - 1) s + max(k', s)`` and 'same' gives
    ``n s`` — the lengths whose forward convolution with the same settings has ``n`` outputs.
    With it: ``(n - 1) s + k' - 2 p + output_padding``, where ``p = k' // 2`` for 'same' and 0
    for 'valid' (``output_padding`` picks one of the ``s`` lengths that all map back to ``n``).
    """
    k = span(kernel_size, dilation)
    if padding not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same' for a Keras transposed convolution; "
                         f"got {padding!r}.")
    if output_padding is None:
        return (length - 1) * stride + max(k, stride) if padding == "valid" else length * stride
    pad = k // 2 if padding == "same" else 0
    return (length - 1) * stride + k - 2 * pad + output_padding


@dataclass(frozen=True)
class ShapeCheck:
    """What the formulas predict for a layer and what Keras computed."""

    layer: str
    input_shape: tuple
    expected: tuple
    actual: tuple

    @property
    def ok(self) -> bool:
        """Whether Keras computed the shape the formulas predict."""
        return self.expected == self.actual

    def __str__(self) -> str:
        verdict = "ok" if self.ok else "MISMATCH"
        return (f"{self.layer}: {self.input_shape} -> {self.actual} "
                f"(formula {self.expected}): {verdict}")


def _per_axis(value, rank: int) -> tuple:
    return tuple(value) if isinstance(value, Sequence) else (value,) * rank


def expected_output_shape(layer: keras.layers.Layer, input_shape: Sequence[int]) -> tuple:
    """The output shape the formulas give for a conv / transposed conv / pooling layer.

    ``input_shape`` includes the batch axis, channels last: ``(batch, *spatial, channels)``.
    """
    input_shape = tuple(input_shape)
    spatial = input_shape[1:-1]
    rank = len(spatial)
    config = layer.get_config()
    if config.get("data_format", "channels_last") != "channels_last":
        raise ValueError(f"layer {layer.name!r}: only channels_last is handled.")
    if "kernel_size" not in config and "pool_size" not in config:
        raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) is not a convolution or "
                         "pooling layer; expected_output_shape knows those only.")
    padding = config["padding"]
    strides = _per_axis(config["strides"], rank)
    transposed = isinstance(layer, keras.layers.Conv1DTranspose | keras.layers.Conv2DTranspose
                            | keras.layers.Conv3DTranspose)
    if "pool_size" in config:
        sizes = [pool_output_length(n, p, s, padding) for n, p, s in
                 zip(spatial, _per_axis(config["pool_size"], rank), strides, strict=True)]
        return (input_shape[0], *sizes, input_shape[-1])
    kernels = _per_axis(config["kernel_size"], rank)
    dilations = _per_axis(config.get("dilation_rate", 1), rank)
    if transposed:
        # the layer's attribute, not its config: before 3.11 Keras took output_padding as an
        # undocumented argument that it used but left out of get_config
        output_padding = getattr(layer, "output_padding", None)
        output_padding = (None,) * rank if output_padding is None else _per_axis(output_padding,
                                                                                  rank)
        sizes = [transposed_output_length(n, k, s, padding, op, d) for n, k, s, op, d in
                 zip(spatial, kernels, strides, output_padding, dilations, strict=True)]
    else:
        sizes = [conv_output_length(n, k, s, padding, d) for n, k, s, d in
                 zip(spatial, kernels, strides, dilations, strict=True)]
    if "filters" in config:
        channels = config["filters"]
    else:  # DepthwiseConv
        channels = input_shape[-1] * config["depth_multiplier"]
    return (input_shape[0], *sizes, channels)


def check_output_shape(layer: keras.layers.Layer, input_shape: Sequence[int]) -> ShapeCheck:
    """Run ``layer`` on zeros of ``input_shape`` and compare its output with the formula."""
    expected = expected_output_shape(layer, input_shape)
    actual = tuple(keras.ops.shape(layer(np.zeros(input_shape, "float32"))))
    return ShapeCheck(layer.name, tuple(input_shape), expected, tuple(int(a) for a in actual))


# --------------------------------------------------------------------------------------------
# Convolution as a matrix


def _taps_1d(length: int, kernel_size: int, stride: int, padding: Padding, dilation: int,
             include_padding: bool) -> np.ndarray:
    """``taps[o, i]`` = the kernel tap joining output ``o`` to input ``i``, or -1.

    With ``include_padding`` the columns are the padded input (the slides' picture); without, the
    padding columns (always multiplied by zero) are dropped, so ``y = X a`` on the input itself.
    """
    before, after = resolve_padding(padding, length, kernel_size, stride, dilation)
    outputs = conv_output_length(length, kernel_size, stride, (before, after), dilation)
    taps = np.full((outputs, length + before + after), -1, dtype=int)
    for o in range(outputs):
        for t in range(kernel_size):
            taps[o, o * stride + t * dilation] = t
    return taps if include_padding else taps[:, before:before + length]


def conv_taps(kernel_shape: int | Sequence[int], input_shape: int | Sequence[int], stride=1,
              padding: Padding | Sequence[Padding] = "valid", dilation=1,
              include_padding: bool = False) -> np.ndarray:
    """Which kernel tap links each output to each input (−1: none), flattened row-major.

    1-D: an integer array (outputs, inputs). 2-D: (outputs, inputs, 2) holding (row, column)
    taps, −1 in both where unlinked.
    """
    kernel_shape = (kernel_shape,) if isinstance(kernel_shape, int) else tuple(kernel_shape)
    rank = len(kernel_shape)
    input_shape = _per_axis(input_shape, rank)
    if len(input_shape) != rank or rank not in (1, 2):
        raise ValueError(f"conv_taps handles 1-D and 2-D kernels with inputs of the same rank; "
                         f"got kernel {kernel_shape} and input {input_shape}.")
    # 2-D takes one spec for both axes or a pair of specs
    one_spec = rank == 1 or isinstance(padding, str | int)
    paddings = [padding] * rank if one_spec else list(padding)
    axes = [_taps_1d(n, k, s, p, d, include_padding) for n, k, s, p, d in
            zip(input_shape, kernel_shape, _per_axis(stride, rank), paddings,
                _per_axis(dilation, rank), strict=True)]
    if rank == 1:
        return axes[0]
    rows, cols = axes  # (out_rows, in_rows), (out_cols, in_cols)
    row_tap = rows[:, None, :, None]
    col_tap = cols[None, :, None, :]
    linked = (row_tap >= 0) & (col_tap >= 0)  # (out_r, out_c, in_r, in_c)
    shape = (rows.shape[0] * cols.shape[0], rows.shape[1] * cols.shape[1])
    row_tap = np.where(linked, row_tap, -1).reshape(shape)
    col_tap = np.where(linked, col_tap, -1).reshape(shape)
    return np.stack([row_tap, col_tap], axis=-1)


def conv_matrix(kernel, input_shape: int | Sequence[int], stride=1,
                padding: Padding | Sequence[Padding] = "valid", dilation=1,
                include_padding: bool = False) -> np.ndarray:
    """The matrix ``X`` of a single-channel 1-D or 2-D convolution (cross-correlation, as in
    Keras): ``conv(a) = X @ a.ravel()`` and ``conv_transpose(y) = X.T @ y.ravel()``.

    ``padding``: 'valid', 'same', an int, or (1-D) a (before, after) pair; for 2-D, one of these
    for both axes or a pair of them, (rows, columns). ``include_padding=True`` keeps a column
    for every padded input position.
    """
    kernel = np.asarray(kernel, dtype="float64")
    taps = conv_taps(kernel.shape, input_shape, stride, padding, dilation, include_padding)
    if kernel.ndim == 1:
        return np.where(taps >= 0, kernel[np.maximum(taps, 0)], 0.0)
    linked = taps[..., 0] >= 0
    return np.where(linked, kernel[np.maximum(taps[..., 0], 0), np.maximum(taps[..., 1], 0)], 0.0)


def _expressions(taps: np.ndarray, kernel: str, inputs: str) -> list[str]:
    rows = []
    for row in taps:
        terms = [f"{inputs[i]}{kernel[t]}" for i, t in enumerate(row) if t >= 0]
        rows.append(" + ".join(terms) if terms else "0")
    return rows


def symbolic_convolution(kernel: str = "xyz", inputs: str = "abcd", stride: int = 1,
                         padding: Padding = 0) -> list[str]:
    """A 1-D convolution written out: kernel (x, y, z), stride 1, padding 1 on (a, b, c, d)
    gives ``['ay + bz', 'ax + by + cz', 'bx + cy + dz', 'cx + dy']``."""
    return _expressions(conv_taps(len(kernel), len(inputs), stride, padding), kernel, inputs)


def symbolic_transposed_convolution(kernel: str = "xyz", inputs: str = "ab", stride: int = 2,
                                    padding: Padding = 1, length: int = 4,
                                    include_padding: bool = True) -> list[str]:
    """``Xᵀ`` applied to ``inputs``, where ``X`` is the convolution of a length-``length`` signal.

    With the padded positions kept (the slides' picture), kernel (x, y, z), stride 2, padding 1,
    length 4 and inputs (a, b) give ``['ax', 'ay', 'az + bx', 'by', 'bz', '0']``; dropping them
    (what Keras returns) keeps the middle four.
    """
    taps = conv_taps(len(kernel), length, stride, padding, include_padding=include_padding)
    if taps.shape[0] != len(inputs):
        raise ValueError(f"a length-{length} convolution with stride {stride} and padding "
                         f"{padding!r} has {taps.shape[0]} outputs, so its transpose takes "
                         f"{taps.shape[0]} inputs; got {len(inputs)} ({inputs!r}).")
    return _expressions(taps.T, kernel, inputs)


def plot_conv_matrix(matrix, title: str | None = None, ax=None):
    """Draw ``X`` as a grid of its entries (zeros blank), rows = outputs, columns = inputs."""
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix)
    if ax is None:
        _, ax = plt.subplots(figsize=(0.45 * matrix.shape[1] + 1, 0.45 * matrix.shape[0] + 1))
    shown = np.where(matrix == 0, np.nan, matrix)
    ax.imshow(shown, cmap="coolwarm", vmin=-np.abs(matrix).max(), vmax=np.abs(matrix).max())
    if matrix.size <= 400:
        for (row, col), value in np.ndenumerate(matrix):
            if value:
                ax.text(col, row, f"{value:g}", ha="center", va="center", fontsize=8)
    ax.set_xlabel("input position")
    ax.set_ylabel("output position")
    ax.set_xticks(range(matrix.shape[1]))
    ax.set_yticks(range(matrix.shape[0]))
    ax.set_title(title or f"convolution as a {matrix.shape[0]}×{matrix.shape[1]} matrix")
    return ax.figure
