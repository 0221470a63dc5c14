"""Oxford-IIIT Pet through tfds, offline: tfds.testing.mock_data serves generated examples in
the dataset's real feature format (image, 1/2/3 trimap)."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from segcourse.data import pets


def test_trimap_values_become_classes_or_ignore():
    trimap = tf.constant([[1, 2, 3]])
    np.testing.assert_array_equal(pets.trimap_to_labels(trimap, "ignore"), [[1, 0, 255]])
    np.testing.assert_array_equal(pets.trimap_to_labels(trimap, "class"), [[1, 0, 2]])
    with pytest.raises(ValueError, match="border must be one of"):
        pets.trimap_to_labels(trimap, "drop")


def mock_pets(builder, split, **kwargs):
    """Examples in the real feature format: uint8 images and a (H, W, 1) trimap of 1, 2, 3."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 40, 30, 3), dtype=np.uint8)
    trimaps = rng.integers(1, 4, (6, 40, 30, 1), dtype=np.uint8)
    return tf.data.Dataset.from_tensor_slices({"image": images, "segmentation_mask": trimaps,
                                               "label": np.zeros(6, np.int64)})


@pytest.mark.parametrize("border, allowed", [("ignore", {0, 1, 255}), ("class", {0, 1, 2})])
def test_the_pipeline_on_mock_pets(border, allowed):
    with tfds.testing.mock_data(num_examples=6, as_dataset_fn=mock_pets):
        data = pets.dataset("train", size=32, batch_size=3, border=border)
        images, masks = next(iter(data))
    assert images.shape == (3, 32, 32, 3) and images.dtype == tf.float32
    assert masks.shape == (3, 32, 32) and set(np.unique(masks)) <= allowed
    assert pets.class_names(border)[:2] == ("background", "pet")
