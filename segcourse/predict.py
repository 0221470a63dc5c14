"""Label maps for image files: ``segcourse predict MODEL IMAGES... --out DIR``.

Each image is read with PIL, resized to the model's input size (bilinear: it is an image),
segmented, and its label map resized back to the image's own size (nearest: labels are never
interpolated). Written per image: ``<name>_labels.png`` (a palette PNG whose pixel values are
the class numbers, as in VOC's SegmentationClass) and ``<name>_overlay.png``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _palette(run_config):
    from segcourse import viz

    if run_config and run_config.get("dataset") == "shapes":
        return viz.shapes_palette()
    return viz.voc_palette()


def predict_files(model_path, image_paths, out_dir) -> list[Path]:
    from PIL import Image

    from segcourse import viz
    from segcourse.train import load_run, predict_labels

    model, run_config = load_run(model_path)
    palette = _palette(run_config)
    height, width = model.input_shape[1:3]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for image_path in map(Path, image_paths):
        try:
            image = Image.open(image_path).convert("RGB")
        except (OSError, ValueError) as error:
            raise ValueError(f"cannot read {image_path} as an image: {error}") from error
        resized = image.resize((width or image.width, height or image.height), Image.BILINEAR)
        pixels = np.asarray(resized, np.float32)[None] / 255.0
        labels = predict_labels(model, pixels)[0]
        labels = Image.fromarray(labels, mode="L").resize(image.size, Image.NEAREST)
        label_png = labels.convert("P")
        label_png.putpalette(palette.flatten().tolist())
        target = out_dir / f"{image_path.stem}_labels.png"
        label_png.save(target)
        blend = viz.overlay(np.asarray(image), np.asarray(labels), palette)
        overlay_path = out_dir / f"{image_path.stem}_overlay.png"
        Image.fromarray((blend * 255).astype(np.uint8)).save(overlay_path)
        written += [target, overlay_path]
    return written
