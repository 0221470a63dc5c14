"""DeepLabV3 (Chen, Papandreou, Schroff & Adam, "Rethinking Atrous Convolution for Semantic
Image Segmentation", 2017) and the DeepLabV3+ decoder (Chen et al., ECCV 2018, Fig. 2).

Read top to bottom like Fig. 5 of DeepLabV3:

1. ResNet50 whose last stage(s) trade stride for dilation: output stride 16 (conv5 dilated by 2)
   or 8 (conv4 by 2, conv5 by 4), optionally with Multi-Grid rates in conv5 (§3.2).
2. ASPP on the stride-16 (or 8) features: 1×1, three 3×3 atrous branches at rates 6/12/18
   (doubled to 12/24/36 at output stride 8), image pooling; 256 channels; concat and 1×1 (§3.3).
3. A 1×1 classifier, bilinearly upsampled to the input size.

``decoder=True`` adds the V3+ decoder: ASPP output upsampled 4×, concatenated with the stride-4
features reduced to 48 channels, two 3×3 convolutions of 256, classifier, upsampled 4×.
Outputs are logits.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from segcourse.layers import ASPP, AtrousConvBlock, Resize
from segcourse.models.backbones import load_backbone_weights, resnet50_taps, scaled
from segcourse.models.registry import check_input_size, pretrained_width, register_model

ASPP_RATES = {16: (6, 12, 18), 8: (12, 24, 36)}


def _check(input_shape, output_stride=16, decoder=False, multi_grid=(1, 1, 1), width=1.0,
           weights=None, **_):
    """What the builder refuses, before it builds anything (the registry calls it first)."""
    if output_stride not in ASPP_RATES:
        raise ValueError(f"deeplabv3: output_stride must be 16 or 8; got {output_stride}.")
    if len(multi_grid) != 3 or any(rate < 1 for rate in multi_grid):
        raise ValueError("deeplabv3: multi_grid is one dilation factor of at least 1 for each "
                         f"of conv5's three blocks, e.g. (1, 2, 4); got {tuple(multi_grid)}.")
    pretrained_width("deeplabv3", weights, width)
    check_input_size(input_shape, 32 if decoder else output_stride, "deeplabv3")


@register_model("deeplabv3", small={"width": 0.125}, check=_check)
def deeplabv3(num_classes, input_shape=(None, None, 3), output_stride=16, decoder=False,
              multi_grid=(1, 1, 1), width=1.0, weights: str | None = None):
    """DeepLabV3 (ResNet50, atrous, ASPP with image pooling); V3+ decoder optional."""
    _check(input_shape, output_stride, decoder, multi_grid, width, weights)
    inputs = keras.Input(input_shape, name="image")
    taps = resnet50_taps(inputs, width, output_stride=output_stride, multi_grid=multi_grid)
    x = ASPP(scaled(256, width), rates=ASPP_RATES[output_stride], name="aspp")(taps["C5"])
    if decoder:
        x = Resize(interpolation="bilinear", name="decoder_upsample")([x, taps["C2"]])
        low = AtrousConvBlock(scaled(48, width), 1, name="decoder_reduce")(taps["C2"])
        x = layers.Concatenate(name="decoder_concat")([x, low])
        x = AtrousConvBlock(scaled(256, width), 3, name="decoder_conv1")(x)
        x = AtrousConvBlock(scaled(256, width), 3, name="decoder_conv2")(x)
    x = layers.Conv2D(num_classes, 1, name="classifier")(x)
    outputs = Resize(interpolation="bilinear", name="score")([x, inputs])
    model = keras.Model(inputs, outputs, name="deeplabv3plus" if decoder else "deeplabv3")
    load_backbone_weights(model, "resnet50", weights)
    return model


def at_output_stride(trained, output_stride: int, input_shape=None, **options):
    """``trained``'s weights in a DeepLabV3 built at ``output_stride`` (and ``input_shape``,
    by default ``trained``'s; ``(None, None, 3)`` takes any size): only the dilations change,
    so the weights fit unchanged (DeepLabV3 §4.3: trained at output stride 16, evaluated at 8).
    ``options`` are those ``trained`` was built with (``model_size``, ``decoder``, ``width``,
    ``multi_grid``): they decide the layers the weights go to. Run at a stride other than the
    one it was trained at, its maps need :func:`realign`."""
    from segcourse.models.registry import build

    names = [layer.name for layer in getattr(trained, "layers", ())]
    if not isinstance(trained, keras.Model) or "aspp" not in names:
        raise ValueError(f"at_output_stride takes a DeepLabV3 built by segcourse.models; got "
                         f"{getattr(trained, 'name', type(trained).__name__)!r}.")
    shape = tuple(trained.input_shape[1:]) if input_shape is None else input_shape
    network = build("deeplabv3", trained.output_shape[-1], shape, output_stride=output_stride,
                    **options)
    weights = trained.get_weights()
    if network.name != trained.name or [w.shape for w in network.get_weights()] != [
            w.shape for w in weights]:
        raise ValueError(f"at_output_stride: {trained.name!r} was built with other options than "
                         f"{options}: pass the ones it was built with (model_size, decoder, "
                         f"width, multi_grid).")
    network.set_weights(weights)
    return network


def realign(maps, trained_stride: int, run_stride: int):
    """Maps ``(N, H, W, ...)`` (labels, probabilities, logits) of a DeepLabV3 run at output
    stride ``run_stride`` with weights trained at ``trained_stride``, shifted down and right by
    ``(trained_stride - run_stride) / 2`` pixels, the edge rows and columns repeated.

    Why: the backbone's unit ``i`` is centred on pixel ``s * i``, but the final bilinear resize
    (half-pixel centres) puts it at pixel ``s * i + (s - 1) / 2``. Trained at stride ``s``, the
    network learns to describe the pixels ``(s - 1) / 2`` below and right of each unit's centre;
    run at another stride, the resize puts those descriptions ``(s' - 1) / 2`` away instead. The
    paper's 513 × 513 crops (16 · 32 + 1) with corner-aligned resizing put the units of both
    strides on the same pixels, so it needs no shift.
    """
    shift, remainder = divmod(trained_stride - run_stride, 2)
    if remainder or shift < 0:
        raise ValueError(f"realign: the trained stride ({trained_stride}) must be the larger, "
                         f"by an even number of pixels, than the stride run ({run_stride}), "
                         f"e.g. 16 and 8.")
    maps = np.asarray(maps)
    if maps.ndim < 3:
        raise ValueError(f"realign takes a batch of maps (N, H, W, ...); got shape {maps.shape}.")
    if shift == 0:
        return maps
    height, width = maps.shape[1:3]
    rows = np.clip(np.arange(height) - shift, 0, height - 1)
    columns = np.clip(np.arange(width) - shift, 0, width - 1)
    return maps[:, rows][:, :, columns]
