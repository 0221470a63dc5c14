"""Datasets stored as folders: the PASCAL VOC layout, and plain image/mask folders.

VOC (``VOCdevkit/VOC2012``)::

    JPEGImages/<id>.jpg
    SegmentationClass/<id>.png          palette PNG: pixel value = class, 255 = ignore (boundaries)
    ImageSets/Segmentation/<split>.txt  one id per line (train, val, trainval)

Plain folders, split into ``train/`` and ``val/`` (and optionally ``test/``), or flat::

    [<split>/]images/<name>.jpg|png
    [<split>/]masks/<name>.png          pixel value = class (a palette, 8- or 16-bit greyscale PNG)
    classes.txt                         optional: the classes, one per line (below)

:func:`open_folders` is the entry point (``folder:PATH`` datasets go through it). It lists the
splits, reads every mask once, decides the classes for all splits together and, before any
training, refuses with every problem file named: an image and its mask of different sizes, a
mask value that is not a class (a stray label, a 16-bit value above 255), binary masks stored
as 0/255 (255 is the ignore label), a file that cannot be read or is not a palette or greyscale
PNG mask (a JPEG named .png included), palette masks whose palettes number the colours
differently, an image whose EXIF orientation asks viewers to turn it (its mask may follow
either), one picture (same name, same bytes) in two split folders. The classes:

- ``classes.txt`` with names only: the k-th name is class k (mask value k); 255 = ignore. Blank
  lines and lines that start with ``#`` are skipped.
- ``classes.txt`` with values, ``name: value[, value ...]`` on every line: those mask values
  are that class (numbered in line order); a line ``ignore: value[, ...]`` sends values to the
  ignore label; 255, unless listed, stays the ignore label; any other value is refused. Binary
  masks stored as 0/255 need::

      background: 0
      foreground: 255

  From Python, ``open_folders(root, mask_values={0: 0, 255: 1})`` does the same (mask value →
  class number, or → 255 to ignore).
- Neither: the classes are the values the masks hold, which must be 0, 1, ..., K-1 with none
  missing: a gap means stray labels (or classes that never appear: list those in classes.txt).

A flat ``images/`` + ``masks/`` folder is split into train / val / test (70 / 15 / 15 % by
default), reproducibly: files are ordered by a hash of their name with ``split_seed`` (not the
training seed), so every run on a folder tests on the same pictures, and no picture is in two
splits; :attr:`FolderDataset.split_files` says which file went where, and
:attr:`FolderDataset.notes` states the split. A tree without a test split is tested on its val
split, which the notes also state.

Masks are read as class indices (never as colours) and never interpolated (nearest resizing
only). Images are RGB in [0, 1]; a 16-bit greyscale image is scaled by 65535 (not clipped).

:func:`find_split`, :func:`voc_split` and :func:`plain_split` list one split's files without
the dataset-wide checks (the pipeline still stops at a stray label or a size mismatch).
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from glob import escape as glob_escape
from pathlib import Path

import numpy as np

from segcourse.labels import IGNORE_INDEX, validate_labels

VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
               "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
               "pottedplant", "sheep", "sofa", "train", "tvmonitor")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
SPLITS = ("train", "val", "test")
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
MASK_MODES = ("P", "L", "I", *SIXTEEN_BIT_MODES)
INTERPOLATION_HINT = (
    "Stray values along the edges of regions usually mean the masks were resized with "
    "interpolation (or saved as JPEG) before: export them again with nearest-neighbour resizing, "
    "as PNG.")


RARE_CLASS_MIN_MASKS = 10  # with fewer masks, a class held by one of them is no surprise


class DatasetProblems(ValueError):
    """A dataset refused when opened; ``problems`` lists each problem (one file's, or the set's)."""

    def __init__(self, message: str, problems):
        super().__init__(message)
        self.problems = list(problems)


@dataclass(frozen=True)
class FolderSplit:
    """The image and mask files of one split, paired, the classes, and how mask values map to
    them (``mask_values``: (mask value, class) pairs; empty: the values are the classes)."""

    images: tuple[Path, ...]
    masks: tuple[Path, ...]
    class_names: tuple[str, ...]
    mask_values: tuple[tuple[int, int], ...] = ()

    @property
    def num_classes(self) -> int:
        """How many classes: the length of ``class_names``."""
        return len(self.class_names)

    def labels(self, mask, what: str = "mask") -> np.ndarray:
        """Class numbers (int64) from a mask's values (:func:`read_mask`), through
        ``mask_values``; a ``ValueError`` names the values that are not classes."""
        if self.mask_values:
            mask = map_values(mask, dict(self.mask_values), what)
        return validate_labels(mask, self.num_classes, IGNORE_INDEX, what)


@dataclass(frozen=True)
class FolderDataset:
    """Train, val and test splits of a folder, checked by :func:`open_folders`."""

    root: Path
    layout: str  # "voc", "splits" (train/, val/[, test/]) or "flat" (split by open_folders)
    train: FolderSplit
    val: FolderSplit
    test: FolderSplit  # the val split itself when the folder has no test split (see notes)
    notes: tuple[str, ...] = ()  # what a run should state about its data

    @property
    def class_names(self) -> tuple[str, ...]:
        """The classes' names, index = class number (the same in every split)."""
        return self.train.class_names

    @property
    def num_classes(self) -> int:
        """How many classes (the same in every split)."""
        return self.train.num_classes

    @property
    def split_files(self) -> dict[str, tuple[str, ...]]:
        """The images of each split, as paths relative to ``root``."""
        return {name: tuple(_relative(self.root, p) for p in getattr(self, name).images)
                for name in SPLITS}


# Listing ---------------------------------------------------------------------------------------

def is_voc(root) -> bool:
    """Whether ``root`` is laid out like VOC 2012 (JPEGImages/ and SegmentationClass/)."""
    root = Path(root)
    return (root / "JPEGImages").is_dir() and (root / "SegmentationClass").is_dir()


def _voc_listing(root, split):
    return Path(root) / "ImageSets" / "Segmentation" / f"{split}.txt"


def _voc_ids(root, split):
    listing = _voc_listing(root, split)
    if not listing.exists():
        available = sorted(p.stem for p in listing.parent.glob("*.txt"))
        raise ValueError(f"no split {split!r} in {root}: {listing} is missing (available: "
                         f"{', '.join(available) or 'none'}).")
    ids = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    if not ids:
        raise ValueError(f"{listing} lists no images.")
    return ids


def _voc_pairs(root, ids, split):
    images = tuple(root / "JPEGImages" / f"{i}.jpg" for i in ids)
    masks = tuple(root / "SegmentationClass" / f"{i}.png" for i in ids)
    _check_exist(images + masks, _voc_listing(root, split))
    return images, masks


def voc_split(root, split="train") -> FolderSplit:
    """The VOC ids listed in ``ImageSets/Segmentation/<split>.txt``, as file pairs (the 21 VOC
    classes, or those of a ``classes.txt`` in ``root``)."""
    root = Path(root)
    images, masks = _voc_pairs(root, _voc_ids(root, split), split)
    names, mapping = _classes_txt(root) or (VOC_CLASSES, None)
    return FolderSplit(images, masks, names, _pairs(mapping))


def _check_exist(paths, source):
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise ValueError(f"{len(missing)} files named by {source} are missing, e.g. {missing[0]}.")


def _plain_pairs(base):
    """``(images, masks, unmatched images, groups of images sharing a name, masks without an
    image)`` of ``base``."""
    image_dir, mask_dir = base / "images", base / "masks"
    if not image_dir.is_dir() or not mask_dir.is_dir():
        raise ValueError(f"{base} has no images/ and masks/ folders; expected "
                         f"{base}/images/<name>.jpg and {base}/masks/<name>.png (or a VOC tree "
                         "with JPEGImages/ and SegmentationClass/).")
    # Hidden files are skipped: macOS leaves ._<name>.png beside every file it copies.
    images = sorted(p for p in image_dir.iterdir()
                    if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not images:
        raise ValueError(f"no images in {image_dir} (looked for {', '.join(IMAGE_SUFFIXES)}).")
    masks = {p.stem: p for p in mask_dir.iterdir()
             if p.suffix.lower() == ".png" and not p.name.startswith(".")}
    by_stem = {}
    for path in images:
        by_stem.setdefault(path.stem, []).append(path)
    shared = [group for group in by_stem.values() if len(group) > 1]
    unmatched = [p for p in images if p.stem not in masks]
    paired = [p for p in images if p.stem in masks and len(by_stem[p.stem]) == 1]
    orphans = sorted(path for stem, path in masks.items() if stem not in by_stem)
    return tuple(paired), tuple(masks[p.stem] for p in paired), unmatched, shared, orphans


def plain_split(root, split=None) -> FolderSplit:
    """Images and masks paired by file stem, from ``root/[split/]images`` and ``.../masks``;
    the classes from ``root/classes.txt``, or else 0..the largest value of this split's masks."""
    root = Path(root)
    base = root / split if split and (root / split).is_dir() else root
    images, masks, unmatched, shared, _ = _plain_pairs(base)
    if unmatched:
        raise ValueError(f"{len(unmatched)} images in {base / 'images'} have no mask in "
                         f"{base / 'masks'}: {', '.join(p.name for p in unmatched)} (a mask has "
                         "the image's name with .png).")
    if shared:
        raise ValueError("images share a name, so they would share a mask: "
                         + "; ".join(" and ".join(p.name for p in g) for g in shared) + ".")
    listed = _classes_txt(root)
    if listed:
        return FolderSplit(images, masks, listed[0], _pairs(listed[1]))
    return FolderSplit(images, masks, _inferred_names(base, masks))


def _inferred_names(base, mask_paths):
    labels = set()
    for path in mask_paths:
        labels |= set(np.unique(read_mask(path)).tolist())
    for high in (IGNORE_INDEX, 65535):
        if high in labels and labels <= {0, high}:
            raise ValueError(f"{base}: {_binary_problem(base, high)}")
    large = sorted(v for v in labels if v > IGNORE_INDEX)
    if large:
        raise ValueError(f"the masks in {base} hold {_values(large)} above 255: classes are "
                         "0..254 (255 = ignore); map mask values to classes with 'name: value' "
                         "lines in classes.txt.")
    labels.discard(IGNORE_INDEX)
    return tuple(f"class {k}" for k in range(max(labels) + 1))


def find_split(root, split) -> FolderSplit:
    """VOC or plain, whichever layout ``root`` has (one split, without the dataset-wide checks
    of :func:`open_folders`)."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"dataset folder {root} does not exist.")
    return voc_split(root, split) if is_voc(root) else plain_split(root, split)


# Classes ---------------------------------------------------------------------------------------

def _classes_txt(root):
    """``root/classes.txt`` as ``(class names, {mask value: class} or None)``; None if absent."""
    listing = Path(root) / "classes.txt"
    if not listing.exists():
        return None
    try:  # utf-8-sig: a BOM (Windows Notepad) must not become part of the first class name
        text = listing.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"{listing} is not UTF-8 text (byte {error.object[error.start]:#x} at "
                         f"position {error.start}); save it as UTF-8.") from None
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):  # blank lines and comments
            continue
        name, colon, rest = line.rpartition(":") if ":" in line else (line, "", "")
        name = name.strip()
        values = None
        if colon:
            try:
                values = [int(v) for v in rest.replace(",", " ").split()]
            except ValueError:
                values = []
            if not name or not values or not all(0 <= v <= 65535 for v in values):
                raise ValueError(f"{listing} line {number} ({line.strip()!r}): after the ':' "
                                 "come the class's mask values, whole numbers 0..65535 "
                                 "separated by commas, e.g. 'foreground: 255'.")
        entries.append((number, name, values))
    if not entries:
        raise ValueError(f"{listing} lists no classes; write one class name per line.")
    valued = [number for number, _, values in entries if values is not None]
    if not valued:
        names = tuple(name for _, name, _ in entries)
        _check_class_count(len(names), listing)
        return names, None
    if len(valued) != len(entries):
        bare = [number for number, _, values in entries if values is None]
        raise ValueError(f"{listing}: lines {valued} give mask values but lines {bare} do not; "
                         "give every class its values or none (then line k is class k).")
    names, mapping = [], {}
    for number, name, values in entries:
        label = IGNORE_INDEX if name.lower() == "ignore" else len(names)
        if label != IGNORE_INDEX:
            names.append(name)
        for value in values:
            if value in mapping:
                raise ValueError(f"{listing} line {number}: the mask value {value} is already "
                                 "given to another class.")
            mapping[value] = label
    if not names:
        raise ValueError(f"{listing} sends every value to 'ignore' and lists no class.")
    _check_class_count(len(names), listing)
    return tuple(names), mapping


def _check_class_count(count, source):
    if count > IGNORE_INDEX:
        raise ValueError(f"{source} lists {count} classes; at most {IGNORE_INDEX} fit in 8-bit "
                         f"labels beside the ignore label {IGNORE_INDEX}.")


def _checked_mapping(mask_values, source):
    """``{mask value: class}`` checked; the classes must be 0..K-1, all used."""
    mapping = {}
    for value, label in dict(mask_values).items():
        if int(value) != value or int(label) != label or not 0 <= value <= 65535 or not (
                0 <= label <= IGNORE_INDEX):
            raise ValueError(f"{source}: {value!r}: {label!r} is not a mask value (a whole number "
                             f"0..65535) mapped to a class number (0..{IGNORE_INDEX - 1}, or "
                             f"{IGNORE_INDEX} to ignore).")
        mapping[int(value)] = int(label)
    classes = sorted(set(mapping.values()) - {IGNORE_INDEX})
    missing = sorted(set(range(max(classes, default=-1) + 1)) - set(classes))
    if not classes or missing:
        raise ValueError(f"{source} maps mask values to the classes {classes}: the class numbers "
                         f"0..K-1 must all be used (missing: {missing or [0]}).")
    return mapping, len(classes)


def _pairs(mapping):
    return tuple(sorted(mapping.items())) if mapping else ()


def map_values(mask, mask_values: dict, what: str = "mask") -> np.ndarray:
    """Class numbers (int64) from mask values through ``{mask value: class}``; 255, unless
    mapped, stays the ignore label; other values not in the mapping are refused."""
    mask = np.asarray(mask)
    lookup = np.full(max(max(mask_values), IGNORE_INDEX) + 1, -1, np.int64)
    lookup[IGNORE_INDEX] = IGNORE_INDEX
    for value, label in mask_values.items():
        lookup[value] = label
    inside = (mask >= 0) & (mask < lookup.size)
    labels = np.where(inside, lookup[np.clip(mask, 0, lookup.size - 1)], -1)
    if (labels < 0).any():
        raise ValueError(f"{what}: {_unmapped(np.unique(mask[labels < 0]), (labels < 0).sum())}.")
    return labels


def _unmapped(values, pixels):
    return (f"{_values(values)} in {_count(pixels, 'pixel')} "
            f"{'is' if len(values) == 1 else 'are'} not in the mask-value mapping")


# Reading ---------------------------------------------------------------------------------------

def _image_mode_problem(mode):
    if mode == "F":
        return "a floating-point image; save it as an 8- or 16-bit PNG, or a JPEG"
    return None


def _mask_mode_problem(mode, file_format="PNG"):
    if file_format not in (None, "PNG"):
        return (f"a {file_format} file, whatever its name; a mask must be a PNG, since "
                f"{file_format} compression changes the class numbers along every edge")
    if mode not in MASK_MODES:
        return (f"a {mode} image; a mask must be a palette or greyscale PNG whose pixel values "
                "are the class numbers")
    return None


ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


def _transparency_problem(image):
    """Why an opened image's transparency makes its pixels ambiguous, or None: under a
    transparent pixel lies a colour a viewer does not show (often black, sometimes leftovers),
    and reading the picture as RGB would keep that hidden colour."""
    if image.mode not in ALPHA_MODES and "transparency" not in image.info:
        return None
    alpha = np.asarray(image.convert("RGBA"))[..., 3]
    clear = int(np.count_nonzero(alpha < 255))
    if not clear:
        return None
    return (f"{_percent(clear / alpha.size)} of its pixels are transparent or partly so, and "
            "what lies under them is not what a viewer shows. Save it without transparency, "
            "flattened onto the background you mean (Pillow: Image.alpha_composite(background, "
            "image.convert('RGBA')).convert('RGB')), and check the pair")


# EXIF orientation (tag 0x0112): how a viewer turns the stored pixels to show the picture.
EXIF_ORIENTATION = 0x0112
ORIENTATIONS = {2: "mirrored left-right", 3: "turned 180°", 4: "mirrored top-bottom",
                5: "mirrored and turned 90°", 6: "turned 90° clockwise",
                7: "mirrored and turned 90°", 8: "turned 90° counter-clockwise"}


def _orientation_problem(image):
    """Why an opened image's EXIF orientation makes its pixels ambiguous, or None."""
    orientation = image.getexif().get(EXIF_ORIENTATION, 1)
    if orientation not in ORIENTATIONS:
        return None
    return (f"its EXIF orientation ({orientation}) tells viewers to show it "
            f"{ORIENTATIONS[orientation]}, which segcourse does not do, so its pixels may not "
            "lie where its mask was drawn. Save it with the orientation applied (Pillow: "
            "ImageOps.exif_transpose(image)), or without the tag if its mask follows the "
            "stored pixels, and check the pair")


def read_image(path, orientation: str = "refuse") -> np.ndarray:
    """RGB ``(H, W, 3)`` float32 in [0, 1]: 8-bit images divided by 255, 16-bit greyscale ones
    by 65535 (Pillow reads 16-bit colour PNGs as 8-bit RGB); an image with transparent pixels
    is refused (an opaque alpha channel is dropped). An EXIF orientation other than
    "as stored" is refused (``orientation="refuse"``: a mask may follow either the stored or
    the shown pixels) or applied (``"apply"``: the picture as a viewer shows it)."""
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        problem = _image_mode_problem(image.mode)
        if problem:
            raise ValueError(f"{path} is {problem}.")
        if problem := _transparency_problem(image):
            raise ValueError(f"{path}: {problem}.")
        if orientation == "apply":
            image = ImageOps.exif_transpose(image)
        elif problem := _orientation_problem(image):
            raise ValueError(f"{path}: {problem}.")
        if image.mode not in SIXTEEN_BIT_MODES and image.mode != "I":
            return np.asarray(image.convert("RGB"), np.float32) / 255.0
        grey = sixteen_bit_values(np.asarray(image), str(path)).astype(np.float32)
    return np.repeat((grey / 65535.0)[..., None], 3, axis=-1)


def sixteen_bit_values(values: np.ndarray, what: str) -> np.ndarray:
    """A greyscale picture's values, refused when a 32-bit one holds values outside
    0..65535 (what a 16-bit picture can hold)."""
    if values.size and (values.min() < 0 or values.max() > 65535):
        raise ValueError(f"{what} is a 32-bit image with values outside 0..65535; save it as an "
                         "8- or 16-bit image.")
    return values


def read_mask(path) -> np.ndarray:
    """The values of a palette or greyscale PNG mask ``(H, W)`` as stored (indices, not
    colours): uint8 (8-bit), uint16 (16-bit: values above 255 are kept, never wrapped) or int32.
    :meth:`FolderSplit.labels` turns them into class numbers."""
    from PIL import Image

    with Image.open(path) as mask:
        problem = _mask_mode_problem(mask.mode, mask.format)
        if problem:
            raise ValueError(f"{path} is {problem}.")
        values = np.asarray(mask)
        mode = mask.mode
    if mode in SIXTEEN_BIT_MODES:
        return values.astype(np.uint16)
    return values.astype(np.int32 if mode == "I" else np.uint8)


# Opening and checking a whole folder ------------------------------------------------------------

def open_folders(root, mask_values: dict | None = None, val_fraction: float = 0.15,
                 test_fraction: float = 0.15, split_seed: int = 0,
                 progress: bool = True) -> FolderDataset:
    """The train, val and test splits of a folder (VOC tree, ``train/`` + ``val/`` [+ ``test/``],
    or flat ``images/`` + ``masks/``), checked in one pass over every mask.

    ``mask_values``: ``{mask value: class number}`` (255 to ignore), e.g. ``{0: 0, 255: 1}`` for
    binary masks stored as 0/255; the same as ``name: value`` lines in ``root/classes.txt``
    (give it one way, not both). ``val_fraction`` / ``test_fraction``: how a flat folder is
    split, by a hash of the file names with ``split_seed``. Raises :class:`DatasetProblems`
    naming every problem file (and the fix) before anything is trained; see the module
    docstring for what is checked.
    """
    if not str(root).strip():
        raise ValueError("folder: needs the dataset's folder after the colon, e.g. "
                         "folder:data/pets.")
    root = Path(root).expanduser()  # folder:~/data: no shell expands the ~ after "folder:"
    if not root.is_dir():
        raise ValueError(f"dataset folder {root} does not exist.")
    if not (val_fraction > 0 and test_fraction > 0 and val_fraction + test_fraction < 1):
        raise ValueError(f"val_fraction ({val_fraction}) and test_fraction ({test_fraction}) "
                         "must be fractions above 0 that leave pictures to train on (sum "
                         "below 1).")
    listed = _classes_txt(root)
    names, mapping = listed if listed else (None, None)
    source = f"{root / 'classes.txt'}"
    if mask_values is not None:
        if mapping is not None:
            raise ValueError(f"{source} gives mask values already; give the mapping once: in "
                             "classes.txt or as mask_values, not both.")
        source = "mask_values"
        mapping = mask_values
    if mapping is not None:
        mapping, count = _checked_mapping(mapping, source)
        if names is not None and len(names) != count:
            raise ValueError(f"{root / 'classes.txt'} names {len(names)} classes but "
                             f"mask_values maps to {count}.")
        names = names or tuple(f"class {k}" for k in range(count))

    problems, notes = [], []
    layout, splits = _list_splits(root, val_fraction, test_fraction, split_seed, problems, notes)
    if layout == "voc" and names is None:
        names = VOC_CLASSES
    pairs = list(dict.fromkeys(pair for images, masks in splits.values()
                               for pair in zip(images, masks, strict=True)))
    scanned = _scan(root, pairs, progress, problems)
    advice = []
    names = _decide_classes(root, scanned, names, mapping, source, problems, advice)
    _unlabelled_splits(root, splits, dict(scanned), mapping, problems)
    if problems:
        header = (f"{root}: {_count(len(problems), 'problem')} in its {len(pairs)} image/mask "
                  "pairs; nothing was trained. Fix them and open the dataset again:")
        raise DatasetProblems("\n".join([header, *(f"  - {p}" for p in problems), *advice]),
                              problems)
    made = {name: FolderSplit(*files, names, _pairs(mapping)) for name, files in splits.items()}
    return FolderDataset(root, layout, made["train"], made["val"], made.get("test", made["val"]),
                         tuple(notes))


def _list_splits(root, val_fraction, test_fraction, split_seed, problems, notes):
    """``(layout, {split: (images, masks)})``; listing problems are appended to ``problems``."""
    if is_voc(root):
        present = [s for s in SPLITS if s != "test" or _voc_listing(root, s).exists()]
        ids = {s: _voc_ids(root, s) for s in present}
        for first, second in itertools.combinations(present, 2):
            common = sorted(set(ids[first]) & set(ids[second]))
            if common:
                problems.append(f"{', '.join(common)}: in both {first} and {second} "
                                f"(ImageSets/Segmentation/{first}.txt and {second}.txt); a "
                                "picture must be in one split only")
        splits = {s: _voc_pairs(root, ids[s], s) for s in present}
        layout = "voc"
    elif any((root / s).is_dir() for s in SPLITS):
        absent = [s for s in ("train", "val") if not (root / s).is_dir()]
        if absent:
            raise ValueError(f"{root} has split folders but no {' and no '.join(absent)}/: give "
                             "it train/ and val/ (each with images/ and masks/), or put every "
                             f"pair in {root}/images and {root}/masks to have them split.")
        splits = {}
        for split in SPLITS:
            if (root / split).is_dir():
                images, masks, unmatched, shared, orphans = _plain_pairs(root / split)
                _listing_problems(root, unmatched, shared, problems)
                _orphans_note(root, orphans, notes)
                splits[split] = (images, masks)
        _shared_across_splits(root, splits, problems)
        layout = "splits"
    else:
        images, masks, unmatched, shared, orphans = _plain_pairs(root)
        _listing_problems(root, unmatched, shared, problems)
        _orphans_note(root, orphans, notes)
        if problems and len(images) < 3:  # too few pairs to split, because of these problems
            raise DatasetProblems("\n".join([
                f"{root}: {_count(len(problems), 'problem')}; only {len(images)} image/mask "
                "pairs remain, too few to split. Fix them and open the dataset again:",
                *(f"  - {p}" for p in problems)]), problems)
        splits = _split_flat(root, images, masks, val_fraction, test_fraction, split_seed)
        counts = " / ".join(str(len(splits[s][0])) for s in SPLITS)
        notes.append(
            f"{root} has no train/, val/ and test/ folders: its {len(images)} image/mask pairs "
            f"were split {_percent(1 - val_fraction - test_fraction)} train, "
            f"{_percent(val_fraction)} val, {_percent(test_fraction)} test ({counts} pairs), by "
            f"a hash of each file name with split seed {split_seed}: the same split on every "
            "run, whatever the training seed; split_files lists it.")
        layout = "flat"
    if "test" not in splits:
        notes.append(f"{root} has no test split: the test scores are measured on the val split, "
                     "which also chose the best checkpoint (an optimistic estimate); give it a "
                     "test split for an unbiased one.")
    return layout, splits


def _shared_across_splits(root, splits, problems):
    """One picture (the same name, the same bytes) in two split folders: it would be scored on
    what it trained on. Same-named pictures that differ are different pictures."""
    import filecmp

    names = {split: {path.stem: path for path in images} for split, (images, _) in splits.items()}
    for first, second in itertools.combinations(names, 2):
        for stem in sorted(set(names[first]) & set(names[second])):
            one, other = names[first][stem], names[second][stem]
            if filecmp.cmp(one, other, shallow=False):
                problems.append(f"{_relative(root, one)} and {_relative(root, other)}: the same "
                                f"picture in both {first} and {second}; a picture must be in "
                                "one split only")


def _orphans_note(root, orphans, notes):
    """Masks without an image are left out; say so (an image in a format not read, .webp or
    .gif, leaves its mask alone)."""
    if orphans:
        shown = ", ".join(_relative(root, p) for p in orphans[:3])
        verb = "was" if len(orphans) == 1 else "were"
        more = ", ..." if len(orphans) > 3 else ""
        notes.append(f"{_count(len(orphans), 'mask')} without an image {verb} left out "
                     f"({shown}{more}); images are read from {', '.join(IMAGE_SUFFIXES)} files "
                     "with the mask's name.")


def _listing_problems(root, unmatched, shared, problems):
    for path in unmatched:
        expected = path.parent.parent / "masks" / path.stem
        other = sorted(p for p in expected.parent.glob(f"{glob_escape(path.stem)}.*")
                       if p.suffix.lower() != ".png")
        found = (f"; {_relative(root, other[0])} is not a PNG: masks must be PNG, since JPEG "
                 "compression changes the class numbers" if other else "")
        problems.append(f"{_relative(root, path)}: no mask (expected "
                        f"{_relative(root, expected)}.png{found})")
    for group in shared:
        problems.append(f"{' and '.join(_relative(root, p) for p in group)}: images with the "
                        "same name would share one mask; rename or remove one")


def split_key(split_seed, name: str) -> tuple[str, str]:
    """What a picture's file name (without its suffix) is ordered by when a split is drawn: a
    hash with ``split_seed``, the same on every run and machine, and the name on a tie."""
    return hashlib.sha256(f"{split_seed}:{name}".encode()).hexdigest(), name


def _split_flat(root, images, masks, val_fraction, test_fraction, split_seed):
    count = len(images)
    test_count = max(1, round(count * test_fraction))
    val_count = max(1, round(count * val_fraction))
    if count - test_count - val_count < 1:
        raise ValueError(f"{root} holds only {count} image/mask pairs in images/ and masks/; "
                         "splitting them into train, val and test needs at least 3 (and "
                         "fractions that leave one to train on). Add pictures, or give it "
                         "train/ and val/ folders.")
    order = sorted(range(count), key=lambda i: split_key(split_seed, images[i].stem))
    chosen = {"test": order[:test_count], "val": order[test_count:test_count + val_count],
              "train": order[test_count + val_count:]}
    return {split: (tuple(images[i] for i in sorted(chosen[split])),
                    tuple(masks[i] for i in sorted(chosen[split]))) for split in SPLITS}


def _scan(root, pairs, progress, problems):
    """Read every mask and every image's header once: ``[(mask name, {value: pixels})]``
    (values None for a mask that could not be read); file problems go to ``problems``."""
    from PIL import Image
    from tqdm.auto import tqdm

    scanned = []
    used_colours = {}  # palette masks: {mask name: {index it uses: that index's colour}}
    for image_path, mask_path in tqdm(pairs, desc=f"checking {root.name}", unit="pair",
                                      disable=not progress or len(pairs) < 100):
        image_name, mask_name = _relative(root, image_path), _relative(root, mask_path)
        values = mask_size = image_size = None
        try:  # any failure is reported with the file's name, as every problem is
            with Image.open(mask_path) as opened:
                mode_problem = _mask_mode_problem(opened.mode, opened.format)
                palette = opened.getpalette() if opened.mode == "P" else None
            mask = None if mode_problem else read_mask(mask_path)
        except Exception as error:
            problems.append(f"{mask_name}: cannot be read ({type(error).__name__}: {error})")
            mask = None
        else:
            if mode_problem:
                problems.append(f"{mask_name}: {mode_problem}")
        if mask is not None:
            mask_size = (mask.shape[1], mask.shape[0])
            if mask.dtype.kind == "u":
                counts = np.bincount(mask.ravel())
                present = np.flatnonzero(counts)
                values = dict(zip(present.tolist(), counts[present].tolist(), strict=True))
            else:
                found, counts = np.unique(mask, return_counts=True)
                values = dict(zip(found.tolist(), counts.tolist(), strict=True))
            if palette is not None:
                used_colours[mask_name] = {index: tuple(palette[3 * index:3 * index + 3])
                                           for index in values}
        try:
            with Image.open(image_path) as image:
                image_size, mode = image.size, image.mode
                orientation = _orientation_problem(image)
                transparency = _transparency_problem(image)
            if _image_mode_problem(mode):
                problems.append(f"{image_name}: {_image_mode_problem(mode)}")
            for problem in (orientation, transparency):
                if problem:
                    problems.append(f"{image_name}: {problem}")
        except Exception as error:
            problems.append(f"{image_name}: cannot be read ({type(error).__name__}: {error})")
        if image_size and mask_size and image_size != mask_size:
            problems.append(_size_problem(image_name, image_size, mask_name, mask_size))
        scanned.append((mask_name, values))
    _palette_problems(used_colours, problems)
    return scanned


def _palette_problems(used_colours, problems):
    """A palette mask's class numbers are its indices: each index must show the same colour in
    every mask, or the files number their classes differently (a per-file quantize or a PNG
    optimiser renumbers the colours by each file's content). ``used_colours`` is
    ``{mask name: {index: colour}}``; a mask that gives an index another colour than most masks
    do is named."""
    by_index = {}  # index -> {colour: the masks that give the index that colour}
    for name, colours in used_colours.items():
        for index, colour in colours.items():
            by_index.setdefault(index, {}).setdefault(colour, []).append(name)
    usual = {index: max(by_colour.items(), key=lambda item: len(item[1]))
             for index, by_colour in by_index.items()}
    for name, colours in used_colours.items():
        disagree = []
        for index, colour in sorted(colours.items()):
            usual_colour, others = usual[index]
            if colour != usual_colour:
                disagree.append(f"index {index} is the colour {colour}, where {len(others)} "
                                f"other mask(s) give it {usual_colour} (e.g. {others[0]})")
        if disagree:
            problems.append(
                f"{name}: its palette numbers the colours otherwise than the other masks "
                f"({'; '.join(disagree[:3])}): one class number would mean different classes. "
                "Save every mask with one palette (or as greyscale class numbers)")


def _decide_classes(root, scanned, names, mapping, source, problems, advice):
    """The class names for all splits; values that are not classes go to ``problems``."""
    readable = [(name, values) for name, values in scanned if values is not None]
    seen = set().union(*(values for _, values in readable))

    def flag(check, describe):
        flagged = False
        for name, values in readable:
            bad = sorted(v for v in values if check(v))
            if bad:
                problems.append(f"{name}: {describe(bad, sum(values[v] for v in bad))}")
                flagged = True
        return flagged

    if mapping is not None:
        allowed = set(mapping) | {IGNORE_INDEX}
        if flag(lambda v: v not in allowed, _unmapped):
            advice.append(f"Give every value the masks hold a class in {source} (or fix those "
                          f"masks). {INTERPOLATION_HINT}")
        return names
    for high in (IGNORE_INDEX, 65535):
        if high in seen and seen <= {0, high}:
            problems.insert(0, _binary_problem(root, high))
            return names or ("class 0",)
    objects = sorted(v for v in seen if 0 < v < IGNORE_INDEX)
    unlabelled_objects = [name for name, values in readable if set(values) == {0, IGNORE_INDEX}]
    if objects and unlabelled_objects and names is None:
        # a 0/1 dataset with some masks saved as 0/255: their objects would score as ignored
        for name in unlabelled_objects:
            problems.append(
                f"{name}: holds only 0 and {IGNORE_INDEX}, where other masks hold the classes "
                f"{_list(objects)}: were its objects saved as {IGNORE_INDEX} (as a 0/255 "
                f"binary mask is)? {IGNORE_INDEX} is the ignore label, so they would be left "
                "out of the loss and the scores")
        advice.append(
            f"Save those masks with the class numbers the others use. If {IGNORE_INDEX} really "
            f"is unlabelled there (a picture whose only object is void, a no-data border), "
            f"list the classes in {root / 'classes.txt'} (one name per line, line k is class "
            f"k, or 'name: value' lines); {IGNORE_INDEX} then stays the ignore label.")
    if names is None:
        labels = sorted(v for v in seen if 0 <= v < IGNORE_INDEX)
        count = 0
        while count in labels:
            count += 1
        if count < len(labels):
            stray = f"values above {count - 1} are" if count else "every value is"
            advice.append(
                f"The classes are inferred from the mask values, which must be 0, 1, ..., K-1: "
                f"the masks hold {_list(labels)}, and no mask holds the value {count}, so the "
                f"{stray} taken as stray. If they are classes, list every "
                f"class in {root / 'classes.txt'} (one name per line, line k is class k; or "
                f"'name: value' lines to map values to classes). {INTERPOLATION_HINT}")
        elif count == 1:
            problems.insert(0, f"the masks hold only the value 0 (and {IGNORE_INDEX} = ignore): "
                               "one class, nothing to segment; check the masks")
        names = tuple(f"class {k}" for k in range(count))
        _rare_inferred_classes(root, readable, count, problems, advice)
    count = len(names)
    flag(lambda v: v > IGNORE_INDEX, lambda bad, pixels: (
        f"{_values(bad)} above 255 in {_count(pixels, 'pixel')}; 16-bit mask values are read as "
        f"they are (not wrapped), classes are 0..254 ({IGNORE_INDEX} = ignore): map these "
        f"values to classes with 'name: value' lines in classes.txt (or mask_values=)"))
    stray = flag(lambda v: v < 0 or count <= v < IGNORE_INDEX, lambda bad, pixels: (
        f"{_values(bad)} in {_count(pixels, 'pixel')} "
        f"{'is not a class' if len(bad) == 1 else 'are not classes'} ({count} classes: "
        f"0..{count - 1}, {IGNORE_INDEX} = ignore)"))
    if stray and not advice:
        advice.append(f"Fix those masks, or if the values are classes, list every class in "
                      f"{root / 'classes.txt'}. {INTERPOLATION_HINT}")
    return names


def _unlabelled_splits(root, splits, values_by_mask, mapping, problems):
    """A split whose masks (all readable) hold no labelled pixel, the ignore label only (with
    a mapping: only values it leaves out), has nothing to train on or to score: refused now,
    not after a training run ends with an evaluation that cannot be."""
    def labelled(value):
        return value in mapping if mapping is not None else value != IGNORE_INDEX

    for split, (_, masks) in splits.items():
        held = [values_by_mask.get(_relative(root, mask)) for mask in masks]
        if held and None not in held and not any(map(labelled, set().union(*held))):
            what = "its mask holds" if len(held) == 1 else f"its {len(held)} masks hold"
            problems.append(f"the {split} split: {what} no labelled pixel to "
                            f"{'train on' if split == 'train' else 'score'} (only the ignore "
                            f"label{'' if mapping is None else ' and values without a class'})")


def _rare_inferred_classes(root, readable, count, problems, advice):
    """Refuse an inferred class that a single mask of many holds: more likely a slip of the
    annotation tool (a stray 3 in a 0/1/2 dataset) than a class, and taken as one it adds a
    class that scores near 0 and lowers the mIoU. classes.txt confirms a real one."""
    if len(readable) < RARE_CLASS_MIN_MASKS:
        return
    holders = {k: [(name, values[k]) for name, values in readable if values.get(k)]
               for k in range(1, count)}
    rare = {k: found[0] for k, found in holders.items() if len(found) == 1}
    for k, (name, pixels) in rare.items():
        problems.append(f"{name}: the only one of the {len(readable)} masks that holds the "
                        f"value {k} ({_count(pixels, 'pixel')}), which would make it a class of "
                        "its own")
    if rare:
        advice.append(
            f"Classes are inferred from the mask values; a value that one mask alone holds is "
            f"more often an annotation slip than a class. Fix that mask, or if the value is a "
            f"class, list every class in {root / 'classes.txt'} (one name per line, line k is "
            f"class k).")


def _binary_problem(root, high):
    what = "the ignore label" if high == IGNORE_INDEX else "no class number"
    return (f"the masks hold only the values 0 and {high}: binary masks (0 = background, {high} "
            f"= object)? {high} is {what}, so these masks would make a one-class problem with a "
            f"meaningless mIoU of 1.000. Say which value is which class: write "
            f"{Path(root) / 'classes.txt'} with the two lines 'background: 0' and 'foreground: "
            f"{high}' (any names), or from Python call "
            f"open_folders(root, mask_values={{0: 0, {high}: 1}})")


def _size_problem(image_name, image_size, mask_name, mask_size):
    turned = " (the same size turned by 90°: the image may carry an EXIF rotation)" if (
        image_size == mask_size[::-1]) else ""
    return (f"{image_name} is {image_size[0]}×{image_size[1]} but its mask {mask_name} is "
            f"{mask_size[0]}×{mask_size[1]} (width×height): a mask must match its image pixel "
            f"for pixel{turned}")


def _relative(root, path):
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _values(values, limit=8):
    values = [int(v) for v in values]
    if len(values) == 1:
        return f"value {values[0]}"
    return f"values {_list(values, limit)}"


def _list(values, limit=8):
    shown = ", ".join(str(int(v)) for v in values[:limit])
    return f"[{shown}{', ...' if len(values) > limit else ''}]"


def _count(number, noun):
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _percent(fraction):
    return f"{100 * fraction:.3g} %"


# The pipeline ----------------------------------------------------------------------------------

def read_pair(split: FolderSplit, image_path, mask_path) -> tuple[np.ndarray, np.ndarray]:
    """One picture at its own size: ``(image float32 (H, W, 3), class numbers int32 (H, W))``;
    a mask whose size is not its image's, or whose values are not classes, is refused."""
    image, mask = read_image(image_path), read_mask(mask_path)
    if image.shape[:2] != mask.shape:
        raise ValueError("image " + _size_problem(image_path, image.shape[1::-1], mask_path,
                                                  mask.shape[::-1]) + ".")
    return image, split.labels(mask, f"mask {mask_path}").astype(np.int32)


@dataclass(frozen=True)
class PicturesAtOwnSize:
    """A split's ``(image, mask)`` pairs, each at its own size (:func:`read_pair`), read one by
    one as they are iterated; ``len()`` is the split's number of pictures. What a score at the
    pictures' own size (``segcourse.scoring``) is computed on."""

    split: FolderSplit

    def __len__(self) -> int:
        return len(self.split.images)

    def __iter__(self):
        for image_path, mask_path in zip(self.split.images, self.split.masks, strict=True):
            yield read_pair(self.split, image_path, mask_path)


def dataset(split: FolderSplit, size: int, batch_size: int, shuffle=False, seed=0,
            augment=None):
    """A batched ``tf.data`` pipeline of ``(image, mask)`` resized to ``size × size``
    (bilinear for the image, nearest for the mask), masks checked for stray labels and against
    their image's size."""
    import tensorflow as tf

    from segcourse.data.augment import resize_pair

    def load(image_path, mask_path):
        return read_pair(split, image_path.decode(), mask_path.decode())

    def load_pair(image_path, mask_path):
        image, mask = tf.numpy_function(load, [image_path, mask_path], [tf.float32, tf.int32])
        image.set_shape((None, None, 3))
        mask.set_shape((None, None))
        return resize_pair(image, mask, (size, size))

    paths = tf.data.Dataset.from_tensor_slices(([str(p) for p in split.images],
                                                [str(p) for p in split.masks]))
    if shuffle:
        paths = paths.shuffle(len(split.images), seed=seed, reshuffle_each_iteration=True)
    data = paths.map(load_pair, num_parallel_calls=tf.data.AUTOTUNE)
    if augment is not None:
        data = data.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)
