"""The effective receptive field (Luo et al. 2016) against a closed form and against training."""

import keras
import numpy as np
import pytest

from segcourse import models
from segcourse.analysis import effective_receptive_field, plot_effective_field
from segcourse.data import shapes
from segcourse.losses import MaskedCrossEntropy


def _box_stack(depth, size=64):
    inp = keras.Input((size, size, 1))
    x = inp
    for i in range(depth):
        x = keras.layers.Conv2D(1, 3, padding="same", use_bias=False, name=f"conv{i}",
                                kernel_initializer=keras.initializers.Constant(1 / 9))(x)
    return keras.Model(inp, x)


@pytest.mark.parametrize("depth", [4, 9, 16])
def test_a_linear_stack_of_box_filters_has_the_binomial_spread(depth):
    # the gradient is the depth-fold convolution of a 3x3 box: per axis the distribution of a
    # sum of `depth` uniform steps in {-1, 0, 1}, variance 2 depth / 3 — a sqrt(depth) growth
    field = effective_receptive_field(_box_stack(depth), samples=2)
    np.testing.assert_allclose(field.std, [np.sqrt(2 * depth / 3)] * 2, rtol=1e-4)
    assert field.theoretical_radius == depth
    assert field.radius < field.theoretical_radius


def test_the_effective_field_shrinks_relative_to_the_theoretical_one_with_depth():
    ratios = [effective_receptive_field(_box_stack(d), samples=2).radius / d for d in (4, 16)]
    assert ratios[1] < ratios[0]


@pytest.mark.slow
def test_training_widens_the_effective_field_of_a_unet():
    keras.utils.set_random_seed(0)
    model = models.build("unet", 6, (64, 64, 3), model_size="small", depth=2)
    probe, _ = shapes.load("val", 16, 64)
    before = effective_receptive_field(model, inputs=probe)
    images, masks = shapes.load("train", 2000, 64)
    model.compile(keras.optimizers.Adam(3e-3), MaskedCrossEntropy())
    model.fit(images, masks, batch_size=32, epochs=4, verbose=0)
    after = effective_receptive_field(model, inputs=probe)
    # Luo et al. §4.4: the ERF grows during training (here std 3.4 -> 7.8 px over 4 epochs;
    # it can dip in the first epoch); it stays inside the theoretical field
    assert min(after.std) > 1.5 * max(before.std)
    assert after.radius < after.theoretical_radius == before.theoretical_radius


def test_the_centre_and_the_plot():
    field = effective_receptive_field(_box_stack(3, size=16), position=(2, 9), samples=2)
    assert field.centre == (2.0, 9.0)
    assert field.theoretical == ((0, 5), (6, 12))  # clipped at the top edge
    assert np.unravel_index(field.heatmap.argmax(), field.heatmap.shape) == (2, 9)
    figure = plot_effective_field(field)
    assert len(figure.axes[0].patches) == 2


def test_a_dead_unit_is_reported():
    inp = keras.Input((8, 8, 1))
    model = keras.Model(inp, keras.layers.Conv2D(1, 3, kernel_initializer="zeros")(inp))
    with pytest.raises(ValueError, match="zero input gradient"):
        effective_receptive_field(model, samples=1)
