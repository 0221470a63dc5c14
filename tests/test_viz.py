import numpy as np
import pytest

from segcourse import viz
from segcourse.data.palettes import shapes_palette
from segcourse.metrics import confusion_matrix, scores


def test_colorize_and_overlay_draw_ignore_white():
    mask = np.array([[0, 1], [255, 2]])
    colours = viz.colorize(mask, shapes_palette())
    assert colours[1, 0].tolist() == [255, 255, 255]
    assert colours[0, 1].tolist() == shapes_palette()[1].tolist()
    blended = viz.overlay(np.zeros((2, 2, 3)), mask, shapes_palette(), alpha=1.0)
    np.testing.assert_allclose(blended * 255, colours)


def test_a_value_the_palette_has_no_colour_for_is_refused_or_drawn_as_asked():
    """Six colours for shapes: a label 130 (a bilinear mask's mean of a shape and the ignore
    fill) used to be drawn in the last class's colour, as if it were a cross."""
    mask = np.array([[0, 5], [130, 255]])
    with pytest.raises(ValueError, match=r"1 pixel\(s\) hold values the palette of 6 colours "
                                         r"has no colour for \(e.g. 130"):
        viz.colorize(mask, shapes_palette())
    colours = viz.colorize(mask, shapes_palette(), no_class=(255, 0, 255))
    assert colours[1, 0].tolist() == [255, 0, 255]  # no class, in the colour asked for
    assert colours[0, 1].tolist() == shapes_palette()[5].tolist()  # a cross stays a cross
    assert colours[1, 1].tolist() == [255, 255, 255]  # the ignore label, white


def test_figures_are_made_for_every_kind(tmp_path):
    rng = np.random.default_rng(0)
    truth, prediction = rng.integers(0, 3, (4, 8, 8)), rng.integers(0, 3, (4, 8, 8))
    s = scores(confusion_matrix(truth, prediction, 4), ["a", "b", "c", "d"])
    figures = [
        viz.prediction_grid(rng.random((4, 8, 8, 3)), truth, prediction, class_names=["a", "b"]),
        viz.learning_curves({"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "miou": [0.1, 0.4]}),
        viz.confusion_figure(s.confusion, s.class_names),
        viz.class_iou_figure(s),
    ]
    for i, figure in enumerate(figures):
        figure.savefig(tmp_path / f"{i}.png")
        assert (tmp_path / f"{i}.png").stat().st_size > 1000


def test_overlay_and_colorize_refuse_what_is_not_a_picture_and_its_labels():
    image, mask = np.zeros((8, 8, 3)), np.ones((8, 8), np.int64)
    assert viz.overlay(image, mask[..., None]).shape == (8, 8, 3)  # it used to be (8, 8, 8, 3)
    for bad_image, bad_mask in [(image, mask[:4]), (image[..., 0], mask), (image[None], mask)]:
        with pytest.raises(ValueError, match="overlay takes an RGB image"):
            viz.overlay(bad_image, bad_mask)
    with pytest.raises(ValueError, match="take the argmax over the class axis first"):
        viz.colorize(np.full((8, 8, 3), 0.25))  # scores, not labels


def test_negative_labels_and_a_confusion_matrix_that_does_not_fit_its_names_are_refused():
    with pytest.raises(ValueError, match="values such as inf"):  # not an IndexError
        viz.colorize(np.array([[np.inf, 1.0]]))
    with pytest.raises(ValueError, match="class numbers of 0 and above; got -1"):
        viz.colorize(np.array([[0, -1], [1, 2]]))
    with pytest.raises(ValueError, match=r"shape \(3, 3\) and 2 names"):
        viz.confusion_figure(np.eye(3), ["a", "b"])
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        viz.confusion_figure(np.ones((2, 3)), ["a", "b"])


def test_the_failure_gallery_shows_the_worst_pictures_first():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 3, (5, 8, 8))
    prediction = truth.copy()
    prediction[3, :6] = (truth[3, :6] + 1) % 3  # the worst picture
    prediction[0, :2] = (truth[0, :2] + 1) % 3  # the second worst
    truth[2] = 255  # no scored pixel: never shown
    figure = viz.failure_gallery(rng.random((5, 8, 8, 3)), truth, prediction, 3,
                                 class_names=["a", "b", "c"], count=3)
    titles = [t.get_text() for ax in figure.axes for t in ax.texts]
    assert [t.split()[0] for t in titles] == ["#3", "#0", "#1"]
    assert titles[2].endswith("nothing wrong")
    with pytest.raises(ValueError, match="label maps"):
        viz.failure_gallery(rng.random((5, 8, 8, 3)), truth, prediction[..., None], 3)


def test_the_reliability_diagram_draws_each_filled_bin(tmp_path):
    import matplotlib.pyplot as plt

    from segcourse.metrics import calibration_bins

    rng = np.random.default_rng(2)
    logits = rng.normal(size=(2, 8, 8, 3)) * 3
    probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    bins = calibration_bins(probabilities, rng.integers(0, 3, (2, 8, 8)), num_bins=10)
    figure = viz.reliability_diagram(bins)
    figure.savefig(tmp_path / "reliability.png")
    assert (tmp_path / "reliability.png").stat().st_size > 1000
    (ax,) = figure.axes
    heights = [bar.get_height() for bar in ax.patches]
    np.testing.assert_allclose(heights, bins.accuracy[bins.count > 0])
    assert ax.get_title() == f"ECE {bins.expected_calibration_error:.3f}"
    # each bin's gap runs from its accuracy (the bar's top) to its mean confidence (the marker,
    # on the diagonal): its length is what the ECE weighs
    (gaps,) = ax.collections
    filled = bins.count > 0
    for segment, accuracy, confidence in zip(gaps.get_segments(), bins.accuracy[filled],
                                             bins.confidence[filled], strict=True):
        np.testing.assert_allclose(segment, [[confidence, accuracy], [confidence, confidence]])
    _, given = plt.subplots()
    assert viz.reliability_diagram(bins, ax=given) is given.figure
