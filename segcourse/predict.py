"""Label maps for image files: ``segcourse predict MODEL IMAGES... --out DIR``.

Each image is read as training reads a folder dataset's photos (8-bit divided by 255, 16-bit
greyscale by 65535), resized to the model's input size (bilinear: it is an image; a model
without a fixed size: the size its run trained at), segmented,
and the model's class scores resized back to the image's own size (bilinear) before their
argmax: the label maps that ``segcourse evaluate`` scores (``segcourse.scoring``). Written
per image: ``<name>_labels.png`` (a palette PNG whose pixel values are
the class numbers, as in VOC's SegmentationClass) and ``<name>_overlay.png``.

``<name>`` is the image's path relative to the folder all the images share, less its suffix:
``photos/cat.jpg`` gives ``DIR/cat_labels.png``; ``a/photo.png`` and ``b/photo.jpg`` give
``DIR/a/photo_labels.png`` and ``DIR/b/photo_labels.png``; two images that differ only by their
suffix keep it (``photo.png_labels.png``, ``photo.jpg_labels.png``). No result is ever written
over another, and an existing file is replaced only when asked (``overwrite=True``).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np


def _palette(run_config):
    from segcourse.data import palettes

    if run_config and run_config.get("dataset") == "shapes":
        return palettes.shapes_palette()
    return palettes.voc_palette()


def output_names(image_paths) -> list[Path]:
    """Each image's ``<name>`` (see the module docstring), relative to the output folder.
    The same image given twice is refused."""
    paths = [Path(p) for p in image_paths]
    absolute = [Path(os.path.abspath(p)) for p in paths]
    first: dict[Path, Path] = {}
    for path, full in zip(paths, absolute, strict=True):
        if full in first:
            raise ValueError(f"{path} is given twice (as {first[full]} and {path}); its results "
                             "would be written twice: give each image once.")
        first[full] = path
    if not absolute:
        return []
    root = Path(os.path.commonpath([full.parent for full in absolute]))
    names = [full.parent.relative_to(root) / full.stem for full in absolute]
    counts = Counter(names)
    return [full.parent.relative_to(root) / full.name if counts[name] > 1 else name
            for full, name in zip(absolute, names, strict=True)]


def output_paths(image_paths, out_dir) -> list[tuple[Path, Path]]:
    """``(labels PNG, overlay PNG)`` for each image, under ``out_dir``; refuses names that
    would collide (one image's results over another's)."""
    out_dir = Path(out_dir)
    pairs = [(out_dir / name.parent / f"{name.name}_labels.png",
              out_dir / name.parent / f"{name.name}_overlay.png")
             for name in output_names(image_paths)]
    owners: dict[Path, Path] = {}
    for image, pair in zip(image_paths, pairs, strict=True):
        for target in pair:
            if target in owners:
                raise ValueError(f"the results of {owners[target]} and {image} would both be "
                                 f"written to {target}; rename one of the images.")
            owners[target] = Path(image)
    return pairs


def predict_files(model_path, image_paths, out_dir, overwrite: bool = False) -> list[Path]:
    """Segment each image file and write its label map and overlay (module docstring); returns
    the paths written. Every image is checked to be readable, and no result to exist already
    (unless ``overwrite``), before the model is loaded."""
    from PIL import Image

    from segcourse import viz
    from segcourse.runs import load_run
    from segcourse.scoring import labels_at_sizes, resize_to_input

    image_paths = [Path(p) for p in image_paths]
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise ValueError(f"the output folder {out_dir} is a file; choose a folder.")
    targets = output_paths(image_paths, out_dir)
    existing = [path for pair in targets for path in pair if path.exists()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more of the results)" if len(existing) > 1 else ""
        raise FileExistsError(
            f"{existing[0]} already exists{more}; predict does not replace files unasked. "
            "Choose another output folder, or pass --overwrite (overwrite=True) to replace them.")
    images = [_read(image_path) for image_path in image_paths]  # all, before the model

    model, run_config = load_run(model_path)
    palette = _palette(run_config)
    # a model without a fixed input size sees the pictures at the size its run trained at
    size = (run_config or {}).get("image_size")
    trained_at = (size, size) if size else None
    written = []
    for image, (target, overlay_path) in zip(images, targets, strict=True):
        labels = labels_at_sizes(model, resize_to_input(model, image, trained_at)[None],
                                 [image.shape[:2]])[0]
        if labels.dtype != np.uint8:
            raise ValueError(f"{model_path} scores more than 256 classes; a palette PNG holds "
                             "256 at most, so its label maps cannot be written as PNGs.")
        label_png = Image.fromarray(labels, mode="L").convert("P")
        label_png.putpalette(palette.flatten().tolist())
        target.parent.mkdir(parents=True, exist_ok=True)
        label_png.save(target)
        blend = viz.overlay(image, np.asarray(labels), palette)
        Image.fromarray((blend * 255).astype(np.uint8)).save(overlay_path)
        written += [target, overlay_path]
    return written


def _read(image_path) -> np.ndarray:
    """The image as float32 RGB in [0, 1], or a ``ValueError`` that names the file."""
    from segcourse.data.folders import read_image

    if Path(image_path).is_dir():
        raise ValueError(f"{image_path} is a folder; give the image files in it, e.g. "
                         f"{Path(image_path) / '*.png'}.")
    try:  # as a viewer shows it: a phone photo's EXIF orientation is applied
        return read_image(image_path, orientation="apply")
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read {image_path} as an image: {error}") from error
