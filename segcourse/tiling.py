"""Overlap-tile inference with mirror padding (Ronneberger, Fischer & Brox 2015, "U-Net",
§1 and Fig. 2; §2 for the tile sizes).

A network of unpadded ("valid") convolutions gives a smaller map than its input: the paper's
U-Net turns a 572×572 tile into 388×388, a margin of (572 − 388) / 2 = 92 pixels on each side,
and every output pixel has its full context inside the tile. A picture larger than one tile is
predicted tile by tile: the *output* tiles lie side by side over the picture, and each input
tile is its output tile grown by the margin, so neighbouring input tiles overlap by twice the
margin. Near the picture's border the paper supplies the missing context by mirroring the
picture (§1, Fig. 2): it is mirror-padded by the margin before the tiles are cut.

The paper does not say on which side of the edge pixel the mirror stands, and Fig. 2 cannot
show it at pixel level. The default here is ``mode="reflect"`` (NumPy's name; TensorFlow's
``REFLECT``): the mirror passes through the centre of the edge pixel, which is not repeated
(``a b c | b a``). ``mode="symmetric"`` (``a b c | c b a``, TensorFlow's ``SYMMETRIC``) repeats
it; both are accepted.

When a side is not a multiple of the output tile, the last tile of that row or column is moved
back to end at the picture's edge and keeps only the pixels no earlier tile wrote, so no tile
ever sees more than the margin of mirrored context; a picture smaller than one output tile is
mirror-padded further at its bottom and right. For a network of convolutions alone the
stitched map is therefore exactly the network's output on the mirror-padded picture; a network
with pooling gives that only where the tiles step by multiples of its total stride. The paper's
tiles do not: a valid U-Net of depth 4 gives outputs of 16k + 4 pixels (388 = 16 · 24 + 4),
so neighbouring tiles see the pooling grid shifted by 4 pixels — seamless in context, yet not
one network pass (``tests/test_tiling.py`` shows both cases on small U-Nets).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from segcourse.outputs import main_output

MODES = ("reflect", "symmetric")


def _pair(value, what: str) -> tuple[int, int]:
    """A size given as one int or as (height, width), checked to be positive integers."""
    pair = (value, value) if isinstance(value, numbers.Integral) else value
    try:
        pair = tuple(pair)
    except TypeError:
        pair = ()
    if len(pair) != 2 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                                 and v >= 1 for v in pair):
        raise ValueError(f"{what} must be a positive int or (height, width) of positive ints; "
                         f"got {value!r}.")
    return int(pair[0]), int(pair[1])


@dataclass(frozen=True)
class Tile:
    """One tile: ``padded[input]`` goes into the network, ``prediction[keep]`` of its output
    is written to ``result[output]`` (``input`` in the padded picture's coordinates, ``output``
    in the picture's)."""

    input: tuple[slice, slice]
    output: tuple[slice, slice]
    keep: tuple[slice, slice]


@dataclass(frozen=True)
class TilePlan:
    """Where the tiles of one picture lie. ``padding`` is ``((top, bottom), (left, right))``
    for ``numpy.pad``; ``margin`` is what the network trims from each side."""

    image_size: tuple[int, int]
    input_tile: tuple[int, int]
    output_tile: tuple[int, int]
    margin: tuple[int, int]
    padding: tuple[tuple[int, int], tuple[int, int]]
    tiles: tuple[Tile, ...]

    @property
    def padded_size(self) -> tuple[int, int]:
        """``(height, width)`` of the mirror-padded picture the input tiles are cut from."""
        return tuple(n + before + after for n, (before, after)
                     in zip(self.image_size, self.padding, strict=True))


def _axis_tiles(length: int, output: int) -> list[tuple[int, int, int]]:
    """``(start, kept_from, kept_to)`` per tile along one axis: the tile's output covers
    ``[start, start + output)`` of the picture and writes ``[kept_from, kept_to)``."""
    starts = list(range(0, max(length - output, 0) + 1, output))
    if length > output and starts[-1] + output < length:
        starts.append(length - output)  # moved back to end at the edge; overlaps its neighbour
    tiles, written = [], 0
    for start in starts:
        end = min(start + output, length)
        tiles.append((start, written, end))
        written = end
    return tiles


def plan_tiles(image_size, input_tile, output_tile) -> TilePlan:
    """The tiles that cover a picture of ``image_size`` for a network that maps an
    ``input_tile`` to an ``output_tile`` (each an int or ``(height, width)``), every output
    pixel written by exactly one tile. Pure arithmetic: the paper's U-Net is
    ``plan_tiles((H, W), 572, 388)``, margin 92."""
    image_size = _pair(image_size, "image_size")
    input_tile = _pair(input_tile, "input_tile")
    output_tile = _pair(output_tile, "output_tile")
    margin = []
    for axis, i, o in zip(("height", "width"), input_tile, output_tile, strict=True):
        if i <= o or (i - o) % 2:
            raise ValueError(
                f"the input tile must exceed the output tile by an even number of pixels (the "
                f"margin the network trims on each side, twice); {axis}: input {i}, output {o}. "
                "Give the sizes the network actually maps, e.g. 572 and 388 for the paper's "
                "U-Net.")
        margin.append((i - o) // 2)
    rows, cols = (_axis_tiles(n, o) for n, o in zip(image_size, output_tile, strict=True))
    padding = tuple((m, m + max(o - n, 0))
                    for n, o, m in zip(image_size, output_tile, margin, strict=True))
    tiles = tuple(
        Tile(input=(slice(r, r + input_tile[0]), slice(c, c + input_tile[1])),
             output=(slice(r_from, r_to), slice(c_from, c_to)),
             keep=(slice(r_from - r, r_to - r), slice(c_from - c, c_to - c)))
        for r, r_from, r_to in rows for c, c_from, c_to in cols)
    return TilePlan(image_size, input_tile, output_tile, tuple(margin), padding, tiles)


def mirror_pad(image, padding, mode: str = "reflect") -> np.ndarray:
    """``image (H, W[, C])``, or each picture of a batch ``(N, H, W, C)``, mirrored outwards by
    ``padding = ((top, bottom), (left, right))``; ``mode`` ``"reflect"`` or ``"symmetric"`` as
    in ``numpy.pad``. Only the height and width grow: never the batch or channel axis."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES} (numpy.pad's mirror modes); got {mode!r}.")
    image = np.asarray(image)
    if image.ndim not in (2, 3, 4):
        raise ValueError(f"mirror_pad takes one picture (H, W) or (H, W, C), or a batch (N, H, "
                         f"W, C); got shape {image.shape}. A batch of grey pictures (N, H, W) "
                         "needs its channel axis: images[..., None].")
    batch = [(0, 0)] if image.ndim == 4 else []
    channels = [(0, 0)] if image.ndim >= 3 else []
    return np.pad(image, (*batch, *padding, *channels), mode=mode)


def _as_image(image) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or min(image.shape) < 1:
        raise ValueError(f"predict_tiled takes one picture (H, W) or (H, W, C); got shape "
                         f"{image.shape}. Call it once per picture of a batch.")
    return image


def _predict(model_or_fn, batch: np.ndarray) -> np.ndarray:
    output = (model_or_fn.predict_on_batch(batch) if hasattr(model_or_fn, "predict_on_batch")
              else model_or_fn(batch))
    return np.asarray(main_output(output))


def predict_tiled(model_or_fn: Callable, image, input_tile, output_tile, batch_size: int = 4,
                  mode: str = "reflect") -> np.ndarray:
    """The network's output map ``(H, W, K)`` for a whole picture ``image (H, W[, C])``, by
    overlap-tile inference: mirror-pad by the margin, cut the input tiles of
    :func:`plan_tiles`, predict them ``batch_size`` at a time, stitch the output tiles.

    ``model_or_fn`` is a Keras model (run with ``predict_on_batch``) or any function from a
    batch ``(B, h_in, w_in, C)`` to ``(B, h_out, w_out, K)``; it must map ``input_tile`` to
    exactly ``output_tile``.
    """
    if not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}.")
    image = _as_image(image)
    plan = plan_tiles(image.shape[:2], input_tile, output_tile)
    padded = mirror_pad(image, plan.padding, mode)
    result = None
    for first in range(0, len(plan.tiles), batch_size):
        tiles = plan.tiles[first:first + batch_size]
        predicted = _predict(model_or_fn, np.stack([padded[tile.input] for tile in tiles]))
        if predicted.ndim != 4 or predicted.shape[:3] != (len(tiles), *plan.output_tile):
            raise ValueError(
                f"the network mapped {len(tiles)} input tiles of {plan.input_tile} to shape "
                f"{predicted.shape}; expected ({len(tiles)}, {plan.output_tile[0]}, "
                f"{plan.output_tile[1]}, K). Give the output_tile the network really produces "
                "for this input_tile (a paper U-Net maps 572 to 388).")
        if result is None:
            result = np.empty((*plan.image_size, predicted.shape[3]), predicted.dtype)
        for tile, output in zip(tiles, predicted, strict=True):
            result[tile.output] = output[tile.keep]
    return result
