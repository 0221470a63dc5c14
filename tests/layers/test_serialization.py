"""Every layer survives the .keras format: same config, same weights, identical outputs."""

import keras
import numpy as np
import pytest

from segcourse.layers import (
    ASPP,
    AtrousConvBlock,
    BedOfNails,
    BilinearKernel,
    ContextModule,
    CropToReference,
    IdentityKernel,
    MaxPoolingWithArgmax2D,
    MaxUnpooling2D,
    PyramidPooling,
    Resize,
    ResizeConv,
)


def pool_unpool(inp):
    pooled, indices = MaxPoolingWithArgmax2D(2, padding="same")(inp)
    return [MaxUnpooling2D(2)([pooled * 2.0, indices, inp]), indices]


GRAPHS = {
    "resize_scale": lambda inp: Resize(3, interpolation="bicubic")(inp),
    "resize_gaussian": lambda inp: Resize(size=(7, 5), interpolation="gaussian")(inp),
    "resize_like": lambda inp: Resize(interpolation="area")([inp, BedOfNails(2)(inp)]),
    "bed_of_nails": lambda inp: BedOfNails((2, 3))(inp),
    "resize_conv": lambda inp: ResizeConv(5, factor=2, activation="relu")(inp),
    "bilinear_transposed": lambda inp: keras.layers.Conv2DTranspose(
        4, 8, strides=4, padding="same", kernel_initializer=BilinearKernel())(inp),
    "pool_unpool": pool_unpool,
    "atrous_block": lambda inp: AtrousConvBlock(6, dilation_rate=3)(inp),
    "aspp": lambda inp: ASPP(8, rates=(1, 2, 3), dropout=0.5)(inp),
    "context_module": lambda inp: ContextModule(identity_init=False)(inp),
    "identity_conv": lambda inp: keras.layers.Conv2D(
        4, 3, padding="same", kernel_initializer=IdentityKernel())(inp),
    "pyramid_pooling": lambda inp: PyramidPooling(bins=(1, 2, 4))(inp),
    "crop": lambda inp: CropToReference(1)([inp, keras.layers.MaxPooling2D(2)(inp)]),
}


@pytest.mark.parametrize("spatial", [(None, None), (12, 10)], ids=["unknown", "fixed"])
@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_keras_round_trip(name, spatial, tmp_path, rng):
    inp = keras.Input((*spatial, 4))
    model = keras.Model(inp, GRAPHS[name](inp))
    x = rng.random((2, 12, 10, 4), dtype="float32")
    before = keras.tree.flatten(model(x, training=False))
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    after = keras.tree.flatten(loaded(x, training=False))
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for layer, again in zip(model.layers, loaded.layers, strict=True):
        assert layer.get_config() == again.get_config()
