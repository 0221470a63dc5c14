"""Overlap-tile inference (U-Net §2, Fig. 2): the plan's arithmetic, mirror padding, and the
stitched tiles of a valid-convolution network against one pass over the padded picture."""

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segcourse import models
from segcourse.tiling import mirror_pad, plan_tiles, predict_tiled

MARGIN = 3  # three 3×3 valid convolutions trim 3 pixels from each side


@pytest.fixture(scope="module")
def valid_net():
    """Three 3×3 valid convolutions, 2 channels in, 3 out: margin 3, any input size."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((None, None, 2))
    x = keras.layers.Conv2D(4, 3, padding="valid", activation="relu")(inputs)
    x = keras.layers.Conv2D(4, 3, padding="valid", activation="tanh")(x)
    outputs = keras.layers.Conv2D(3, 3, padding="valid")(x)
    return keras.Model(inputs, outputs)


def test_the_papers_unet_tile_has_a_92_pixel_margin():
    plan = plan_tiles((900, 500), 572, 388)
    assert plan.margin == (92, 92) and plan.padding == ((92, 92), (92, 92))
    assert [t.output[0] for t in plan.tiles[::2]] == [slice(0, 388), slice(388, 776),
                                                      slice(776, 900)]
    last = plan.tiles[-1]  # moved back to end at the edge, keeps only what is new
    assert last.input == (slice(512, 1084), slice(112, 684))
    assert last.output == (slice(776, 900), slice(388, 500))
    assert last.keep == (slice(264, 388), slice(276, 388))


@settings(max_examples=40, deadline=None)
@given(height=st.integers(1, 40), width=st.integers(1, 40), output=st.integers(1, 12),
       margin=st.integers(0, 5))
def test_every_output_pixel_is_written_by_exactly_one_tile(height, width, output, margin):
    input_tile = output + 2 * margin
    if margin == 0:  # a network that trims nothing is refused
        with pytest.raises(ValueError, match="exceed the output tile by an even number"):
            plan_tiles((height, width), input_tile, output)
        return
    plan = plan_tiles((height, width), input_tile, output)
    written = np.zeros((height, width), int)
    padded_height, padded_width = plan.padded_size
    for tile in plan.tiles:
        written[tile.output] += 1
        window = np.zeros(plan.padded_size, bool)[tile.input]
        assert window.shape == (input_tile, input_tile)  # wholly inside the padded picture
        assert tile.input[0].stop <= padded_height and tile.input[1].stop <= padded_width
        # the kept part of the output sits where the tile's field says it does
        assert tile.output[0].start == tile.input[0].start + tile.keep[0].start
        assert tile.output[1].start == tile.input[1].start + tile.keep[1].start
    np.testing.assert_array_equal(written, 1)


@pytest.mark.parametrize("mode, expected", [("reflect", [2, 1, 0, 1, 2, 3, 2, 1]),
                                            ("symmetric", [1, 0, 0, 1, 2, 3, 3, 2])])
def test_mirror_padding_is_numpys(mode, expected, rng):
    row = mirror_pad(np.arange(4)[None, :], ((0, 0), (2, 2)), mode)
    np.testing.assert_array_equal(row[0], expected)
    image = rng.normal(size=(5, 7, 2))
    np.testing.assert_array_equal(mirror_pad(image, ((3, 4), (1, 2)), mode),
                                  np.pad(image, ((3, 4), (1, 2), (0, 0)), mode=mode))


@pytest.mark.parametrize("mode", ["reflect", "symmetric"])
def test_a_batch_is_padded_picture_by_picture(mode, rng):
    batch = rng.normal(size=(3, 5, 7, 2))
    padded = mirror_pad(batch, ((3, 4), (1, 2)), mode)
    np.testing.assert_array_equal(padded, np.pad(batch, ((0, 0), (3, 4), (1, 2), (0, 0)),
                                                 mode=mode))
    for picture, one in zip(batch, padded, strict=True):
        np.testing.assert_array_equal(one, mirror_pad(picture, ((3, 4), (1, 2)), mode))


@pytest.mark.parametrize("size, output_tile", [
    ((20, 24), 8),          # multiples of the output tile
    ((23, 17), 8),          # not multiples: the last tiles move back
    ((8, 8), 8),            # exactly one tile
    ((5, 11), (8, 6)),      # smaller than a tile in one direction, rectangular tiles
])
@pytest.mark.parametrize("mode", ["reflect", "symmetric"])
def test_stitched_tiles_equal_one_pass_over_the_padded_picture(valid_net, size, output_tile,
                                                               mode, rng):
    image = rng.normal(size=(*size, 2)).astype("float32")
    output = np.broadcast_to(output_tile, 2)
    tiled = predict_tiled(valid_net, image, tuple(output + 2 * MARGIN), tuple(output),
                          batch_size=3, mode=mode)
    padded = np.pad(image, ((MARGIN, MARGIN), (MARGIN, MARGIN), (0, 0)), mode=mode)
    whole = valid_net.predict_on_batch(padded[None])[0]
    assert tiled.shape == (*size, 3) == whole.shape
    np.testing.assert_allclose(tiled, whole, rtol=1e-5, atol=1e-5)


def test_a_model_with_an_auxiliary_head_is_tiled_at_its_main_output(valid_net, rng):
    # a [main, aux] model (PSPNet's aux_head=True gives two outputs): the main one is stitched
    aux = keras.layers.Cropping2D(MARGIN)(valid_net.inputs[0])
    two_heads = keras.Model(valid_net.inputs, [valid_net.outputs[0], aux])
    image = rng.normal(size=(10, 12, 2)).astype("float32")
    np.testing.assert_allclose(predict_tiled(two_heads, image, 14, 8),
                               predict_tiled(valid_net, image, 14, 8), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("depth, input_tile, output_tile", [(2, 52, 12), (3, 100, 12)])
def test_a_paper_unet_tiles_seamlessly_when_tiles_step_by_its_total_stride(
        depth, input_tile, output_tile, rng):
    """Pooling makes a valid network equivariant to shifts by its total stride only: tiles
    that step by 12 pixels agree with one pass over the whole padded picture at depth 2
    (stride 4), but not at depth 3 (stride 8), except in the first tile. (The paper's 388 is
    4 more than a multiple of 16: its tiles are seamless in context, not in pooling grid.)"""
    model = models.build("unet", 2, (None, None, 1), variant="paper", depth=depth,
                         model_size="small")
    margin = (input_tile - output_tile) // 2
    image = rng.random((36, 36, 1)).astype("float32")
    tiled = predict_tiled(model, image, input_tile, output_tile)
    padded = np.pad(image, ((margin, margin), (margin, margin), (0, 0)), mode="reflect")
    whole = model.predict_on_batch(padded[None])[0]
    np.testing.assert_allclose(tiled[:12, :12], whole[:12, :12], atol=1e-6)
    assert np.allclose(tiled, whole, atol=1e-6) == (output_tile % 2**depth == 0)


def test_a_plain_function_and_a_grey_picture_work_too():
    def box_mean(batch):  # a 3×3 valid mean filter: margin 1
        h, w = batch.shape[1] - 2, batch.shape[2] - 2
        return sum(batch[:, i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9

    image = np.arange(30.0).reshape(5, 6)  # a linear ramp: the mean keeps it inside
    tiled = predict_tiled(box_mean, image, 4, 2)
    assert tiled.shape == (5, 6, 1)
    np.testing.assert_allclose(tiled[1:-1, 1:-1, 0], image[1:-1, 1:-1])
    # top-left corner: reflect puts row 1 and column 1 at -1, so the window holds the centre
    # 0, twice 1 and twice 6 beside it and four times 7 at its corners (the ramp is 6r + c)
    assert tiled[0, 0, 0] == pytest.approx((0 + 2 * 1 + 2 * 6 + 4 * 7) / 9)


def test_bad_requests_are_refused(valid_net):
    with pytest.raises(ValueError, match="height: input 10, output 7"):
        plan_tiles((20, 20), 10, 7)
    with pytest.raises(ValueError, match="input_tile must be a positive int"):
        plan_tiles((20, 20), (10, 0), 4)
    with pytest.raises(ValueError, match="image_size must be"):
        plan_tiles((20,), 10, 4)
    with pytest.raises(ValueError, match="mode must be one of"):
        mirror_pad(np.zeros((3, 3)), ((1, 1), (1, 1)), "wrap")
    with pytest.raises(ValueError, match=r"images\[\.\.\., None\]"):
        mirror_pad(np.zeros((2, 3, 3, 1, 1)), ((1, 1), (1, 1)))
    with pytest.raises(ValueError, match=r"got shape \(3,\)"):
        mirror_pad(np.zeros(3), ((1, 1), (1, 1)))
    with pytest.raises(ValueError, match=r"to shape \(1, 8, 8, 3\); expected \(1, 6, 6, K\)"):
        predict_tiled(valid_net, np.zeros((6, 6, 2)), 14, 6)  # the net maps 14 to 8
    with pytest.raises(ValueError, match="one picture"):
        predict_tiled(valid_net, np.zeros((1, 6, 6, 2)), 14, 8)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        predict_tiled(valid_net, np.zeros((6, 6, 2)), 14, 8, batch_size=0)
