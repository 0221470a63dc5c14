"""What a Mask R-CNN mask head needs around it: its training targets, and its masks put back
into the picture.

Training (He et al. 2017, Mask R-CNN §3, "Mask Representation" and "Training"): the target of a
box is its object's mask cropped to the box and resampled to ``m × m`` (m = 28) — RoIAlign on
the binary mask, thresholded at 0.5, as the reference implementations do (Detectron2's
``BitMasks.crop_and_resize``): :func:`crop_mask_targets`. Where the ground truth is an instance
map alone, each object's box is the tightest one around its pixels: :func:`instance_boxes`.

Inference (§3, "Inference"): "The m×m floating-number mask output is then resized to the RoI
size, and binarized at a threshold of 0.5": :func:`paste_masks`. Pixel centres are the
sampling points both ways (``segcourse.instances.roi``'s conventions: pixel ``(i, j)`` covers
``[j, j + 1) × [i, i + 1)``), so a rectangle cropped to its own box and pasted back comes back
exactly, and one cropped to a looser box comes back within one mask cell (box side / m
pixels) of its edges.
"""

from __future__ import annotations

import numbers

import numpy as np

from segcourse.instances.roi import bilinear, check_boxes, roi_align


def _check_threshold(threshold):
    if threshold is None:
        return None
    if (not isinstance(threshold, numbers.Real) or isinstance(threshold, bool)
            or not 0 < threshold < 1):
        raise ValueError(f"threshold must be a number strictly between 0 and 1 (Mask R-CNN's "
                         f"is 0.5), or None for probabilities; got {threshold!r}.")
    return float(threshold)


def instance_boxes(instance_map) -> tuple[np.ndarray, np.ndarray]:
    """The tightest box around each instance of an instance map ``(height, width)`` of whole
    numbers (0 = no instance, ids ``1, 2, ...``, not necessarily consecutive): ``(ids, boxes)``,
    the ids present in increasing order (int64, ``(N,)``) and their boxes (float64, ``(N, 4)``,
    ``(x1, y1, x2, y2)``) in :mod:`segcourse.instances.roi`'s convention, pixel ``(i, j)``
    covering ``[j, j + 1) × [i, i + 1)``: an instance on columns 2 to 4 has ``x1 = 2, x2 = 5``,
    so a one-pixel instance's box is 1 × 1. An instance need not be connected; its box holds all
    its pieces. Ready for :func:`crop_mask_targets` and ``roi_align``."""
    ids = np.asarray(instance_map)
    if ids.ndim != 2:
        raise ValueError(f"instance_map must be one 2-D map (height, width); got shape "
                         f"{ids.shape}. Call once per image (map[i] for a batch).")
    if ids.dtype.kind not in "iu":
        raise ValueError(f"instance_map must hold whole numbers, an integer dtype (0 = no "
                         f"instance, 1, 2, ... the instances); got dtype {ids.dtype}. Convert "
                         "a map read as floats with .astype(int) once its values are whole; "
                         "for a binary mask pass mask.astype(int), one instance.")
    if ids.size and ids.min() < 0:
        raise ValueError(f"instance_map holds negative ids such as {ids.min()}; ids are 0 (no "
                         "instance) and positive whole numbers.")
    rows, cols = np.nonzero(ids > 0)
    values = ids[rows, cols].astype(np.int64)
    order = np.argsort(values, kind="stable")
    found, starts = np.unique(values[order], return_index=True)
    if not found.size:
        return found, np.zeros((0, 4))
    rows, cols = rows[order], cols[order]
    boxes = np.stack([np.minimum.reduceat(cols, starts), np.minimum.reduceat(rows, starts),
                      np.maximum.reduceat(cols, starts) + 1,
                      np.maximum.reduceat(rows, starts) + 1], axis=1)
    return found, boxes.astype(np.float64)


def crop_mask_targets(masks, boxes, size=28, threshold: float = 0.5,
                      sampling_ratio: int = 2) -> np.ndarray:
    """The ``size × size`` binary mask target of each box: its mask, RoIAligned to the box
    (:func:`segcourse.instances.roi.roi_align`, ``sampling_ratio`` points per bin along each
    axis) and kept where the average is at least ``threshold``.

    ``masks``: one binary ``(height, width)`` mask for every box, or ``(N, height, width)``,
    one per box (each box's own object, as Mask R-CNN pairs a RoI with the ground-truth mask it
    matched); ``boxes``: ``(N, 4)`` ``(x1, y1, x2, y2)`` in pixels, inside the mask. Returns
    ``(N, size, size)`` bool (``.astype("float32")`` for a loss), or the RoIAligned averages
    with ``threshold=None``.
    """
    masks = np.asarray(masks)
    if masks.ndim not in (2, 3) or masks.dtype.kind not in "biuf":
        raise ValueError(f"masks must be binary, shaped (height, width) or (N, height, "
                         f"width); got shape {masks.shape} of dtype {masks.dtype}.")
    values = np.unique(masks)
    if not np.isin(values, (0, 1)).all():
        raise ValueError(f"masks must be binary (bool, or 0 and 1); got values "
                         f"{values[:8].tolist()}. For one instance of an id map pass ids == k.")
    boxes = check_boxes(boxes, masks.shape[-2:])
    if masks.ndim == 3 and len(masks) != len(boxes):
        raise ValueError(f"masks hold {len(masks)} masks for {len(boxes)} boxes: give one mask "
                         "per box, or one (height, width) mask for all of them.")
    threshold = _check_threshold(threshold)
    if masks.ndim == 2:  # one mask for every box
        soft = roi_align(masks, boxes, size, 1.0, sampling_ratio)
    elif not len(boxes):  # no boxes, no masks: an empty (0, size, size)
        soft = roi_align(np.zeros(masks.shape[1:]), boxes, size, 1.0, sampling_ratio)
    else:
        soft = np.stack([roi_align(mask, box[None], size, 1.0, sampling_ratio)[0]
                         for mask, box in zip(masks, boxes, strict=True)])
    return soft if threshold is None else soft >= threshold


def paste_masks(mask_probs, boxes, image_shape, threshold: float | None = 0.5) -> np.ndarray:
    """Each ``m × m`` mask resized to its box and put into an image of ``image_shape`` (He et
    al. 2017, §3 "Inference"): ``(N, height, width)``, bool above ``threshold``, or the
    probabilities with ``threshold=None``.

    A pixel belongs to a box when its centre does; its value is the mask interpolated
    bilinearly at that centre's place in the mask (mask cell ``(i, j)`` covers
    ``[j, j + 1) × [i, i + 1)`` of the box divided into ``m × m``; edge cells extend to the box's
    edge). Pixels outside the box are 0, and so is what falls outside the image: a box may reach
    past the image's edges, and only its part inside is pasted.

    Not Detectron2's edge: within half a mask cell of the box's edge this holds the edge cell's
    value (the interpolation clamps at the mask's edge), where Detectron2's ``paste_masks_in_image``
    (``F.grid_sample``, ``align_corners=False``, zero padding) blends it with zeros, down to
    half the edge cell's value on the box's edge, and also gives pixels just outside the box
    (centres within half a mask cell of it) a part of it, where this gives them 0. So the
    probabilities differ in that band, box side / (2m) pixels each way, and so can the
    thresholded masks: an edge cell above 0.5 but below 1 crosses Detectron2's threshold
    inside the box, up to half a mask cell short of the box edge, and covers that band here.
    """
    mask_probs = np.asarray(mask_probs)
    if mask_probs.ndim != 3 or mask_probs.dtype.kind not in "biuf":
        raise ValueError(f"mask_probs must be numbers shaped (N, m, m), one mask per box (the "
                         f"mask head's channel of each box's class); got shape "
                         f"{mask_probs.shape} of dtype {mask_probs.dtype}.")
    if mask_probs.size and not ((mask_probs >= 0) & (mask_probs <= 1)).all():
        raise ValueError(f"mask_probs must be probabilities in [0, 1]; got values from "
                         f"{mask_probs.min():g} to {mask_probs.max():g}. Apply a sigmoid to "
                         "logits first.")
    boxes = check_boxes(boxes)
    if len(boxes) != len(mask_probs):
        raise ValueError(f"{len(mask_probs)} masks for {len(boxes)} boxes: give one mask per "
                         "box.")
    shape = tuple(image_shape)
    if len(shape) != 2 or not all(isinstance(v, numbers.Integral) and v >= 1 for v in shape):
        raise ValueError(f"image_shape must be (height, width), positive whole numbers; got "
                         f"{image_shape!r}.")
    threshold = _check_threshold(threshold)
    height, width = shape
    pasted = np.zeros((len(boxes), height, width))
    for n, ((x1, y1, x2, y2), mask) in enumerate(zip(boxes, mask_probs, strict=True)):
        m_h, m_w = mask.shape
        # the pixels whose centre j + 0.5 lies in [x1, x2), kept inside the image
        rows = np.arange(max(0, int(np.ceil(y1 - 0.5))), min(height, int(np.ceil(y2 - 0.5))))
        cols = np.arange(max(0, int(np.ceil(x1 - 0.5))), min(width, int(np.ceil(x2 - 0.5))))
        if not rows.size or not cols.size:
            continue
        # each centre's place in the mask, as an array position (mask cell centres at + 0.5)
        u = (rows + 0.5 - y1) / (y2 - y1) * m_h - 0.5
        v = (cols + 0.5 - x1) / (x2 - x1) * m_w - 0.5
        grid_u, grid_v = np.meshgrid(u, v, indexing="ij")
        pasted[n, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] = bilinear(
            mask.astype(np.float64), grid_u, grid_v)
    return pasted if threshold is None else pasted >= threshold
