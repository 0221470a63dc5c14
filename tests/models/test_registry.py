import pytest

from segcourse import models

NAMES = ["deeplabv3", "fcn16s", "fcn32s", "fcn8s", "pspnet", "segnet", "unet"]


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
