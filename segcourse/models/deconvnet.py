"""DeconvNet (Noh, Hong & Han, "Learning Deconvolution Network for Semantic Segmentation",
ICCV 2015: Fig. 2 and the paper's configuration table; the authors' reference Caffe net,
``DeconvNet_inference_deploy.prototxt``).

Read top to bottom like the configuration table, for a 224 × 224 object proposal:

- Convolution network: VGG16's 13 convolutions, five 2×2 max poolings that remember where each
  maximum was (224 → 7); fc6, a 7×7 valid convolution to 4096 (7 × 7 → 1 × 1); fc7, 1×1 to 4096.
- Deconvolution network, the mirror image: ``fc6_deconv``, a 7×7 transposed convolution back to
  7 × 7 × 512; then, block 5 down to 1, unpooling with the indices of that block's pooling and
  3×3 transposed convolutions (the paper's "deconvolutions"), narrowing where the encoder
  widened (deconv4_3 to 256, deconv3_3 to 128, deconv2_2 to 64); a 1×1 ``score`` to the
  classes (21 for PASCAL VOC). Outputs are logits.
- Batch normalization after every convolution and deconvolution, fc6, fc7 and ``fc6_deconv``
  included, then ReLU (the paper's training section, "Batch Normalization"; so does the
  reference net); not after ``score``. No dropout, in the paper or the reference.

The encoder and the decoder's filters are SegNet's (:mod:`segcourse.models.segnet`). One
difference from the reference net, on purpose: its convolutions have biases before batch norm,
whose shift makes them redundant (:mod:`segcourse.models.blocks`), so they are left out.
Parameters, 21 classes: the convolutions' weights and biases, as the reference has them and
without batch norm, are 251,772,245, the paper's "252M" (fc6 and ``fc6_deconv`` hold 102.8M
each); built here, 251,788,949 trainable (less 16,704 biases, plus batch norm's γ and β) and
33,408 batch-norm moving statistics.

Input size: height and width multiples of 32 (five poolings, each unpooled back) and at least
32 × ``fc_kernel``, so that the valid fc6 fits on pool5: 224 for the paper's 7×7. At 224 fc6 is
1 × 1, as in the paper; a larger multiple of 32 slides fc6 over pool5 (FCN's reading of a
classifier, Long et al. 2015, §3.1), ``fc6_deconv`` restores pool5's size, and the output is
still the input's size. ``fc_kernel`` is the pool5 size fc6 turns into 1 × 1. The small size
keeps every layer of the table at an eighth of the width, with ``fc_kernel=1`` so that any
multiple of 32 fits (the CPU profile's 64 × 64 pictures; 224 × 224 would cost 12 times the
pixels).
"""

from __future__ import annotations

import keras
from keras import layers

from segcourse.layers import MaxUnpooling2D
from segcourse.models.backbones import scaled
from segcourse.models.blocks import conv_bn_relu
from segcourse.models.registry import check_input_size, register_model
from segcourse.models.segnet import decoder_filters, vgg16_encoder_with_indices

STRIDE = 32  # five 2×2 poolings


def _check(input_shape, fc_kernel=7, **_):
    """What the builder refuses, before it builds anything (the registry calls it first)."""
    if fc_kernel < 1:
        raise ValueError(f"deconvnet: fc_kernel is fc6's kernel size, the pool5 size it turns "
                         f"into 1 × 1 (7 in the paper, for 224 × 224 inputs), at least 1; got "
                         f"{fc_kernel}.")
    smallest = STRIDE * fc_kernel
    for axis, size in zip(("height", "width"), tuple(input_shape)[:2], strict=False):
        if size is not None and 1 <= size < smallest:
            pool5 = size // STRIDE
            smaller = (f", or give fc_kernel={pool5} (pool5's {axis} is {pool5} there)"
                       if pool5 else "")
            raise ValueError(
                f"deconvnet: input {axis} {size} is too small: fc6 is a valid {fc_kernel}×"
                f"{fc_kernel} convolution on pool5 (1/{STRIDE} of the input), so the input must "
                f"be a multiple of {STRIDE} of at least {STRIDE} × {fc_kernel} = {smallest} (the "
                f"paper's proposals are 224 × 224). Resize the images to {smallest}{smaller}.")
    check_input_size(input_shape, STRIDE, "deconvnet")


@register_model("deconvnet", small={"width": 0.125, "fc_kernel": 1}, check=_check)
def deconvnet(num_classes, input_shape=(None, None, 3), width=1.0, fc_kernel=7):
    """DeconvNet: VGG16 with BN, fc6/fc7, and a mirrored deconvolution network with unpooling."""
    _check(input_shape, fc_kernel)
    inputs = keras.Input(input_shape, name="image")

    # Convolution network: VGG16 with batch norm, poolings that keep their argmax; fc6, fc7.
    x, indices = vgg16_encoder_with_indices(inputs, width)
    x = conv_bn_relu(x, scaled(4096, width), fc_kernel, "fc6", padding="valid")
    x = conv_bn_relu(x, scaled(4096, width), 1, "fc7")

    # Deconvolution network: fc6_deconv, then unpooling and deconvolutions, block 5 to 1.
    x = conv_bn_relu(x, scaled(512, width), fc_kernel, "fc6_deconv", padding="valid",
                     transposed=True)
    plan = decoder_filters(width)
    for block in range(5, 0, -1):
        x = MaxUnpooling2D(2, name=f"block{block}_unpool")([x, indices[block]])
        for i, filters in enumerate(plan[block], start=1):
            x = conv_bn_relu(x, filters, 3, f"block{block}_deconv{i}", padding="same",
                             transposed=True)
    outputs = layers.Conv2D(num_classes, 1, name="score")(x)
    return keras.Model(inputs, outputs, name="deconvnet")
