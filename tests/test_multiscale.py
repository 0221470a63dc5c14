"""Multi-scale and flipped test-time inference (DeepLabV3, Chen et al. 2017, §4.3): the plain
case, the flip of a mirror-symmetric network, the resize path against a NumPy bilinear resize
written here, and the refusals."""

import keras
import numpy as np
import pytest

from segcourse.multiscale import DEEPLAB_SCALES, predict_multiscale, scaled_size


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def conv_net(symmetric=False, seed=0):
    """Two 3×3 convolutions, 3 channels in, 4 classes out, any input size. ``symmetric``:
    every kernel mirror-symmetric left to right, so the network commutes with the flip."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(5, 3, padding="same", activation="tanh")(inputs)
    outputs = keras.layers.Conv2D(4, 3, padding="same")(x)
    model = keras.Model(inputs, outputs)
    if symmetric:
        for layer in model.layers[1:]:
            kernel, bias = layer.get_weights()
            layer.set_weights([(kernel + kernel[:, ::-1]) / 2, bias])
    return model


def bilinear_1d(length_in, length_out):
    """The (length_out, length_in) matrix of a bilinear resize with half-pixel centres and the
    edge pixel repeated outside (no antialiasing): output pixel j reads the input at
    x = (j + 1/2)·in/out − 1/2."""
    matrix = np.zeros((length_out, length_in))
    for j in range(length_out):
        x = min(max((j + 0.5) * length_in / length_out - 0.5, 0.0), length_in - 1)
        left = int(np.floor(x))
        right = min(left + 1, length_in - 1)
        matrix[j, left] += 1 - (x - left)
        matrix[j, right] += x - left
    return matrix


def resize(images, size):
    rows, cols = bilinear_1d(images.shape[1], size[0]), bilinear_1d(images.shape[2], size[1])
    return np.einsum("ih,nhwc,jw->nijc", rows, images, cols)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((3, 12, 16, 3)).astype(np.float32)


def test_one_scale_without_flip_is_the_plain_prediction(images):
    model = conv_net()
    got = predict_multiscale(model, images, scales=(1.0,), flip=False)
    expected = softmax(model.predict(images, verbose=0))
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert got.shape == (3, 12, 16, 4) and got.dtype == np.float32


def test_a_mirror_symmetric_network_gains_nothing_from_the_flip(images):
    model = conv_net(symmetric=True)
    plain = predict_multiscale(model, images, scales=(1.0,), flip=False)
    np.testing.assert_allclose(predict_multiscale(model, images, scales=(1.0,), flip=True),
                               plain, atol=1e-6)


def test_the_flip_averages_with_the_flipped_back_prediction(images):
    model = conv_net(seed=3)
    plain = softmax(model.predict(images, verbose=0))
    mirrored = softmax(model.predict(images[:, :, ::-1], verbose=0))[:, :, ::-1]
    got = predict_multiscale(model, images, scales=(1.0,), flip=True)
    np.testing.assert_allclose(got, (plain + mirrored) / 2, atol=1e-6)
    assert not np.allclose(plain, mirrored, atol=1e-3)  # the test would be empty otherwise


def test_the_resize_path_against_a_numpy_bilinear_resize(images):
    # a 1x1 convolution with the identity kernel: the "class scores" are the picture itself,
    # so the result is the picture resized to each scale and back, averaged
    inputs = keras.Input((None, None, 3))
    layer = keras.layers.Conv2D(3, 1, use_bias=False)
    identity = keras.Model(inputs, layer(inputs))
    layer.set_weights([np.eye(3, dtype=np.float32)[None, None]])
    scales = (0.5, 1.5, 2.0)
    expected = np.mean([resize(resize(images, scaled_size(12, 16, s)), (12, 16))
                        for s in scales], axis=0)
    got = predict_multiscale(identity, images, scales=scales, flip=False, from_logits=False)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # at 0.5 the picture loses detail: the average is not the picture
    assert not np.allclose(got, images, atol=1e-2)


def test_probabilities_sum_to_one_over_the_classes(images):
    got = predict_multiscale(conv_net(), images, scales=(0.75, 1.25), flip=True, batch_size=2)
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-5)


def test_scaled_sizes_round_to_whole_pixels():
    assert scaled_size(513, 513, 0.5) == (256, 256)  # 256.5 rounds to the even 256
    assert scaled_size(64, 48, 1.75) == (112, 84)
    assert scaled_size(3, 3, 0.1) == (1, 1)
    assert DEEPLAB_SCALES == (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


@pytest.mark.parametrize("scales, match", [
    ((), "scales is empty"), ((1.0, 0.0), "positive finite"), ((-0.5,), "positive finite"),
    ((float("nan"),), "positive finite"), ((True,), "positive finite"), (2.0, "a sequence")])
def test_bad_scales_are_refused(images, scales, match):
    with pytest.raises(ValueError, match=match):
        predict_multiscale(conv_net(), images, scales=scales)


def test_bad_images_and_batch_sizes_are_refused(images):
    model = conv_net()
    with pytest.raises(ValueError, match=r"\(N, H, W, C\).*image\[None\]"):
        predict_multiscale(model, images[0])
    with pytest.raises(ValueError, match="takes 3 channels, the images have 1"):
        predict_multiscale(model, images[..., :1])
    with pytest.raises(ValueError, match="batch_size"):
        predict_multiscale(model, images, batch_size=0)
    # 0..255 pictures fed to a network trained on [0, 1] gave probabilities 0.49 off, silently
    with pytest.raises(ValueError, match=r"uint8, up to \d+\).*images / 255"):
        predict_multiscale(model, (images * 255).astype(np.uint8))


def test_a_model_built_for_one_size_is_refused_at_another(images):
    inputs = keras.Input((12, 16, 3))
    fixed = keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs), name="fixed")
    assert predict_multiscale(fixed, images, scales=(1.0,)).shape == (3, 12, 16, 2)
    with pytest.raises(ValueError, match=r"'fixed' takes pictures of \(12, 16\).*\(18, 24\)"
                                         r".*set_weights"):
        predict_multiscale(fixed, images, scales=(1.0, 1.5))


def test_a_model_with_an_auxiliary_head_is_read_at_its_main_output(images):
    # PSPNet's deep supervision (aux_head=True) gives [main, aux]: the main one is the prediction
    inputs = keras.Input((None, None, 3))
    main = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    aux = keras.layers.Conv2D(4, 1)(inputs)
    model = keras.Model(inputs, [main, aux])
    expected = softmax(np.asarray(model.predict(images, verbose=0)[0]))
    got = predict_multiscale(model, images, scales=(1.0,), flip=False, batch_size=2)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_tensorflows_retracing_warning_is_not_passed_on_and_its_logger_is_restored(images):
    # one traced graph per scale: TensorFlow warns that retracing is expensive (lab 10 once
    # stored that warning). A layer that logs such a warning while it is traced stands in.
    import logging

    logger = logging.getLogger("tensorflow")
    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())

    def noisy(x):
        logger.warning("5 out of the last 13 calls triggered tf.function retracing")
        return x

    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 1)(keras.layers.Lambda(noisy)(inputs)))
    level = logger.level
    logger.addHandler(handler)
    try:
        predict_multiscale(model, images, scales=(0.75, 1.0), flip=False)
        assert seen == [] and logger.level == level
        noisy(None)  # outside predict_multiscale the logger speaks as before
        assert len(seen) == 1
    finally:
        logger.removeHandler(handler)
