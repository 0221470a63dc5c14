"""Checkerboard artifacts (Odena, Dumoulin & Olah, "Deconvolution and Checkerboard Artifacts",
Distill 2016): where they come from and how big they are.

A transposed convolution with kernel ``k`` and stride ``s`` paints a copy of its kernel every
``s`` output pixels. Counting how many copies land on each pixel (:func:`overlap_counts`) gives
``floor(k / s)`` or ``ceil(k / s)`` — uneven, a periodic pattern, exactly when ``s`` does not
divide ``k``. Even when it divides, each of the ``s × s`` output phases is computed by its own
subset of weights, so a random or badly trained kernel still paints a checkerboard; resizing
first and convolving after (resize-conv) treats every phase alike.

:func:`checkerboard_score` measures the pattern in any map: the spread of the ``s × s`` phase
means relative to the map's RMS (0: no periodic pattern; 1: nothing but one). Applied to an
upsampler's response to a flat picture (:func:`flat_field_response`), any variation at all is
artifact. The same pattern appears in the *gradients* of strided convolutions (their backward
pass is a transposed convolution): :func:`gradient_checkerboard`. In the frequency domain a
period-2 checkerboard is a peak at ±0.5 cycles per pixel of :func:`mean_power_spectrum`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np

from segcourse.layers import BilinearKernel, ResizeConv
from segcourse.layers._validation import require_tensorflow


def overlap_counts_1d(kernel_size: int, stride: int, length: int) -> np.ndarray:
    """How many (input, tap) pairs of a 'valid' transposed convolution land on each output
    pixel, for ``length`` inputs: ``(length - 1) s + k`` counts."""
    counts = np.zeros((length - 1) * stride + kernel_size, dtype=int)
    for i in range(length):
        counts[i * stride:i * stride + kernel_size] += 1
    return counts


def overlap_counts(kernel_size: int, stride: int, length: int = 6) -> np.ndarray:
    """The 2-D overlap map of a square transposed convolution on a ``length × length`` input
    (the outer product of the 1-D counts)."""
    counts = overlap_counts_1d(kernel_size, stride, length)
    return np.outer(counts, counts)


def interior(counts: np.ndarray, kernel_size: int) -> np.ndarray:
    """The part of an overlap map not touched by the borders (``k - 1`` pixels each side)."""
    margin = kernel_size - 1
    return counts[margin:counts.shape[0] - margin, margin:counts.shape[1] - margin]


def is_uneven(kernel_size: int, stride: int) -> bool:
    """Whether the interior overlap varies: exactly when the stride does not divide the
    kernel."""
    return kernel_size % stride != 0


def checkerboard_score(image, stride: int = 2, margin: int = 0) -> float:
    """Spread of the ``stride × stride`` phase means over the RMS of the map, per channel,
    averaged (``image``: (H, W) or (H, W, C); ``margin`` pixels are cut from each side first,
    keeping the phase grid aligned)."""
    image = np.asarray(image, dtype="float64")
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3:
        raise ValueError(f"checkerboard_score takes (H, W) or (H, W, C); got shape "
                         f"{image.shape}. For a batch, score one picture at a time.")
    if margin:
        margin = -(-margin // stride) * stride  # keep phase 0 on phase 0
        image = image[margin:-margin, margin:-margin]
    height, width = (image.shape[0] // stride) * stride, (image.shape[1] // stride) * stride
    if height == 0 or width == 0:
        raise ValueError(f"the map is {image.shape[:2]} after a margin of {margin}: too small "
                         f"for stride {stride}.")
    image = image[:height, :width]
    phases = image.reshape(height // stride, stride, width // stride, stride, -1).mean(axis=(0, 2))
    spread = phases.reshape(stride * stride, -1).std(axis=0)
    rms = np.sqrt((image ** 2).mean(axis=(0, 1)))
    return float(np.mean(np.where(rms > 0, spread / np.where(rms > 0, rms, 1), 0.0)))


def score_map_checkerboard(maps, stride: int = 2, margin: int = 2) -> float:
    """The mean :func:`checkerboard_score` of a network's score maps ``(N, H, W)`` (e.g. each
    picture's object-minus-background logit), each map less its own mean first: the score
    divides by the map's RMS, which a constant offset (a net that is sure of the background
    everywhere) would inflate, so maps of different means would not compare. ``margin``
    pixels are left out at each side (rounded up to a multiple of ``stride``)."""
    maps = np.asarray(maps, dtype="float64")
    if maps.ndim != 3:
        raise ValueError(f"score_map_checkerboard takes score maps (N, H, W); got shape "
                         f"{maps.shape}. For two-class logits (N, H, W, 2) pass "
                         f"logits[..., 1] - logits[..., 0].")
    return float(np.mean([checkerboard_score(one - one.mean(), stride, margin) for one in maps]))


def mean_power_spectrum(maps) -> np.ndarray:
    """The power spectrum ``|DFT|²`` of each map ``(N, H, W)`` (or one ``(H, W)``) less its own
    mean, averaged over the maps and centred (``np.fft.fftshift``: zero frequency at index
    ``(H // 2, W // 2)``, ±0.5 cycles per pixel at index 0). A checkerboard of period 2 puts its
    power at the corner ``[0, 0]``; stripes of period 2, at the centres of the edges."""
    maps = np.asarray(maps, dtype="float64")
    if maps.ndim == 2:
        maps = maps[None]
    if maps.ndim != 3:
        raise ValueError(f"mean_power_spectrum takes (N, H, W) or (H, W); got shape {maps.shape}.")
    centred = maps - maps.mean(axis=(1, 2), keepdims=True)
    return np.fft.fftshift((np.abs(np.fft.fft2(centred)) ** 2).mean(axis=0))


def flat_field_response(upsampler: Callable, size: int = 16, channels: int = 3) -> np.ndarray:
    """An upsampler's output for a constant picture of ones (batch of one, (H, W, C))."""
    return np.asarray(upsampler(np.ones((1, size, size, channels), "float32")))[0]


def gradient_checkerboard(conv: keras.layers.Layer, size: int = 32, channels: int = 3) -> float:
    """Checkerboard in the input gradient of a strided convolution: the gradient of the sum of
    its outputs with respect to a flat input is a transposed convolution of ones."""
    # TensorFlow-only: the gradient comes from tf.GradientTape (keras.ops takes no gradients).
    require_tensorflow("gradient_checkerboard", "the input gradient",
                       "Use flat_field_response, which runs on every backend")
    import tensorflow as tf

    flat = tf.Variable(np.ones((1, size, size, channels), "float32"))
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(conv(flat))
    gradient = tape.gradient(total, flat).numpy()[0]
    stride = conv.strides[0]
    return checkerboard_score(gradient, stride, margin=conv.kernel_size[0])


# --------------------------------------------------------------------------------------------
# The upsamplers compared in the lab


def upsamplers(channels: int = 3, factor: int = 2) -> dict[str, Callable[[], keras.layers.Layer]]:
    """Factories for the five ×``factor`` upsamplers the course compares: resize-conv
    (nearest, bilinear), transposed convolutions whose kernel the stride does not divide
    (k = s + 1) and does divide (k = 2s), and the latter with FCN's bilinear initialization."""
    uneven, even = factor + 1, 2 * factor
    return {
        "nearest + conv": lambda: ResizeConv(channels, factor, 3, interpolation="nearest"),
        "bilinear + conv": lambda: ResizeConv(channels, factor, 3, interpolation="bilinear"),
        f"transposed k{uneven} s{factor}": lambda: keras.layers.Conv2DTranspose(
            channels, uneven, factor, padding="same"),
        f"transposed k{even} s{factor}": lambda: keras.layers.Conv2DTranspose(
            channels, even, factor, padding="same"),
        "transposed bilinear init": lambda: keras.layers.Conv2DTranspose(
            channels, even, factor, padding="same", kernel_initializer=BilinearKernel()),
    }


@dataclass(frozen=True)
class UpsamplerScore:
    """One upsampler's checkerboard score before and after training, and its final loss."""
    name: str
    at_init: float
    trained: float
    final_loss: float


def _super_resolution_data(count: int, size: int, factor: int, seed: int):
    from segcourse.data import shapes

    images, _ = shapes.load("train", count, size, seed=seed)
    small = images.reshape(count, size // factor, factor, size // factor, factor, 3).mean((2, 4))
    return small.astype("float32"), images


def compare_upsamplers(steps: int = 300, batch_size: int = 16, size: int = 32, factor: int = 2,
                       seed: int = 0, verbose: int | str = "auto") -> list[UpsamplerScore]:
    """Score each upsampler's flat-field checkerboard at random initialization and after
    learning ×``factor`` super-resolution of ``shapes`` pictures (MSE, Adam, ``steps``
    steps): one row per upsampler."""
    small, large = _super_resolution_data(steps * batch_size // 4, size, factor, seed)
    rows = []
    for name, make in upsamplers(3, factor).items():
        keras.utils.set_random_seed(seed)
        layer = make()
        inputs = keras.Input((None, None, 3))
        model = keras.Model(inputs, layer(inputs))
        margin = 2 * factor
        at_init = checkerboard_score(flat_field_response(model), factor, margin)
        model.compile(keras.optimizers.Adam(1e-2), "mse")
        history = model.fit(small, large, batch_size=batch_size, epochs=4, verbose=verbose)
        trained = checkerboard_score(flat_field_response(model), factor, margin)
        rows.append(UpsamplerScore(name, at_init, trained, float(history.history["loss"][-1])))
    return rows


def format_scores(rows: list[UpsamplerScore]) -> str:
    """The rows as an aligned text table, one upsampler a line."""
    lines = [f"{'upsampler':<26} {'at init':>8} {'trained':>8} {'final MSE':>10}"]
    lines += [f"{r.name:<26} {r.at_init:>8.3f} {r.trained:>8.3f} {r.final_loss:>10.5f}"
              for r in rows]
    return "\n".join(lines)


def plot_overlap(kernel_size: int, stride: int, length: int = 6, ax=None):
    """The overlap-count map of a transposed convolution, counts written in."""
    import matplotlib.pyplot as plt

    counts = overlap_counts(kernel_size, stride, length)
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(counts, cmap="viridis")
    if counts.shape[0] <= 24:
        for (row, col), value in np.ndenumerate(counts):
            ax.text(col, row, str(value), ha="center", va="center", fontsize=6, color="w")
    verdict = "uneven: checkerboard" if is_uneven(kernel_size, stride) else "even"
    ax.set_title(f"overlap, k={kernel_size} s={stride} ({verdict})", fontsize=9)
    ax.set_axis_off()
    return ax.figure
