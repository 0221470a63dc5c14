"""Joint augmentation moves image and mask together and never invents a label."""

import numpy as np
import tensorflow as tf

from segcourse.data.augment import JointAugment, resize_pair


def labelled_picture():
    mask = np.zeros((32, 32), np.int32)
    mask[4:20, 6:16] = 1
    mask[18:30, 18:28] = 2
    image = np.repeat(mask[..., None].astype(np.float32), 3, axis=-1)  # image = label value
    return image, mask


def test_image_and_mask_get_the_same_geometry():
    image, mask = labelled_picture()
    augment = JointAugment(degrees=30, scale=(0.7, 1.4), shift=0.2)
    tf.random.set_seed(3)
    for _ in range(10):
        out_image, out_mask = (np.asarray(t) for t in augment(image, mask))
        assert set(np.unique(out_mask)) <= {0, 1, 2, 255}
        # Away from region boundaries and the picture's edge, the bilinear image equals the
        # nearest mask.
        labels = np.pad(out_mask, 2, constant_values=255)
        windows = np.lib.stride_tricks.sliding_window_view(labels, (5, 5))
        uniform = (windows.min(axis=(2, 3)) == windows.max(axis=(2, 3))) & (out_mask != 255)
        assert uniform.sum() > 100
        np.testing.assert_allclose(out_image[..., 0][uniform], out_mask[uniform], atol=1e-4)


def test_flip_only_mirrors_both():
    image, mask = labelled_picture()
    augment = JointAugment(flip=True, scale=(1, 1), degrees=0, shift=0)
    seen = set()
    for seed in range(8):
        tf.random.set_seed(seed)
        out_image, out_mask = (np.asarray(t) for t in augment(image, mask))
        flipped = np.array_equal(out_mask, mask[:, ::-1])
        assert flipped or np.array_equal(out_mask, mask)
        np.testing.assert_allclose(out_image[..., 0], out_mask, atol=1e-5)
        seen.add(flipped)
    assert seen == {True, False}


def test_masks_are_resized_with_nearest_only():
    image, mask = labelled_picture()
    _, small = resize_pair(image, mask, (13, 11))
    assert small.dtype == tf.int32 and set(np.unique(small)) <= {0, 1, 2}
