"""Mask R-CNN's mask head and its loss (He et al. 2017, §3 and Fig. 4, right).

The head takes each RoI's RoIAligned features (14 × 14 × 256 with an FPN backbone) through
four 3 × 3 convolutions of 256 channels with ReLU, a 2 × 2 transposed convolution of stride 2
(28 × 28), and a 1 × 1 convolution to ``K`` channels with a per-pixel sigmoid: one ``m × m``
binary mask for *each* class (Fig. 4, right). The masks do not compete across classes: the box
branch decides the class, and the loss ``L_mask`` is "defined only on the k-th mask" of a RoI
whose ground-truth class is k, "the average binary cross-entropy loss" over its pixels (§3,
the multi-task loss; the ablation "Multinomial vs. Independent Masks", Table 2b): other
classes' channels get no gradient from that RoI.

A plain builder, not in the model registry: its input is a batch of RoI features, not an image,
so the registry's "every model segments a picture" promises do not apply. The targets come
from ``segcourse.instances.masks.crop_mask_targets``.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from segcourse.layers._validation import concrete
from segcourse.models.backbones import scaled
from segcourse.models.blocks import conv_bn_relu


def mask_head(num_classes: int, roi_size: int = 14, in_channels: int = 256, filters: int = 256,
              convs: int = 4, width: float = 1.0) -> keras.Model:
    """The mask head of Fig. 4 (right): ``(N, roi_size, roi_size, in_channels)`` RoI features
    to ``(N, 2 roi_size, 2 roi_size, num_classes)`` per-class mask probabilities. ``convs``
    3 × 3 convolutions (``mask_conv1..``) of ``filters × width`` channels, ``mask_deconv``
    (2 × 2, stride 2), ``mask_logits`` (1 × 1) and ``mask_probs`` (sigmoid)."""
    for name, value, least in (("num_classes", num_classes, 1), ("roi_size", roi_size, 1),
                               ("in_channels", in_channels, 1), ("filters", filters, 1),
                               ("convs", convs, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise ValueError(f"mask_head: {name} must be a whole number of at least {least}; "
                             f"got {value!r} (the paper: 14 × 14 × 256 RoIs, four convs, "
                             "256 filters).")
    channels = scaled(filters, width)
    inputs = keras.Input((roi_size, roi_size, in_channels), name="roi_features")
    x = inputs
    for i in range(1, convs + 1):
        x = conv_bn_relu(x, channels, 3, f"mask_conv{i}", batch_norm=False, padding="same")
    x = conv_bn_relu(x, channels, 2, "mask_deconv", batch_norm=False, transposed=True,
                     strides=2)
    logits = layers.Conv2D(num_classes, 1, name="mask_logits")(x)
    outputs = layers.Activation("sigmoid", name="mask_probs")(logits)
    return keras.Model(inputs, outputs, name="mask_head")


def select_class_masks(mask_probs, classes):
    """Each RoI's channel of its class: ``(N, m, m, K)`` and ``(N,)`` class numbers to
    ``(N, m, m)``. At inference ``classes`` are the box branch's predictions (§3, "Inference");
    in training, the ground truth. A one-hot product, so the gradient of anything computed from
    the result is zero on the other channels."""
    mask_probs = ops.convert_to_tensor(mask_probs)
    num_classes = mask_probs.shape[-1]
    values = concrete(classes)
    if values is not None and values.size and (
            values.min() < 0 or values.max() >= num_classes or (values % 1 != 0).any()):
        raise ValueError(f"classes must be whole numbers in [0, {num_classes}) (one per RoI, "
                         f"its ground-truth class); got values from {values.min()} to "
                         f"{values.max()}. Background RoIs have no mask target: leave them "
                         "out of the mask loss.")
    one_hot = ops.one_hot(ops.cast(classes, "int32"), num_classes, dtype=mask_probs.dtype)
    return ops.sum(mask_probs * one_hot[:, None, None, :], axis=-1)


def mask_loss(masks, classes, mask_probs):
    """``L_mask`` (He et al. 2017, §3): the average binary cross-entropy between each RoI's
    ``(m, m)`` target and its ground-truth class's channel of ``mask_probs`` — the other
    ``K - 1`` channels contribute nothing. ``masks``: ``(N, m, m)`` of 0 and 1."""
    selected = select_class_masks(mask_probs, classes)
    masks = ops.cast(masks, selected.dtype)
    if tuple(masks.shape) != tuple(selected.shape):
        raise ValueError(f"masks are shaped {tuple(masks.shape)}, but the head gives "
                         f"{tuple(selected.shape)} per class: one (m, m) target per RoI, "
                         "m = the head's output size (crop_mask_targets(..., size=m)).")
    return ops.mean(ops.binary_crossentropy(masks, selected))
