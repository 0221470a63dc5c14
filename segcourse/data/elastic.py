"""Elastic deformation, the U-Net's main augmentation (Ronneberger, Fischer & Brox 2015,
"U-Net", §3.1): random displacement vectors on a coarse 3×3 grid, each drawn from a Gaussian
of 10 pixels standard deviation, interpolated bicubically into a displacement per pixel, and
applied to the image and its masks alike. NumPy only.

Conventions (the paper leaves them open):

- The grid's nodes sit on the picture's corners and evenly between them (3×3: corners, edge
  midpoints, centre); the field is interpolated with the Keys cubic (a = −0.5, the usual
  "bicubic"), which passes through the nodes.
- Backward mapping: output pixel ``(r, c)`` takes the input at ``(r + dy, c + dx)``, so the
  content moves by ``−(dy, dx)``.
- The image is sampled bilinearly; masks by nearest neighbour only, so their values stay
  labels. Where a pixel comes from outside the picture, masks get ``mask_fill`` and the image
  is mirrored (``image_mode="reflect"``, the mirror through the edge pixel that overlap-tile
  inference uses, :mod:`segcourse.tiling`) or black (``"constant"``). One mask: the fill
  defaults to the ignore label, 255, so the loss skips those pixels. Several masks: give one
  fill per mask, e.g. ``mask_fill=(255, 0)`` for a class mask plus an instance-id map (0 is
  background there; 255 would read as a cell id, and :func:`segcourse.data.weight_map.weight_map`
  would draw borders around it). A single fill for several masks is refused.
"""

from __future__ import annotations

import numbers

import numpy as np

from segcourse.labels import IGNORE_INDEX

GRID = 3
SIGMA = 10.0
IMAGE_MODES = ("reflect", "constant")
_KEYS_A = -0.5


def _keys(x: np.ndarray) -> np.ndarray:
    """The Keys (1981) cubic convolution kernel with a = −0.5."""
    x = np.abs(x)
    a = _KEYS_A
    near = ((a + 2) * x - (a + 3)) * x**2 + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


def _cubic_matrix(nodes: int, length: int) -> np.ndarray:
    """``(length, nodes)`` weights: row ``i`` interpolates the nodes at output pixel ``i``
    (nodes on the first and last pixel and evenly between; edge nodes repeated outwards)."""
    position = np.arange(length) * ((nodes - 1) / (length - 1) if length > 1 else 0.0)
    base = np.floor(position).astype(np.int64)
    matrix = np.zeros((length, nodes))
    for offset in (-1, 0, 1, 2):
        index = np.clip(base + offset, 0, nodes - 1)
        np.add.at(matrix, (np.arange(length), index), _keys(position - (base + offset)))
    return matrix


def bicubic_upsample(grid, size) -> np.ndarray:
    """A coarse ``(g_h, g_w[, ...])`` grid of values bicubically interpolated to ``size =
    (H, W)``, through the nodes (corners on corners)."""
    grid = np.asarray(grid, np.float64)
    height, width = size
    rows, cols = _cubic_matrix(grid.shape[0], height), _cubic_matrix(grid.shape[1], width)
    return np.einsum("ia,ab...,jb->ij...", rows, grid, cols)


def _size(size) -> tuple[int, int]:
    if (len(size) != 2 or not all(isinstance(s, numbers.Integral) and s >= 1 for s in size)):
        raise ValueError(f"size is (height, width) of positive ints; got {size!r}.")
    return int(size[0]), int(size[1])


def random_displacement(size, rng: np.random.Generator, grid: int = GRID,
                        sigma: float = SIGMA) -> np.ndarray:
    """A smooth displacement field ``(H, W, 2)`` of ``(dy, dx)`` in pixels: Gaussian vectors
    of standard deviation ``sigma`` on a ``grid × grid`` lattice, bicubically interpolated."""
    size = _size(size)
    if not isinstance(grid, numbers.Integral) or grid < 2:
        raise ValueError(f"grid is the number of nodes per side, at least 2 (the paper: 3); "
                         f"got {grid!r}.")
    if not (np.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma is a standard deviation in pixels, at least 0 (the paper: "
                         f"10); got {sigma!r}.")
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)); "
                         f"got {type(rng).__name__}.")
    return bicubic_upsample(rng.normal(0.0, sigma, (grid, grid, 2)), size)


def _source(displacement, size):
    displacement = np.asarray(displacement, np.float64)
    if displacement.shape != (*size, 2):
        raise ValueError(f"the displacement field must be (H, W, 2) = ({size[0]}, {size[1]}, "
                         f"2) for this picture; got {displacement.shape}.")
    rows, cols = np.indices(size, dtype=np.float64)
    return rows + displacement[..., 0], cols + displacement[..., 1]


def _reflect(x, length):
    """Continuous coordinates mirrored into ``[0, length − 1]`` through the edge pixels."""
    if length == 1:
        return np.zeros_like(x)
    period = 2 * (length - 1)
    x = np.mod(x, period)
    return np.where(x > length - 1, period - x, x)


def warp_image(image, displacement, mode: str = "reflect") -> np.ndarray:
    """``image (H, W[, C])`` sampled bilinearly at ``(r + dy, c + dx)``; float32 (or the
    image's float dtype)."""
    if mode not in IMAGE_MODES:
        raise ValueError(f"image mode must be one of {IMAGE_MODES}; got {mode!r}.")
    image = np.asarray(image)
    height, width = image.shape[:2]
    y, x = _source(displacement, (height, width))
    if mode == "reflect":
        y, x = _reflect(y, height), _reflect(x, width)
    y0, x0 = np.floor(y).astype(np.int64), np.floor(x).astype(np.int64)
    fy, fx = y - y0, x - x0
    out_dtype = image.dtype if image.dtype.kind == "f" else np.float32
    values = image.astype(np.float64)
    result = 0.0
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            r, c = y0 + dy, x0 + dx
            inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
            sample = values[np.clip(r, 0, height - 1), np.clip(c, 0, width - 1)]
            weight = np.where(inside, wy * wx, 0.0)
            result = result + (weight.reshape(weight.shape + (1,) * (image.ndim - 2)) * sample)
    return np.asarray(result).astype(out_dtype)


def warp_labels(labels, displacement, fill: int = IGNORE_INDEX) -> np.ndarray:
    """A label map ``(H, W)`` sampled by nearest neighbour at ``(r + dy, c + dx)``; pixels
    from outside the picture get ``fill``. Labels are never mixed: the output holds only
    input values and ``fill``."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.dtype.kind not in "iu":
        raise ValueError(f"a mask to warp is a 2-D integer label map; got shape "
                         f"{labels.shape}, dtype {labels.dtype}. Masks are never interpolated: "
                         "keep them integer.")
    limits = np.iinfo(labels.dtype)
    if not (isinstance(fill, numbers.Integral) and limits.min <= fill <= limits.max):
        raise ValueError(f"fill must be an integer that {labels.dtype} holds "
                         f"({limits.min}..{limits.max}); got {fill!r}. Give a fill in that "
                         "range, or cast the mask to a wider integer type first.")
    y, x = _source(displacement, labels.shape)
    r, c = np.floor(y + 0.5).astype(np.int64), np.floor(x + 0.5).astype(np.int64)
    inside = (r >= 0) & (r < labels.shape[0]) & (c >= 0) & (c < labels.shape[1])
    picked = labels[np.clip(r, 0, labels.shape[0] - 1), np.clip(c, 0, labels.shape[1] - 1)]
    return np.where(inside, picked, labels.dtype.type(fill))


def _fills(mask_fill, count: int) -> tuple:
    """One fill per mask: ``mask_fill`` itself for a single mask, else its items (checked for
    their count here, for their values by :func:`warp_labels`)."""
    example = "mask_fill=(255, 0) for a class mask plus an instance-id map"
    if isinstance(mask_fill, numbers.Integral) and not isinstance(mask_fill, bool):
        if count > 1:
            raise ValueError(
                f"mask_fill={mask_fill!r} is a single fill, but {count} masks were given: each "
                f"mask would get {mask_fill!r} where its pixel came from outside the picture, "
                "and no one value suits every mask (255 is the ignore label in a class mask but "
                f"a cell id in an instance map). Give one fill per mask, e.g. {example}.")
        return (mask_fill,) * count
    if not isinstance(mask_fill, (tuple, list)):
        raise ValueError(f"mask_fill is an int (one mask) or a tuple/list of one int per mask, "
                         f"e.g. {example}; got {mask_fill!r} of type {type(mask_fill).__name__}.")
    if len(mask_fill) != count:
        raise ValueError(f"mask_fill must give one fill per mask: {len(mask_fill)} fills "
                         f"{tuple(mask_fill)!r} for {count} masks. E.g. {example}.")
    return tuple(mask_fill)


def elastic_deform(image, *masks, rng: np.random.Generator, grid: int = GRID,
                   sigma: float = SIGMA, image_mode: str = "reflect",
                   mask_fill=IGNORE_INDEX):
    """One random elastic deformation (U-Net §3.1) applied to ``image (H, W[, C])`` and each
    mask ``(H, W)``: ``(image, *masks)`` back, deformed alike. Deterministic given ``rng``'s
    state. ``mask_fill``, what a mask gets where its pixel came from outside the picture: with
    one mask, an int (default 255, the ignore label); with several, a tuple or list of one
    fill per mask, e.g. ``(255, 0)`` for a class mask and an instance-id map. A single int
    for several masks is refused: no one value suits a class mask and an instance map alike.
    (A float map, such as a precomputed weight map, goes through :func:`warp_image` with the
    same :func:`random_displacement`.)"""
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"elastic_deform takes one picture (H, W) or (H, W, C); got shape "
                         f"{image.shape}.")
    for mask in masks:
        if np.shape(mask) != image.shape[:2]:
            raise ValueError(f"every mask must be (H, W) = {image.shape[:2]} like the image; "
                             f"got {np.shape(mask)}.")
    fills = _fills(mask_fill, len(masks))
    displacement = random_displacement(image.shape[:2], rng, grid, sigma)
    return (warp_image(image, displacement, image_mode),
            *(warp_labels(mask, displacement, fill)
              for mask, fill in zip(masks, fills, strict=True)))
