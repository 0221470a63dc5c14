"""Backbones with feature taps by stage: VGG16, ResNet50, MobileNetV2.

The builders work on a tensor and return ``{"C1": tensor, ..., "C5": tensor}``: ``Cℓ`` is the
output of stage ℓ (VGG's block ℓ after its pooling, ResNet's conv ℓ), whose stride is 2^ℓ
unless the stage is dilated (ResNet with ``output_stride`` 16 or 8 keeps conv4/conv5 at that
stride), the naming of Lin et al. 2017 (FPN, §3). A segmentation model stays one
flat functional graph whose every layer (``block4_pool``, ``conv4_block6_out``) can be tapped by
name. Layer names and shapes follow ``keras.applications``, so ``weights="imagenet"`` (or the
path of a weights file saved from the ``keras.applications`` model) is loaded through the real
Keras loader and copied layer by layer.

- VGG16: Simonyan & Zisserman, ICLR 2015, Table 1 (configuration D).
- ResNet50: He et al., CVPR 2016, Table 1; ``output_stride`` 16 or 8 replaces the last strides
  by dilation (Chen et al., DeepLabV3, 2017, §3.2), optionally with Multi-Grid rates.
- MobileNetV2: Sandler et al., CVPR 2018 (``keras.applications.MobileNetV2``; no dilation).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from segcourse.models.blocks import conv_bn_relu

VGG16_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
RESNET50_STAGES = ((64, 3), (128, 4), (256, 6), (512, 3))  # bottleneck width, blocks
# The last layer at each stride 2, 4, ..., 32 before the next downsampling.
MOBILENETV2_TAPS = {"C1": "block_1_expand_relu", "C2": "block_3_expand_relu",
                    "C3": "block_6_expand_relu", "C4": "block_13_expand_relu", "C5": "out_relu"}
BACKBONES = ("vgg16", "resnet50", "mobilenetv2")


def scaled(filters: int, width: float) -> int:
    """Channel count for a width multiplier (at least 1): the CPU profile's narrow models."""
    if not width > 0 or width == float("inf"):
        raise ValueError(f"width is a multiplier of the filters and must be above 0 (1.0: the "
                         f"paper's width, 0.25: a quarter); got {width}.")
    return max(1, round(filters * width))


def vgg16_block(x, block: int, width=1.0, batch_norm=False, first_padding="same"):
    """The convolutions of VGG16 block ``block`` (1..5), named as in ``keras.applications``."""
    filters, convs = VGG16_BLOCKS[block - 1]
    for i in range(1, convs + 1):
        padding = first_padding if i == 1 else "same"
        name = f"block{block}_conv{i}"
        if batch_norm:
            x = conv_bn_relu(x, scaled(filters, width), 3, name, padding=padding)
        else:  # keras.applications' VGG16: the ReLU inside the convolution
            x = layers.Conv2D(scaled(filters, width), 3, padding=padding, activation="relu",
                              name=name)(x)
    return x


def vgg16_taps(x, width=1.0, pool_padding="valid", first_padding="same"):
    """VGG16's 13 convolutions and 5 poolings; returns ``{"C1": block1_pool, ..., "C5":
    block5_pool}``.

    ``pool_padding="same"`` rounds pooled sizes up, like Caffe's pooling (FCN's reference nets);
    ``first_padding="valid"`` leaves block1_conv1 unpadded (FCN pads the image itself).
    """
    taps = {}
    for block in range(1, 6):
        x = vgg16_block(x, block, width, first_padding=first_padding if block == 1 else "same")
        x = layers.MaxPooling2D(2, padding=pool_padding, name=f"block{block}_pool")(x)
        taps[f"C{block}"] = x
    return taps


def _resnet_unit(x, filters, kernel_size, prefix, relu=True, **conv_options):
    """``keras.applications``' ResNet unit: a convolution with bias, BN (epsilon 1.001e-5),
    ReLU, named ``{prefix}_conv``, ``{prefix}_bn``, ``{prefix}_relu``."""
    return conv_bn_relu(x, filters, kernel_size, f"{prefix}_conv", use_bias=True,
                        epsilon=1.001e-5, bn_name=f"{prefix}_bn", relu=relu,
                        relu_name=f"{prefix}_relu", **conv_options)


def _bottleneck(x, filters, stride, dilation, shortcut_conv, name, width):
    """ResNet v1 bottleneck as in ``keras.applications`` (the stride on the first 1×1)."""
    out_filters = scaled(4 * filters, width)
    shortcut = x
    if shortcut_conv:
        shortcut = _resnet_unit(x, out_filters, 1, f"{name}_0", relu=False, strides=stride)
    x = _resnet_unit(x, scaled(filters, width), 1, f"{name}_1", strides=stride)
    x = _resnet_unit(x, scaled(filters, width), 3, f"{name}_2", padding="same",
                     dilation_rate=dilation)
    x = _resnet_unit(x, out_filters, 1, f"{name}_3", relu=False)
    x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.Activation("relu", name=f"{name}_out")(x)


def resnet50_taps(x, width=1.0, output_stride=32, multi_grid=(1, 1, 1)):
    """ResNet50 (v1, ``keras.applications`` layout); returns ``{"C1": conv1, ..., "C5": conv5}``.

    With ``output_stride`` 16 (or 8) conv5 (and conv4) keep the resolution of the stage before:
    stride 1 and dilation 2 (4) instead, so ``C5`` is then at stride 16 (8). conv5's three
    blocks use ``dilation * multi_grid[i]``.
    """
    if output_stride not in (8, 16, 32):
        raise ValueError(f"resnet50: output_stride must be 8, 16 or 32; got {output_stride}.")
    x = layers.ZeroPadding2D(3, name="conv1_pad")(x)
    x = _resnet_unit(x, scaled(64, width), 7, "conv1", strides=2)
    taps = {"C1": x}
    x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    current_stride, dilation = 4, 1
    for stage, (filters, blocks) in enumerate(RESNET50_STAGES, start=2):
        stride = 1 if stage == 2 else 2
        if stage > 2 and current_stride >= output_stride:
            dilation, stride = dilation * stride, 1
        current_stride *= stride
        for block in range(1, blocks + 1):
            grid = multi_grid[block - 1] if stage == 5 else 1
            x = _bottleneck(x, filters, stride if block == 1 else 1, dilation * grid, block == 1,
                            f"conv{stage}_block{block}", width)
        taps[f"C{stage}"] = x
    return taps


def mobilenetv2_taps(x, width=1.0):
    """``keras.applications.MobileNetV2`` (``alpha=width``) on ``x``; taps by stage."""
    net = keras.applications.MobileNetV2(input_tensor=x, include_top=False, weights=None,
                                         alpha=width)
    return {stage: net.get_layer(name).output for stage, name in MOBILENETV2_TAPS.items()}


def keras_application(name, weights, include_top=False):
    """The ``keras.applications`` model whose weights a backbone copies (``weights``:
    ``"imagenet"``, downloaded and cached by Keras, or a path to a weights file)."""
    builders = {"vgg16": keras.applications.VGG16, "resnet50": keras.applications.ResNet50,
                "mobilenetv2": keras.applications.MobileNetV2}
    return builders[name](include_top=include_top, weights=weights)


def copy_weights(source: keras.Model, target: keras.Model, names=None) -> list[str]:
    """Copy every weighted layer of ``source`` into the layer of ``target`` with its name.

    Returns the names copied. A shape mismatch (a narrower ``width``, say) is a ``ValueError``.
    """
    copied = []
    target_names = {layer.name for layer in target.layers}
    for layer in source.layers:
        if not layer.weights or layer.name not in target_names:
            continue
        if names is not None and layer.name not in names:
            continue
        destination = target.get_layer(layer.name)
        shapes = [tuple(w.shape) for w in destination.weights]
        given = [tuple(w.shape) for w in layer.weights]
        if shapes != given:
            raise ValueError(
                f"cannot copy pretrained weights into layer {layer.name!r}: it has shapes "
                f"{shapes}, the pretrained layer {given}. Pretrained weights need width=1.0.")
        destination.set_weights(layer.get_weights())
        copied.append(layer.name)
    return copied


def load_backbone_weights(model: keras.Model, backbone: str, weights) -> list[str]:
    """Copy ``keras.applications`` weights for ``backbone`` into ``model`` (``None``: none)."""
    if weights is None:
        return []
    return copy_weights(keras_application(backbone, weights), model)


def load_own_weights(model: keras.Model, path) -> list[str]:
    """Load a file saved by ``save_weights`` from a backbone built like ``model`` (a narrow
    one: ``keras.applications`` has no width below 1.0 for VGG16 and ResNet50) through Keras'
    loader into a twin of ``model``, then copy it layer by layer. Every weighted layer must be
    loaded: a file from another width or architecture is a ``ValueError``, never a partial load.
    """
    twin = keras.Model.from_config(model.get_config())
    try:
        twin.load_weights(path)
    except ValueError as error:
        raise ValueError(
            f"the weights file {path} does not fit this {model.name} backbone; a narrow "
            f"backbone loads only a file saved from backbone() with the same name, width and "
            f"options (a keras.applications file, ImageNet's too: Pretrained weights need "
            f"width=1.0). Keras said: {error}") from None
    copied = copy_weights(twin, model)
    missing = [layer.name for layer in model.layers if layer.weights and layer.name not in copied]
    if missing:
        raise ValueError(f"the weights file {path} left layers {missing} of {model.name} "
                         f"unloaded.")
    return copied


def backbone(name="vgg16", input_shape=(None, None, 3), weights=None, width=1.0, **options):
    """A standalone backbone: a model whose output is ``{"C2": ..., "C5": ...}`` (stages 2-5,
    at strides 4-32; see the module's docstring for dilated stages).

    ``weights``: ``None`` (random), ``"imagenet"`` or a path. At width 1.0 a path is a weights
    file of the ``keras.applications`` model; at another width, a file saved from
    ``backbone(name, width=width, ...)`` itself (:func:`shapes_encoder_weights` ships one).
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}.")
    if weights == "imagenet" and width != 1.0:
        raise ValueError(f"{name}: ImageNet weights fit only the paper's width. Pretrained "
                         f"weights need width=1.0; got width={width}.")
    inputs = keras.Input(input_shape, name="image")
    builder = {"vgg16": vgg16_taps, "resnet50": resnet50_taps,
               "mobilenetv2": mobilenetv2_taps}[name]
    taps = builder(inputs, width=width, **options)
    outputs = {stage: t for stage, t in taps.items() if stage != "C1"}
    model = keras.Model(inputs, outputs, name=name)
    if weights is not None and weights != "imagenet" and width != 1.0:
        load_own_weights(model, weights)
    else:
        load_backbone_weights(model, name, weights)
    return model


# A narrow VGG16 pretrained offline on `shapes` (data_scripts/pretrain_shapes_encoder.py): the
# CPU profile's stand-in for ImageNet weights. 0.045 of VGG16's width: 3, 6, 12, 23, 23 channels.
SHAPES_ENCODER = {"name": "vgg16", "width": 0.045}
SHAPES_ENCODER_FILE = "vgg16_w0045_shapes.weights.h5"


def shapes_encoder_weights() -> str:
    """The path of the shipped weights of the ``SHAPES_ENCODER`` backbone (package data),
    learnt on a ``shapes`` task with discs, squares and triangles only; see
    ``data_scripts/pretrain_shapes_encoder.py`` for how, and with what score."""
    from importlib.resources import files

    path = files("segcourse.models").joinpath("weights", SHAPES_ENCODER_FILE)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: reinstall segcourse, or write it with "
            f"python data_scripts/pretrain_shapes_encoder.py.")
    return str(path)


def shapes_encoder(input_shape=(32, 32, 3), pretrained=True) -> keras.Model:
    """The ``SHAPES_ENCODER`` backbone, with the shipped weights (``pretrained``) or random."""
    return backbone(SHAPES_ENCODER["name"], input_shape, width=SHAPES_ENCODER["width"],
                    weights=shapes_encoder_weights() if pretrained else None)


def dense_to_conv_kernel(kernel, spatial=(1, 1)):
    """A ``Dense`` kernel ``(h * w * c, units)`` as the ``Conv2D`` kernel ``(h, w, c, units)``
    that computes the same thing on an ``h × w × c`` input (channels last, row-major flatten)."""
    kernel = np.asarray(kernel)
    h, w = spatial
    if kernel.shape[0] % (h * w):
        raise ValueError(f"a Dense kernel with {kernel.shape[0]} inputs cannot come from a "
                         f"{h}×{w} map: {kernel.shape[0]} is not a multiple of {h * w}.")
    return kernel.reshape(h, w, kernel.shape[0] // (h * w), kernel.shape[1])
