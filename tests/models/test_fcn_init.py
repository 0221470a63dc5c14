"""FCN's starting weights without ImageNet: He-normal (He et al. 2015, §2.2), not Glorot.

The 13 VGG16 convolutions, fc6 and fc7 form a 15-layer ReLU stack without batch norm. He et
al.'s §2.2: a convolution with ``n`` inputs per unit (its fan-in) and a ReLU after it multiply
the mean square of the activations by ``n · Var[w] / 2`` in expectation: 1 for He-normal
(``Var[w] = 2 / n``); ``n_in / (n_in + n_out)`` for Keras' Glorot-uniform, at most ½ wherever a
layer keeps or widens its fan (every layer of FCN but fc6, whose fan-out is 8 times its fan-in
at the small width: 1/9 there).
"""

import keras
import numpy as np
import pytest

from segcourse import metrics, models
from segcourse.data import shapes
from segcourse.layers import bilinear_kernel
from segcourse.models import fcn as fcn_module

STACK = ("block", "fc")  # the names of the 13 convolutions, fc6 and fc7


def stack(model):
    return [layer for layer in model.layers
            if type(layer) is keras.layers.Conv2D and layer.name.startswith(STACK)]


def glorot(model):
    """The same net with Keras' default kernels: what FCN had before (a fixed seed)."""
    for layer in stack(model):
        layer.kernel.assign(keras.initializers.GlorotUniform(seed=0)(layer.kernel.shape))
    return model


@pytest.mark.parametrize("name", ["fcn32s", "fcn16s", "fcn8s"])
def test_without_weights_the_stack_is_he_normal_and_the_rest_as_before(name):
    model = models.build(name, 3, model_size="small")
    assert len(stack(model)) == 15
    for layer in stack(model):
        kernel = layer.kernel.numpy()
        fan_in = int(np.prod(kernel.shape[:-1]))
        # sample variance of n draws: relative standard error about sqrt(2 / n); allow four
        tolerance = 4 * np.sqrt(2 / kernel.size)
        np.testing.assert_allclose(kernel.var(), 2 / fan_in, rtol=tolerance, err_msg=layer.name)
        assert abs(kernel.mean()) < 4 * np.sqrt(2 / fan_in / kernel.size), layer.name
        assert layer.kernel_initializer.get_config()["distribution"] == "untruncated_normal"
        assert layer.kernel_initializer.get_config()["scale"] == 2.0
        assert not layer.bias.numpy().any()
    stride = int(name[3:-1])
    for scorer in ("score_fr", "score_pool4", "score_pool3")[: {32: 1, 16: 2, 8: 3}[stride]]:
        assert not model.get_layer(scorer).kernel.numpy().any()
    final = model.get_layer("upscore" if stride == 32 else f"upscore{stride}")
    np.testing.assert_allclose(final.kernel.numpy()[:, :, 1, 1], bilinear_kernel(2 * stride))


def test_fc7_starts_at_the_pictures_scale_with_he_and_far_below_with_glorot():
    """Root mean square at fc7 over that of 16 pictures, 64 × 64 ("same" alignment, small size).

    Hand bounds, from the factors in the module docstring, for the mean square:
    - zero borders only lower it, by the share of a kernel's taps that fall inside the map:
      ((3s - 2) / 3s)² per 3×3 convolution on an s × s map (s = 64, 64, 32, 32, 16 × 3, 8 × 3,
      4 × 3) and (2/7)² for fc6's 7×7 on pool5's 2 × 2: 0.011 in all;
    - each 2×2 max pooling raises it, by at most 4 (the max's square is at most the four's sum).
    He-normal: between 0.011 and 0.011 · 4⁵ = 11.3, root mean square 0.105 to 3.4. Glorot: its
    15 factors (0.27, ½, ⅓, ½, ⅓, ½, ½, ⅓, ½ × 5, 1/9, ½) make 1.1e-6, so at most
    1.1e-6 · 11.3 = 1.2e-5, root mean square below 0.0035.
    """
    pictures, _ = shapes.load("test", 16, 64)
    rms = lambda a: float(np.sqrt(np.mean(np.square(a))))  # noqa: E731

    def ratio(model):
        fc7 = keras.Model(model.input, model.get_layer("fc7").output)(pictures, training=False)
        return rms(fc7) / rms(pictures)

    keras.utils.set_random_seed(0)
    model = models.build("fcn8s", 2, (64, 64, 3), alignment="same", model_size="small")
    assert 0.105 <= ratio(model) <= 3.4
    assert ratio(glorot(model)) < 0.0035


def test_given_weights_are_the_kernels_exactly(monkeypatch):
    vgg = keras.applications.VGG16(weights=None)  # stands in for the ImageNet download
    monkeypatch.setattr(fcn_module, "keras_application", lambda *args, **kwargs: vgg)
    model = models.build("fcn8s", 21, weights="imagenet")
    for layer in stack(model):
        source = {"fc6": "fc1", "fc7": "fc2"}.get(layer.name, layer.name)
        kernel, bias = vgg.get_layer(source).get_weights()
        np.testing.assert_array_equal(layer.kernel.numpy().reshape(kernel.shape), kernel)
        np.testing.assert_array_equal(layer.bias.numpy(), bias)


@pytest.mark.slow
def test_from_scratch_fcn8s_learns_on_shapes():
    """The course's recipe (Adam, cosine decay from 3e-3), 160 steps of 16 easy 32 × 32
    pictures, object against background: the test mIoU ends well above that of answering
    background everywhere (half the background's share, 0.40 here)."""
    from segcourse.train import TrainConfig, compile_model

    size, batch, steps = 32, 16, 160
    easy = shapes.ShapesConfig(size=size, objects=(1, 1), clutter_strokes=(0, 0), noise=0.0,
                               texture_strength=0.0, min_contrast=0.5)
    images, masks = shapes.load("train", steps * batch, size, config=easy)
    test_images, test_masks = shapes.load("test", 128, size, config=easy)
    masks, test_masks = (masks > 0).astype(np.uint8), (test_masks > 0).astype(np.uint8)
    background = metrics.scores(metrics.confusion_matrix(
        test_masks, np.zeros_like(test_masks), 2)).miou
    assert background == pytest.approx(np.mean(test_masks == 0) / 2)

    keras.utils.set_random_seed(0)
    model = models.build("fcn8s", 2, (size, size, 3), alignment="same", model_size="small")
    compile_model(model, TrainConfig(model="fcn8s", epochs=1, learning_rate=3e-3), 2, steps)
    model.jit_compile = False  # compiling would cost more than these few steps
    model.fit(images, masks, batch_size=batch, epochs=1, shuffle=False, verbose=0)
    found = model.predict(test_images, batch_size=128, verbose=0).argmax(-1)
    assert metrics.scores(metrics.confusion_matrix(test_masks, found, 2)).miou > background + 0.1
