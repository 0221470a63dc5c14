"""Which taps of an atrous filter land on the feature map, and which on its zero padding.

Chen, Papandreou, Schroff & Adam, "Rethinking Atrous Convolution for Semantic Image
Segmentation" (2017), §3.3 and Fig. 4: with "same" zero padding, a 3 × 3 filter at rate ``r``
reads the map at offsets ``-r, 0, +r`` along each axis. Once ``r`` is large compared with the
map, the outer taps fall off the map (onto padding) for more and more output positions, until
only the centre tap is left anywhere and the filter has degenerated into a 1 × 1 convolution.
That is why DeepLabV3's ASPP adds image-level features (global average pooling) for global
context.

Everything here is for a square ``size × size`` map, stride 1 and an odd ``kernel_size``; the
two axes are independent, so a tap ``(dy, dx)`` is valid at ``(i, j)`` exactly when ``dy`` is
valid at row ``i`` and ``dx`` at column ``j``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["valid_tap_counts", "valid_tap_fraction", "valid_taps_1d"]


def _validate(size: int, rate: int, kernel_size: int) -> None:
    for name, value in (("size", size), ("rate", rate), ("kernel_size", kernel_size)):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd (a centre tap and 'same' padding); "
                         f"got {kernel_size}.")


def valid_taps_1d(size: int, rate: int, kernel_size: int = 3) -> np.ndarray:
    """For each of ``size`` positions along one axis, how many of the ``kernel_size`` taps at
    offsets ``rate · (-(k // 2) … k // 2)`` land inside the axis (an int array of ``size``)."""
    _validate(size, rate, kernel_size)
    positions = np.arange(int(size))[:, None]
    offsets = int(rate) * np.arange(-(kernel_size // 2), kernel_size // 2 + 1)[None, :]
    reached = positions + offsets
    return ((reached >= 0) & (reached < size)).sum(axis=1)


def valid_tap_counts(size: int, rate: int, kernel_size: int = 3) -> np.ndarray:
    """How many of the ``kernel_size²`` taps land on a ``size × size`` map, for every output
    position (a ``(size, size)`` int array; 1 everywhere means a 1 × 1 convolution)."""
    along = valid_taps_1d(size, rate, kernel_size)
    return along[:, None] * along[None, :]


def valid_tap_fraction(size: int, rate: int, kernel_size: int = 3) -> float:
    """The share of the filter's taps that land on a ``size × size`` map (not on its zero
    padding), averaged over all output positions: 1 when every tap is always valid,
    ``1 / kernel_size²`` when only the centre tap ever is (Chen et al. 2017, Fig. 4)."""
    return float(valid_tap_counts(size, rate, kernel_size).mean() / kernel_size ** 2)
