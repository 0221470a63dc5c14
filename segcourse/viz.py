"""Figures for the labs and the runs: coloured label maps, overlays, prediction grids, learning
curves, confusion matrices and per-class IoU bars (matplotlib; each function returns its figure).
The colours are the datasets' palettes (:mod:`segcourse.data.palettes`, re-exported here)."""

from __future__ import annotations

import numpy as np

# The palettes live with the data they describe; viz.shapes_palette is what lab 01 draws with.
from segcourse.data.palettes import shapes_palette, voc_palette  # noqa: F401
from segcourse.labels import IGNORE_INDEX

IGNORE_COLOUR = (255, 255, 255)


def colorize(mask, palette=None, ignore_index: int = IGNORE_INDEX, no_class=None) -> np.ndarray:
    """A label map ``(H, W)`` as an RGB image; the ignore label is drawn white. A value that
    has no colour in the palette (and is not the ignore label) is refused, or drawn in the
    colour ``no_class`` (RGB 0..255) where given: it used to take the palette's last colour,
    which showed a value that is no class as the last class."""
    mask = np.asarray(mask)
    if mask.dtype.kind == "f" and (bad := ~np.isfinite(mask) | (mask != np.round(mask))).any():
        raise ValueError(f"colorize takes a label map of class numbers; got {mask.dtype} values "
                         f"such as {mask[bad].flat[0]:g} (shape {mask.shape})."
                         " For a model's scores, take the argmax over the class axis first.")
    mask = mask.astype(np.int64)
    if mask.size and mask.min() < 0:
        raise ValueError(f"colorize takes class numbers of 0 and above; got {mask.min()} "
                         f"(shape {mask.shape}). Map negative labels to a class or to the ignore "
                         f"label {ignore_index} first.")
    palette = voc_palette() if palette is None else np.asarray(palette, np.uint8)
    beyond = (mask >= len(palette)) & (mask != ignore_index)
    if beyond.any() and no_class is None:
        raise ValueError(f"colorize: {int(beyond.sum())} pixel(s) hold values the palette of "
                         f"{len(palette)} colours has no colour for (e.g. {mask[beyond].flat[0]}; "
                         f"the ignore label is {ignore_index}). Give a palette with a colour for "
                         "every class, or no_class=(r, g, b) to draw such values in one colour.")
    out = palette[np.clip(mask, 0, len(palette) - 1)]
    if beyond.any():
        out[beyond] = no_class
    out[mask == ignore_index] = IGNORE_COLOUR
    return out


def overlay(image, mask, palette=None, alpha: float = 0.5, ignore_index: int = IGNORE_INDEX):
    """The image with the colourized mask blended over it (``image`` in [0, 1] or 0..255)."""
    image, mask = np.asarray(image, np.float32), np.asarray(mask)
    if mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if image.ndim != 3 or image.shape[-1] != 3 or mask.shape != image.shape[:2]:
        raise ValueError(f"overlay takes an RGB image (H, W, 3) and its label map (H, W); got "
                         f"an image of shape {image.shape} and a mask of shape {mask.shape}. "
                         "Give one picture at a time (not a batch), and a mask of its size.")
    image = _unit(image)
    colours = colorize(mask, palette, ignore_index) / 255.0
    return (1 - alpha) * image + alpha * colours


def _unit(image):
    """An image in 0..1 for imshow: a 0..255 one (its maximum above 1.5) divided by 255."""
    return image / 255.0 if image.max() > 1.5 else image


def _figure(rows, cols, size=2.2):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, cols, figsize=(cols * size, rows * size), squeeze=False)
    return fig, axes


def prediction_grid(images, truths, predictions=None, palette=None, class_names=None,
                    max_rows: int = 6):
    """Rows of image | truth | prediction, with a legend of the class colours."""
    import matplotlib.patches as mpatches

    columns = 2 if predictions is None else 3
    rows = min(len(images), max_rows)
    fig, axes = _figure(rows, columns)
    titles = ["image", "truth", "prediction"]
    for r in range(rows):
        pictures = [images[r], colorize(truths[r], palette)]
        if predictions is not None:
            pictures.append(colorize(predictions[r], palette))
        for c, picture in enumerate(pictures):
            picture = np.asarray(picture)
            axes[r, c].imshow(_unit(picture))
            axes[r, c].set_axis_off()
            if r == 0:
                axes[r, c].set_title(titles[c])
    if class_names:
        colours = voc_palette() if palette is None else np.asarray(palette)
        handles = [mpatches.Patch(color=colours[k] / 255.0, label=name)
                   for k, name in enumerate(class_names)]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6),
                   fontsize="small", frameon=False)
        fig.subplots_adjust(bottom=0.08)
    return fig


def learning_curves(history: dict):
    """Each metric of a Keras ``History.history`` dict against the epoch; ``val_`` twins share
    a panel with their training curve."""
    keys = [k for k in history if not k.startswith("val_") and k != "learning_rate"]
    fig, axes = _figure(1, len(keys), size=3.2)
    for ax, key in zip(axes[0], keys, strict=True):
        epochs = np.arange(1, len(history[key]) + 1)
        ax.plot(epochs, history[key], label="train")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
    fig.tight_layout()
    return fig


def confusion_figure(confusion, class_names, normalize: bool = True):
    """The confusion matrix as a heat map (rows: truth, normalized per row by default)."""
    confusion = np.asarray(confusion, np.float64)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1] \
            or confusion.shape[0] != len(class_names):
        raise ValueError(f"confusion_figure takes a square (K, K) matrix and its K class names; "
                         f"got a matrix of shape {confusion.shape} and {len(class_names)} names.")
    shown = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1) if normalize \
        else confusion
    size = max(3.5, 0.45 * len(class_names))
    fig, axes = _figure(1, 1, size=size)
    ax = axes[0, 0]
    image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    ax.set_xticks(range(len(class_names)), class_names, rotation=60, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("prediction")
    ax.set_ylabel("truth")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def class_iou_figure(scores):
    """Per-class IoU bars with the mIoU as a line; absent classes are marked, not drawn."""
    fig, axes = _figure(1, 1, size=max(3.5, 0.5 * len(scores.class_names)))
    ax = axes[0, 0]
    iou = np.nan_to_num(scores.iou, nan=0.0)
    bars = ax.bar(range(len(iou)), iou, color="tab:blue")
    for bar, present in zip(bars, scores.present, strict=True):
        if not present:
            bar.set_hatch("//")
            bar.set_alpha(0.3)
    ax.axhline(scores.miou, color="tab:red", linestyle="--", label=f"mIoU {scores.miou:.3f}")
    ax.set_xticks(range(len(iou)), scores.class_names, rotation=60, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("IoU")
    ax.legend()
    fig.tight_layout()
    return fig


def failure_gallery(images, truths, predictions, num_classes: int, palette=None,
                    class_names=None, count: int = 4, ignore_index: int = IGNORE_INDEX):
    """The ``count`` pictures with the lowest own mIoU (:func:`segcourse.metrics.picture_miou`),
    worst first: image | truth | prediction | the wrong pixels (red on the grey picture, ignored
    ones white), each row titled with the picture's index, its mIoU and the confusion that cost
    it most (:func:`segcourse.metrics.top_confusion`). Pictures without a scored pixel are left
    out."""
    from segcourse.metrics import picture_confusions, picture_miou, top_confusion

    images, truths, predictions = (np.asarray(a) for a in (images, truths, predictions))
    if images.ndim != 4 or truths.shape != images.shape[:3] or predictions.shape != truths.shape:
        raise ValueError(f"failure_gallery takes images (N, H, W, 3) with their label maps and "
                         f"predicted label maps (N, H, W); got shapes {images.shape}, "
                         f"{truths.shape} and {predictions.shape}. Take the argmax of a model's "
                         "scores first (segcourse.train.predict_labels).")
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"count is how many pictures to show, a whole number of at least 1; "
                         f"got {count!r}.")
    names = list(class_names) if class_names else [str(k) for k in range(num_classes)]
    confusions = picture_confusions(truths, predictions, num_classes, ignore_index)
    ious = picture_miou(confusions)
    scored = np.flatnonzero(~np.isnan(ious))
    worst = scored[np.argsort(ious[scored], kind="stable")][:count]
    fig, axes = _figure(max(len(worst), 1), 4)
    for row, index in enumerate(worst):
        image = _unit(images[index])
        wrong = (predictions[index] != truths[index]) & (truths[index] != ignore_index)
        errors = np.repeat(image.mean(axis=-1, keepdims=True), 3, axis=-1) * 0.6
        errors[wrong] = (1.0, 0.0, 0.0)
        errors[truths[index] == ignore_index] = 1.0
        pictures = [image, colorize(truths[index], palette, ignore_index),
                    colorize(predictions[index], palette, ignore_index), errors]
        for column, (picture, title) in enumerate(zip(
                pictures, ["image", "truth", "prediction", "wrong pixels"], strict=True)):
            axes[row, column].imshow(picture)
            axes[row, column].set_axis_off()
            if row == 0:
                axes[row, column].set_title(title)
        top = top_confusion(confusions[index])
        confused = "nothing wrong" if top is None else (
            f"{names[top[0]]} taken for {names[top[1]]}: {top[2]} px")
        axes[row, 0].text(0, -0.04, f"#{index}  mIoU {ious[index]:.2f}  {confused}",
                          transform=axes[row, 0].transAxes, ha="left", va="top",
                          fontsize="small")
    if not len(worst):  # no picture has a scored pixel: an empty row
        for ax in axes[0]:
            ax.set_axis_off()
    # not tight_layout: it would make room for the captions, which run on under the row
    fig.subplots_adjust(left=0.02, right=0.98, top=0.93, bottom=0.05, wspace=0.05, hspace=0.3)
    return fig


def reliability_diagram(bins, ax=None):
    """A reliability diagram (Guo et al. 2017, Fig. 1, bottom) of
    :func:`segcourse.metrics.calibration_bins`: each bin's accuracy as a bar over its confidence
    range, the bin's mean confidence as a marker on the diagonal of perfect calibration with the
    gap to the accuracy drawn between them, and the ECE in the title. Draws on ``ax`` when
    given (returning its figure)."""
    edges = np.asarray(bins.edges)
    if ax is None:
        fig, axes = _figure(1, 1, size=3.6)
        ax = axes[0, 0]
    else:
        fig = ax.figure
    widths = np.diff(edges)
    filled = np.asarray(bins.count) > 0
    ax.bar(edges[:-1][filled], np.asarray(bins.accuracy)[filled], width=widths[filled],
           align="edge", color="tab:blue", edgecolor="white", label="accuracy")
    confidence = np.asarray(bins.confidence)[filled]
    ax.vlines(confidence, np.asarray(bins.accuracy)[filled], confidence, color="tab:red",
              linewidth=2, label="gap")
    ax.plot(confidence, confidence, "o", color="tab:orange", markersize=4,
            label="mean confidence")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"ECE {bins.expected_calibration_error:.3f}")
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    return fig
