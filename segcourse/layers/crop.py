"""Cropping a feature map to the size of another: FCN's Caffe ``Crop`` layer and U-Net's
crop-and-concat.

FCN's reference nets pad conv1_1 by 100 pixels and crop each upsampled score map back at a fixed
offset (Long et al., CVPR 2015, §4.1; 32s: 19; 16s: 5, 27; 8s: 5, 9, 31). U-Net crops each
contracting-path map at its centre to the size of the expanding path (Ronneberger et al.,
MICCAI 2015, Fig. 1: "copy and crop").
"""

from __future__ import annotations

import keras
from keras import ops

from segcourse.layers._validation import check_image_batch

register = keras.saving.register_keras_serializable(package="segcourse")


@register
class CropToReference(keras.layers.Layer):
    """Call on ``[x, reference]``: ``x`` cropped to the reference's height and width.

    ``offset=k`` starts the crop ``k`` pixels in from the top-left (FCN); ``offset=None`` centres
    it, the odd pixel going to the bottom/right (U-Net). Raises when ``x`` is smaller than the
    reference.
    """

    def __init__(self, offset=None, **kwargs):
        super().__init__(**kwargs)
        self.offset = offset

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2:
            raise ValueError("CropToReference is called on [x, reference]; got input shape "
                             f"{input_shape}.")
        check_image_batch(input_shape[0], "CropToReference")
        for axis, name in ((1, "height"), (2, "width")):
            size, target = input_shape[0][axis], input_shape[1][axis]
            start = self.offset or 0
            if size is not None and target is not None and size < target + start:
                raise ValueError(
                    f"CropToReference ({self.name}): cannot crop {name} {size} to {target} at "
                    f"offset {self.offset}; the map is too small. Check the input size or the "
                    "padding of the layers before it.")

    def call(self, inputs):
        x, reference = inputs
        _, height, width, _ = ops.shape(x)
        _, target_height, target_width, _ = ops.shape(reference)
        if self.offset is None:
            top, left = (height - target_height) // 2, (width - target_width) // 2
        else:
            top = left = self.offset
        return x[:, top:top + target_height, left:left + target_width, :]

    def compute_output_shape(self, input_shape):
        x_shape, reference_shape = input_shape
        return (x_shape[0], reference_shape[1], reference_shape[2], x_shape[3])

    def get_config(self):
        return {**super().get_config(), "offset": self.offset}
