"""RoIPool and RoIAlign: a fixed-size feature grid for each box, written in NumPy to be read.

**RoIPool** (Girshick 2015, Fast R-CNN §2.1) snaps the box to the feature grid, splits it into
``H × W`` sub-windows of about ``h/H × w/W`` cells whose edges are snapped too, and max-pools
each. **RoIAlign** (He et al. 2017, Mask R-CNN §3) snaps nothing: each bin is sampled at
``sampling_ratio × sampling_ratio`` regularly spaced points by bilinear interpolation and the
samples are averaged. The snapping costs RoIPool up to half a feature cell, ``stride / 2`` image
pixels, on each edge of the box (:func:`quantization_error`), which classification tolerates
and a 28 × 28 mask does not: Mask R-CNN's §3 and Table 2c.

Coordinate conventions. They are torchvision's and Detectron2's (``aligned=True``) for
**RoIAlign only**; **RoIPool** here snaps boxes differently from torchvision's ``roi_pool`` (and
the Caffe layer of Fast R-CNN that it copies; Detectron2 pools with torchvision's). Those round
both corners and count the end cell in, ``round(x2·s) − round(x1·s) + 1`` cells (``s`` the
``spatial_scale``), whereas :func:`quantized_box` treats the rounded ``x2`` as exclusive,
``round(x2·s) − round(x1·s)`` cells (at least one): the box ``(0, 0, 32, 32)`` at stride 16
(``s = 1/16``) is 2 × 2 feature cells here and 3 × 3 in torchvision, so :func:`roi_pool`'s
outputs differ from torchvision's in general. (Adding one cell, ``1 / spatial_scale`` pixels,
to ``x2`` and ``y2`` gives their snapped box, when the map holds it.) The list below is
RoIAlign's; its first two items hold for both:

- A box is ``(x1, y1, x2, y2)`` in image pixels, continuous: pixel ``(i, j)`` covers
  ``[j, j + 1) × [i, i + 1)``, its centre at ``(j + 0.5, i + 0.5)``; a box that covers pixels 2,
  3 and 4 of a row is ``x1 = 2, x2 = 5``.
- ``spatial_scale`` is ``1 / stride`` of the feature map: the box in feature coordinates is the
  box times ``spatial_scale`` (the paper's ``x / 16`` for stride 16).
- Feature cell ``(i, j)`` likewise covers ``[j, j + 1) × [i, i + 1)`` in feature coordinates,
  its value sitting at its centre: a point ``x`` in feature coordinates is interpolated at array
  position ``x - 0.5``. This is the half-pixel offset of ``aligned=True``; the original Mask
  R-CNN code (Detectron, and ``aligned=False`` in torchvision) left it out, which shifts every
  sample by half a cell (:func:`roi_align`'s ``aligned=False`` reproduces it, for comparison).
- A sample within half a cell of the map's edge (array position in ``[-0.5, 0)`` or
  ``(size - 1, size - 0.5]``) takes the edge cell's value, as torchvision's kernel does.

Boxes must lie inside the map (``0 <= x1 < x2 <= width / spatial_scale``, likewise for y);
anything else is refused with a ``ValueError``, never silently padded. Clip proposals to the
image first, as detectors do.
"""

from __future__ import annotations

import numbers

import numpy as np


def _pair(value, name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, numbers.Integral) else \
        tuple(value) if isinstance(value, tuple | list) else ()
    if len(pair) != 2 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                                 and v >= 1 for v in pair):
        raise ValueError(f"{name} must be a positive whole number or a (height, width) pair of "
                         f"them; got {value!r}. Mask R-CNN uses 7 for boxes, 14 for masks.")
    return int(pair[0]), int(pair[1])


def _features(features) -> np.ndarray:
    features = np.asarray(features)
    if features.ndim not in (2, 3) or features.dtype.kind not in "biuf":
        raise ValueError(f"features must be a numeric map shaped (height, width) or (height, "
                         f"width, channels), one image, channels last; got shape "
                         f"{features.shape} of dtype {features.dtype}. For a batch, call once "
                         "per image with that image's boxes.")
    if features.shape[0] < 1 or features.shape[1] < 1:
        raise ValueError(f"features must have at least one cell; got shape {features.shape}.")
    return features


def _scale(spatial_scale) -> float:
    if (not isinstance(spatial_scale, numbers.Real) or isinstance(spatial_scale, bool)
            or not np.isfinite(spatial_scale) or spatial_scale <= 0):
        raise ValueError(f"spatial_scale must be a positive number, 1 / the feature map's "
                         f"stride (1/16 for stride 16); got {spatial_scale!r}.")
    return float(spatial_scale)


def check_boxes(boxes, map_shape=None, spatial_scale: float = 1.0) -> np.ndarray:
    """``boxes`` as a float64 ``(N, 4)`` array of ``(x1, y1, x2, y2)`` in image pixels, or a
    ``ValueError`` naming the first bad box: not finite, empty (``x2 <= x1`` or ``y2 <= y1``),
    or — when ``map_shape`` (height, width) of a feature map is given — reaching outside the
    image that map covers, ``[0, width / spatial_scale] × [0, height / spatial_scale]``."""
    given = boxes
    boxes = np.asarray(boxes, dtype=np.float64) if np.asarray(boxes).dtype.kind in "biuf" else None
    if boxes is None or boxes.ndim not in (1, 2) or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must be numbers shaped (N, 4), each (x1, y1, x2, y2) in image "
                         f"pixels; got {np.asarray(given).shape} of dtype "
                         f"{np.asarray(given).dtype}. One box: [[x1, y1, x2, y2]].")
    boxes = boxes.reshape(-1, 4)
    bad = ~np.isfinite(boxes).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"box {i} is {boxes[i].tolist()}: coordinates must be finite.")
    empty = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    if empty.any():
        i = int(np.argmax(empty))
        raise ValueError(f"box {i} is {boxes[i].tolist()}: it needs x2 > x1 and y2 > y1 "
                         "(boxes are (x1, y1, x2, y2), not (x, y, width, height) and not "
                         "(y1, x1, y2, x2)).")
    if map_shape is not None:
        height, width = map_shape[0] / spatial_scale, map_shape[1] / spatial_scale
        outside = ((boxes[:, :2] < 0).any(axis=1) | (boxes[:, 2] > width)
                   | (boxes[:, 3] > height))
        if outside.any():
            i = int(np.argmax(outside))
            raise ValueError(
                f"box {i} is {boxes[i].tolist()}, outside the image the feature map covers "
                f"(x in [0, {width:g}], y in [0, {height:g}]: map {tuple(map_shape[:2])} at "
                f"spatial_scale {spatial_scale:g}). Clip boxes to the image first, e.g. "
                f"np.clip(boxes, 0, [{width:g}, {height:g}, {width:g}, {height:g}]).")
    return boxes


# --- RoIPool -------------------------------------------------------------------------------


def quantized_box(boxes, spatial_scale: float = 1.0) -> np.ndarray:
    """RoIPool's box in feature cells: ``(x1, y1, x2, y2)`` rounded to whole cells after scaling
    (the paper's ``[x / 16]``, He et al. 2017 §3; halves round up), ``x2`` exclusive and at
    least one cell past ``x1``. Integers, shaped like the boxes (``(4,)`` or ``(N, 4)``).

    Not torchvision's convention: its ``roi_pool`` (like Fast R-CNN's Caffe layer) takes the
    rounded ``x2`` as inclusive, ``round(x2·s) − round(x1·s) + 1`` cells where this gives
    ``round(x2·s) − round(x1·s)``. ``(0, 0, 32, 32)`` at ``spatial_scale=1/16`` is cells
    ``(0, 0, 2, 2)`` here, 2 × 2 cells, and 3 × 3 there (module docstring)."""
    scale = _scale(spatial_scale)
    single = np.ndim(boxes) == 1
    cells = np.floor(check_boxes(boxes) * scale + 0.5).astype(np.int64)  # round half up
    cells[:, 2:] = np.maximum(cells[:, 2:], cells[:, :2] + 1)
    return cells[0] if single else cells


def quantization_error(boxes, spatial_scale: float = 1.0) -> np.ndarray:
    """How far RoIPool's snapped box is from the real one, in image pixels, per coordinate:
    ``quantized_box(boxes) / spatial_scale - boxes``, shaped like the boxes. Each entry is at
    most half a cell, ``0.5 / spatial_scale`` pixels (8 at stride 16), except where a box
    thinner than a cell is widened to one."""
    boxes_array = check_boxes(boxes)
    error = quantized_box(boxes_array, spatial_scale) / _scale(spatial_scale) - boxes_array
    return error[0] if np.ndim(boxes) == 1 else error


def roi_pool_bins(box, output_size, spatial_scale: float = 1.0,
                  map_shape=None) -> tuple[list, list]:
    """RoIPool's sub-windows for one box: ``(rows, cols)``, ``rows[k] = (start, stop)`` the
    feature rows of bin row ``k`` (stop exclusive), likewise ``cols``. The snapped box of ``h``
    rows is split at ``floor(k h / H)`` and ``ceil((k + 1) h / H)`` (Fast R-CNN's Caffe layer),
    so neighbouring bins may share a row when ``H`` does not divide ``h``, and repeat rows when
    the box has fewer than ``H``. With ``map_shape`` (height, width), a box snapped onto the
    map's far edge is moved back onto its last cell."""
    out_h, out_w = _pair(output_size, "output_size")
    x1, y1, x2, y2 = quantized_box(np.asarray(box, dtype=np.float64).reshape(4), spatial_scale)
    if map_shape is not None:
        y1, x1 = min(y1, map_shape[0] - 1), min(x1, map_shape[1] - 1)
        y2, x2 = min(max(y2, y1 + 1), map_shape[0]), min(max(x2, x1 + 1), map_shape[1])

    def edges(start, stop, bins):
        size = stop - start
        return [(start + (k * size) // bins, start + -((-(k + 1) * size) // bins))
                for k in range(bins)]

    return edges(y1, y2, out_h), edges(x1, x2, out_w)


def roi_pool(features, boxes, output_size=7, spatial_scale: float = 1.0) -> np.ndarray:
    """RoIPool (Girshick 2015, Fast R-CNN §2.1): the maximum of each of ``H × W`` snapped
    sub-windows of each snapped box (:func:`roi_pool_bins`).

    ``features``: ``(height, width)`` or ``(height, width, channels)``; ``boxes``: ``(N, 4)``
    ``(x1, y1, x2, y2)`` in image pixels, inside the image (see the module's conventions).
    Returns ``(N, H, W)`` or ``(N, H, W, channels)``.
    """
    features = _features(features)
    scale = _scale(spatial_scale)
    boxes = check_boxes(boxes, features.shape, scale)
    out_h, out_w = _pair(output_size, "output_size")
    pooled = np.empty((len(boxes), out_h, out_w, *features.shape[2:]), dtype=features.dtype)
    for n, box in enumerate(boxes):
        rows, cols = roi_pool_bins(box, (out_h, out_w), scale, features.shape)
        for i, (r0, r1) in enumerate(rows):
            for j, (c0, c1) in enumerate(cols):
                pooled[n, i, j] = features[r0:r1, c0:c1].max(axis=(0, 1))
    return pooled


# --- RoIAlign ------------------------------------------------------------------------------


def bilinear(features, y, x) -> np.ndarray:
    """``features`` interpolated at array positions ``(y, x)`` (arrays of one shape; position
    ``(i, j)`` is cell ``(i, j)``'s value), positions clamped to the map, so that a point within
    half a cell of the edge takes the edge value. Shaped ``y.shape + features.shape[2:]``."""
    features = np.asarray(features)
    height, width = features.shape[:2]
    y = np.clip(np.asarray(y, dtype=np.float64), 0, height - 1)
    x = np.clip(np.asarray(x, dtype=np.float64), 0, width - 1)
    y0 = np.minimum(np.floor(y).astype(np.int64), height - 1)
    x0 = np.minimum(np.floor(x).astype(np.int64), width - 1)
    y1, x1 = np.minimum(y0 + 1, height - 1), np.minimum(x0 + 1, width - 1)
    wy, wx = y - y0, x - x0
    if features.ndim == 3:  # weights broadcast over the channels
        wy, wx = wy[..., None], wx[..., None]
    top = features[y0, x0] * (1 - wx) + features[y0, x1] * wx
    bottom = features[y1, x0] * (1 - wx) + features[y1, x1] * wx
    return top * (1 - wy) + bottom * wy


def sample_positions(start: float, stop: float, bins: int, sampling_ratio: int) -> np.ndarray:
    """RoIAlign's sample points along one axis of a box, in feature coordinates: ``bins`` bins
    of equal width over ``[start, stop)``, ``sampling_ratio`` points in each at
    ``(s + 0.5) / sampling_ratio`` of the bin, shaped ``(bins, sampling_ratio)``."""
    bin_size = (stop - start) / bins
    offsets = (np.arange(sampling_ratio) + 0.5) / sampling_ratio
    return start + (np.arange(bins)[:, None] + offsets[None, :]) * bin_size


def roi_align(features, boxes, output_size=7, spatial_scale: float = 1.0,
              sampling_ratio: int = 2, aligned: bool = True) -> np.ndarray:
    """RoIAlign (He et al. 2017, Mask R-CNN §3): each box, unsnapped, split into ``H × W`` equal
    bins; each bin the mean of ``sampling_ratio²`` bilinear samples at regularly spaced points
    (:func:`sample_positions`; the paper's four points are ``sampling_ratio=2``).

    ``features``: ``(height, width)`` or ``(height, width, channels)``; ``boxes``: ``(N, 4)``
    ``(x1, y1, x2, y2)`` in image pixels, inside the image. ``aligned=True`` samples a feature
    point ``x`` at array position ``x - 0.5`` (cell centres at ``+ 0.5``); ``aligned=False`` is
    the original code's convention, position ``x``, with boxes widened to at least one cell
    (torchvision's ``aligned=False``). Returns ``(N, H, W)`` or ``(N, H, W, channels)`` float64.
    (torchvision's and Detectron2's default sampling ratio adapts to the box,
    ``ceil(box height / H)`` points; the paper reports that the exact number hardly matters
    "as long as no quantization is performed".)
    """
    features = _features(features).astype(np.float64)
    scale = _scale(spatial_scale)
    boxes = check_boxes(boxes, features.shape, scale)
    out_h, out_w = _pair(output_size, "output_size")
    if (not isinstance(sampling_ratio, numbers.Integral) or isinstance(sampling_ratio, bool)
            or sampling_ratio < 1):
        raise ValueError(f"sampling_ratio must be a whole number of at least 1 (points per bin "
                         f"along each axis; Mask R-CNN's four points are 2); got "
                         f"{sampling_ratio!r}.")
    offset = 0.5 if aligned else 0.0
    pooled = np.empty((len(boxes), out_h, out_w, *features.shape[2:]))
    for n, (x1, y1, x2, y2) in enumerate(boxes * scale):
        if not aligned:  # the original code: no box thinner than one cell
            x2, y2 = x1 + max(x2 - x1, 1.0), y1 + max(y2 - y1, 1.0)
        ys = sample_positions(y1, y2, out_h, sampling_ratio) - offset  # (out_h, ratio)
        xs = sample_positions(x1, x2, out_w, sampling_ratio) - offset  # (out_w, ratio)
        # every (row sample, column sample) pair: (out_h, ratio, out_w, ratio)
        grid_y = np.broadcast_to(ys[:, :, None, None], (out_h, sampling_ratio, out_w,
                                                        sampling_ratio))
        grid_x = np.broadcast_to(xs[None, None, :, :], grid_y.shape)
        samples = bilinear(features, grid_y, grid_x)
        pooled[n] = samples.mean(axis=(1, 3))  # average the samples of each bin
    return pooled
