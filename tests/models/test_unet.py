"""U-Net against the paper (Fig. 1) and the widely used PyTorch reference's parameter counts."""

import numpy as np
import pytest

from segcourse import models
from segcourse.models.unet import paper_output_size, paper_valid_sizes
from tests.models.helpers import trainable_count


def test_the_paper_network_572_in_388_out_and_its_parameters():
    model = models.build("unet", 2, (572, 572, 1), variant="paper")
    assert model.output_shape == (None, 388, 388, 2)
    assert trainable_count(model) == 31_030_658
    crop = model.get_layer("up4_crop")  # Fig. 1: the deepest skip, 64×64 cropped to 56×56
    assert crop.input[0].shape[1:3] == (64, 64) and crop.output.shape[1:3] == (56, 56)
    assert model.get_layer("down1_conv1").padding == "valid"


@pytest.mark.parametrize("upsampling, expected", [("transposed", 31_037_698),
                                                  ("bilinear", 17_263_042)])
def test_the_padded_network_matches_the_pytorch_reference(upsampling, expected):
    model = models.build("unet", 2, (None, None, 3), upsampling=upsampling)
    assert trainable_count(model) == expected
    assert model.get_layer("down1_conv1").bias is None  # batch norm replaces the biases


def test_paper_valid_sizes_follow_the_16m_plus_124_rule():
    sizes = paper_valid_sizes(4, 5)
    assert sizes == [188, 204, 220, 236, 252] and all((s - 124) % 16 == 0 for s in sizes)
    assert paper_output_size(572) == 388 and paper_output_size(570) is None
    with pytest.raises(ValueError, match="the nearest valid sizes are 556 or 572"):
        models.build("unet", 2, (570, 572, 1), variant="paper")


@pytest.mark.parametrize("depth, size", [(4, (48, 80)), (3, (24, 40)), (2, (12, 20))])
def test_padded_output_equals_input_for_any_depth(depth, size):
    model = models.build("unet", 3, depth=depth, model_size="small")
    assert model(np.zeros((1, *size, 3), "float32")).shape == (1, *size, 3)
    assert len([layer for layer in model.layers if layer.name.endswith("_concat")]) == depth
    with pytest.raises(ValueError, match=f"not a multiple of its total stride {2 ** depth}"):
        models.build("unet", 3, (2 ** depth + 2, 2 ** depth, 3), depth=depth)


def test_the_paper_variant_refuses_options_it_does_not_have():
    with pytest.raises(ValueError, match="no batch norm"):
        models.build("unet", 2, (572, 572, 1), variant="paper", batch_norm=True)


def test_without_skips_it_is_a_plain_encoder_decoder():
    model = models.build("unet", 3, (32, 32, 3), skips=False, model_size="small")
    assert not [layer for layer in model.layers if layer.name.endswith("_concat")]
    assert model.output_shape == (None, 32, 32, 3)


def test_a_3x3_up_convolution_overlaps_unevenly_and_costs_its_extra_taps():
    """k3 s2 'same': outputs double as with the paper's 2×2; each up-convolution has
    9/4 of its weights; its overlap is uneven (the checkerboard case, Odena et al. 2016)."""
    from segcourse.analysis.checkerboard import is_uneven

    two = models.build("unet", 2, (32, 32, 3), model_size="small")
    three = models.build("unet", 2, (32, 32, 3), model_size="small", upsampling_kernel=3)
    assert three.output_shape == two.output_shape == (None, 32, 32, 2)
    for level in range(1, 5):
        small, large = (m.get_layer(f"up{level}_upconv") for m in (two, three))
        assert large.kernel.shape[:2] == (3, 3) and small.kernel.shape[:2] == (2, 2)
        assert np.prod(large.kernel.shape) * 4 == np.prod(small.kernel.shape) * 9
    assert is_uneven(3, 2) and not is_uneven(2, 2)
    two_by_two = sum(int(np.prod(two.get_layer(f"up{level}_upconv").kernel.shape))
                     for level in range(1, 5))
    assert trainable_count(three) - trainable_count(two) == two_by_two * 5 // 4  # 9/4 - 1


@pytest.mark.parametrize("options, message", [
    ({"upsampling_kernel": 1}, "an integer of at least 2"),
    ({"upsampling_kernel": 3, "upsampling": "bilinear"}, "there is none"),
    ({"upsampling_kernel": 3, "variant": "paper"}, "2×2 up-convolution"),
])
def test_an_upsampling_kernel_that_cannot_be_is_refused(options, message):
    shape = (572, 572, 1) if options.get("variant") == "paper" else (32, 32, 3)
    with pytest.raises(ValueError, match=message):
        models.build("unet", 2, shape, **options)
