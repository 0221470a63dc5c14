"""Oxford-IIIT Pet (Parkhi et al., CVPR 2012) through tensorflow-datasets.

The trimaps label each pixel 1 = pet, 2 = background, 3 = border (the uncertain band around the
animal). Here: 0 = background, 1 = pet, and the border either a class of its own (2,
``border="class"``) or the ignore label (255, ``border="ignore"``, the usual choice: the band
is where the annotators were unsure). tfds downloads and prepares the data once (about 800 MB)
into its data directory; splits: train = the first 90 % of tfds' ``train``, val = the rest,
test = tfds' ``test``.
"""

from __future__ import annotations

from segcourse.metrics import IGNORE_INDEX

TFDS_NAME = "oxford_iiit_pet"
SPLITS = {"train": "train[:90%]", "val": "train[90%:]", "test": "test"}
BORDERS = ("ignore", "class")


def class_names(border="ignore"):
    return ("background", "pet") + (("border",) if border == "class" else ())


def trimap_to_labels(trimap, border="ignore"):
    """Trimap values 1, 2, 3 → 1 (pet), 0 (background), 2 or 255 (border)."""
    import tensorflow as tf

    if border not in BORDERS:
        raise ValueError(f"border must be one of {BORDERS}; got {border!r}.")
    lookup = tf.constant([IGNORE_INDEX, 1, 0, 2 if border == "class" else IGNORE_INDEX],
                         tf.int32)
    return tf.gather(lookup, tf.cast(trimap, tf.int32))


def dataset(split="train", size=128, batch_size=16, border="ignore", shuffle=None, seed=0,
            data_dir=None, augment=None):
    """A batched pipeline of ``(image float32 [0, 1] (size, size, 3), mask int32)``."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    from segcourse.data.augment import resize_pair

    if split not in SPLITS:
        raise ValueError(f"pets has the splits {', '.join(SPLITS)}; got {split!r}.")
    data = tfds.load(TFDS_NAME, split=SPLITS[split], data_dir=data_dir,
                     shuffle_files=False)

    def prepare(example):
        image = tf.cast(example["image"], tf.float32) / 255.0
        mask = trimap_to_labels(example["segmentation_mask"][..., 0], border)
        return resize_pair(image, mask, (size, size))

    if shuffle if shuffle is not None else split == "train":
        data = data.shuffle(1000, seed=seed, reshuffle_each_iteration=True)
    data = data.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    if augment is not None:
        data = data.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)
