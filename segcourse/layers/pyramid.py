"""Pyramid pooling, the context module of PSPNet (Zhao, Shi, Qi, Wang & Jia, "Pyramid Scene
Parsing Network", CVPR 2017, §3.2, Fig. 3).

The feature map is average-pooled to ``b × b`` for each bin size ``b`` (1, 2, 3, 6: from the
whole image down to sub-regions), each pooled map is reduced by a 1×1 convolution to
``1/len(bins)`` of the input channels, upsampled bilinearly back to the map's size, and
concatenated with the input.
"""

from __future__ import annotations

import keras
from keras import ops

from segcourse.layers._validation import check_image_batch
from segcourse.layers.atrous import AtrousConvBlock
from segcourse.layers.upsampling import Resize

register = keras.saving.register_keras_serializable(package="segcourse")


def _bin_matrix(size, bins, dtype):
    """``(bins, size)`` averaging weights: row ``i`` is uniform on
    ``[floor(i size / bins), ceil((i + 1) size / bins))``, zero elsewhere."""
    i = ops.arange(bins, dtype="int32")[:, None]
    start = (i * size) // bins
    end = ((i + 1) * size + bins - 1) // bins
    position = ops.arange(size, dtype="int32")[None, :]
    inside = ops.cast(ops.logical_and(position >= start, position < end), dtype)
    return inside / ops.cast(end - start, dtype)


def adaptive_average_pool(x, bins):
    """Average ``(B, H, W, C)`` into ``bins × bins`` cells with PSPNet's (and PyTorch's)
    adaptive bins. Written as two small matrix products, so it works for any size, also one
    unknown until run time, on every backend (``keras.layers.AdaptiveAveragePooling2D`` in
    Keras 3.15 needs static sizes and fails when ``bins`` divides the size, e.g. 8 → 1)."""
    _, height, width, _ = ops.shape(x)
    rows, cols = _bin_matrix(height, bins, x.dtype), _bin_matrix(width, bins, x.dtype)
    return ops.einsum("ih,bhwc,jw->bijc", rows, x, cols)


@register
class PyramidPooling(keras.layers.Layer):
    """PSP pyramid pooling: ``[x, up(conv(pool_1(x))), up(conv(pool_2(x))), ...]``.

    Pooling uses :func:`adaptive_average_pool` (bins ``[floor(i H / b), ceil((i+1) H / b))``,
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
        self.convs = []
        self.upsample = Resize(interpolation=interpolation, name="upsample")

    def build(self, input_shape):
        check_image_batch(input_shape, "PyramidPooling")
        filters = self.filters or max(1, input_shape[-1] // len(self.bins))
        self.convs = [AtrousConvBlock(filters, 1, batch_norm=self.batch_norm, name=f"conv{b}")
                      for b in self.bins]
        for b, conv in zip(self.bins, self.convs, strict=True):
            conv.build((input_shape[0], b, b, input_shape[-1]))

    def call(self, x, training=None):
        outputs = [x]
        for bins, conv in zip(self.bins, self.convs, strict=True):
            pooled = adaptive_average_pool(x, bins)
            outputs.append(self.upsample([conv(pooled, training=training), x]))
        return keras.ops.concatenate(outputs, axis=-1)

    def compute_output_shape(self, input_shape):
        filters = self.filters or max(1, input_shape[-1] // len(self.bins))
        return (*input_shape[:3], input_shape[-1] + filters * len(self.bins))

    def get_config(self):
        return {**super().get_config(), "bins": self.bins, "filters": self.filters,
                "batch_norm": self.batch_norm, "interpolation": self.interpolation}
