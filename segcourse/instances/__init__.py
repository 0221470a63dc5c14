"""Instances from semantics, and what an instance-segmentation head needs around it: connected
components (and where they merge two objects), RoIPool and RoIAlign, mask targets and pasting.
NumPy only; the Keras mask head and its loss are :mod:`segcourse.models.mask_head`."""

from segcourse.instances.components import (
    Instances,
    connected_components,
    semantic_to_instances,
)
from segcourse.instances.masks import crop_mask_targets, instance_boxes, paste_masks
from segcourse.instances.roi import (
    bilinear,
    check_boxes,
    quantization_error,
    quantized_box,
    roi_align,
    roi_pool,
    roi_pool_bins,
    sample_positions,
)

__all__ = [
    "Instances",
    "bilinear",
    "check_boxes",
    "connected_components",
    "crop_mask_targets",
    "instance_boxes",
    "paste_masks",
    "quantization_error",
    "quantized_box",
    "roi_align",
    "roi_pool",
    "roi_pool_bins",
    "sample_positions",
    "semantic_to_instances",
]
