"""Scoring a model: its label maps, and dataset-level scores from one confusion matrix.

The benchmarks (VOC, Cityscapes) score each picture at its own size, against
its mask as drawn, while a model sees the picture resized to its input size (bilinear), as in
training. Scoring the mask resized to the input size instead (nearest neighbour) moves the
number: a membrane one pixel wide vanishes from the mask or swells to a whole input pixel. At
each picture's own size, the model's class scores are resized back (bilinear, as the final
upsampling of FCN, Long et al. 2015, and DeepLab, Chen et al. 2017), and their argmax is the
label map counted against the mask. ``segcourse predict`` writes these same label maps.
"""

from __future__ import annotations

import numpy as np

from segcourse.labels import IGNORE_INDEX
from segcourse.metrics import SegmentationScores, confusion_matrix, scores
from segcourse.outputs import main_output


def class_scores(model, images, batch_size: int = 32, num_classes: int | None = None
                 ) -> np.ndarray:
    """The model's class scores ``(N, h, w, C)`` for images ``(N, H, W, 3)`` (a model with
    several outputs is read at its first, the main one). A model with one output channel (a
    sigmoid's single score, whose argmax is always 0) is refused, and so is one whose channels
    are not ``num_classes``, where given."""
    outputs = main_output(model.predict(images, batch_size=batch_size, verbose=0))
    channels = np.shape(outputs)[-1]
    if channels == 1:
        raise ValueError(
            f"the model {model.name!r} gives one score per pixel (output shape "
            f"{np.shape(outputs)}): an argmax over one channel is always class 0. Threshold it "
            "instead, (scores[..., 0] > 0.5) for a sigmoid's probability (> 0 for a logit), or "
            "give the model one output channel per class.")
    if num_classes is not None and channels != num_classes:
        raise ValueError(
            f"the model {model.name!r} gives {channels} class scores per pixel (output shape "
            f"{np.shape(outputs)}) but num_classes is {num_classes}: score it with "
            f"num_classes={channels}, or give the model {num_classes} output channels.")
    return outputs


def label_dtype(num_classes: int):
    """uint8 for label maps of up to 256 classes, else int32."""
    return np.uint8 if num_classes <= 256 else np.int32


def predict_labels(model, images, batch_size: int = 32, num_classes: int | None = None
                   ) -> np.ndarray:
    """Label maps ``(N, H, W)`` for images ``(N, H, W, 3)``: the argmax of the model's class
    scores (:func:`class_scores`, which says what it refuses); uint8 for up to 256 classes,
    else int32."""
    outputs = class_scores(model, images, batch_size, num_classes)
    return np.argmax(outputs, axis=-1).astype(label_dtype(np.shape(outputs)[-1]))


def evaluate(model, data, num_classes: int, class_names=None,
             ignore_index: int = IGNORE_INDEX, progress: bool = True) -> SegmentationScores:
    """Dataset-level scores: one confusion matrix summed over every batch of ``data`` (a
    ``tf.data.Dataset`` or an iterable of ``(images, masks)``)."""
    from tqdm.auto import tqdm

    total = np.zeros((num_classes, num_classes), np.int64)
    for images, masks in tqdm(data, desc="evaluate", unit="batch", disable=not progress,
                              leave=False):
        predictions = predict_labels(model, np.asarray(images), num_classes=num_classes)
        total += confusion_matrix(np.asarray(masks), predictions, num_classes, ignore_index)
    return scores(_refuse_empty(total, ignore_index), class_names)


def resize_to_input(model, image, size=None) -> np.ndarray:
    """``image (H, W, 3)`` resized (bilinear, as the training pipelines resize) to the model's
    input size; for a model without a fixed size, to ``size`` (the size it trained at), or, with
    none given, left at its own size."""
    import tensorflow as tf  # TensorFlow-only: the same tf.image.resize as the pipelines

    height, width = model.input_shape[1:3]
    fallback = tuple(size) if size is not None else image.shape[:2]
    size = (height or fallback[0], width or fallback[1])
    if tuple(image.shape[:2]) == size:
        return np.asarray(image, np.float32)
    return tf.image.resize(image, size, method="bilinear").numpy()


def labels_at_sizes(model, images, sizes, num_classes: int | None = None) -> list[np.ndarray]:
    """One label map per picture of ``images (N, h, w, 3)`` (already at the model's input
    size), at ``sizes[i] = (H, W)``: the class scores resized bilinearly, then their argmax."""
    outputs = class_scores(model, images, num_classes=num_classes)
    if outputs.shape[1:3] != np.shape(images)[1:3]:
        raise ValueError(
            f"the model {model.name!r} gives class scores of {outputs.shape[1]} × "
            f"{outputs.shape[2]} for pictures of {np.shape(images)[1]} × {np.shape(images)[2]}, "
            "so where its scores lie on the picture is not known: they may cover only its "
            "centre (valid convolutions, as the paper's U-Net's 572 → 388: predict by "
            "overlap-tile, segcourse.tiling.predict_tiled) or the whole picture on a coarser "
            "grid (then end the model with an upsampling to its input size, as FCN does).")
    dtype = label_dtype(outputs.shape[-1])
    return [resized_labels(picture_scores, size, dtype)
            for picture_scores, size in zip(outputs, sizes, strict=True)]


def _axis(old: int, new: int):
    """Bilinear sampling of an axis of ``old`` pixels at ``new``: pixel centres at half
    integers, the edges clamped (``tf.image.resize``'s convention without antialiasing)."""
    position = np.clip((np.arange(new) + 0.5) * old / new - 0.5, 0, old - 1)
    low = np.floor(position).astype(np.int64)
    return low, np.minimum(low + 1, old - 1), (position - low).astype(np.float32)


def resize_bilinear(values, size, rows=slice(None)) -> np.ndarray:
    """``values (h, w, C)`` resized bilinearly to ``size = (H, W)``: the output ``rows`` only
    (all by default), so that a large picture can be made a strip at a time."""
    values = np.asarray(values, np.float32)
    low, high, weight = _axis(values.shape[1], size[1])
    wide = values[:, low] * (1 - weight)[:, None] + values[:, high] * weight[:, None]
    low, high, weight = (part[rows] for part in _axis(values.shape[0], size[0]))
    return wide[low] * (1 - weight)[:, None, None] + wide[high] * weight[:, None, None]


def resized_labels(scores, size, dtype=np.uint8, rows_at_once: int = 256) -> np.ndarray:
    """The argmax of class scores ``(h, w, C)`` resized bilinearly to ``size = (H, W)``, made
    in strips of rows: memory grows with the scores at the picture's width, one strip at a
    time, not with all ``H × W × C`` scores (2 GB for a 6000 × 4000 photo of 21 classes)."""
    if tuple(np.shape(scores)[:2]) == tuple(size):  # at the picture's size already
        return np.argmax(scores, axis=-1).astype(dtype)
    height = size[0]
    labels = np.empty(tuple(size), dtype)
    for start in range(0, height, rows_at_once):
        rows = slice(start, min(start + rows_at_once, height))
        labels[rows] = np.argmax(resize_bilinear(scores, size, rows), axis=-1)
    return labels


def evaluate_at_own_size(model, pictures, num_classes: int, class_names=None,
                         ignore_index: int = IGNORE_INDEX, batch_size: int = 16,
                         progress: bool = True, size=None) -> SegmentationScores:
    """Dataset-level scores (one confusion matrix over every pixel) of ``pictures``, an
    iterable of ``(image (H, W, 3) float32 in [0, 1], mask (H, W) class numbers)``, each scored
    at its own size (module docstring). ``size``: what a model without a fixed input size sees
    the pictures resized to (:func:`resize_to_input`)."""
    from tqdm.auto import tqdm

    total = np.zeros((num_classes, num_classes), np.int64)
    try:
        count = len(pictures)  # a folder's list, a tfds split: known; a generator: not
    except TypeError:
        count = None
    with tqdm(total=count, desc="evaluate", unit="picture", disable=not progress,
              leave=False) as bar:
        for images, masks in _batches(model, pictures, batch_size, size):
            maps = labels_at_sizes(model, np.stack(images), [mask.shape for mask in masks],
                                   num_classes)
            for mask, labels in zip(masks, maps, strict=True):
                total += confusion_matrix(mask, labels, num_classes, ignore_index)
            bar.update(len(masks))  # once scored, not once read
    return scores(_refuse_empty(total, ignore_index), class_names)


def _refuse_empty(confusion: np.ndarray, ignore_index: int) -> np.ndarray:
    """``confusion``, refused when it counts no pixel: every score of it would be 0/0."""
    if not confusion.sum():
        raise ValueError(
            "no labelled pixel to score: the pictures' masks hold only the ignore label "
            f"{ignore_index} (or there were no pictures), so pixel accuracy and IoU would be "
            "0/0. Check the split's masks: a mask whose objects were stored as "
            f"{ignore_index} counts as unlabelled.")
    return confusion


def _batches(model, pictures, batch_size, size=None):
    """``(images at the input size, masks at their own size)`` in groups of ``batch_size``
    (smaller where a model without a fixed size meets pictures of another size)."""
    images, masks = [], []
    for number, (image, mask) in enumerate(pictures, start=1):
        image, mask = np.asarray(image), np.asarray(mask)
        if image.ndim != 3 or mask.shape != image.shape[:2]:
            raise ValueError(f"picture {number}: an image (H, W, 3) and its mask (H, W) of the "
                             f"same size are needed; got image {image.shape} and mask "
                             f"{mask.shape}.")
        resized = resize_to_input(model, image, size)
        if images and (len(images) == batch_size or images[0].shape != resized.shape):
            yield images, masks
            images, masks = [], []
        images.append(resized)
        masks.append(mask)
    if images:
        yield images, masks


def score_split(model, data, split: str = "test", at_input_size: bool = False,
                progress: bool = True) -> tuple[SegmentationScores, str]:
    """``data``'s (a ``sources.DataBundle``) ``split`` scored, and the words that say at what
    size: each picture's own where the dataset has one (module docstring), unless
    ``at_input_size``; else the pipeline's pictures and masks, resized to the input size."""
    height, width = getattr(data, split).element_spec[0].shape[1:3]  # the pipeline's size
    if data.pictures_at_own_size is not None and not at_input_size:
        result = evaluate_at_own_size(model, data.pictures_at_own_size(split), data.num_classes,
                                      data.class_names, data.ignore_index, progress=progress,
                                      size=(height, width))
        return result, "scored at each picture's own size"
    result = evaluate(model, getattr(data, split), data.num_classes, data.class_names,
                      data.ignore_index, progress=progress)
    if data.pictures_at_own_size is None:
        return result, f"scored at {height} × {width}, the size its pictures are made at"
    return result, (f"scored at the input size, {height} × {width} (pictures resized "
                    "bilinearly, masks by nearest neighbour)")
