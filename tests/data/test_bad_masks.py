"""Issue 11: user image/mask folders that used to give a silent wrong result are refused (or
read right) when the dataset is opened, before any training.

Fixtures are real files: PNG masks written with PIL (palette, 8-bit and 16-bit greyscale)."""

import numpy as np
import pytest
from PIL import Image

from segcourse.data import folders, palettes
from segcourse.data.sources import open_dataset
from segcourse.train import TrainConfig

SIZE = (12, 10)  # (height, width)
SPLIT_NAMES = ("train", "val", "test")


def save_mask(path, labels, kind="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "P":
        image = Image.fromarray(labels.astype(np.uint8), mode="P")
        image.putpalette(palettes.voc_palette().flatten().tolist())
    elif kind == "I;16":
        image = Image.fromarray(labels.astype(np.uint16))
    else:
        image = Image.fromarray(labels.astype(np.uint8), mode="L")
    image.save(path)
    assert Image.open(path).mode == kind


def save_image(path, value=0, size=SIZE):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(path)


def pair(root, split, name, labels, kind="L", value=None, image_size=None):
    """An image and its mask; by default each (split, name) gets its own picture (a picture
    copied into two splits is refused)."""
    base = root / split if split else root
    if value is None:
        value = 1 + SPLIT_NAMES.index(split) if split in SPLIT_NAMES else 0
    save_image(base / "images" / f"{name}.png", value, image_size or labels.shape)
    save_mask(base / "masks" / f"{name}.png", labels, kind)


def two_region_mask(low, high, size=SIZE):
    labels = np.full(size, low)
    labels[:, size[1] // 2:] = high
    return labels


def open_folder(root, **overrides):
    config = TrainConfig(dataset=f"folder:{root}", image_size=16, batch_size=4, **overrides)
    return open_dataset(config.resolved())


def mask_values(pipeline):
    return set(np.unique(np.concatenate([np.asarray(m).ravel() for _, m in pipeline])).tolist())


# 1. Binary masks stored as 0/255 ------------------------------------------------------------

@pytest.mark.parametrize("kind, high", [("L", 255), ("P", 255), ("I;16", 255), ("I;16", 65535)])
def test_binary_masks_are_refused_with_the_fix(tmp_path, kind, high):
    for split in ("train", "val"):
        for name in ("a", "b"):
            pair(tmp_path, split, name, two_region_mask(0, high), kind)
    with pytest.raises(ValueError, match=f"hold only the values 0 and {high}") as refusal:
        open_folder(tmp_path)
    message = str(refusal.value)
    assert "classes.txt" in message and f"foreground: {high}" in message
    assert f"mask_values={{0: 0, {high}: 1}}" in message
    assert "1 problem in its 4 image/mask pairs; nothing was trained" in message


def test_binary_masks_with_names_only_in_classes_txt_are_still_refused(tmp_path):
    for split in ("train", "val"):
        pair(tmp_path, split, "a", two_region_mask(0, 255))
    (tmp_path / "classes.txt").write_text("background\nforeground\n")
    with pytest.raises(ValueError, match="hold only the values 0 and 255"):
        open_folder(tmp_path)


@pytest.mark.parametrize("kind, high", [("L", 255), ("I;16", 65535)])
def test_binary_masks_read_right_with_values_in_classes_txt(tmp_path, kind, high):
    for split in ("train", "val"):
        for name in ("a", "b"):
            pair(tmp_path, split, name, two_region_mask(0, high), kind)
    (tmp_path / "classes.txt").write_text(f"background: 0\nforeground: {high}\n")
    data = open_folder(tmp_path)
    assert data.num_classes == 2 and data.class_names == ("background", "foreground")
    assert mask_values(data.val) == {0, 1}


def test_a_mask_saved_as_0_255_among_0_1_masks_is_named(tmp_path):
    # its object would be the ignore label: class 1 scored with 0 pixels, mIoU 0.499 where
    # the right masks gave 0.959 (a new user's folder)
    for split in ("train", "val"):
        pair(tmp_path, split, "a", two_region_mask(0, 1))
    pair(tmp_path, "val", "b", two_region_mask(0, 255))
    with pytest.raises(ValueError, match="b.png: holds only 0 and 255, where other masks hold "
                                         r"the classes \[1\]") as refusal:
        open_folder(tmp_path)
    assert "one name per line" in str(refusal.value)
    for listing in ("background: 0\nobject: 1\n", "background\nobject\n"):  # 255 unlabelled
        (tmp_path / "classes.txt").write_text(listing)
        data = open_folder(tmp_path)
        assert data.num_classes == 2 and mask_values(data.val) == {0, 1, 255}


def test_binary_masks_read_right_with_mask_values(tmp_path):
    for split in ("train", "val"):
        pair(tmp_path, split, "a", two_region_mask(0, 255))
    dataset = folders.open_folders(tmp_path, mask_values={0: 0, 255: 1}, progress=False)
    assert dataset.num_classes == 2 and dataset.class_names == ("class 0", "class 1")
    assert mask_values(folders.dataset(dataset.val, 16, 2)) == {0, 1}


def test_a_bad_mapping_is_refused(tmp_path):
    pair(tmp_path, "train", "a", two_region_mask(0, 255))
    pair(tmp_path, "val", "a", two_region_mask(0, 255))
    with pytest.raises(ValueError, match=r"class numbers 0\.\.K-1.*missing: \[1\]"):
        folders.open_folders(tmp_path, mask_values={0: 0, 255: 2}, progress=False)
    (tmp_path / "classes.txt").write_text("background: 0\nforeground\n")
    with pytest.raises(ValueError, match="give every class its values or none"):
        folders.open_folders(tmp_path, progress=False)
    (tmp_path / "classes.txt").write_text("background: 0\nforeground: 255\n")
    with pytest.raises(ValueError, match="once"):
        folders.open_folders(tmp_path, mask_values={0: 0, 255: 1}, progress=False)


def test_classes_txt_can_send_values_to_the_ignore_label(tmp_path):
    trimap = two_region_mask(0, 255)
    trimap[:, 4:6] = 128  # the uncertain band
    for split in ("train", "val"):
        pair(tmp_path, split, "a", trimap)
    (tmp_path / "classes.txt").write_text("background: 0\npet: 255\nignore: 128\n")
    data = open_folder(tmp_path)
    assert data.num_classes == 2 and mask_values(data.val) == {0, 1, 255}


# 2. A flat images/ + masks/ folder ----------------------------------------------------------

def flat_folder(root, count=20):
    for i in range(count):
        pair(root, None, f"p{i:02d}", two_region_mask(0, 1 + i % 2), value=10 * i)


def picture_ids(pipeline):
    """Each picture is a constant image of value 10·i: read i at its centre."""
    ids = []
    for images, _ in pipeline:
        ids.extend(np.round(np.asarray(images)[:, 8, 8, 0] * 255 / 10).astype(int).tolist())
    return ids


def test_a_flat_folder_is_split_reproducibly_without_overlap(tmp_path):
    flat_folder(tmp_path)
    data = open_folder(tmp_path)
    train, val, test = (picture_ids(p) for p in (data.train, data.val, data.test))
    assert (len(train), len(val), len(test)) == (14, 3, 3)  # 70 / 15 / 15 %
    assert sorted(train + val + test) == list(range(20))  # every picture in exactly one split
    files = data.split_files
    assert {split: sorted(int(name[-6:-4]) for name in names)
            for split, names in files.items()} == {"train": sorted(train), "val": sorted(val),
                                                   "test": sorted(test)}
    assert files["val"][0].startswith("images/p")
    assert any("70 % train, 15 % val, 15 % test" in note for note in data.notes)
    # The same split on every run, whatever the training seed.
    assert open_folder(tmp_path, seed=7).split_files == files


def test_fractions_and_too_few_pictures(tmp_path):
    flat_folder(tmp_path, 10)
    dataset = folders.open_folders(tmp_path, val_fraction=0.2, test_fraction=0.3,
                                   progress=False)
    assert [len(s.images) for s in (dataset.train, dataset.val, dataset.test)] == [5, 2, 3]
    with pytest.raises(ValueError, match="fractions"):
        folders.open_folders(tmp_path, val_fraction=0.5, test_fraction=0.5, progress=False)
    small = tmp_path / "small"
    flat_folder(small, 2)
    with pytest.raises(ValueError, match="only 2 image/mask pairs.*at least 3"):
        open_folder(small)


def test_a_missing_test_split_is_stated(tmp_path):
    for split in ("train", "val"):
        pair(tmp_path, split, "a", two_region_mask(0, 1))
    data = open_folder(tmp_path)
    assert data.split_files["test"] == data.split_files["val"] == ("val/images/a.png",)
    assert any("no test split" in note for note in data.notes)


def test_a_picture_listed_in_two_voc_splits_is_refused(tmp_path):
    from tests.data.test_folders import make_voc

    make_voc(tmp_path)
    (tmp_path / "ImageSets/Segmentation/val.txt").write_text("2007_000033\n2007_000039\n")
    with pytest.raises(ValueError, match="2007_000033.*both train and val"):
        open_folder(tmp_path)


# 3. Every problem reported at once, when the dataset is opened ------------------------------

def test_every_problem_file_is_named_before_training(tmp_path):
    good = two_region_mask(0, 1)
    pair(tmp_path, "train", "good", good)
    pair(tmp_path, "train", "sized", good, image_size=(24, 20))  # image twice the mask
    pair(tmp_path, "train", "wide", np.where(good == 1, 300, 0), kind="I;16")  # wraps to 44
    pair(tmp_path, "val", "good", two_region_mask(0, 2))
    stray = two_region_mask(0, 2)
    stray[0, 0] = 254
    pair(tmp_path, "val", "stray", stray, kind="P")
    save_image(tmp_path / "val/images/broken.png")
    (tmp_path / "val/masks/broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError) as refusal:
        open_folder(tmp_path)
    message = str(refusal.value)
    assert "4 problems" in message and "nothing was trained" in message
    assert ("train/images/sized.png is 20×24 but its mask train/masks/sized.png is 10×12"
            in message)
    assert "train/masks/wide.png: value 300 above 255 in 60 pixels" in message
    assert ("val/masks/stray.png: value 254 in 1 pixel is not a class (3 classes: 0..2, "
            "255 = ignore)") in message
    assert "val/masks/broken.png: cannot be read" in message
    assert "good.png" not in message
    assert isinstance(refusal.value, folders.DatasetProblems)
    assert len(refusal.value.problems) == 4


def test_the_class_count_comes_from_all_splits(tmp_path):
    pair(tmp_path, "train", "a", two_region_mask(0, 1))
    pair(tmp_path, "val", "a", two_region_mask(0, 2))
    pair(tmp_path, "test", "a", two_region_mask(1, 2))
    data = open_folder(tmp_path)
    assert data.num_classes == 3 and data.class_names == ("class 0", "class 1", "class 2")


def test_a_value_one_mask_of_many_holds_is_refused_as_a_class_until_classes_txt_says_so(
        tmp_path):
    # a 0/1/2 dataset where one mask has 9 pixels of 3: taken as a fourth class, it scored near 0
    # and pulled the mIoU down (0.53 -> 0.40), silently
    for k in range(12):
        pair(tmp_path, "train" if k < 8 else "val", f"p{k}", two_region_mask(0, 1 + k % 2), value=k)
    slip = two_region_mask(0, 2)
    slip[:3, :3] = 3
    pair(tmp_path, "val", "slip", slip, value=20)
    with pytest.raises(folders.DatasetProblems) as refusal:
        open_folder(tmp_path)
    message = str(refusal.value)
    assert ("val/masks/slip.png: the only one of the 13 masks that holds the value 3 (9 pixels)"
            in message)
    assert "classes.txt" in message and len(refusal.value.problems) == 1
    (tmp_path / "classes.txt").write_text("ground\nsquare\ndisc\nslip\n")  # it is a class
    assert open_folder(tmp_path).num_classes == 4
    (tmp_path / "classes.txt").write_text("ground\nsquare\ndisc\n")  # it is not
    with pytest.raises(folders.DatasetProblems, match="slip.png: value 3 in 9 pixels is not"):
        open_folder(tmp_path)


def test_a_split_without_a_labelled_pixel_is_refused_when_the_data_is_opened(tmp_path):
    # it used to fail `segcourse train` at its end, when the test split was scored
    pair(tmp_path, "train", "a", two_region_mask(0, 1))
    pair(tmp_path, "val", "a", two_region_mask(0, 1))
    pair(tmp_path, "test", "a", np.full(SIZE, 255))
    pair(tmp_path, "test", "b", np.full(SIZE, 255), value=9)
    with pytest.raises(folders.DatasetProblems,
                       match=r"the test split: its 2 masks hold no labelled pixel to score \(only "
                             r"the ignore label\)"):
        open_folder(tmp_path)
    # with 255 mapped to a class, a split of 255 only is labelled all over
    (tmp_path / "classes.txt").write_text("background: 0\nobject: 1\nwhole: 255\n")
    assert open_folder(tmp_path).num_classes == 3


def test_a_class_in_one_mask_of_a_few_is_a_class(tmp_path):
    pair(tmp_path, "train", "a", two_region_mask(0, 1))
    pair(tmp_path, "train", "b", two_region_mask(0, 1))
    pair(tmp_path, "val", "a", two_region_mask(0, 2))
    assert open_folder(tmp_path).num_classes == 3


def test_a_gap_in_the_labels_is_refused_with_the_fix(tmp_path):
    pair(tmp_path, "train", "a", two_region_mask(0, 2))
    pair(tmp_path, "val", "a", two_region_mask(0, 3))
    with pytest.raises(ValueError, match=r"no mask holds the value 1.*classes\.txt") as refusal:
        open_folder(tmp_path)
    assert "train/masks/a.png" in str(refusal.value) and "val/masks/a.png" in str(refusal.value)


def test_labels_beyond_classes_txt_are_refused(tmp_path):
    pair(tmp_path, "train", "a", two_region_mask(0, 1))
    pair(tmp_path, "val", "a", two_region_mask(0, 3))
    (tmp_path / "classes.txt").write_text("background\ncat\ndog\n")
    with pytest.raises(ValueError, match=r"val/masks/a.png: value 3 in 60 pixels is not a "
                                         r"class \(3 classes: 0\.\.2, 255 = ignore\)"):
        open_folder(tmp_path)


def test_a_16_bit_greyscale_photo_is_scaled_not_white(tmp_path):
    photo = np.array([[0, 16384], [32768, 65535]], np.uint16)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    pixels = folders.read_image(tmp_path / "photo.png")
    assert pixels.shape == (2, 2, 3)
    np.testing.assert_allclose(pixels[..., 0], photo / 65535, atol=1e-6)
    np.testing.assert_array_equal(pixels[..., 0], pixels[..., 2])


def test_16_bit_mask_values_are_not_wrapped(tmp_path):
    save_mask(tmp_path / "m.png", np.array([[0, 1], [256, 300]]), "I;16")
    np.testing.assert_array_equal(folders.read_mask(tmp_path / "m.png"), [[0, 1], [256, 300]])


def test_the_pipeline_refuses_an_image_and_mask_of_different_sizes(tmp_path):
    pair(tmp_path, "train", "a", two_region_mask(0, 1), image_size=(24, 20))
    data = folders.dataset(folders.find_split(tmp_path, "train"), size=8, batch_size=1)
    with pytest.raises(Exception, match="image .*a.png is 20×24 but its mask .*a.png is 10×12"):
        list(data)


# 4. Masks are never interpolated ------------------------------------------------------------

def test_folder_masks_are_resized_by_nearest_only(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.choice([0, 1, 2, 255], (8, 8))
    labels[0, :3] = [0, 1, 2]
    for split in ("train", "val"):
        pair(tmp_path, split, "a", labels, kind="P")
    data = open_folder(tmp_path)  # 8 × 8 → 16 × 16
    _, masks = next(iter(data.val))
    np.testing.assert_array_equal(masks[0], np.kron(labels, np.ones((2, 2), int)))
    assert masks.dtype == "int32" and mask_values(data.train) <= {0, 1, 2, 255}
    small = folders.dataset(folders.find_split(tmp_path, "val"), size=5, batch_size=1)  # 8 → 5
    assert mask_values(small) <= {0, 1, 2, 255}


def test_mapped_masks_are_resized_by_nearest_only(tmp_path):
    labels = np.kron(np.array([[0, 255], [255, 0]]), np.ones((4, 4), int))
    for split in ("train", "val"):
        pair(tmp_path, split, "a", labels, kind="I;16")
    dataset = folders.open_folders(tmp_path, mask_values={0: 0, 255: 1}, progress=False)
    _, masks = next(iter(folders.dataset(dataset.val, size=16, batch_size=1)))
    np.testing.assert_array_equal(masks[0], np.kron(labels // 255, np.ones((2, 2), int)))


def test_masks_that_were_interpolated_before_are_refused(tmp_path):
    sharp = Image.fromarray(two_region_mask(0, 255, (8, 8)).astype(np.uint8), mode="L")
    blurred = np.asarray(sharp.resize((13, 13), Image.BILINEAR))  # edge values between 0, 255
    assert len(np.unique(blurred)) > 2
    pair(tmp_path, "train", "a", blurred)
    pair(tmp_path, "val", "a", two_region_mask(0, 255, (13, 13)))
    (tmp_path / "classes.txt").write_text("background: 0\nforeground: 255\n")
    with pytest.raises(ValueError, match=r"train/masks/a.png: value 128 in 13 pixels is not "
                                         r"in the mask-value mapping") as refusal:
        open_folder(tmp_path)
    assert "interpolation" in str(refusal.value)


# 4. Files that read without an error but mean something else ----------------------------------

def test_a_jpeg_named_png_is_refused_as_a_mask(tmp_path):
    flat_folder(tmp_path, 6)
    labels = two_region_mask(0, 1)
    Image.fromarray((labels * 120).astype(np.uint8), mode="L").save(
        tmp_path / "masks" / "p03.png", format="JPEG")  # a JPEG under a .png name
    with pytest.raises(ValueError, match=r"masks/p03.png: a JPEG file, whatever its name"):
        open_folder(tmp_path)
    with pytest.raises(ValueError, match="a JPEG file, whatever its name"):
        folders.read_mask(tmp_path / "masks" / "p03.png")


def save_with_palette(path, labels, colours):
    """A palette mask whose index k shows ``colours[k]``."""
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette([channel for colour in colours for channel in colour])
    image.save(path)


def test_palette_masks_that_number_their_colours_differently_are_refused(tmp_path):
    # Both masks draw red on the left and green on the right; the second file's palette (as a
    # per-file quantize leaves it) numbers green 0 and red 1, so its index 0 is green.
    red, green = (128, 0, 0), (0, 128, 0)
    for name, colours in (("a", [red, green]), ("b", [green, red])):
        save_image(tmp_path / "images" / f"{name}.png")
        labels = two_region_mask(0, 1) if colours[0] == red else two_region_mask(1, 0)
        (tmp_path / "masks").mkdir(exist_ok=True)
        save_with_palette(tmp_path / "masks" / f"{name}.png", labels, colours)
    save_image(tmp_path / "images" / "c.png", value=3)
    save_with_palette(tmp_path / "masks" / "c.png", two_region_mask(0, 1), [red, green])
    with pytest.raises(ValueError) as refusal:
        open_folder(tmp_path)
    message = str(refusal.value)
    assert ("masks/b.png: its palette numbers the colours otherwise than the other masks "
            "(index 0 is the colour (0, 128, 0), where 2 other mask(s) give it (128, 0, 0) "
            "(e.g. masks/") in message
    assert "index 1 is the colour (128, 0, 0), where 2 other mask(s) give it (0, 128, 0)" in message
    assert "1 problem" in message and "masks/a.png:" not in message  # the odd one out only


def test_an_image_with_an_exif_orientation_is_refused_and_predict_applies_it(tmp_path):
    flat_folder(tmp_path, 6)
    picture = np.zeros((*SIZE, 3), np.uint8)
    picture[:2] = 255  # bright top rows, as stored
    exif = Image.Exif()
    exif[folders.EXIF_ORIENTATION] = 3  # shown turned 180°: the bright rows at the bottom
    Image.fromarray(picture).save(tmp_path / "images" / "p02.jpg", exif=exif, quality=100)
    (tmp_path / "images" / "p02.png").unlink()
    with pytest.raises(ValueError, match=r"images/p02.jpg: its EXIF orientation \(3\) tells "
                                         r"viewers to show it turned 180°"):
        open_folder(tmp_path)
    with pytest.raises(ValueError, match="exif_transpose"):
        folders.read_image(tmp_path / "images" / "p02.jpg")
    shown = folders.read_image(tmp_path / "images" / "p02.jpg", orientation="apply")
    assert shown[-1].mean() > 0.9 and shown[0].mean() < 0.1  # as a viewer shows it


def test_an_image_with_transparent_pixels_is_refused_and_an_opaque_alpha_is_dropped(tmp_path):
    """Under a transparent pixel lies a colour nobody sees: here white, where the viewer shows
    the page behind. Read as RGB it would be trained on as white."""
    flat_folder(tmp_path, 6)
    picture = np.zeros((*SIZE, 4), np.uint8)
    picture[..., :3] = 255
    picture[..., 3] = 255
    Image.fromarray(picture, mode="RGBA").save(tmp_path / "images" / "p01.png")
    assert open_folder(tmp_path).num_classes == 3  # wholly opaque: read as its RGB
    np.testing.assert_array_equal(folders.read_image(tmp_path / "images" / "p01.png"), 1.0)
    picture[:3, :, 3] = 0  # 3 rows of 12: a quarter of it, transparent
    Image.fromarray(picture, mode="RGBA").save(tmp_path / "images" / "p01.png")
    with pytest.raises(ValueError, match=r"images/p01.png: 25 % of its pixels are transparent "
                                         r"or partly so"):
        open_folder(tmp_path)
    with pytest.raises(ValueError, match="alpha_composite"):
        folders.read_image(tmp_path / "images" / "p01.png")
    grey = Image.fromarray(np.full(SIZE, 90, np.uint8), mode="L")
    grey.save(tmp_path / "images" / "p01.png", transparency=90)  # a PNG tRNS colour key
    with pytest.raises(ValueError, match="100 % of its pixels are transparent"):
        folders.read_image(tmp_path / "images" / "p01.png")


def test_classes_txt_skips_comments_and_blank_lines(tmp_path):
    flat_folder(tmp_path, 6)
    (tmp_path / "classes.txt").write_text("# the classes of my dataset\n\nbackground\n"
                                          "  # a note\nleft\nright\n")
    assert open_folder(tmp_path).class_names == ("background", "left", "right")


def test_the_same_picture_in_two_split_folders_is_refused(tmp_path):
    pair(tmp_path, "train", "a", two_region_mask(0, 1), value=1)
    pair(tmp_path, "train", "b", two_region_mask(0, 1), value=2)
    pair(tmp_path, "val", "b", two_region_mask(0, 1), value=2)  # a copy of train's b
    pair(tmp_path, "val", "a", two_region_mask(0, 1), value=7)  # another picture named a
    with pytest.raises(ValueError) as refusal:
        open_folder(tmp_path)
    message = str(refusal.value)
    assert "train/images/b.png and val/images/b.png: the same picture in both train and val" \
        in message
    assert "a.png" not in message


def test_masks_without_an_image_are_left_out_with_a_note(tmp_path):
    flat_folder(tmp_path, 6)
    save_mask(tmp_path / "masks" / "lost.png", two_region_mask(0, 1))
    Image.fromarray(np.zeros((*SIZE, 3), np.uint8)).save(tmp_path / "images" / "web.webp")
    save_mask(tmp_path / "masks" / "web.png", two_region_mask(0, 1))
    data = open_folder(tmp_path)
    assert sum(len(files) for files in data.split_files.values()) == 6
    assert ("2 masks without an image were left out (masks/lost.png, masks/web.png); images "
            "are read from .jpg, .jpeg, .png, .bmp, .tif, .tiff files") in " ".join(data.notes)
