"""Atrous (dilated) convolutions: a conv-BN-ReLU block, DeepLabV3's ASPP, and the Yu–Koltun
context module.

A 3×3 convolution with dilation ``r`` samples its input ``r`` pixels apart: its receptive field
grows to ``2r + 1`` with the same nine weights and no loss of resolution (Chen et al.,
"DeepLab", TPAMI 2018, §3.1; Yu & Koltun, "Multi-Scale Context Aggregation by Dilated
Convolutions", ICLR 2016, §2).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from segcourse.layers._validation import check_image_batch

register = keras.saving.register_keras_serializable(package="segcourse")


def taps_on_the_map(kernel_size: int, dilation_rate: int, length: int | None) -> slice:
    """The taps, along one axis, of a 'same'-padded dilated kernel that can land on a map of
    ``length`` pixels.

    Tap ``i`` reads ``|i - k // 2| * rate`` pixels from the output pixel; once that is
    ``length`` or more it reads zero padding for every output pixel, so it contributes
    nothing and gets a zero gradient (DeepLabV3, §3.3, Fig. 4: at a large rate a 3×3 filter
    degenerates to its centre). An unknown length or an even kernel keeps every tap.
    """
    if length is None or kernel_size % 2 == 0:
        return slice(0, kernel_size)
    centre = kernel_size // 2
    reach = min(centre, (length - 1) // dilation_rate)
    return slice(centre - reach, centre + reach + 1)


@register
class AtrousConvBlock(keras.layers.Layer):
    """Dilated convolution ('same' padding) -> batch norm -> activation.

    With ``batch_norm=True`` the convolution has no bias (the norm's offset replaces it).
    When the map's size is known and the rate is so large that some taps can only ever read
    padding (:func:`taps_on_the_map`), the block convolves with the remaining taps alone: the
    same output and gradients, without the cost of the taps that read nothing (ASPP's rate 18
    on a 4×4 map is a 1×1 convolution, and is computed as one).
    """

    def __init__(self, filters, kernel_size=3, dilation_rate=1, batch_norm=True,
                 activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.dilation_rate = dilation_rate
        self.batch_norm = batch_norm
        self.activation = keras.activations.get(activation)
        self.conv = keras.layers.Conv2D(filters, kernel_size, padding="same",
                                        dilation_rate=dilation_rate, use_bias=not batch_norm,
                                        name="conv")
        self.norm = keras.layers.BatchNormalization(name="bn") if batch_norm else None

    def build(self, input_shape):
        check_image_batch(input_shape, "AtrousConvBlock")
        self.conv.build(input_shape)
        if self.norm is not None:
            self.norm.build(self.conv.compute_output_shape(input_shape))

    def call(self, x, training=None):
        x = self._convolve(x)
        if self.norm is not None:
            x = self.norm(x, training=training)
        return self.activation(x)

    def _convolve(self, x):
        sizes, rates = self.conv.kernel_size, self.conv.dilation_rate
        taps = [taps_on_the_map(k, r, n) for k, r, n in zip(sizes, rates, x.shape[1:3],
                                                            strict=True)]
        kept = [t.stop - t.start for t in taps]
        if kept == list(sizes):
            return self.conv(x)
        rates = tuple(r if n > 1 else 1 for n, r in zip(kept, rates, strict=True))
        y = ops.conv(x, self.conv.kernel[taps[0], taps[1]], padding="same", dilation_rate=rates)
        return y + self.conv.bias if self.conv.use_bias else y

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "dilation_rate": self.dilation_rate,
                "batch_norm": self.batch_norm,
                "activation": keras.activations.serialize(self.activation)}


@register
class ASPP(keras.layers.Layer):
    """Atrous Spatial Pyramid Pooling as in DeepLabV3 (Chen et al., "Rethinking Atrous
    Convolution for Semantic Image Segmentation", 2017, §3.3, Fig. 5).

    Five parallel branches, each ``filters`` channels with batch norm and ReLU: a 1×1
    convolution, three 3×3 atrous convolutions at ``rates`` (6, 12, 18 at output stride 16;
    double them at output stride 8), and image pooling (global average -> 1×1 conv -> back to
    the map's size; bilinear upsampling of a 1×1 map is a broadcast). The branches are
    concatenated and fused by a 1×1 convolution with batch norm and ReLU. ``dropout`` after the
    fusion is optional (the paper does not use one; torchvision uses 0.5).
    """

    def __init__(self, filters=256, rates=(6, 12, 18), dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.rates = tuple(int(r) for r in rates)
        self.dropout = dropout
        self.branches = [AtrousConvBlock(filters, 1, name="aspp_1x1")] + [
            AtrousConvBlock(filters, 3, dilation_rate=r, name=f"aspp_rate{r}")
            for r in self.rates
        ]
        self.pool_conv = AtrousConvBlock(filters, 1, name="aspp_pool_conv")
        self.fuse = AtrousConvBlock(filters, 1, name="aspp_fuse")
        self.drop = keras.layers.Dropout(dropout, name="aspp_dropout") if dropout else None

    def build(self, input_shape):
        check_image_batch(input_shape, "ASPP")
        for branch in self.branches:
            branch.build(input_shape)
        self.pool_conv.build((input_shape[0], 1, 1, input_shape[-1]))
        self.fuse.build((*input_shape[:3], self.filters * (len(self.branches) + 1)))

    def call(self, x, training=None):
        outputs = [branch(x, training=training) for branch in self.branches]
        pooled = self.pool_conv(ops.mean(x, axis=(1, 2), keepdims=True), training=training)
        outputs.append(pooled * ops.ones_like(outputs[0][..., :1]))
        y = self.fuse(ops.concatenate(outputs, axis=-1), training=training)
        return self.drop(y, training=training) if self.drop is not None else y

    def compute_output_shape(self, input_shape):
        return (*input_shape[:3], self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "rates": self.rates,
                "dropout": self.dropout}


@register
class IdentityKernel(keras.initializers.Initializer):
    """Yu & Koltun's identity initialization: ``k(t, a, b) = [t = 0][a = b]`` (§3).

    The centre tap maps channel ``a`` to channel ``a``; all else is zero, so a freshly built
    context module passes its (non-negative) input through unchanged.
    """

    def __call__(self, shape, dtype=None):
        kh, kw, cin, cout = shape
        if kh % 2 == 0 or kw % 2 == 0 or cin != cout:
            raise ValueError(
                "IdentityKernel needs an odd, square-centred kernel with as many output as "
                f"input channels; got kernel shape {tuple(shape)}."
            )
        kernel = np.zeros(shape, dtype="float32")
        kernel[kh // 2, kw // 2, np.arange(cin), np.arange(cin)] = 1.0
        return ops.convert_to_tensor(kernel, dtype=dtype or "float32")

    def get_config(self):
        return {}


@register
class ContextModule(keras.layers.Layer):
    """The basic context module of Yu & Koltun (ICLR 2016, §3, Table 1).

    Seven 3×3 convolutions with ``dilations`` 1, 1, 2, 4, 8, 16, 1, each followed by the
    truncation max(·, 0), then a 1×1 convolution; all keep the ``C`` channels of the input.
    Receptive fields grow 3, 5, 9, 17, 33, 65, 67 without any loss of resolution. With
    ``identity_init=True`` every layer starts as the identity (:class:`IdentityKernel`), the
    paper's remedy for a module that would not train from random initialization.
    """

    def __init__(self, dilations=(1, 1, 2, 4, 8, 16, 1), identity_init=True, **kwargs):
        super().__init__(**kwargs)
        self.dilations = tuple(int(d) for d in dilations)
        self.identity_init = identity_init
        self.convs = []

    def build(self, input_shape):
        check_image_batch(input_shape, "ContextModule")
        channels = input_shape[-1]
        init = IdentityKernel() if self.identity_init else "glorot_uniform"
        self.convs = [
            keras.layers.Conv2D(channels, 3, padding="same", dilation_rate=d, activation="relu",
                                kernel_initializer=init, name=f"ctx_conv{i + 1}")
            for i, d in enumerate(self.dilations)
        ]
        self.convs.append(keras.layers.Conv2D(channels, 1, kernel_initializer=init,
                                              name="ctx_final"))
        for conv in self.convs:
            conv.build(input_shape)

    def call(self, x):
        for conv in self.convs:
            x = conv(x)
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "dilations": self.dilations,
                "identity_init": self.identity_init}
