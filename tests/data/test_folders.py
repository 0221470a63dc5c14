"""Folder readers on a generated mini VOC tree (JPEGs, palette PNGs, split lists) and a plain
images/masks folder."""

import numpy as np
import pytest
from PIL import Image

from segcourse.data import folders, palettes


def write_palette_png(path, labels):
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette(palettes.voc_palette().flatten().tolist())
    image.save(path)


def make_voc(root, ids=("2007_000032", "2007_000033", "2007_000039"), size=(20, 24)):
    rng = np.random.default_rng(0)
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    masks = {}
    for i in ids:
        labels = rng.choice([0, 1, 15, 20], size)
        labels[0, :] = 255  # VOC's boundary band
        Image.fromarray((rng.random((*size, 3)) * 255).astype(np.uint8)).save(
            root / "JPEGImages" / f"{i}.jpg")
        write_palette_png(root / "SegmentationClass" / f"{i}.png", labels)
        masks[i] = labels
    (root / "ImageSets/Segmentation/train.txt").write_text("\n".join(ids[:2]) + "\n")
    (root / "ImageSets/Segmentation/val.txt").write_text(ids[2] + "\n")
    return masks


def test_voc_masks_are_read_as_class_indices_not_colours(tmp_path):
    masks = make_voc(tmp_path)
    split = folders.voc_split(tmp_path, "train")
    assert split.num_classes == 21 and split.class_names[15] == "person"
    np.testing.assert_array_equal(folders.read_mask(split.masks[0]), masks["2007_000032"])
    assert folders.read_image(split.images[0]).shape == (20, 24, 3)


def test_voc_pipeline_resizes_masks_with_nearest_and_keeps_the_ignore_label(tmp_path):
    make_voc(tmp_path)
    data = folders.dataset(folders.find_split(tmp_path, "train"), size=16, batch_size=2)
    images, masks = next(iter(data))
    assert images.shape == (2, 16, 16, 3) and masks.shape == (2, 16, 16)
    assert set(np.unique(masks)) <= {0, 1, 15, 20, 255}


def test_plain_folders_with_inferred_classes(tmp_path):
    for name in ("a", "b"):
        (tmp_path / "train" / "images").mkdir(parents=True, exist_ok=True)
        (tmp_path / "train" / "masks").mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(np.zeros((8, 8, 3), np.uint8))
        image.save(tmp_path / "train/images" / f"{name}.png")
        Image.fromarray(np.full((8, 8), 3, np.uint8), mode="L").save(
            tmp_path / "train/masks" / f"{name}.png")
    split = folders.find_split(tmp_path, "train")
    assert split.num_classes == 4 and len(split.images) == 2


def test_problems_are_named(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        folders.find_split(tmp_path / "nowhere", "train")
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(ValueError, match="no images in"):
        folders.find_split(tmp_path, None)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "images" / "x.jpg")
    with pytest.raises(ValueError, match="have no mask.*x.jpg"):
        folders.find_split(tmp_path, None)
    make_voc(tmp_path / "voc")
    with pytest.raises(ValueError, match="no split 'test'.*available: train, val"):
        folders.voc_split(tmp_path / "voc", "test")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match="RGB image; a mask must be a palette or greyscale"):
        folders.read_mask(tmp_path / "rgb.png")


def test_a_mask_with_a_stray_label_stops_the_pipeline_with_its_name(tmp_path):
    make_voc(tmp_path)
    write_palette_png(tmp_path / "SegmentationClass" / "2007_000033.png",
                      np.full((20, 24), 42))
    data = folders.dataset(folders.voc_split(tmp_path, "train"), size=8, batch_size=2)
    with pytest.raises(Exception, match=r"2007_000033.png holds values \[42\]"):
        list(data)
