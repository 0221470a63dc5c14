"""The colours of the datasets' classes, kept with the data they describe (NumPy only).

``voc_palette`` is the palette of PASCAL VOC's label PNGs (the folder datasets read such PNGs as
class indices, and ``segcourse predict`` writes its label maps with it); ``shapes_palette`` is
the embedded ``shapes`` dataset's. :mod:`segcourse.viz` draws with them.
"""

from __future__ import annotations

import numpy as np


def voc_palette(num_colours: int = 256) -> np.ndarray:
    """The PASCAL VOC palette ``(num_colours, 3)`` uint8: class ``c``'s bits spread over the
    high bits of R, G and B (background black, aeroplane (128, 0, 0), ..., 255 near white)."""
    palette = np.zeros((num_colours, 3), np.uint8)
    for index in range(num_colours):
        label, colour = index, [0, 0, 0]
        for shift in range(7, -1, -1):
            for channel in range(3):
                colour[channel] |= ((label >> channel) & 1) << shift
            label >>= 3
        palette[index] = colour
    return palette


def shapes_palette() -> np.ndarray:
    """Colours for the ``shapes`` classes: background grey, then one clear hue per shape."""
    return np.array([(40, 40, 40), (230, 159, 0), (86, 180, 233), (0, 158, 115),
                     (240, 228, 66), (204, 121, 167)], np.uint8)
