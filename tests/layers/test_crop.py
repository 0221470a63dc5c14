import keras
import numpy as np
import pytest

from segcourse.layers import CropToReference


def test_fixed_offset_crop_like_caffe(rng):
    x = rng.random((1, 10, 12, 2)).astype("float32")
    out = CropToReference(3)([x, np.zeros((1, 4, 5, 1), "float32")])
    np.testing.assert_array_equal(out, x[:, 3:7, 3:8])


def test_centre_crop_like_unet_with_unknown_sizes(rng):
    x_in, ref_in = keras.Input((None, None, 2)), keras.Input((None, None, 1))
    model = keras.Model([x_in, ref_in], CropToReference()([x_in, ref_in]))
    x = rng.random((1, 64, 64, 2)).astype("float32")
    out = model([x, np.zeros((1, 56, 55, 1), "float32")])
    np.testing.assert_array_equal(out, x[:, 4:60, 4:59])  # odd pixel to the bottom/right


def test_too_small_to_crop_says_so():
    with pytest.raises(ValueError, match="cannot crop height 4 to 4 at offset 2"):
        CropToReference(2)([keras.Input((4, 8, 1)), keras.Input((4, 4, 1))])
