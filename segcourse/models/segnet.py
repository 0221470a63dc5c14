"""SegNet (Badrinarayanan, Kendall & Cipolla, "SegNet: A Deep Convolutional Encoder-Decoder
Architecture for Image Segmentation", TPAMI 2017, Fig. 2 and 3).

Read top to bottom like Fig. 2:

- Encoder: the 13 convolutions of VGG16, each followed by batch norm and ReLU; after each of
  the five blocks a 2×2 max pooling that *remembers where each maximum was*.
- Decoder, the mirror image: max unpooling puts every value back at its remembered position
  (zeros elsewhere), then convolutions with batch norm and ReLU densify the sparse map
  (conv5_3_D ... conv1_2_D), and a 3×3 convolution to the classes.

``variant="basic"`` is SegNet-Basic (§4): four encoders and four decoders of 64 filters 7×7,
batch norm, no biases, and no ReLU in the decoder; a 1×1 classifier. Outputs are logits; the
input size must be a multiple of 2 ** (number of poolings).
"""

from __future__ import annotations

import keras
from keras import layers

from segcourse.layers import MaxPoolingWithArgmax2D, MaxUnpooling2D
from segcourse.models.backbones import VGG16_BLOCKS, scaled, vgg16_block
from segcourse.models.blocks import conv_bn_relu
from segcourse.models.registry import check_input_size, register_model

VARIANTS = ("vgg16", "basic")


def vgg16_encoder_with_indices(x, width=1.0):
    """VGG16's 13 convolutions, each with batch norm and ReLU, each block closed by a 2×2 max
    pooling that keeps its argmax (``block{b}_pool``); returns pool5 and ``{block: indices}``.
    SegNet's encoder (Fig. 2), and DeconvNet's convolution network (Noh et al. 2015, Table 1)."""
    return _encoder_with_indices(
        x, 5, lambda x, block: vgg16_block(x, block, width, batch_norm=True))


def _encoder_with_indices(x, blocks, convolutions):
    """Per block, ``convolutions(x, block)`` then a pooling that keeps its argmax."""
    indices = {}
    for block in range(1, blocks + 1):
        x = convolutions(x, block)
        x, indices[block] = MaxPoolingWithArgmax2D(2, name=f"block{block}_pool")(x)
    return x, indices


def decoder_filters(width):
    """Per decoder block (5 down to 1), the filters of its convolutions: the encoder mirrored,
    each block's last convolution narrowing to the next block's width (SegNet and DeconvNet)."""
    plan = {}
    for block, (filters, convs) in enumerate(VGG16_BLOCKS, start=1):
        narrower = VGG16_BLOCKS[block - 2][0] if block > 1 else filters
        plan[block] = [scaled(filters, width)] * (convs - 1) + [scaled(narrower, width)]
    return plan


def _check(input_shape, variant="vgg16", **_):
    """What the builder refuses, before it builds anything (the registry calls it first)."""
    if variant not in VARIANTS:
        raise ValueError(f"segnet: variant must be one of {VARIANTS}; got {variant!r}.")
    check_input_size(input_shape, 2 ** (5 if variant == "vgg16" else 4), f"segnet ({variant})")


@register_model("segnet", small={"width": 0.125}, check=_check)
def segnet(num_classes, input_shape=(None, None, 3), variant="vgg16", width=1.0):
    """SegNet: VGG16 encoder with BN, pooling indices carried to a mirrored decoder."""
    _check(input_shape, variant)
    blocks = 5 if variant == "vgg16" else 4
    inputs = keras.Input(input_shape, name="image")

    # Encoder: convolutions, then pooling that keeps its argmax.
    if variant == "vgg16":
        x, indices = vgg16_encoder_with_indices(inputs, width)
    else:
        x, indices = _encoder_with_indices(inputs, blocks, lambda x, block: conv_bn_relu(
            x, scaled(64, width), 7, f"encoder{block}_conv", padding="same"))

    # Decoder: unpool with the encoder's indices, then convolutions, block 5 (or 4) to 1.
    plan = decoder_filters(width)
    for block in range(blocks, 0, -1):
        x = MaxUnpooling2D(2, name=f"block{block}_unpool")([x, indices[block]])
        if variant == "vgg16":
            last = block == 1
            for i, filters in zip(range(len(plan[block]), 0, -1), plan[block], strict=True):
                if last and i == 1:
                    break  # conv1_1_D is the classifier below
                x = conv_bn_relu(x, filters, 3, f"block{block}_conv{i}_D", padding="same")
        else:
            x = conv_bn_relu(x, scaled(64, width), 7, f"decoder{block}_conv", relu=False,
                             padding="same")
    kernel = 3 if variant == "vgg16" else 1
    outputs = layers.Conv2D(num_classes, kernel, padding="same", name="score")(x)
    return keras.Model(inputs, outputs, name=f"segnet_{variant}")
