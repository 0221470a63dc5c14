from segcourse import viz
from segcourse.data import palettes, shapes


def test_voc_palette_has_the_known_colours():
    palette = palettes.voc_palette()
    assert palette.shape == (256, 3)
    assert palette[0].tolist() == [0, 0, 0] and palette[1].tolist() == [128, 0, 0]
    assert palette[15].tolist() == [192, 128, 128]  # person
    assert palette[20].tolist() == [0, 64, 128]  # tvmonitor


def test_shapes_palette_has_a_colour_per_class():
    assert palettes.shapes_palette().shape == (shapes.NUM_CLASSES, 3)
    assert len({tuple(c) for c in palettes.shapes_palette().tolist()}) == shapes.NUM_CLASSES


def test_viz_still_offers_the_palettes_lab_01_draws_with():
    assert viz.shapes_palette is palettes.shapes_palette
    assert viz.voc_palette is palettes.voc_palette
