"""The plain convolutional baseline: ``depth`` 3×3 convolutions at full resolution, no pooling.

Its receptive field is ``2 * depth + 1`` pixels (three layers: 7×7, the VGG argument), so it
sees texture and colour but not whole objects: the model that shows, on ``shapes``, why
segmentation networks downsample, dilate or pool for context (Long et al. 2015, §3; Yu & Koltun
2016, §1).
"""

from __future__ import annotations

import keras
from keras import layers

from segcourse.models.backbones import scaled
from segcourse.models.blocks import conv_bn_relu
from segcourse.models.registry import register_model


@register_model("plain", small={"filters": 32})
def plain(num_classes, input_shape=(None, None, 3), depth=3, filters=64, width=1.0):
    """A stack of ``depth`` 3×3 conv-BN-ReLU at full resolution (receptive field 2·depth+1)."""
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for i in range(1, depth + 1):
        x = conv_bn_relu(x, scaled(filters, width), 3, f"conv{i}", padding="same")
    outputs = layers.Conv2D(num_classes, 1, name="score")(x)
    return keras.Model(inputs, outputs, name=f"plain{depth}")
