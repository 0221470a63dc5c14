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
from segcourse.layers import ContextModule


def _dilated_stack():
    inp = keras.Input((80, 80, 2))
    return keras.Model(inp, ContextModule(identity_init=False, name="context")(inp))


CASES = {
    # model, layers to probe (None: the output), input size
    "unet": (lambda: models.build("unet", 3, (96, 96, 3), preset="cpu", depth=3),
             ["down2_relu2", "bottom_relu2", "up2_conv1", "up1_conv2", None]),
    "segnet": (lambda: models.build("segnet", 3, (224, 224, 3), preset="cpu"),
               ["block4_unpool", "block3_unpool", "block2_unpool"]),
    "fcn8s": (lambda: models.build("fcn8s", 3, (64, 64, 3), preset="cpu"),
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
