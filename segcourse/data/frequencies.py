"""How often each class occurs in a set of masks, and the median-frequency class weights built on
it (Eigen & Fergus, "Predicting Depth, Surface Normals and Semantic Labels with a Common
Multi-Scale Convolutional Architecture", ICCV 2015, §4.3; used by SegNet, Badrinarayanan et
al., TPAMI 2017, §3.2, Training).

For class c, f_c = (pixels of class c) / (pixels of the images in which c is present), and
its weight is w_c = median(f) / f_c: a class rarer than the median class weighs more than 1,
a commoner one less, the median class exactly 1 (with an even number of classes the median
lies between two classes, neither of which gets exactly 1). Counting a class only over the
images that hold it measures how much of a picture it covers where it occurs, so a class
present in few images is not made huge by the many images without it.

Ignored pixels (``ignore_index``) count for nothing: neither as pixels of a class nor in an
image's total, which is the number of its labelled pixels.

A class that appears in none of the images has no frequency (0 / 0) and no weight, and
:func:`median_frequency_weights` refuses it, naming it: a weight of 0 would silently stop the
loss from ever asking for that class, and any other number would be invented. Count over the
training split, where every class should occur, or drop the class.

NumPy only: a ``tf.data`` dataset is read through its ``as_numpy_iterator()``, without this
module importing TensorFlow (docs/design.md §3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segcourse.labels import IGNORE_INDEX, validate_labels


@dataclass(frozen=True, eq=False)
class ClassFrequencies:
    """What :func:`class_frequencies` counted; arrays have one entry per class."""

    pixels: np.ndarray        # int64: labelled pixels of the class
    images: np.ndarray        # int64: images in which the class has at least one pixel
    image_pixels: np.ndarray  # int64: labelled pixels of those images, all classes together
    num_images: int           # images counted, including those without a labelled pixel

    @property
    def frequency(self) -> np.ndarray:
        """f_c = pixels / image_pixels (Eigen & Fergus 2015, §4.3); NaN for a class that
        appears in no image."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.images > 0, self.pixels / np.maximum(self.image_pixels, 1),
                            np.nan)


def class_frequencies(masks_or_dataset, num_classes: int,
                      ignore_index: int | None = IGNORE_INDEX) -> ClassFrequencies:
    """Count, per class, its pixels, the images it appears in and their pixels.

    ``masks_or_dataset``: a NumPy array of masks ``(N, H, W)`` (or one mask ``(H, W)``; a
    trailing axis of 1 is allowed); an iterable of masks or of batches of masks; or an
    iterable of ``(image, mask)`` pairs or ``(image, mask, weight)`` triples (the weight, a
    per-pixel ``sample_weight`` as :func:`segcourse.data.cells.dataset` with ``weights=True``
    yields, is ignored), such as a ``tf.data`` dataset, batched or not (the image's rank tells
    which). Labels must be classes ``0..num_classes-1`` or ``ignore_index``
    (:func:`segcourse.labels.validate_labels`).
    """
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"class_frequencies: num_classes must be a positive integer; got "
                         f"{num_classes!r}.")
    pixels, images, image_pixels = (np.zeros(num_classes, np.int64) for _ in range(3))
    num_images = 0
    for what, batch in _mask_batches(masks_or_dataset):
        labels = validate_labels(batch, num_classes, ignore_index, f"class_frequencies: {what}")
        flat = labels.reshape(len(labels), int(np.prod(labels.shape[1:])))
        keep = flat != ignore_index if ignore_index is not None else np.ones(flat.shape, bool)
        which = (np.arange(len(flat))[:, None] * num_classes + flat)[keep]
        counts = np.bincount(which, minlength=len(flat) * num_classes).reshape(-1, num_classes)
        present = counts > 0
        pixels += counts.sum(axis=0)
        images += present.sum(axis=0)
        image_pixels += (present * counts.sum(axis=1, keepdims=True)).sum(axis=0)
        num_images += len(flat)
    if num_images == 0:
        raise ValueError("class_frequencies: the data held no masks; pass the masks (an array "
                         "(N, H, W)) or a dataset of (image, mask) pairs (or (image, mask, weight) "
                         "triples) with at least one.")
    return ClassFrequencies(pixels, images, image_pixels, num_images)


def median_frequency_weights(data, num_classes: int | None = None,
                             ignore_index: int | None = IGNORE_INDEX) -> np.ndarray:
    """w_c = median(f) / f_c (Eigen & Fergus 2015, §4.3), a float64 array of one weight per
    class, for ``MaskedCrossEntropy(class_weights=...)`` or ``FocalLoss(alpha=...)``.

    ``data``: a :class:`ClassFrequencies`, or what :func:`class_frequencies` takes (then
    ``num_classes`` is required). A class present in no image is refused (module docstring).
    """
    if isinstance(data, ClassFrequencies):
        counted = data
        if num_classes is not None and num_classes != len(counted.pixels):
            raise ValueError(f"median_frequency_weights: num_classes={num_classes}, but the "
                             f"frequencies given count {len(counted.pixels)} classes.")
    elif num_classes is None:
        raise ValueError("median_frequency_weights: give num_classes with masks or a dataset "
                         "(or pass the ClassFrequencies that class_frequencies returned).")
    else:
        counted = class_frequencies(data, num_classes, ignore_index)
    absent = np.flatnonzero(counted.images == 0)
    if absent.size:
        raise ValueError(
            f"median_frequency_weights: class{'es' if absent.size > 1 else ''} "
            f"{absent.tolist()} appear{'' if absent.size > 1 else 's'} in none of the "
            f"{counted.num_images} images, so {'they have' if absent.size > 1 else 'it has'} "
            "no frequency and no weight (a weight of 0 would stop the loss from ever "
            "asking for them). Count over the training split, where every class should "
            "appear; or give the model only the classes the data has.")
    frequency = counted.frequency
    return np.median(frequency) / frequency


def _mask_batches(data):
    """``(what, masks (B, H, W))`` for each element of what :func:`class_frequencies` takes."""
    if isinstance(data, np.ndarray):
        yield "masks", _as_batch(data, None, "masks")
        return
    if hasattr(data, "as_numpy_iterator"):  # a tf.data.Dataset
        data = data.as_numpy_iterator()
    elif isinstance(data, (str, bytes, dict)) or not hasattr(data, "__iter__"):
        raise ValueError(f"class_frequencies: expected masks (an array or an iterable of masks) "
                         f"or a dataset of (image, mask) pairs or (image, mask, weight) "
                         f"triples; got {type(data).__name__}.")
    for index, element in enumerate(data):
        what = f"element {index}"
        if isinstance(element, dict):
            raise ValueError(
                f"class_frequencies: {what} is a dict with keys {sorted(element)}; give "
                "(image, mask) pairs, e.g. data.map(lambda x: (x['image'], x['mask'])).")
        image_rank = None
        if isinstance(element, tuple):
            if len(element) not in (2, 3):
                raise ValueError(f"class_frequencies: {what} is a tuple of {len(element)} "
                                 "items; expected (image, mask) pairs or (image, mask, weight) "
                                 "triples. Map the dataset to one of those first, e.g. "
                                 "data.map(lambda image, mask, *rest: (image, mask)).")
            image_rank = np.ndim(element[0])
            element = element[1]  # a third item, the sample weight, is not counted
        yield what, _as_batch(np.asarray(element), image_rank, what)


def _as_batch(masks, image_rank, what):
    """Masks as ``(B, H, W)``: a channel axis of 1 dropped; with an image beside them, one mask
    for an image ``(H, W, C)``, a batch for images ``(B, H, W, C)``."""
    if image_rank is None:
        if masks.ndim in (3, 4) and masks.shape[-1] == 1:
            masks = masks[..., 0]
        if masks.ndim not in (2, 3):
            raise ValueError(f"class_frequencies: {what} has shape {masks.shape}; expected one "
                             "mask (H, W) or a batch (B, H, W), a trailing axis of 1 allowed.")
        return masks[None] if masks.ndim == 2 else masks
    if image_rank not in (3, 4):
        raise ValueError(f"class_frequencies: the image of {what} has rank {image_rank}; "
                         "expected one image (H, W, C) or a batch (B, H, W, C).")
    if masks.ndim == image_rank and masks.shape[-1] == 1:
        masks = masks[..., 0]
    if masks.ndim != image_rank - 1:
        raise ValueError(f"class_frequencies: {what} pairs an image of rank {image_rank} with a "
                         f"mask of shape {masks.shape}; expected the image's shape without its "
                         "channel axis (a trailing axis of 1 allowed).")
    return masks[None] if masks.ndim == 2 else masks
