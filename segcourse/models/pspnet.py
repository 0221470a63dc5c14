"""PSPNet (Zhao, Shi, Qi, Wang & Jia, "Pyramid Scene Parsing Network", CVPR 2017, Fig. 3).

Read top to bottom like Fig. 3:

1. A dilated ResNet50 with output stride 8 (conv4 and conv5 keep stride 8 by dilation 2 and 4).
2. The pyramid pooling module on conv5: average pooling to 1×1, 2×2, 3×3 and 6×6 bins, each
   reduced by a 1×1 convolution to a quarter of the channels, upsampled and concatenated with
   the features.
3. A 3×3 convolution (512), dropout 0.1, a 1×1 classifier, bilinear upsampling to the input.

``aux_head=True`` adds the deep-supervision branch of §3.3 on conv4 (3×3 conv of 256, dropout,
classifier, upsampled); the model then returns ``[main, aux]`` logits (the paper weights the
auxiliary loss by 0.4).
"""

from __future__ import annotations

import keras
from keras import layers

from segcourse.layers import AtrousConvBlock, PyramidPooling, Resize
from segcourse.models.backbones import load_backbone_weights, resnet50_taps, scaled
from segcourse.models.registry import (
    TrainingRecipe,
    check_input_size,
    pretrained_width,
    register_model,
)


def _head(x, reference, filters, num_classes, dropout, name):
    x = AtrousConvBlock(filters, 3, name=f"{name}_conv")(x)
    x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    x = layers.Conv2D(num_classes, 1, name=f"{name}_classifier")(x)
    return Resize(interpolation="bilinear", name=name)([x, reference])


def _check(input_shape, width=1.0, weights=None, **_):
    """What the builder refuses, before it builds anything (the registry calls it first)."""
    pretrained_width("pspnet", weights, width)
    check_input_size(input_shape, 8, "pspnet")


@register_model("pspnet", small={"width": 0.125}, check=_check, recipe=TrainingRecipe(
    (0.4,), "Zhao et al. 2017, PSPNet §3.3 and §4: the auxiliary loss on conv4 (aux_head=True) "
            "weighs 0.4"))
def pspnet(num_classes, input_shape=(None, None, 3), bins=(1, 2, 3, 6), aux_head=False,
           dropout=0.1, width=1.0, weights: str | None = None):
    """PSPNet: dilated ResNet50 (output stride 8) and pyramid pooling with bins 1, 2, 3, 6."""
    _check(input_shape, width, weights)
    inputs = keras.Input(input_shape, name="image")
    taps = resnet50_taps(inputs, width, output_stride=8)
    x = PyramidPooling(bins=bins, name="pyramid_pooling")(taps["C5"])
    outputs = _head(x, inputs, scaled(512, width), num_classes, dropout, "score")
    if aux_head:
        aux = _head(taps["C4"], inputs, scaled(256, width), num_classes, dropout, "aux_score")
        outputs = [outputs, aux]
    model = keras.Model(inputs, outputs, name="pspnet")
    load_backbone_weights(model, "resnet50", weights)
    return model
