import keras
import numpy as np
import pytest

from segcourse.models import convolutionalize


def small_classifier():
    return keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(32, activation="relu", name="fc1"),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(10, activation="softmax", name="predictions"),
    ], name="small")


def test_same_logits_on_the_training_size_and_a_map_on_larger_images(rng):
    classifier = small_classifier()
    fcn = convolutionalize(classifier)
    x = rng.random((2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(fcn(x)[:, 0, 0], classifier(x), rtol=1e-5, atol=1e-6)
    # 64 px: an 16×16 map after the pools; the 8×8 "fc1" kernel slides to a 9×9 score map.
    assert fcn(rng.random((1, 64, 64, 3)).astype("float32")).shape == (1, 9, 9, 10)
    assert fcn.get_layer("fc1").kernel.shape == (8, 8, 16, 32)


def test_vgg16_head_becomes_fc6_like_convolutions(rng):
    vgg = keras.applications.VGG16(weights=None)
    assert vgg.count_params() == 138_357_544
    fcn = convolutionalize(vgg)
    assert fcn.count_params() == 138_357_544
    assert fcn.get_layer("fc1").kernel.shape == (7, 7, 512, 4096)
    assert fcn.get_layer("fc2").kernel.shape == (1, 1, 4096, 4096)
    x = rng.random((1, 224, 224, 3)).astype("float32") * 255
    np.testing.assert_allclose(fcn(x)[:, 0, 0], vgg(x), rtol=1e-4, atol=1e-6)
    assert fcn(np.zeros((1, 384, 384, 3), "float32")).shape == (1, 6, 6, 1000)


def test_branching_models_are_refused():
    inp = keras.Input((8, 8, 3))
    a, b = keras.layers.Conv2D(4, 3)(inp), keras.layers.Conv2D(4, 3)(inp)
    joined = keras.layers.Flatten()(keras.layers.Add()([a, b]))
    model = keras.Model(inp, keras.layers.Dense(2)(joined))
    with pytest.raises(ValueError, match="single-chain"):
        convolutionalize(model)
