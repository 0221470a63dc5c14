"""U-Net (Ronneberger, Fischer & Brox, "U-Net: Convolutional Networks for Biomedical Image
Segmentation", MICCAI 2015, Fig. 1), in the paper's form and the common padded form.

Read top to bottom like Fig. 1:

- Contracting path: at each level two 3×3 convolutions with ReLU, then 2×2 max pooling;
  the filters double at each level (64, 128, 256, 512, then 1024 at the bottom).
- Expanding path: a 2×2 "up-convolution" that halves the channels, *copy and crop* of the
  contracting map at the same level, concatenation, two 3×3 convolutions.
- A final 1×1 convolution to the classes.

``variant="paper"``: unpadded ("valid") convolutions, so every convolution trims a 1-pixel
border; the contracting maps are centre-cropped before the concatenation, and a 572×572 tile
gives a 388×388 map; Fig. 1's network has 31,030,658 parameters for 1 channel in and 2 classes
(counted from the figure's layers: the paper prints no count).
``variant="padded"``: "same" convolutions, output size = input size, with options for batch
norm (convolutions then drop their biases) and for upsampling by transposed convolution or by
bilinear resize followed by the first convolution of the block (with bilinear upsampling the
deepest level and each decoder block have half the channels, as in the widely used PyTorch
reference, 17,263,042 parameters at 3 → 2). ``skips=False`` drops the copy-and-crop
connections (a plain encoder-decoder: the ablation that shows what the skips are for).
``upsampling_kernel`` sizes the transposed convolution (padded variant): 2, the paper's 2×2
up-convolution, tiles its output evenly; 3 overlaps unevenly, the case in which Odena, Dumoulin
& Olah (Distill, 2016) find checkerboard artifacts. Outputs are logits.
"""

from __future__ import annotations

import keras
from keras import layers

from segcourse.layers import CropToReference, Resize
from segcourse.models.backbones import scaled
from segcourse.models.blocks import conv_bn_relu
from segcourse.models.registry import check_input_size, register_model

VARIANTS = ("paper", "padded")
UPSAMPLINGS = ("transposed", "bilinear")


def _double_conv(x, filters, name, padding, batch_norm, mid_filters=None):
    for i, f in enumerate((mid_filters or filters, filters), start=1):
        x = conv_bn_relu(x, f, 3, f"{name}_conv{i}", batch_norm=batch_norm, padding=padding,
                         bn_name=f"{name}_bn{i}", relu_name=f"{name}_relu{i}")
    return x


def paper_valid_sizes(depth=4, count=3, start=1):
    """The first ``count`` input sizes from ``start`` on that a paper (unpadded) U-Net of
    ``depth`` accepts: every pooled map must be even and no map may vanish (for depth 4 these
    are 16 m + 124 from 188 on: 188, 204, ..., 572, ...)."""
    sizes, size = [], max(start, 1)
    while len(sizes) < count:
        if paper_output_size(size, depth) is not None:
            sizes.append(size)
        size += 1
    return sizes


def paper_output_size(size, depth=4):
    """The output size of a paper U-Net on a ``size`` input, or None where pooling would need
    an odd map or a map would vanish."""
    for _ in range(depth):
        size -= 4
        if size <= 0 or size % 2:
            return None
        size //= 2
    size -= 4
    if size <= 0:
        return None
    for _ in range(depth):
        size = size * 2 - 4
        if size <= 0:
            return None
    return size


def _check_paper_size(input_shape, depth):
    for axis, size in zip(("height", "width"), input_shape[:2], strict=True):
        if size is not None and paper_output_size(size, depth) is None:
            below = [s for s in paper_valid_sizes(depth, 50) if s < size][-1:]
            above = paper_valid_sizes(depth, 1, start=size)
            raise ValueError(
                f"unet (variant='paper'): input {axis} {size} does not fit the unpadded "
                f"network (each pooling needs an even map); the nearest valid sizes are "
                f"{' or '.join(map(str, below + above))}.")


def _check(input_shape, variant="padded", depth=4, batch_norm=None, upsampling="transposed",
           upsampling_kernel=2, **_):
    """What the builder refuses, before it builds anything (the registry calls it first)."""
    if variant not in VARIANTS:
        raise ValueError(f"unet: variant must be one of {VARIANTS}; got {variant!r}.")
    if upsampling not in UPSAMPLINGS:
        raise ValueError(f"unet: upsampling must be one of {UPSAMPLINGS}; got {upsampling!r}.")
    if not isinstance(upsampling_kernel, int) or upsampling_kernel < 2:
        raise ValueError(f"unet: upsampling_kernel is the transposed convolution's kernel size, "
                         f"an integer of at least 2 (2: the paper's); got {upsampling_kernel!r}.")
    if upsampling_kernel != 2 and upsampling != "transposed":
        raise ValueError(f"unet: upsampling_kernel sizes a transposed convolution; with "
                         f"upsampling={upsampling!r} there is none. Drop upsampling_kernel.")
    if variant == "paper" and (batch_norm or upsampling != "transposed"
                               or upsampling_kernel != 2):
        raise ValueError("unet: the paper variant has no batch norm and upsamples by 2×2 "
                         "up-convolution; use variant='padded' for those options.")
    if variant == "paper":
        _check_paper_size(input_shape, depth)
    else:
        check_input_size(input_shape, 2 ** depth, "unet")


@register_model("unet", small={"base_filters": 8}, check=_check)
def unet(num_classes, input_shape=(None, None, 3), variant="padded", depth=4, base_filters=64,
         batch_norm: bool | None = None, upsampling="transposed", skips=True, width=1.0,
         upsampling_kernel=2):
    """U-Net: contracting path, expanding path with copy-and-crop skips (paper or padded)."""
    _check(input_shape, variant, depth, batch_norm, upsampling, upsampling_kernel)
    paper = variant == "paper"
    batch_norm = (not paper) if batch_norm is None else batch_norm
    padding = "valid" if paper else "same"
    bilinear = upsampling == "bilinear"
    filters = [scaled(base_filters * 2 ** level, width) for level in range(depth + 1)]

    inputs = keras.Input(input_shape, name="image")
    x, features = inputs, []
    # Contracting path.
    for level in range(depth):
        x = _double_conv(x, filters[level], f"down{level + 1}", padding, batch_norm)
        features.append(x)
        x = layers.MaxPooling2D(2, name=f"down{level + 1}_pool")(x)
    bottom = filters[depth] // 2 if bilinear else filters[depth]
    x = _double_conv(x, bottom, "bottom", padding, batch_norm)
    # Expanding path.
    for level in reversed(range(depth)):
        name = f"up{level + 1}"
        if bilinear:
            x = Resize(2, interpolation="bilinear", name=f"{name}_upsample")(x)
        else:
            x = layers.Conv2DTranspose(filters[level], upsampling_kernel, strides=2,
                                       padding="same", name=f"{name}_upconv")(x)
        if skips:
            skip = features[level]
            if paper:
                skip = CropToReference(name=f"{name}_crop")([skip, x])
            x = layers.Concatenate(name=f"{name}_concat")([skip, x])
        out_filters = filters[level - 1] if bilinear and level > 0 else filters[level]
        mid = filters[level] if bilinear else None
        x = _double_conv(x, out_filters, name, padding, batch_norm, mid_filters=mid)
    outputs = layers.Conv2D(num_classes, 1, name="score")(x)
    return keras.Model(inputs, outputs, name=f"unet_{variant}")
