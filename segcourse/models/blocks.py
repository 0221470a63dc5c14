"""The convolution unit most of the zoo is made of: convolution, batch normalization, ReLU.

Batch normalization (Ioffe & Szegedy 2015) normalizes each channel over the batch and then
scales and shifts it, so a convolution followed by it needs no bias of its own. VGG-BN, SegNet
(Badrinarayanan et al. 2017), DeconvNet (Noh et al. 2015, with transposed convolutions), U-Net
with batch norm, ResNet (He et al. 2016) and the plain stack use this unit; the layer names are
the caller's, so that weights saved by ``keras.applications`` and earlier segcourse versions
still load by name.
"""

from __future__ import annotations

from keras import layers


def conv_bn_relu(x, filters: int, kernel_size, name: str, *, batch_norm: bool = True,
                 relu: bool = True, use_bias: bool | None = None, epsilon: float = 1e-3,
                 bn_name: str | None = None, relu_name: str | None = None,
                 transposed: bool = False, **conv_options):
    """``Conv2D`` named ``name`` (``Conv2DTranspose`` if ``transposed``: DeconvNet's
    "deconvolution"; bias only without batch norm, unless ``use_bias`` says), then
    ``BatchNormalization`` (``bn_name``, default ``{name}_bn``) and a ReLU (``relu_name``,
    default ``{name}_relu``); ``conv_options`` go to the convolution (padding, strides, ...)."""
    use_bias = not batch_norm if use_bias is None else use_bias
    conv = layers.Conv2DTranspose if transposed else layers.Conv2D
    x = conv(filters, kernel_size, use_bias=use_bias, name=name, **conv_options)(x)
    if batch_norm:
        x = layers.BatchNormalization(epsilon=epsilon, name=bn_name or f"{name}_bn")(x)
    if relu:
        x = layers.Activation("relu", name=relu_name or f"{name}_relu")(x)
    return x
