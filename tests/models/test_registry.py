import pytest

from segcourse import models

NAMES = ["deconvnet", "deeplabv3", "fcn16s", "fcn32s", "fcn8s", "plain", "pspnet", "segnet",
         "unet"]


def test_every_model_of_the_course_is_registered_with_its_options():
    listing = models.available()
    assert sorted(listing) == NAMES
    assert listing["unet"]["options"]["variant"] == "padded"
    assert listing["deeplabv3"]["options"]["output_stride"] == 16
    assert listing["fcn8s"]["summary"].startswith("FCN-8s")
    assert all(listing[name]["small"] for name in NAMES)


def test_registry_errors_name_the_choices():
    with pytest.raises(ValueError, match="unknown model 'fcn4s'; available: deconvnet, deeplabv3"):
        models.build("fcn4s", 21)
    with pytest.raises(ValueError, match="unet has no option kernel; its options: variant"):
        models.build("unet", 2, kernel=3)
    with pytest.raises(ValueError, match="num_classes must be a positive integer; got 0"):
        models.build("unet", 0)
    with pytest.raises(ValueError, match="model_size must be one of"):
        models.build("unet", 2, model_size="tiny")


def test_the_small_size_is_narrower_and_explicit_options_win():
    small = models.build("unet", 2, model_size="small")
    assert small.get_layer("down1_conv1").filters == 8
    wider = models.build("unet", 2, model_size="small", base_filters=16)
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


# Issue 11 ------------------------------------------------------------------------------------

def test_one_class_is_refused_with_how_to_do_binary_segmentation():
    with pytest.raises(ValueError, match="num_classes must be at least 2; got 1") as refusal:
        models.build("unet", 1, (32, 32, 3), model_size="small")
    assert "binary segmentation" in str(refusal.value)
    assert "num_classes=2" in str(refusal.value)


@pytest.mark.parametrize("name, options, match", [
    ("unet", {"width": 0}, "option width must be a width multiplier above 0"),
    ("unet", {"width": -0.5}, "option width must be a width multiplier above 0"),
    ("unet", {"width": float("nan")}, "option width must be a width multiplier above 0"),
    ("unet", {"base_filters": 0}, "option base_filters must be at least 1"),
    ("unet", {"base_filters": -8}, "option base_filters must be at least 1"),
    ("plain", {"filters": 0}, "option filters must be at least 1"),
    ("segnet", {"width": 0.0}, "option width must be a width multiplier above 0"),
    ("fcn8s", {"width": -1.0}, "option width must be a width multiplier above 0"),
])
def test_widths_and_filters_of_zero_or_less_are_refused(name, options, match):
    with pytest.raises(ValueError, match=match):
        models.build(name, 2, model_size="small", **options)


def test_a_zero_width_is_refused_by_the_backbones_too():
    from segcourse.models.backbones import backbone

    with pytest.raises(ValueError, match="width .* must be above 0"):
        backbone("vgg16", width=0)


@pytest.mark.parametrize("options, match", [
    ({"skips": "false"}, r"option skips takes true or false; got 'false' \(str\)"),
    ({"depth": "3"}, r"option depth takes a whole number; got '3' \(str\)"),
    ({"depth": 2.5}, r"option depth takes a whole number; got 2\.5 \(float\)"),
    ({"batch_norm": 1}, r"option batch_norm takes true or false, or none; got 1 \(int\)"),
])
def test_options_of_the_wrong_type_are_refused_naming_the_options(options, match):
    with pytest.raises(ValueError, match=match) as refusal:
        models.build("unet", 2, model_size="small", **options)
    assert "skips (true or false, default true)" in str(refusal.value)


def test_option_text_is_read_by_the_option_type():
    parsed = models.parse_options("unet", ["skips=false", "depth=3", "batch_norm=none",
                                           "width=0.5", "variant=padded"])
    assert parsed == {"skips": False, "depth": 3, "batch_norm": None, "width": 0.5,
                      "variant": "padded"}
    assert parsed["skips"] is False
    assert models.parse_options("unet", ["skips=True", "batch_norm=yes"]) == {
        "skips": True, "batch_norm": True}
    assert models.parse_options("pspnet", ["bins=1,2,4", "aux_head=true"]) == {
        "bins": (1, 2, 4), "aux_head": True}
    assert models.parse_options("deeplabv3", ["multi_grid=(1,2,4)", "weights=none"]) == {
        "multi_grid": (1, 2, 4), "weights": None}
    assert models.parse_options("segnet", []) == {}


@pytest.mark.parametrize("pairs, match", [
    (["depth=abc"], r"unet: option depth=abc is not a whole number; write it like depth=4"),
    (["skips=maybe"], r"unet: option skips=maybe is not true or false; write it like "
                      r"skips=true"),
    (["width=wide"], r"unet: option width=wide is not a number"),
    (["width=inf"], r"unet: option width must be a finite number; got inf"),
    (["kernel=3"], r"unet has no option kernel; its options: variant \(text, default padded\)"),
    (["depth"], r"an option is KEY=VALUE \(e\.g\. depth=3\); got 'depth'"),
    (["depth=2", "depth=3"], r"option depth is given twice \(depth=2 and depth=3\)"),
    (["base_filters=0"], r"unet: option base_filters must be at least 1"),
])
def test_option_text_that_does_not_fit_is_refused(pairs, match):
    with pytest.raises(ValueError, match=match) as refusal:
        models.parse_options("unet", pairs)
    if "twice" not in match and "at least" not in match and "finite" not in match:
        assert "depth (a whole number, default 4)" in str(refusal.value)


def test_check_refuses_without_building():
    assert models.check("unet", None, (32, 32, 3), model_size="small", depth=2) == {
        "base_filters": 8, "depth": 2}
    for shape in ((0, 0, 3), (-16, -16, 3), (32, 32)):
        with pytest.raises(ValueError, match="input_shape is \\(height, width, channels\\)"):
            models.check("unet", 2, shape)
    with pytest.raises(ValueError, match="segnet \\(vgg16\\): input height 48 is not a multiple"):
        models.check("segnet", 2, (48, 48, 3))
    with pytest.raises(ValueError, match="unet: variant must be one of"):
        models.check("unet", 2, variant="papr")
    with pytest.raises(ValueError, match="pretrained weights .* need width=1.0"):
        models.check("deeplabv3", 2, weights="imagenet", width=0.5)
    with pytest.raises(ValueError, match="multi_grid is one dilation factor"):
        models.check("deeplabv3", 2, multi_grid=(1, 2))


# Training recipes: what a model needs beyond the common recipe, declared where it is registered

def test_pspnet_declares_its_auxiliary_loss_weight_and_every_other_model_one_output():
    from segcourse.models import registry

    for name in NAMES:
        recipe = registry.recipe(name)
        if name == "pspnet":  # Zhao et al. 2017 §3.3 and §4: the auxiliary loss weighs 0.4
            assert recipe.aux_loss_weights == (0.4,) and "Zhao" in recipe.reference
            assert recipe.loss_weights(name, 2) == [1.0, 0.4]
        else:
            assert recipe == registry.SINGLE_OUTPUT
        assert recipe.loss_weights(name, 1) is None  # one output: one loss, nothing to weigh


@pytest.mark.parametrize("name, outputs, said", [
    ("unet", 2, "unet has 2 outputs, but its registration declares no auxiliary loss weights"),
    ("pspnet", 3, "pspnet has 3 outputs, but its registration declares loss weights for 2"),
])
def test_outputs_the_recipe_does_not_weigh_are_refused(name, outputs, said):
    from segcourse.models import registry

    with pytest.raises(ValueError, match=said) as refusal:
        registry.recipe(name).loss_weights(name, outputs)
    assert "recipe=TrainingRecipe(aux_loss_weights=" in str(refusal.value)


@pytest.fixture
def scratch_registry(monkeypatch):
    """The registry, to which a test may add models that are gone after it."""
    from segcourse.models import registry

    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))
    return registry


def test_a_registration_declares_its_recipe_and_the_option_types_are_read_once(
        scratch_registry, monkeypatch):
    import inspect
    import typing

    registry = scratch_registry
    recipe = registry.TrainingRecipe((0.5, 0.25), "a test")

    @registry.register_model("three_heads", small={"depth": 1}, recipe=recipe)
    def three_heads(num_classes, input_shape=(None, None, 3), depth=2,
                    batch_norm: bool | None = None):
        """Three heads."""

    assert registry.recipe("three_heads").loss_weights("three_heads", 3) == [1.0, 0.5, 0.25]

    def not_again(*args, **kwargs):
        raise AssertionError("the builder's signature is read again after registration")

    monkeypatch.setattr(inspect, "signature", not_again)
    monkeypatch.setattr(typing, "get_type_hints", not_again)
    assert registry.parse_options("three_heads", ["depth=3", "batch_norm=none"]) == {
        "depth": 3, "batch_norm": None}
    assert registry.check("three_heads", 2, model_size="small") == {"depth": 1}
    assert registry.option_types("three_heads")["batch_norm"].optional
    with pytest.raises(ValueError, match="three_heads has no option width; its options: depth "
                                         r"\(a whole number, default 2\)"):
        registry.check("three_heads", 2, width=1.0)


@pytest.mark.parametrize("weights", [(-0.4,), (float("nan"),), ("0.4",), 0.4, (True,)])
def test_a_recipe_refuses_weights_that_are_not_numbers_of_at_least_0(weights):
    from segcourse.models.registry import TrainingRecipe

    with pytest.raises(ValueError, match="aux_loss_weights are finite numbers of at least 0"):
        TrainingRecipe(weights)
