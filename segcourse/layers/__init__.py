"""Keras 3 layers for segmentation: upsampling, unpooling, atrous convolutions, pyramid pooling.

Every layer is registered under the ``segcourse`` package for the ``.keras`` format, so a saved
model loads back after ``import segcourse.layers``, or in any process with
``segcourse.load_model(path)``.
"""

from segcourse.layers.atrous import ASPP, AtrousConvBlock, ContextModule, IdentityKernel
from segcourse.layers.crop import CropToReference
from segcourse.layers.pyramid import PyramidPooling, adaptive_average_pool
from segcourse.layers.unpooling import MaxPoolingWithArgmax2D, MaxUnpooling2D, flat_indices
from segcourse.layers.upsampling import (
    INTERPOLATIONS,
    KERAS_BACKENDS,
    KERAS_INTERPOLATIONS,
    PORTABLE_INTERPOLATIONS,
    TENSORFLOW_ONLY_INTERPOLATIONS,
    BedOfNails,
    BilinearKernel,
    Resize,
    ResizeConv,
    bilinear_kernel,
    bilinear_kernel_1d,
    interpolate_by_zero_insertion,
    resize_images,
    zero_insertion,
    zero_insertion_filter,
)

__all__ = [
    "ASPP",
    "INTERPOLATIONS",
    "KERAS_BACKENDS",
    "KERAS_INTERPOLATIONS",
    "PORTABLE_INTERPOLATIONS",
    "TENSORFLOW_ONLY_INTERPOLATIONS",
    "AtrousConvBlock",
    "BedOfNails",
    "BilinearKernel",
    "ContextModule",
    "CropToReference",
    "IdentityKernel",
    "MaxPoolingWithArgmax2D",
    "MaxUnpooling2D",
    "PyramidPooling",
    "Resize",
    "ResizeConv",
    "adaptive_average_pool",
    "bilinear_kernel",
    "bilinear_kernel_1d",
    "flat_indices",
    "interpolate_by_zero_insertion",
    "resize_images",
    "zero_insertion",
    "zero_insertion_filter",
]
