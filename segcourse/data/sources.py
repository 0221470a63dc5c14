"""One entry point from a dataset name to train / validation / test pipelines.

``shapes`` (the embedded default), ``pets`` (Oxford-IIIT Pet through tensorflow-datasets) and
``folder:PATH`` (a VOC-style tree or an images/masks folder) all come out the same way: batched
``tf.data`` pipelines of ``(image float32 in [0, 1], mask int32)`` at the configured size;
``pets`` and ``folder:PATH`` also give each picture at its own size, to score at
(``segcourse.scoring``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from segcourse.labels import IGNORE_INDEX


@dataclass
class DataBundle:
    """A dataset opened for training: its three splits and what its classes are."""
    train: object
    val: object
    test: object
    num_classes: int
    class_names: tuple[str, ...]
    palette: np.ndarray
    train_steps: int
    ignore_index: int = IGNORE_INDEX
    # Folder datasets: the images of each split (paths relative to the folder), and what a run
    # should state about its data (how a flat folder was split, a test split that is val).
    split_files: dict[str, tuple[str, ...]] | None = None
    notes: tuple[str, ...] = ()
    # "val" or "test" -> that split's (image, mask) pairs one by one, each at the picture's own
    # size (segcourse.scoring scores them so); None where the pictures are made at the
    # configured size (shapes).
    pictures_at_own_size: Callable[[str], Iterable] | None = None

    def sample(self, count: int):
        """The first ``count`` test images and masks, as NumPy (for figures)."""
        images, masks = [], []
        for batch_images, batch_masks in self.test:
            images.extend(np.asarray(batch_images))
            masks.extend(np.asarray(batch_masks))
            if len(images) >= count:
                break
        return np.stack(images[:count]), np.stack(masks[:count])


def _shapes(config) -> DataBundle:
    from segcourse.data import palettes, shapes

    def split(name, count):
        # Training sees new pictures every epoch: the dataset is procedural, hence unlimited.
        return shapes.dataset(name, count, config.image_size, config.batch_size, config.seed,
                              progress=True, fresh_each_epoch=name == "train")

    return DataBundle(split("train", config.train_count), split("val", config.val_count),
                      split("test", config.test_count), shapes.NUM_CLASSES, shapes.CLASS_NAMES,
                      palettes.shapes_palette(), -(-config.train_count // config.batch_size))


def _pets(config, border="ignore") -> DataBundle:
    from segcourse.data import augment, palettes, pets

    def split(name):
        return pets.dataset(name, config.image_size, config.batch_size, border,
                            seed=config.seed,
                            augment=augment.JointAugment() if name == "train" else None)

    names = pets.class_names(border)
    return DataBundle(split("train"), split("val"), split("test"), len(names), names,
                      palettes.voc_palette(), -(-pets.TRAIN_IMAGES // config.batch_size),
                      pictures_at_own_size=lambda name: pets.pictures_at_own_size(name, border))


def _folder(config, root) -> DataBundle:
    """Checked when opened (every mask read once, every problem file named, classes decided
    for all splits); a flat images/ + masks/ folder is split 70 / 15 / 15 % by file-name hash."""
    from segcourse.data import augment, folders, palettes

    data = folders.open_folders(root)
    for note in data.notes:
        print(f"note: {note}")

    def pipeline(split, training):
        return folders.dataset(split, config.image_size, config.batch_size, shuffle=training,
                               seed=config.seed,
                               augment=augment.JointAugment() if training else None)

    return DataBundle(pipeline(data.train, True), pipeline(data.val, False),
                      pipeline(data.test, False), data.num_classes, data.class_names,
                      palettes.voc_palette(), -(-len(data.train.images) // config.batch_size),
                      split_files=data.split_files, notes=data.notes,
                      pictures_at_own_size=lambda name: folders.PicturesAtOwnSize(
                          getattr(data, name)))


def open_dataset(config) -> DataBundle:
    """The pipelines named by ``config.dataset`` (a resolved ``TrainConfig``): ``shapes``,
    ``pets`` (``pets:class`` keeps the trimap border as a class), or ``folder:PATH``."""
    name = config.dataset
    if name == "shapes":
        return _shapes(config)
    if name in ("pets", "pets:ignore", "pets:class"):
        return _pets(config, name.partition(":")[2] or "ignore")
    if name.startswith("folder:"):
        return _folder(config, name.partition(":")[2])
    raise ValueError(f"unknown dataset {name!r}; use shapes, pets, pets:class or folder:PATH.")
