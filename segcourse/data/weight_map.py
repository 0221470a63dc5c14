"""The U-Net border weight map (Ronneberger, Fischer & Brox 2015, "U-Net", §3, eq. 2).

    w(x) = w_c(x) + w0 · exp(−(d1(x) + d2(x))² / (2σ²)),   w0 = 10, σ ≈ 5 pixels

weights the cross-entropy of each pixel so that the thin background between touching cells,
which the network must learn to keep, costs much more when it is lost. Here, from an
instance-id map (0 = background and membranes, 1, 2, ... one id per cell):

- ``d_i(x)`` is the Euclidean distance from pixel ``x`` to the nearest pixel of cell ``i``,
  between pixel centres (:mod:`segcourse.data.distance`): a background pixel touching a cell
  is at distance 1 from it. ``d1(x)`` and ``d2(x)`` are the smallest and second smallest of
  the ``d_i(x)`` over all cells.
- The border term is applied at background pixels only (the paper's separation borders
  between touching cells) and is 0 inside every cell. A picture with fewer than two cells has no
  second-nearest cell: its border term is 0 everywhere. Where ``d2 > 7.5σ`` the term
  (below ``6e-13 · w0``) is left out, so that each cell's distances are needed only near it.
- ``w_c`` balances the class frequencies of the binary mask (cell vs background). By default
  each class present gets ``pixels / (classes present · pixels of that class)``, so that
  ``w_c`` averages 1 over the picture and both classes weigh the same in total; pass
  ``class_weights=(w_background, w_cell)`` to use fixed weights instead (e.g. counted over
  a whole training set).

So one background pixel between two cells (a 1-pixel gap) has ``d1 = d2 = 1`` and weight
``w_c + 10 · exp(−4/50) ≈ w_c + 9.23``; each pixel of a 2-pixel gap has ``d1 = 1, d2 = 2``,
``w_c + 10 · exp(−9/50) ≈ w_c + 8.35``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from segcourse.data.distance import distance_to

W0 = 10.0
SIGMA = 5.0
#: Where d2 > REACH_SIGMAS · σ, the border term is below w0 · exp(−7.5² / 2) ≈ 6e-13 · w0,
#: far below float32's resolution of w: it is left out there, and each cell's distances are
#: computed only within that reach of it (``nearest_two_distances(..., reach)``).
REACH_SIGMAS = 7.5


def _check_instances(instances) -> np.ndarray:
    instances = np.asarray(instances)
    if instances.ndim != 2 or instances.dtype.kind not in "iu":
        raise ValueError(f"the weight map takes a 2-D integer instance-id map (0 = background, "
                         f"one positive id per cell); got shape {instances.shape}, dtype "
                         f"{instances.dtype}.")
    if instances.size and instances.min() < 0:
        raise ValueError(f"instance ids must be 0 (background) or positive; found "
                         f"{int(instances.min())}. Map the ignore label to 0 first.")
    return instances


def nearest_two_distances(instances, reach: int | None = None
                          ) -> tuple[np.ndarray, np.ndarray]:
    """``(d1, d2)``: per pixel, the distance to the nearest and to the second-nearest cell of
    the instance map (``inf`` where there are fewer than one or two cells). Inside cell ``i``
    its own distance is 0, so ``d1 = 0`` there and ``d2`` is the distance to the nearest other
    cell.

    ``reach`` (pixels) computes each cell's distances only within its bounding box grown by
    ``reach``: every distance up to ``reach`` is still exact, a larger one may read ``inf``.
    ``None``: every distance exact (time grows with cells × pixels)."""
    instances = _check_instances(instances)
    if reach is not None and not (isinstance(reach, numbers.Integral) and reach >= 0):
        raise ValueError(f"reach is a number of pixels, an int of at least 0, or None; got "
                         f"{reach!r}.")
    height, width = instances.shape
    d1 = np.full(instances.shape, np.inf)
    d2 = np.full(instances.shape, np.inf)
    for cell in np.unique(instances[instances > 0]):
        inside = instances == cell
        window = (slice(None), slice(None))
        if reach is not None:
            rows, cols = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
            window = (slice(max(rows[0] - reach, 0), min(rows[-1] + reach + 1, height)),
                      slice(max(cols[0] - reach, 0), min(cols[-1] + reach + 1, width)))
        d = distance_to(inside[window])  # exact inside the window: the cell is wholly in it
        d2[window] = np.minimum(d2[window], np.maximum(d1[window], d))
        d1[window] = np.minimum(d1[window], d)
    return d1, d2


def class_balance(mask, class_weights=None) -> np.ndarray:
    """``w_c`` for a binary ``mask`` (1 = cell, 0 = background): ``class_weights[mask]`` when
    given, else the picture's own balancing, ``pixels / (classes present · class pixels)``."""
    mask = np.asarray(mask)
    if mask.dtype == bool:
        mask = mask.astype(np.uint8)
    if mask.ndim != 2 or mask.dtype.kind not in "iu" or not np.isin(mask, (0, 1)).all():
        raise ValueError(f"class_balance takes a 2-D binary mask of 0 (background) and 1 "
                         f"(cell); got shape {mask.shape}, dtype {mask.dtype}, values "
                         f"{np.unique(mask)[:8].tolist()}.")
    if class_weights is None:
        counts = np.bincount(mask.ravel(), minlength=2).astype(np.float64)
        present = counts > 0
        weights = np.where(present, mask.size / (present.sum() * np.maximum(counts, 1)), 0.0)
    else:
        weights = np.asarray(class_weights, np.float64)
        if weights.shape != (2,) or not np.all(np.isfinite(weights)) or (weights < 0).any():
            raise ValueError(f"class_weights are two non-negative numbers (background, cell); "
                             f"got {class_weights!r}.")
    return weights[mask]


def border_weight(instances, w0: float = W0, sigma: float = SIGMA) -> np.ndarray:
    """The border term ``w0 · exp(−(d1 + d2)² / (2σ²))`` at background pixels, 0 in cells."""
    numeric = all(not isinstance(v, bool | str | bytes) and np.ndim(v) == 0
                  and np.isrealobj(v) and np.asarray(v).dtype.kind in "iuf" for v in (w0, sigma))
    if not numeric or not (np.isfinite(w0) and w0 >= 0) or not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"w0 must be a non-negative number and sigma a positive one (the "
                         f"paper: w0 = 10, sigma ≈ 5 pixels); got w0={w0!r}, sigma={sigma!r}.")
    instances = _check_instances(instances)
    d1, d2 = nearest_two_distances(instances, reach=math.ceil(REACH_SIGMAS * sigma))
    term = w0 * np.exp(-((d1 + d2) ** 2) / (2 * sigma**2))  # 0 where d2 = inf (one cell)
    return np.where(instances == 0, term, 0.0)


def weight_map(instances, w0: float = W0, sigma: float = SIGMA,
               class_weights=None) -> np.ndarray:
    """U-Net eq. 2, ``w_c + border term``, float32 of the instance map's shape; the binary
    mask is ``instances > 0``. Use it as the per-pixel ``sample_weight`` of the loss."""
    instances = _check_instances(instances)
    balance = class_balance((instances > 0).astype(np.uint8), class_weights)
    return (balance + border_weight(instances, w0, sigma)).astype(np.float32)
