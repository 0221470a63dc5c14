"""Multi-scale and left-right flipped inputs at test time (DeepLab's inference strategy).

Chen, Papandreou, Schroff & Adam, "Rethinking Atrous Convolution for Semantic Image
Segmentation" (arXiv 1706.05587, 2017), evaluate their trained network on the picture resized
by scales {0.5, 0.75, 1.0, 1.25, 1.5, 1.75} and on each of those flipped left to right, and
take as the final result the *average of the class probabilities* of all these passes
(their §4.2–4.3, "MS" and "Flip" in Tables 4 and 6 of inference strategies). DeepLab v2
(Chen et al., TPAMI 2018) fused its multi-scale inputs differently, by the maximum over scales
of the score maps, and during training as well; this module does what V3 does at test time.

For every scale ``s`` the picture is resized bilinearly to ``round(s·H) × round(s·W)``, the
model's output (logits by default, as every segcourse model gives) is resized bilinearly back to
``H × W``, turned into probabilities by a softmax over the classes, and averaged over the scales
and (with ``flip=True``) over the flipped pass, which is flipped back before it is added.
Probabilities, not logits, are averaged, as the paper says: a pass that is confident and wrong
then weighs at most 1 per pixel and class, where its logits could outvote every other pass. The
logits are resized before the softmax (resizing probabilities after it would do too: a bilinear
mix of distributions is a distribution; resizing logits is what DeepLab's reference code does).

The model must accept every scaled size: build it on ``keras.Input((None, None, 3))``
(``models.build(name, classes, (None, None, 3), ...)``) and copy the trained weights into it
(``set_weights``); a model built for one size is refused for another, with that hint.
"""

from __future__ import annotations

import contextlib
import logging
import math
import numbers

import numpy as np

from segcourse.outputs import main_output

#: DeepLabV3's evaluation scales (Chen et al. 2017, §4.2).
DEEPLAB_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


def _check_scales(scales) -> tuple[float, ...]:
    try:
        scales = tuple(scales)
    except TypeError:
        raise ValueError(f"scales must be a sequence of positive numbers, e.g. (0.75, 1.0, "
                         f"1.25); got {scales!r}.") from None
    if not scales:
        raise ValueError("scales is empty: give at least one scale, e.g. (1.0,).")
    for scale in scales:
        if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not (
                math.isfinite(scale) and scale > 0):
            raise ValueError(f"every scale must be a positive finite number; got {scale!r} in "
                             f"scales={scales!r}.")
    return tuple(float(s) for s in scales)


def _check_images(images) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be a batch of shape (N, H, W, C); got shape "
                         f"{images.shape}. For one picture pass image[None].")
    if 0 in images.shape:
        raise ValueError(f"images has no pixels or no pictures (shape {images.shape}).")
    if images.dtype.kind not in "fiu":
        raise ValueError(f"images must be numbers; got dtype {images.dtype}.")
    if images.dtype.kind in "iu":  # 0..255 fed to a network trained on [0, 1]: wrong, plausibly
        raise ValueError(
            f"images are whole numbers ({images.dtype}, up to {images.max()}); segcourse's "
            "networks take float pictures in [0, 1]: pass images / 255 (or "
            "images.astype('float32') for a network that rescales its input itself).")
    return images.astype(np.float32)


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """The side lengths a picture of ``height × width`` has at ``scale``: each rounded to the
    nearest whole pixel, at least 1."""
    return max(1, round(height * scale)), max(1, round(width * scale))


def _check_output(output, model, size, classes_seen) -> np.ndarray:
    output = np.asarray(output, dtype=np.float32)
    if output.ndim != 4:
        raise ValueError(f"the model {model.name!r} gave an output of shape {output.shape}; "
                         "predict_multiscale needs per-pixel class scores (N, h, w, classes).")
    if classes_seen is not None and output.shape[-1] != classes_seen:
        raise ValueError(f"the model {model.name!r} gave {output.shape[-1]} classes at size "
                         f"{size}, {classes_seen} at another size.")
    return output


@contextlib.contextmanager
def _retracing_unlogged():
    """TensorFlow traces ``model.predict`` once per input size and, once most recent calls
    traced again, logs a warning that retracing is expensive; a multi-scale pass changes the
    size on purpose (one per scale), so here the warning is noise a student cannot act on. It
    is silenced for the call only (TensorFlow's Python logger, ``WARNING:tensorflow:``)."""
    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _predict(model, images: np.ndarray, batch_size: int):
    """The model's output for ``images``: its main one when it has auxiliary heads too."""
    with _retracing_unlogged():
        return main_output(model.predict(images, batch_size=batch_size, verbose=0))


def predict_multiscale(model, images, scales=DEEPLAB_SCALES, flip: bool = True,
                       batch_size: int = 16, from_logits: bool = True) -> np.ndarray:
    """Class probabilities ``(N, H, W, classes)`` for ``images (N, H, W, C)``, averaged over
    the input ``scales`` and, with ``flip``, over the left-right flipped picture too.

    ``scales=(1.0,), flip=False`` is the plain prediction (its softmax). ``from_logits=False``
    for a model whose output is probabilities already. The model must accept every scaled size
    (see the module docstring); ``argmax(-1)`` of the result gives the labels.
    """
    from segcourse.crf import softmax
    from segcourse.layers._validation import shapes_match
    from segcourse.layers.upsampling import resize_images

    scales = _check_scales(scales)
    images = _check_images(images)
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or (
            batch_size < 1):
        raise ValueError(f"batch_size must be a whole number of at least 1; got {batch_size!r}.")
    height, width = images.shape[1:3]
    channels = model.input_shape[-1]
    if channels is not None and channels != images.shape[-1]:
        raise ValueError(f"the model {model.name!r} takes {channels} channels, the images have "
                         f"{images.shape[-1]}.")
    total, classes, passes = None, None, 0
    for scale in scales:
        size = scaled_size(height, width, scale)
        if not shapes_match(model.input_shape[1:3], size):
            raise ValueError(
                f"the model {model.name!r} takes pictures of {tuple(model.input_shape[1:3])}, "
                f"scale {scale:g} makes them {size}. Build the same architecture on "
                "(None, None, channels) and copy the weights into it (new.set_weights("
                "model.get_weights())), or use scales=(1.0,).")
        resized = images if size == (height, width) else np.asarray(resize_images(images, size))
        for flipped in ((False, True) if flip else (False,)):
            batch = resized[:, :, ::-1] if flipped else resized
            output = _check_output(_predict(model, batch, batch_size), model, size, classes)
            classes = output.shape[-1]
            if output.shape[1:3] != (height, width):
                output = np.asarray(resize_images(output, (height, width)))
            if flipped:
                output = output[:, :, ::-1]
            probabilities = softmax(output) if from_logits else output
            total = probabilities.astype(np.float64) if total is None else total + probabilities
            passes += 1
    return (total / passes).astype(np.float32)
