"""Pretrain the CPU profile's small encoder on a `shapes` source task, offline and seeded.

    python data_scripts/pretrain_shapes_encoder.py [--pictures 4000] [--epochs 20] [--out PATH]

ImageNet weights cannot be downloaded offline, so lab 08 transfers from a source task of its
own: segmentation of 32 x 32 `shapes` pictures in which only discs, squares and triangles appear
(`ShapesConfig(shape_frequencies=(1, 1, 1, 0, 0))`, pictures of seed 1, not the lab's seed 0).
The encoder is `segcourse.models.backbones.SHAPES_ENCODER` (a narrow VGG16, built by
`backbone()`), under a small U-Net-like decoder that is thrown away; only the encoder's weights
are written, by `save_weights`, to segcourse/models/weights/ (or --out), where
`backbone(..., weights=path)` loads them. The run is deterministic: the same settings write the
same numbers. It prints the source task's validation mIoU and the time taken.
"""

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow loads (in pretrain)

SIZE, SOURCE_CLASSES = 32, 4  # background, disc, square, triangle
DEFAULT_OUT = (Path(__file__).resolve().parents[1] / "segcourse" / "models" / "weights")


def source_data(split, count):
    from segcourse.data import shapes

    config = shapes.ShapesConfig(size=SIZE, shape_frequencies=(1, 1, 1, 0, 0))
    return shapes.load(split, count, SIZE, seed=1, config=config, progress=True)


def source_model(encoder, filters=16):
    """The encoder under a U-Net-like decoder (C5 up to C2, then x4) for the source task."""
    import keras

    inputs = keras.Input((SIZE, SIZE, 3))
    found = encoder(keras.layers.Rescaling(2.0, offset=-1.0)(inputs))  # [0, 1] -> [-1, 1]
    x = keras.layers.Conv2D(filters, 1, activation="relu")(found["C5"])
    for stage in ("C4", "C3", "C2"):
        x = keras.layers.UpSampling2D(2, interpolation="bilinear")(x)
        x = keras.layers.Concatenate()([x, found[stage]])
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
    x = keras.layers.UpSampling2D(4, interpolation="bilinear")(x)
    return keras.Model(inputs, keras.layers.Conv2D(SOURCE_CLASSES, 1)(x))


def pretrain(out, pictures=4000, val_pictures=500, epochs=20, batch_size=32,
             learning_rate=3e-3, seed=0, verbose=2):
    """Train, evaluate on the source task's validation pictures, save the encoder's weights.
    Returns ``(path, source validation mIoU, per-class IoU, seconds)``."""
    import keras

    from segcourse.losses import MaskedCrossEntropy
    from segcourse.metrics import ConfusionMatrixMetric
    from segcourse.models.backbones import SHAPES_ENCODER, SHAPES_ENCODER_FILE, backbone
    from segcourse.train import seed_everything

    images, masks = source_data("train", pictures)
    val_images, val_masks = source_data("val", val_pictures)
    start = time.perf_counter()
    seed_everything(seed)
    encoder = backbone(SHAPES_ENCODER["name"], (SIZE, SIZE, 3), width=SHAPES_ENCODER["width"])
    model = source_model(encoder)
    model.compile(keras.optimizers.Adam(learning_rate), MaskedCrossEntropy())
    model.fit(images, masks, batch_size=batch_size, epochs=epochs, verbose=verbose)
    seconds = time.perf_counter() - start
    metric = ConfusionMatrixMetric(SOURCE_CLASSES)
    metric.update_state(val_masks, model.predict(val_images, batch_size=100, verbose=0))
    scores = metric.scores()
    out = Path(out)
    path = out / SHAPES_ENCODER_FILE if out.suffix != ".h5" else out
    path.parent.mkdir(parents=True, exist_ok=True)
    encoder.save_weights(path)
    return path, scores.miou, scores.iou, seconds


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(DEFAULT_OUT),
                   help="a folder (the file keeps its package name) or a .weights.h5 path")
    p.add_argument("--pictures", type=int, default=4000, help="source training pictures")
    p.add_argument("--val-pictures", type=int, default=500)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    path, miou, per_class, seconds = pretrain(
        args.out, args.pictures, args.val_pictures, args.epochs, args.batch_size,
        args.learning_rate, args.seed)
    names = ("background", "disc", "square", "triangle")
    print(f"source task ({args.pictures} pictures, {args.epochs} epochs): validation mIoU "
          f"{miou:.3f} on {args.val_pictures} pictures; IoU "
          + ", ".join(f"{n} {v:.3f}" for n, v in zip(names, per_class, strict=True)))
    print(f"trained in {seconds:.0f} s; wrote {path} ({path.stat().st_size / 1000:.0f} kB)")
