"""Pyramid pooling, the context module of PSPNet (Zhao, Shi, Qi, Wang & Jia, "Pyramid Scene
Parsing Network", CVPR 2017, §3.2, Fig. 3).

The feature map is average-pooled to ``b × b`` for each bin size ``b`` (1, 2, 3, 6: from the
whole image down to sub-regions), each pooled map is reduced by a 1×1 convolution to
``1/len(bins)`` of the input channels, upsampled bilinearly back to the map's size, and
concatenated with the input.
"""

from __future__ import annotations

import keras

from segcourse.layers._validation import check_image_batch
from segcourse.layers.atrous import AtrousConvBlock
from segcourse.layers.upsampling import Resize

register = keras.saving.register_keras_serializable(package="segcourse")


@register
class PyramidPooling(keras.layers.Layer):
    """PSP pyramid pooling: ``[x, up(conv(pool_1(x))), up(conv(pool_2(x))), ...]``.

    Pooling uses Keras' ``AdaptiveAveragePooling2D`` (bins ``[floor(i H / b), ceil((i+1) H / b))``,
    as in PSPNet's reference code), so any input size works, including sizes unknown until run
    time. ``filters`` defaults to ``channels // len(bins)``.
    """

    def __init__(self, bins=(1, 2, 3, 6), filters=None, batch_norm=True,
                 interpolation="bilinear", **kwargs):
        super().__init__(**kwargs)
        self.bins = tuple(int(b) for b in bins)
        self.filters = filters
        self.batch_norm = batch_norm
        self.interpolation = interpolation
        self.pools, self.convs = [], []
        self.upsample = Resize(interpolation=interpolation, name="upsample")

    def build(self, input_shape):
        check_image_batch(input_shape, "PyramidPooling")
        filters = self.filters or max(1, input_shape[-1] // len(self.bins))
        self.pools = [keras.layers.AdaptiveAveragePooling2D(b, name=f"pool{b}") for b in self.bins]
        self.convs = [AtrousConvBlock(filters, 1, batch_norm=self.batch_norm, name=f"conv{b}")
                      for b in self.bins]
        for b, conv in zip(self.bins, self.convs, strict=True):
            conv.build((input_shape[0], b, b, input_shape[-1]))

    def call(self, x, training=None):
        outputs = [x]
        for pool, conv in zip(self.pools, self.convs, strict=True):
            outputs.append(self.upsample([conv(pool(x), training=training), x]))
        return keras.ops.concatenate(outputs, axis=-1)

    def compute_output_shape(self, input_shape):
        filters = self.filters or max(1, input_shape[-1] // len(self.bins))
        return (*input_shape[:3], input_shape[-1] + filters * len(self.bins))

    def get_config(self):
        return {**super().get_config(), "bins": self.bins, "filters": self.filters,
                "batch_norm": self.batch_norm, "interpolation": self.interpolation}
