"""Scores at each picture's own size (segcourse.scoring), against hand counts, a second
bilinear written here, the batched evaluation and the files `segcourse predict` writes."""

import json

import keras
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from segcourse import models
from segcourse.cli import main
from segcourse.data import pets
from segcourse.data.sources import open_dataset
from segcourse.labs.dry_run import FAKE_PETS, fake_pets_examples
from segcourse.predict import predict_files
from segcourse.scoring import (
    evaluate_at_own_size,
    labels_at_sizes,
    resize_bilinear,
    resize_to_input,
    resized_labels,
    score_split,
)
from segcourse.train import TrainConfig


def one_by_one(size, kernel, bias):
    """A 1×1 convolution on ``size`` pictures (``None``: any size) with the given weights: a
    model whose scores are known by hand."""
    inputs = keras.Input((*(size or (None, None)), 3))
    layer = keras.layers.Conv2D(len(bias), 1)
    model = keras.Model(inputs, layer(inputs))
    layer.set_weights([np.asarray(kernel, "float32").reshape(1, 1, 3, len(bias)),
                       np.asarray(bias, "float32")])
    return model


def red_scores_model(size, channels=2, bias=0.5):
    """Class 0 scores ``bias``, class 1 the red channel, class 2 the green one (so its scores
    are the picture's, moved by nothing but resizing)."""
    kernel = np.zeros((3, channels))
    for channel in range(1, channels):
        kernel[channel - 1, channel] = 1.0
    return one_by_one(size, kernel, [bias] + [0.0] * (channels - 1))


def always(label, channels, size):
    """A model that calls every pixel ``label``: zero weights, a bias that favours it."""
    return one_by_one(size, np.zeros((3, channels)), np.eye(channels)[label])


def save_pairs(root, pictures):
    """A flat images/ + masks/ folder of ``(name, image uint8, mask uint8)``, as test/ of a
    train/ val/ test/ tree (so the test split is exactly these pictures)."""
    for split in ("train", "val", "test"):
        for folder in ("images", "masks"):
            (root / split / folder).mkdir(parents=True, exist_ok=True)
        for name, image, mask in pictures:
            Image.fromarray(image).save(root / split / "images" / f"{split}_{name}.png")
            Image.fromarray(mask).save(root / split / "masks" / f"{split}_{name}.png")


def thin_lines(thickness=1):
    """Two pictures of other sizes than 16 × 16, each with a red membrane ``thickness`` pixels
    wide (class 1) on a black background (class 0), and a few ignored (255) pixels."""
    pictures = []
    for name, (height, width), column in (("tall", (60, 40), 17), ("wide", (45, 90), 50)):
        mask = np.zeros((height, width), np.uint8)
        mask[:, column:column + thickness] = 1
        mask[:3, :5] = 255
        image = np.zeros((height, width, 3), np.uint8)
        image[..., 0] = 255 * (mask == 1)
        pictures.append((name, image, mask))
    return pictures


def test_a_constant_prediction_scores_the_masks_as_drawn(tmp_path):
    """Class 1 everywhere: its IoU is the share of class-1 pixels among the scored ones,
    counted by hand on the masks as drawn; at the input size the resized masks are counted."""
    root = tmp_path / "lines"
    pictures = thin_lines()
    save_pairs(root, pictures)
    everywhere = red_scores_model((16, 16), bias=-1.0)  # class 1 scores 0 > -1 on every pixel
    data = open_dataset(TrainConfig(dataset=f"folder:{root}", image_size=16).resolved())
    result, scored_at = score_split(everywhere, data, "test", progress=False)
    masks = [mask for _, _, mask in pictures]
    membrane = sum(int((mask == 1).sum()) for mask in masks)  # 60 + 45 = 105
    scored = sum(int((mask != 255).sum()) for mask in masks)  # 2400 + 4050 - 30 = 6420
    assert (membrane, scored) == (105, 6420)
    assert scored_at == "scored at each picture's own size"
    np.testing.assert_array_equal(result.confusion, [[0, scored - membrane], [0, membrane]])
    assert result.iou[1] == pytest.approx(105 / 6420)
    at_input, scored_at = score_split(everywhere, data, "test", at_input_size=True,
                                      progress=False)
    assert scored_at == ("scored at the input size, 16 × 16 (pictures resized bilinearly, masks "
                         "by nearest neighbour)")
    assert at_input.confusion.sum() < 2 * 16 * 16  # 512 pixels at most, not 6420
    assert at_input.iou[1] != pytest.approx(result.iou[1])


def bilinear(values, size):
    """``values (h, w, C)`` resized to ``size`` bilinearly, pixel centres at half-integers and
    edges clamped (the convention of tf.image.resize without antialiasing), written apart."""
    out = values
    for axis, length in enumerate(size):
        old = out.shape[axis]
        position = np.clip((np.arange(length) + 0.5) * old / length - 0.5, 0, old - 1)
        low = np.floor(position).astype(int)
        high = np.minimum(low + 1, old - 1)
        weight = (position - low).reshape([-1 if a == axis else 1 for a in range(out.ndim)])
        out = np.take(out, low, axis) * (1 - weight) + np.take(out, high, axis) * weight
    return out


def test_label_maps_are_the_argmax_of_bilinearly_resized_scores(rng):
    model = red_scores_model((8, 8), channels=3, bias=0.6)
    images = rng.random((2, 8, 8, 3)).astype("float32")
    sizes = [(13, 21), (8, 8)]
    maps = labels_at_sizes(model, images, sizes)
    scores = model.predict(images, verbose=0)
    for labels, picture_scores, size in zip(maps, scores, sizes, strict=True):
        assert labels.shape == size and labels.dtype == np.uint8
        np.testing.assert_array_equal(labels, np.argmax(bilinear(picture_scores, size), -1))
    assert len(np.unique(maps[0])) == 3  # every class appears: the comparison means something


def test_at_the_input_size_both_ways_count_the_same(rng):
    """Pictures already at the input size: nothing to resize, so the score at each picture's
    own size is the batched pipeline's, pixel for pixel."""
    model = models.build("unet", 3, (32, 32, 3), model_size="small", base_filters=4, depth=2)
    pictures = [(rng.random((32, 32, 3)).astype("float32"), rng.integers(0, 3, (32, 32)))
                for _ in range(5)]
    own = evaluate_at_own_size(model, pictures, 3, batch_size=2, progress=False)
    from segcourse.train import evaluate

    batched = evaluate(model, [(np.stack([p for p, _ in pictures]),
                                np.stack([m for _, m in pictures]))], 3, progress=False)
    np.testing.assert_array_equal(own.confusion, batched.confusion)
    assert own.confusion.sum() == 5 * 32 * 32


def test_evaluate_scores_the_label_maps_predict_writes(tmp_path):
    """The confusion of `segcourse predict`'s PNGs against the masks, counted with NumPy, is
    the confusion `segcourse evaluate` reports."""
    root = tmp_path / "lines"
    pictures = thin_lines(thickness=4)  # one pixel wide, the 16 × 16 samples may miss it
    save_pairs(root, pictures)
    model = red_scores_model((16, 16), bias=0.2)
    model_path = tmp_path / "red.keras"
    model.save(model_path)
    images = sorted((root / "test" / "images").iterdir())
    predict_files(model_path, images, tmp_path / "out")
    expected = np.zeros((2, 2), np.int64)
    for image in images:
        truth = np.asarray(Image.open(root / "test" / "masks" / image.name))
        labels = np.asarray(Image.open(tmp_path / "out" / f"{image.stem}_labels.png"))
        keep = truth != 255
        expected += np.bincount(truth[keep] * 2 + labels[keep], minlength=4).reshape(2, 2)
    assert expected[1, 1] > 0 and expected[0, 1] > 0  # found some membrane, and overshot
    out = tmp_path / "scores.json"
    assert main(["evaluate", str(model_path), "--dataset", f"folder:{root}",
                 "--json", str(out)]) == 0
    written = json.loads(out.read_text())
    np.testing.assert_array_equal(written["confusion"], expected)
    assert written["scored_at"] == "scored at each picture's own size"
    assert main(["evaluate", str(model_path), "--dataset", f"folder:{root}",
                 "--input-size"]) == 0


def test_the_command_says_at_what_size_it_scored(tmp_path, capsys):
    root = tmp_path / "lines"
    save_pairs(root, thin_lines())
    model_path = tmp_path / "red.keras"
    red_scores_model((16, 16)).save(model_path)
    assert main(["evaluate", str(model_path), "--dataset", f"folder:{root}"]) == 0
    assert (f"test split of folder:{root}, scored at each picture's own size:"
            in capsys.readouterr().out)
    assert main(["evaluate", str(model_path), "--dataset", f"folder:{root}",
                 "--input-size"]) == 0
    assert (f"test split of folder:{root}, scored at the input size, 16 × 16 (pictures resized "
            "bilinearly" in capsys.readouterr().out)


def test_shapes_is_scored_at_the_size_its_pictures_are_made_at():
    model = models.build("unet", 6, (32, 32, 3), model_size="small", base_filters=4, depth=2)
    data = open_dataset(TrainConfig(image_size=32, test_count=4).resolved())
    result, scored_at = score_split(model, data, "test", progress=False)
    assert scored_at == "scored at 32 × 32, the size its pictures are made at"
    assert result.confusion.sum() == 4 * 32 * 32


def test_pets_pictures_come_at_their_own_size_with_their_trimaps_mapped(monkeypatch):
    monkeypatch.setattr(pets, "ensure_obtainable", lambda builder: None)
    expected = [(example["image"], example["segmentation_mask"][..., 0])
                for example in tfds.as_numpy(fake_pets_examples(split=pets.SPLITS["test"]))]
    with tfds.testing.mock_data(num_examples=FAKE_PETS, as_dataset_fn=fake_pets_examples):
        pairs = list(pets.pictures_at_own_size("test", border="ignore"))
    assert len(pairs) == FAKE_PETS
    lookup = np.array([255, 1, 0, 255])  # trimap 1 pet, 2 background, 3 border (ignored)
    for (image, mask), (raw_image, trimap) in zip(pairs, expected, strict=True):
        assert image.shape == raw_image.shape and image.dtype == np.float32
        np.testing.assert_allclose(image, raw_image / 255.0, atol=1e-7)
        np.testing.assert_array_equal(mask, lookup[trimap])
    assert len({image.shape for image, _ in pairs}) > 1  # sizes differ, as Pets' photos do
    with tfds.testing.mock_data(num_examples=FAKE_PETS, as_dataset_fn=fake_pets_examples):
        data = open_dataset(TrainConfig(dataset="pets", image_size=16).resolved())
        result, scored_at = score_split(red_scores_model((16, 16)), data, "test", progress=False)
    assert scored_at == "scored at each picture's own size"
    assert result.confusion.sum() == sum(int((lookup[trimap] != 255).sum())
                                         for _, trimap in expected)
    # the border kept as a class: a model that calls every pixel "border" (class 2) fills the
    # third column with each class's pixel count, counted here on the trimaps
    with tfds.testing.mock_data(num_examples=FAKE_PETS, as_dataset_fn=fake_pets_examples):
        data = open_dataset(TrainConfig(dataset="pets:class", image_size=16).resolved())
        result, _ = score_split(always(2, 3, (16, 16)), data, "test", progress=False)
    as_class = np.array([0, 1, 0, 2])  # trimap 1 pet, 2 background, 3 border
    counts = np.bincount(np.concatenate([as_class[t].ravel() for _, t in expected]),
                         minlength=3)
    np.testing.assert_array_equal(result.confusion, np.stack(
        [np.zeros(3, int), np.zeros(3, int), counts], axis=1))


def test_a_mask_of_another_size_than_its_image_is_refused():
    model = red_scores_model((8, 8))
    with pytest.raises(ValueError, match=r"picture 2: an image \(H, W, 3\) and its mask \(H, W\) "
                                         r"of the same size are needed; got image \(10, 12, 3\) "
                                         r"and mask \(12, 10\)"):
        evaluate_at_own_size(model, [(np.zeros((8, 8, 3)), np.zeros((8, 8), int)),
                                     (np.zeros((10, 12, 3)), np.zeros((12, 10), int))], 2,
                             progress=False)


def test_a_model_whose_scores_cover_only_part_of_its_input_is_refused():
    """The paper's U-Net maps 572 to 388 (valid convolutions): its scores are the centre's;
    stretched over the whole picture every label would move."""
    inputs = keras.Input((12, 12, 3))
    valid = keras.Model(inputs, keras.layers.Conv2D(2, 5)(inputs))  # 12 -> 8
    with pytest.raises(ValueError, match=r"class scores of 8 × 8 for pictures of 12 × 12, so "
                                         r"where its scores lie on the picture is not known"):
        labels_at_sizes(valid, np.zeros((1, 12, 12, 3), "float32"), [(30, 30)])


def test_the_bilinear_resize_is_tensorflows_and_strips_change_nothing(rng):
    import tensorflow as tf

    for shape, size in (((5, 7, 3), (13, 21)), ((9, 4, 2), (4, 11)), ((6, 6, 4), (6, 6))):
        values = rng.standard_normal(shape).astype("float32")
        np.testing.assert_allclose(resize_bilinear(values, size),
                                   tf.image.resize(values, size, method="bilinear").numpy(),
                                   atol=1e-5)
        whole = np.argmax(resize_bilinear(values, size), axis=-1)
        np.testing.assert_array_equal(resized_labels(values, size, rows_at_once=3), whole)
        np.testing.assert_array_equal(np.argmax(bilinear(values, size), -1), whole)


def test_pictures_reach_the_model_as_the_training_pipeline_resizes_them(rng):
    """Bilinear without antialiasing, as augment.resize_pair: a picture 37 × 53 seen at 16 × 16.
    A model without a fixed size sees the pictures at the size it trained at, when told."""
    from segcourse.data.augment import resize_pair

    picture = rng.random((37, 53, 3)).astype("float32")
    pipeline, _ = resize_pair(picture, np.zeros((37, 53), np.int32), (16, 16))
    np.testing.assert_allclose(resize_to_input(red_scores_model((16, 16)), picture),
                               np.asarray(pipeline), atol=1e-6)
    any_size = red_scores_model(None)
    np.testing.assert_allclose(resize_to_input(any_size, picture, (16, 16)),
                               np.asarray(pipeline), atol=1e-6)
    assert resize_to_input(any_size, picture).shape == (37, 53, 3)  # not told: its own size
    mask = (picture[..., 0] > 0.5).astype(np.int32)
    fixed = evaluate_at_own_size(red_scores_model((16, 16)), [(picture, mask)], 2,
                                 progress=False)
    told = evaluate_at_own_size(any_size, [(picture, mask)], 2, progress=False, size=(16, 16))
    np.testing.assert_array_equal(told.confusion, fixed.confusion)


def test_pictures_with_no_labelled_pixel_are_refused_not_scored_zero():
    # every mask pixel ignored: pixel accuracy would read 0.000 ("every pixel wrong")
    image = np.zeros((8, 8, 3), np.float32)
    ignored = np.full((8, 8), 255, np.uint8)
    model = always(1, 2, (8, 8))
    with pytest.raises(ValueError, match="no labelled pixel to score: .* ignore label 255"):
        evaluate_at_own_size(model, [(image, ignored)] * 2, 2, progress=False)
    from segcourse.scoring import evaluate
    with pytest.raises(ValueError, match="no labelled pixel to score"):
        evaluate(model, [(image[None], ignored[None])], 2, progress=False)


@pytest.mark.parametrize(("inputs", "layers", "message"), [
    ((8, 8, 1), [keras.layers.Conv2D(2, 1)], r"takes inputs of shape \(None, 8, 8, 1\), but "
                                             "segcourse reads every picture as RGB"),
    ((8, 8, 3), [keras.layers.Flatten(), keras.layers.Dense(10)],
     r"gives outputs of shape \(None, 10\), not class scores per pixel"),
])
def test_a_model_that_is_not_an_rgb_segmenter_is_refused_by_name(tmp_path, inputs, layers,
                                                                  message):
    # a greyscale model met an RGB photo deep inside Keras (its call arguments dumped); a
    # classifier failed with "not enough values to unpack"
    model = keras.Sequential([keras.Input(inputs), *layers])
    path = tmp_path / "model.keras"
    model.save(path)
    image = tmp_path / "photo.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    with pytest.raises(ValueError, match=message):
        predict_files(path, [image], tmp_path / "out")
    from segcourse.runs import open_run
    with pytest.raises(ValueError, match=f"{path}: the model"):
        open_run(path)
