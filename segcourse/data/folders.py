"""Datasets stored as folders: the PASCAL VOC layout, and plain image/mask folders.

VOC (``VOCdevkit/VOC2012``)::

    JPEGImages/<id>.jpg
    SegmentationClass/<id>.png          palette PNG: pixel value = class, 255 = ignore (boundaries)
    ImageSets/Segmentation/<split>.txt  one id per line (train, val, trainval)

Plain folders::

    [<split>/]images/<name>.jpg|png
    [<split>/]masks/<name>.png          pixel value = class (a palette or greyscale PNG)
    classes.txt                         optional: one class name per line

Masks are read as class indices (never as colours) and never interpolated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segcourse.metrics import IGNORE_INDEX, validate_labels

VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
               "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
               "pottedplant", "sheep", "sofa", "train", "tvmonitor")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class FolderSplit:
    """The image and mask files of one split, paired, and the classes."""

    images: tuple[Path, ...]
    masks: tuple[Path, ...]
    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def is_voc(root) -> bool:
    root = Path(root)
    return (root / "JPEGImages").is_dir() and (root / "SegmentationClass").is_dir()


def voc_split(root, split="train") -> FolderSplit:
    """The VOC ids listed in ``ImageSets/Segmentation/<split>.txt``, as file pairs."""
    root = Path(root)
    listing = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not listing.exists():
        available = sorted(p.stem for p in listing.parent.glob("*.txt"))
        raise ValueError(f"no split {split!r} in {root}: {listing} is missing (available: "
                         f"{', '.join(available) or 'none'}).")
    ids = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    if not ids:
        raise ValueError(f"{listing} lists no images.")
    images = tuple(root / "JPEGImages" / f"{i}.jpg" for i in ids)
    masks = tuple(root / "SegmentationClass" / f"{i}.png" for i in ids)
    _check_exist(images + masks, listing)
    return FolderSplit(images, masks, VOC_CLASSES)


def _check_exist(paths, source):
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise ValueError(f"{len(missing)} files named by {source} are missing, e.g. {missing[0]}.")


def plain_split(root, split=None) -> FolderSplit:
    """Images and masks paired by file stem, from ``root/[split/]images`` and ``.../masks``."""
    root = Path(root)
    base = root / split if split and (root / split).is_dir() else root
    image_dir, mask_dir = base / "images", base / "masks"
    if not image_dir.is_dir() or not mask_dir.is_dir():
        raise ValueError(f"{base} has no images/ and masks/ folders; expected "
                         f"{base}/images/<name>.jpg and {base}/masks/<name>.png (or a VOC tree "
                         "with JPEGImages/ and SegmentationClass/).")
    images = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise ValueError(f"no images in {image_dir} (looked for {', '.join(IMAGE_SUFFIXES)}).")
    masks = {p.stem: p for p in mask_dir.glob("*.png")}
    unmatched = [p.name for p in images if p.stem not in masks]
    if unmatched:
        raise ValueError(f"{len(unmatched)} images in {image_dir} have no mask in {mask_dir}, "
                         f"e.g. {unmatched[0]} (a mask has the image's name with .png).")
    mask_paths = tuple(masks[p.stem] for p in images)
    return FolderSplit(tuple(images), mask_paths, _class_names(root, mask_paths))


def _class_names(root, mask_paths):
    listing = root / "classes.txt"
    if listing.exists():
        return tuple(line.strip() for line in listing.read_text().splitlines() if line.strip())
    labels = set()
    for path in mask_paths:
        labels |= set(np.unique(read_mask(path)).tolist())
    labels.discard(IGNORE_INDEX)
    return tuple(f"class {k}" for k in range(max(labels) + 1))


def read_image(path) -> np.ndarray:
    """RGB ``(H, W, 3)`` float32 in [0, 1]."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), np.float32) / 255.0


def read_mask(path) -> np.ndarray:
    """Class indices ``(H, W)`` uint8 from a palette or greyscale PNG (not from its colours)."""
    from PIL import Image

    with Image.open(path) as mask:
        if mask.mode not in ("P", "L", "I", "I;16"):
            raise ValueError(f"{path} is a {mask.mode} image; a mask must be a palette or "
                             "greyscale PNG whose pixel values are the class numbers.")
        return np.asarray(mask).astype(np.uint8)


def find_split(root, split) -> FolderSplit:
    """VOC or plain, whichever layout ``root`` has."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"dataset folder {root} does not exist.")
    return voc_split(root, split) if is_voc(root) else plain_split(root, split)


def dataset(split: FolderSplit, size: int, batch_size: int, shuffle=False, seed=0,
            augment=None):
    """A batched ``tf.data`` pipeline of ``(image, mask)`` resized to ``size × size``
    (bilinear for the image, nearest for the mask), masks checked for stray labels."""
    import tensorflow as tf

    from segcourse.data.augment import resize_pair

    num_classes = split.num_classes

    def load(image_path, mask_path):
        image = read_image(image_path.decode())
        mask = validate_labels(read_mask(mask_path.decode()), num_classes, IGNORE_INDEX,
                               f"mask {mask_path.decode()}")
        return image, mask.astype(np.int32)

    def load_pair(image_path, mask_path):
        image, mask = tf.numpy_function(load, [image_path, mask_path], [tf.float32, tf.int32])
        image.set_shape((None, None, 3))
        mask.set_shape((None, None))
        return resize_pair(image, mask, (size, size))

    paths = tf.data.Dataset.from_tensor_slices(([str(p) for p in split.images],
                                                [str(p) for p in split.masks]))
    if shuffle:
        paths = paths.shuffle(len(split.images), seed=seed, reshuffle_each_iteration=True)
    data = paths.map(load_pair, num_parallel_calls=tf.data.AUTOTUNE)
    if augment is not None:
        data = data.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)
