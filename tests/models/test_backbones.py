import keras
import numpy as np
import pytest

from segcourse.models.backbones import backbone, dense_to_conv_kernel


@pytest.mark.parametrize("name, application", [
    ("vgg16", keras.applications.VGG16), ("resnet50", keras.applications.ResNet50)])
def test_layers_and_parameters_match_keras_applications(name, application):
    ours = backbone(name)
    theirs = application(include_top=False, weights=None)
    assert ours.count_params() == theirs.count_params()
    assert ours.count_params() == {"vgg16": 14_714_688, "resnet50": 23_587_712}[name]
    weighted = {layer.name: [tuple(w.shape) for w in layer.weights]
                for layer in theirs.layers if layer.weights}
    assert {n: [tuple(w.shape) for w in ours.get_layer(n).weights] for n in weighted} == weighted


@pytest.mark.parametrize("name", ["vgg16", "resnet50", "mobilenetv2"])
def test_stage_taps_have_stride_two_to_the_stage(name):
    model = backbone(name, width=0.25 if name != "mobilenetv2" else 0.35)
    outputs = model(np.zeros((1, 64, 96, 3), "float32"))
    assert sorted(outputs) == ["C2", "C3", "C4", "C5"]
    for stage, tensor in outputs.items():
        stride = 2 ** int(stage.removeprefix("C"))
        assert tuple(tensor.shape[1:3]) == (64 // stride, 96 // stride)


@pytest.mark.parametrize("output_stride", [8, 16])
def test_resnet_output_stride_keeps_resolution_by_dilation(output_stride):
    model = backbone("resnet50", width=0.125, output_stride=output_stride)
    outputs = model(np.zeros((1, 64, 64, 3), "float32"))
    # conv5 (C5) is dilated, not strided: it stays at the output stride, and so does conv4
    # (C4) at output stride 8.
    assert outputs["C5"].shape[1] == 64 // output_stride
    assert outputs["C4"].shape[1] == 64 // min(16, output_stride)
    assert model.get_layer("conv5_block1_2_conv").dilation_rate == (32 // output_stride,) * 2
    assert model.get_layer("conv5_block1_1_conv").strides == (1, 1)


def test_pretrained_weights_come_through_the_keras_loader(tmp_path):
    path = tmp_path / "vgg16_notop.weights.h5"
    reference = keras.applications.VGG16(include_top=False, weights=None)
    reference.save_weights(path)
    model = backbone("vgg16", weights=str(path))
    for name in ("block1_conv1", "block5_conv3"):
        for ours, theirs in zip(model.get_layer(name).get_weights(),
                                reference.get_layer(name).get_weights(), strict=True):
            np.testing.assert_array_equal(ours, theirs)
    with pytest.raises(ValueError, match="Pretrained weights need width=1.0"):
        backbone("vgg16", weights=str(path), width=0.5)


def test_dense_kernel_becomes_a_conv_kernel_over_the_flattened_map(rng):
    feature_map = rng.random((1, 7, 7, 5)).astype("float32")
    kernel = rng.random((7 * 7 * 5, 3)).astype("float32")
    as_conv = dense_to_conv_kernel(kernel, (7, 7))
    np.testing.assert_allclose(np.einsum("hwc,hwcu->u", feature_map[0], as_conv),
                               feature_map.reshape(1, -1)[0] @ kernel, rtol=1e-5)
    with pytest.raises(ValueError, match="not a multiple of 49"):
        dense_to_conv_kernel(kernel[:50], (7, 7))
