import pytest

from segcourse import models

NAMES = ["deeplabv3", "fcn16s", "fcn32s", "fcn8s", "plain", "pspnet", "segnet", "unet"]


def test_every_model_of_the_course_is_registered_with_its_options():
    listing = models.available()
    assert sorted(listing) == NAMES
    assert listing["unet"]["options"]["variant"] == "padded"
    assert listing["deeplabv3"]["options"]["output_stride"] == 16
    assert listing["fcn8s"]["summary"].startswith("FCN-8s")
    assert all(listing[name]["cpu"] for name in NAMES)


def test_registry_errors_name_the_choices():
    with pytest.raises(ValueError, match="unknown model 'fcn4s'; available: deeplabv3"):
        models.build("fcn4s", 21)
    with pytest.raises(ValueError, match="unet has no option kernel; its options: variant"):
        models.build("unet", 2, kernel=3)
    with pytest.raises(ValueError, match="num_classes must be a positive integer; got 0"):
        models.build("unet", 0)
    with pytest.raises(ValueError, match="preset must be one of"):
        models.build("unet", 2, preset="tiny")


def test_the_cpu_preset_is_narrower_and_explicit_options_win():
    small = models.build("unet", 2, preset="cpu")
    assert small.get_layer("down1_conv1").filters == 8
    wider = models.build("unet", 2, preset="cpu", base_filters=16)
    assert wider.get_layer("down1_conv1").filters == 16


def test_the_plain_baseline_has_a_receptive_field_of_two_depth_plus_one():
    import numpy as np
    import tensorflow as tf

    model = models.build("plain", 2, (None, None, 1), depth=3, filters=2)
    for layer in model.layers:
        if layer.name.startswith("conv") and layer.name[4:].isdigit():
            layer.kernel.assign(np.ones(layer.kernel.shape, "float32"))  # every path counts
    x = tf.Variable(np.ones((1, 21, 21, 1), "float32"))
    with tf.GradientTape() as tape:
        y = model(x, training=False)[0, 10, 10, 0]
    rows = np.nonzero(np.abs(tape.gradient(y, x).numpy()[0, :, :, 0]).sum(axis=1))[0]
    assert rows.max() - rows.min() + 1 == 7
