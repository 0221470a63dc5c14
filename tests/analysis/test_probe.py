"""The gradient probe against the theoretical receptive fields (issue: never outside the field,
and exactly the field for a linearized network), on U-Net, SegNet, FCN-8s and a dilated stack."""

import keras
import numpy as np
import pytest

from segcourse import models
from segcourse.analysis.effective_field import (
    gradient_support,
    input_gradient,
    linearized,
    theoretical_support,
)
from segcourse.layers import (
    ASPP,
    AtrousConvBlock,
    BedOfNails,
    ContextModule,
    PyramidPooling,
    Resize,
    ResizeConv,
)
from tests.analysis.tf_support import SKIP_REASON, dilated_transposed_supported


def _dilated_stack():
    inp = keras.Input((80, 80, 2))
    return keras.Model(inp, ContextModule(identity_init=False, name="context")(inp))


CASES = {
    # model, layers to probe (None: the output), input size
    "unet": (lambda: models.build("unet", 3, (96, 96, 3), model_size="small", depth=3),
             ["down2_relu2", "bottom_relu2", "up2_conv1", "up1_conv2", None]),
    "segnet": (lambda: models.build("segnet", 3, (224, 224, 3), model_size="small"),
               ["block4_unpool", "block3_unpool", "block2_unpool"]),
    "fcn8s": (lambda: models.build("fcn8s", 3, (64, 64, 3), model_size="small"),
              ["block3_pool", "score_pool4c", "fuse_pool3", None]),
    "dilated": (_dilated_stack, [None]),
}


def _positions(model, layer_name):
    shape = (model.get_layer(layer_name) if layer_name else model.layers[-1]).output.shape
    rows, cols = shape[1], shape[2]
    return [(0, 0), (0, 1), (1, cols - 1), (rows // 2, cols // 2 + 1), (rows - 1, 2)]


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_linearized_network_fills_its_theoretical_field_exactly(name):
    build, layer_names = CASES[name]
    model = build()
    linear = linearized(model)
    for layer_name in layer_names:
        for position in _positions(model, layer_name):
            assert gradient_support(linear, position, layer_name) == theoretical_support(
                model, position, layer_name), (layer_name, position)


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_real_network_never_reaches_outside_the_field(name, rng):
    build, layer_names = CASES[name]
    model = build()
    image = rng.standard_normal((1, *model.inputs[0].shape[1:]))
    for layer_name in layer_names:
        for position in _positions(model, layer_name):
            touched = np.abs(input_gradient(model, image, position, layer_name))[0].sum(-1) > 0
            field = theoretical_support(model, position, layer_name)
            outside = touched.copy()
            if field is not None:
                (top, bottom), (left, right) = field
                outside[top:bottom + 1, left:right + 1] = False
            assert not outside.any(), (layer_name, position)


def test_units_that_only_see_padding_have_no_field_and_no_gradient():
    model = CASES["fcn8s"][0]()  # FCN pads the picture by 100 on each side
    assert theoretical_support(model, (0, 0), "block3_pool") is None
    assert gradient_support(linearized(model), (0, 0), "block3_pool") is None


def test_fields_not_clipped_by_the_picture_are_tested_somewhere():
    # guard against a probe that only ever compares "the whole picture" with itself
    model = CASES["segnet"][0]()
    (top, bottom), _ = theoretical_support(model, (0, 0), "block3_unpool")
    assert top == 0 and bottom < 223


def _upsampler_model(upsampler):
    inp = keras.Input((40, 40, 1))
    x = keras.layers.Conv2D(1, 3, strides=2, padding="same", name="down")(inp)
    x = upsampler(x)
    return keras.Model(inp, keras.layers.Conv2D(1, 3, padding="same", name="after")(x))


@pytest.mark.parametrize("make", [
    lambda: keras.layers.UpSampling2D(2),
    lambda: keras.layers.UpSampling2D(3, interpolation="bilinear"),
    lambda: Resize(2, interpolation="bicubic"),
    lambda: Resize(3, interpolation="lanczos3"),
    lambda: Resize(3, interpolation="mitchellcubic"),
    lambda: Resize(size=(50, 50), interpolation="bilinear"),
    lambda: keras.layers.Conv2DTranspose(1, 3, 2),
    lambda: keras.layers.Conv2DTranspose(1, 5, 3, padding="same"),
    lambda: keras.layers.Conv2DTranspose(1, 3, 1, dilation_rate=2),
    lambda: BedOfNails(2),
    lambda: ResizeConv(1, 2, 3, interpolation="bilinear"),
], ids=["nearest", "bilinear3", "bicubic", "lanczos3", "mitchell", "to_size", "convT_k3s2",
        "convT_k5s3_same", "convT_dilated", "bed_of_nails", "resize_conv"])
def test_every_upsampler_unit_by_unit(make, request):
    if "dilated" in request.node.callspec.id and not dilated_transposed_supported():
        pytest.skip(SKIP_REASON)
    model = _upsampler_model(make())
    linear = linearized(model)
    size = model.outputs[0].shape[1]
    for i in range(0, size, max(1, size // 13)):
        position = (i, size - 1 - i)
        assert gradient_support(linear, position) == theoretical_support(model, position), i


@pytest.mark.parametrize("make", [
    lambda: ASPP(4, rates=(2, 5)),
    lambda: PyramidPooling(bins=(2, 3), filters=2),
    lambda: AtrousConvBlock(3, 3, dilation_rate=3),
    lambda: ContextModule((1, 2, 4), identity_init=False),
], ids=["aspp", "pyramid", "atrous_block", "context"])
def test_composite_layers_unit_by_unit(make):
    inp = keras.Input((48, 48, 2))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="down")(inp)
    model = keras.Model(inp, make()(x))
    linear = linearized(model)
    for i in (0, 3, 12, 23):
        position = (i, 23 - i)
        assert gradient_support(linear, position) == theoretical_support(model, position), i
