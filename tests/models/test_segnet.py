"""SegNet: VGG16's 13 convolutions with BN, pooling indices carried to the mirrored decoder."""

import re

import numpy as np
import pytest

from segcourse import models
from segcourse.layers import MaxPoolingWithArgmax2D, MaxUnpooling2D
from tests.models.helpers import trainable_count


def test_about_29_4_million_trainable_parameters_for_11_classes():
    model = models.build("segnet", 11)
    # 13 + 12 convolutions without biases (batch norm has the offsets), a 3×3 classifier.
    assert trainable_count(model) == 29_441_419
    names = [layer.name for layer in model.layers]
    encoder = [n for n in names if re.fullmatch(r"block\d_conv\d", n)]
    decoder = [n for n in names if re.fullmatch(r"block\d_conv\d_D", n)]
    assert (len(encoder), len(decoder)) == (13, 12)


def test_each_unpooling_uses_the_indices_of_its_own_pooling():
    model = models.build("segnet", 11, model_size="small")
    for block in range(1, 6):
        pool = model.get_layer(f"block{block}_pool")
        unpool = model.get_layer(f"block{block}_unpool")
        assert isinstance(pool, MaxPoolingWithArgmax2D) and isinstance(unpool, MaxUnpooling2D)
        assert unpool.input[1] is pool.output[1]


@pytest.mark.parametrize("variant, multiple", [("vgg16", 32), ("basic", 16)])
def test_output_size_equals_input_size(variant, multiple):
    model = models.build("segnet", 4, variant=variant, model_size="small")
    assert model(np.zeros((1, 2 * multiple, 3 * multiple, 3), "float32")).shape == (
        1, 2 * multiple, 3 * multiple, 4)
    with pytest.raises(ValueError, match=f"total stride {multiple}"):
        models.build("segnet", 4, (multiple + 8, multiple, 3), variant=variant)


def test_segnet_basic_is_four_7x7_encoders_and_linear_decoders():
    model = models.build("segnet", 11, variant="basic")
    assert [model.get_layer(f"encoder{i}_conv").kernel_size for i in range(1, 5)] == [(7, 7)] * 4
    assert "decoder1_conv_relu" not in [layer.name for layer in model.layers]
