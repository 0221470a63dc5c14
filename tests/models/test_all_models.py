"""What every registered model promises: sizes, the .keras round trip, and that it can learn."""

import keras
import numpy as np
import pytest

from segcourse import models

CONFIGS = {  # every model in its small size, plus the variants worth covering
    "fcn32s": {}, "fcn16s": {}, "fcn8s": {},
    "unet": {}, "unet_bilinear": {"upsampling": "bilinear"},
    "segnet": {}, "segnet_basic": {"variant": "basic"}, "deconvnet": {},
    "deeplabv3": {}, "deeplabv3plus": {"decoder": True},
    "pspnet": {}, "plain": {},
}


def model_name(config):
    return config.split("_")[0].replace("deeplabv3plus", "deeplabv3")


def build(config, num_classes, input_shape=(None, None, 3), **extra):
    return models.build(model_name(config), num_classes, input_shape, model_size="small",
                        **CONFIGS[config], **extra)


def test_every_registered_model_is_covered():
    assert {model_name(c) for c in CONFIGS} == set(models.available())


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_output_size_is_the_input_size_and_the_model_round_trips(config, tmp_path, rng):
    model = build(config, 4)
    for size in ((64, 64), (96, 128)):
        x = rng.random((2, *size, 3)).astype("float32")
        assert model(x).shape == (2, *size, 4)
    path = tmp_path / f"{config}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded(x, training=False), model(x, training=False))


def blocky_masks(rng, count, size, classes, block=32):
    """Masks of square blocks with random classes, and images whose colour tells the class,
    in 0..255 centred on 0 (the scale VGG-based nets expect; batch-normed nets do not mind)."""
    coarse = rng.integers(0, classes, (count, size // block, size // block))
    masks = coarse.repeat(block, axis=1).repeat(block, axis=2)
    colours = rng.random((classes, 3)).astype("float32")
    images = colours[masks] + 0.05 * rng.standard_normal((count, size, size, 3)).astype("float32")
    return (images - 0.5) * 255.0, masks


# Every model overfits on the newest TensorFlow and Keras; the two cheapest prove `fit` on the
# oldest supported pair too (`slow` tests run on the newest only: .ci/run).
OVERFIT_ON_EVERY_PAIR = {"plain", "unet"}


@pytest.mark.parametrize("config", [
    c if c in OVERFIT_ON_EVERY_PAIR else pytest.param(c, marks=pytest.mark.slow)
    for c in sorted(CONFIGS)])
def test_one_batch_overfits(config, rng):
    images, masks = blocky_masks(rng, 2, 64, 3)
    # Dropout is there to stop memorizing, which is what this test asks for: switch it off.
    extra = {"dropout": 0.0} if "dropout" in models.available()[model_name(config)][
        "options"] else {}
    model = build(config, 3, (64, 64, 3), **extra)
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    losses = model.fit(images, masks, epochs=40, batch_size=2, verbose=0,
                       callbacks=[StopOnceHalved()]).history["loss"]
    before, after = losses[0], max(losses[-3:])  # training-mode losses (batch-norm statistics)
    assert after < 0.5 * before, f"{config}: loss {before:.3f} -> {after:.3f} in {len(losses)}"


class StopOnceHalved(keras.callbacks.Callback):
    """Ends ``fit`` once three epochs in a row end with less than half the first epoch's loss:
    the overfit is shown, and the rest of the 40 epochs (a ResNet-50's minute) would add nothing."""

    def on_train_begin(self, logs=None):
        self.losses = []

    def on_epoch_end(self, epoch, logs=None):
        self.losses.append(logs["loss"])
        if len(self.losses) > 3 and max(self.losses[-3:]) < 0.5 * self.losses[0]:
            self.model.stop_training = True
