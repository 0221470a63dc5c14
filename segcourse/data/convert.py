"""Converters from downloaded archives to the folder layout ``segcourse.data.folders`` reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segcourse.labels import IGNORE_INDEX


def _save(image, mask, out, split, name):
    from PIL import Image

    for folder in ("images", "masks"):
        (out / split / folder).mkdir(parents=True, exist_ok=True)
    image.save(out / split / "images" / f"{name}.png")
    Image.fromarray(mask.astype(np.uint8), mode="L").save(out / split / "masks" / f"{name}.png")


def pets_to_folders(root, out, border="ignore", val_fraction=0.1, progress=True,
                    split_seed=0) -> Path:
    """The Oxford-IIIT Pet archives (``images/``, ``annotations/trimaps/``, ``annotations/
    trainval.txt``, ``test.txt``) → ``out/{train,val,test}/{images,masks}``; trimaps become
    0 background, 1 pet, border 255 (``"ignore"``) or 2 (``"class"``). Val is
    ``val_fraction`` of trainval chosen by a hash of each name with ``split_seed``, as a flat
    folder is split: trainval.txt lists the pictures by breed, so its last lines would be a few
    breeds that training never sees."""
    from PIL import Image
    from tqdm.auto import tqdm

    from segcourse.data.folders import split_key

    root, out = Path(root), Path(out)
    lookup = np.array([IGNORE_INDEX, 1, 0, 2 if border == "class" else IGNORE_INDEX], np.uint8)
    lists = {}
    for listing in ("trainval", "test"):
        path = root / "annotations" / f"{listing}.txt"
        if not path.exists():
            raise ValueError(f"{path} is missing: is {root} the folder the pet archives were "
                             "unpacked into (with images/ and annotations/)?")
        lists[listing] = [line.split()[0] for line in path.read_text().splitlines()
                          if line.strip() and not line.startswith("#")]
    trainval = lists["trainval"]
    val = set(sorted(trainval, key=lambda name: split_key(split_seed, name))
              [:round(len(trainval) * val_fraction)])
    splits = {"train": [name for name in trainval if name not in val],
              "val": [name for name in trainval if name in val], "test": lists["test"]}
    for split, names in splits.items():
        for name in tqdm(names, desc=f"pets {split}", disable=not progress):
            with Image.open(root / "images" / f"{name}.jpg") as image, \
                    Image.open(root / "annotations" / "trimaps" / f"{name}.png") as trimap:
                _save(image.convert("RGB"), lookup[np.asarray(trimap)], out, split, name)
    names = ("background", "pet") + (("border",) if border == "class" else ())
    (out / "classes.txt").write_text("\n".join(names) + "\n")
    return out


def tiff_stack_to_folders(volume, labels, out, val_slices=6, foreground=0) -> Path:
    """An EM stack as in ISBI 2012 (a multi-page TIFF of slices and one of labels, white = cell,
    black = membrane) → PNG slices; the last ``val_slices`` slices are the validation split.
    Classes: 0 cell, 1 membrane (the thin structure the challenge segments). 16-bit slices stay
    16-bit greyscale PNGs (``folders.read_image`` divides them by 65535), never clipped to 8."""
    from PIL import Image, ImageSequence

    out = Path(out)
    with Image.open(volume) as stack, Image.open(labels) as label_stack:
        slices = [_slice_image(frame) for frame in ImageSequence.Iterator(stack)]
        masks = [np.asarray(frame.convert("L")) for frame in ImageSequence.Iterator(label_stack)]
    if len(slices) != len(masks):
        raise ValueError(f"{volume} has {len(slices)} slices but {labels} has {len(masks)}.")
    for index, (image, mask) in enumerate(zip(slices, masks, strict=True)):
        split = "val" if index >= len(slices) - val_slices else "train"
        _save(image, (mask == foreground).astype(np.uint8), out, split, f"slice{index:03d}")
    (out / "classes.txt").write_text("cell\nmembrane\n")
    return out


def _slice_image(frame):
    """A stack's slice as an image to save: 16-bit (or 32-bit integer with 16-bit values)
    greyscale as a 16-bit PNG, anything else as RGB."""
    from PIL import Image

    from segcourse.data.folders import SIXTEEN_BIT_MODES, sixteen_bit_values

    if frame.mode not in (*SIXTEEN_BIT_MODES, "I"):
        return frame.convert("RGB")
    return Image.fromarray(sixteen_bit_values(np.asarray(frame), "a slice").astype(np.uint16))
