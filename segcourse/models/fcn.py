"""FCN-32s, FCN-16s and FCN-8s on VGG16 (Long, Shelhamer & Darrell, "Fully Convolutional
Networks for Semantic Segmentation", CVPR 2015; the reference Caffe nets voc-fcn{32,16,8}s).

Read top to bottom like the paper's Fig. 3:

1. VGG16's convolutions, with conv1_1 padded by 100 pixels and Caffe's round-up pooling, so that
   the 7×7 fc6 fits any input (§4.1, reference alignment).
2. fc6 (7×7, 4096) and fc7 (1×1, 4096) — VGG16's classifier, convolutionalized (§3.1) — with
   dropout, then ``score_fr``, a 1×1 class scorer.
3. Upsampling by transposed convolution initialized to bilinear interpolation (§3.3): fixed, as
   in the reference nets, or learnable. k4 s2 for each 2× step; k64 s32 (32s), k32 s16 (16s),
   k16 s8 (8s) for the final step.
4. Skips (§4.2, Fig. 3): 1×1 scorers on pool4 (16s, 8s) and pool3 (8s), cropped and summed
   with the upsampled coarse scores ("fuse").
5. Crops back to the input at the reference offsets: 32s 19; 16s 5, 27; 8s 5, 9, 31.

Without pretrained weights (``weights=None``) the 13 convolutions, fc6 and fc7 start He-normal
(He et al., "Delving Deep into Rectifiers", ICCV 2015, §2.2): variance 2 / fan-in keeps the mean
square of a plain ReLU stack's activations from layer to layer, where Keras' default
Glorot-uniform at least halves it at each of these 15 layers (fan-out ≥ fan-in), so that fc7 would
start thousands of times quieter than the picture (their Figs. 2 and 3: a 22-layer net so
initialized learns later, a 30-layer one stalls). The scorers stay zero and the upsampling
bilinear; loaded weights replace every kernel.

``alignment="same"`` is the variant for sizes divisible by 32: "same" padding everywhere, no
100-pixel pad and no crops. ``scale_pools=True`` is the "at-once" training variant, which scales
pool4 by 0.01 and pool3 by 0.0001 before scoring them. Outputs are logits.
"""

from __future__ import annotations

import keras
from keras import layers

from segcourse.layers import BilinearKernel, CropToReference
from segcourse.models.backbones import (
    copy_weights,
    dense_to_conv_kernel,
    keras_application,
    scaled,
    vgg16_taps,
)
from segcourse.models.registry import check_input_size, pretrained_width, register_model

CROP_OFFSETS = {32: {"score": 19}, 16: {"score_pool4c": 5, "score": 27},
                8: {"score_pool4c": 5, "score_pool3c": 9, "score": 31}}
POOL_SCALES = {"pool4": 0.01, "pool3": 0.0001}
ALIGNMENTS = ("reference", "same")


def _upscore(x, num_classes, factor, learnable, alignment, name):
    """Bilinear-initialized transposed convolution, kernel 2 × factor, stride factor."""
    return layers.Conv2DTranspose(
        num_classes, 2 * factor, strides=factor, use_bias=False,
        padding="valid" if alignment == "reference" else "same",
        kernel_initializer=BilinearKernel(), trainable=learnable, name=name)(x)


def _crop(x, reference, name, stride, alignment):
    if alignment == "same":
        return x
    return CropToReference(CROP_OFFSETS[stride][name], name=name)([x, reference])


def _score_skip(pool, num_classes, name, scale_pools):
    if scale_pools:
        pool = layers.Rescaling(POOL_SCALES[name], name=f"scale_{name}")(pool)
    return layers.Conv2D(num_classes, 1, kernel_initializer="zeros", name=f"score_{name}")(pool)


def _checker(stride):
    """The check of FCN-``stride``s: what its builder refuses, before it builds anything."""
    def check(input_shape, alignment="reference", width=1.0, weights=None, **_):
        if alignment not in ALIGNMENTS:
            raise ValueError(f"FCN alignment must be one of {ALIGNMENTS}; got {alignment!r}.")
        pretrained_width(f"fcn{stride}s", weights, width)
        if alignment == "same":
            check_input_size(input_shape, 32, f"fcn{stride}s (alignment='same')")
    return check


def fcn(num_classes, input_shape=(None, None, 3), stride=8, alignment="reference",
        learnable_upsampling=False, scale_pools=False, width=1.0, dropout=0.5,
        weights: str | None = None):
    """FCN-``stride``s on VGG16 (``stride`` 32, 16 or 8); see the module docstring."""
    if stride not in CROP_OFFSETS:
        raise ValueError(f"FCN stride must be 32, 16 or 8; got {stride}.")
    _checker(stride)(input_shape, alignment, width, weights)
    reference = alignment == "reference"

    # 1. The VGG16 encoder.
    inputs = keras.Input(input_shape, name="image")
    x = layers.ZeroPadding2D(100, name="conv1_1_pad")(inputs) if reference else inputs
    pools = vgg16_taps(x, width, pool_padding="same" if reference else "valid",
                       first_padding="valid" if reference else "same")

    # 2. fc6 and fc7 as convolutions, then the class scores at stride 32.
    x = layers.Conv2D(scaled(4096, width), 7, padding="valid" if reference else "same",
                      activation="relu", kernel_initializer=he_normal(), name="fc6")(pools["C5"])
    x = layers.Dropout(dropout, name="drop6")(x)
    x = layers.Conv2D(scaled(4096, width), 1, activation="relu", kernel_initializer=he_normal(),
                      name="fc7")(x)
    x = layers.Dropout(dropout, name="drop7")(x)
    score = layers.Conv2D(num_classes, 1, kernel_initializer="zeros", name="score_fr")(x)

    # 3-4. Upsample by 2 and fuse with the finer pools, as many times as the variant asks.
    skips = {32: [], 16: [4], 8: [4, 3]}[stride]  # VGG blocks whose pooling is fused
    up_names = ["upscore2", "upscore_pool4"]
    for step, block in enumerate(skips):
        pool_name = f"pool{block}"
        up = _upscore(score, num_classes, 2, learnable_upsampling, alignment, up_names[step])
        skip = _score_skip(pools[f"C{block}"], num_classes, pool_name, scale_pools)
        skip = _crop(skip, up, f"score_{pool_name}c", stride, alignment)
        score = layers.Add(name=f"fuse_{pool_name}")([up, skip])

    # 5. The final upsampling back to the image, cropped at the reference offset.
    up = _upscore(score, num_classes, stride, learnable_upsampling, alignment, f"upscore{stride}"
                  if stride != 32 else "upscore")
    outputs = _crop(up, inputs, "score", stride, alignment)
    if not reference:
        outputs = layers.Identity(name="score")(outputs)
    model = keras.Model(inputs, outputs, name=f"fcn{stride}s")
    if weights is None:
        he_normal_vgg16_kernels(model)
    else:
        load_vgg16_classifier_weights(model, weights)
    return model


def he_normal(seed=None):
    """He et al.'s initializer as the paper draws it (§2.2): a zero-mean Gaussian of variance
    2 / fan-in, not truncated (Keras' ``HeNormal`` truncates at two standard deviations, and
    drawing fc6's 103 M weights that way costs half as much again)."""
    return keras.initializers.VarianceScaling(2.0, "fan_in", "untruncated_normal", seed=seed)


def he_normal_vgg16_kernels(model):
    """Redraw the VGG16 convolutions' kernels He-normal (He et al. 2015, §2.2), as fc6/fc7 are
    built: the shared VGG16 builder gives them Keras' Glorot-uniform, which shrinks the signal
    of this 15-layer ReLU stack without batch norm (see the module docstring). Each redraw uses
    the seed its convolution's initializer already drew, so the random stream after building is
    the same as before."""
    for layer in model.layers:
        if type(layer) is layers.Conv2D and layer.name.startswith("block"):
            layer.kernel_initializer = he_normal(layer.kernel_initializer.seed)
            layer.kernel.assign(layer.kernel_initializer(layer.kernel.shape, layer.kernel.dtype))


def load_vgg16_classifier_weights(model, weights):
    """VGG16's ImageNet weights into an FCN: the 13 convolutions by name, fc1/fc2 reshaped
    into fc6/fc7 (§3.1)."""
    vgg = keras_application("vgg16", weights, include_top=True)
    copy_weights(vgg, model)
    for dense, conv, spatial in (("fc1", "fc6", (7, 7)), ("fc2", "fc7", (1, 1))):
        kernel, bias = vgg.get_layer(dense).get_weights()
        model.get_layer(conv).set_weights([dense_to_conv_kernel(kernel, spatial), bias])


@register_model("fcn32s", small={"width": 0.125}, check=_checker(32))
def fcn32s(num_classes, input_shape=(None, None, 3), alignment="reference",
           learnable_upsampling=False, width=1.0, dropout=0.5, weights: str | None = None):
    """FCN-32s: VGG16, fc6/fc7 as convolutions, one 32× bilinear upsampling (k64 s32)."""
    return fcn(num_classes, input_shape, 32, alignment, learnable_upsampling, False, width,
               dropout, weights)


@register_model("fcn16s", small={"width": 0.125}, check=_checker(16))
def fcn16s(num_classes, input_shape=(None, None, 3), alignment="reference",
           learnable_upsampling=False, scale_pools=False, width=1.0, dropout=0.5,
           weights: str | None = None):
    """FCN-16s: FCN-32s plus a pool4 skip (2× up, fuse, 16× up)."""
    return fcn(num_classes, input_shape, 16, alignment, learnable_upsampling, scale_pools, width,
               dropout, weights)


@register_model("fcn8s", small={"width": 0.125}, check=_checker(8))
def fcn8s(num_classes, input_shape=(None, None, 3), alignment="reference",
          learnable_upsampling=False, scale_pools=False, width=1.0, dropout=0.5,
          weights: str | None = None):
    """FCN-8s: FCN-16s plus a pool3 skip (2×, 2×, then 8× up)."""
    return fcn(num_classes, input_shape, 8, alignment, learnable_upsampling, scale_pools, width,
               dropout, weights)
