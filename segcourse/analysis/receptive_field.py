"""Theoretical receptive fields of a Keras functional model, layer by layer.

For every layer: ``size`` (how many input pixels, along one axis, can reach one of its units),
``jump`` (how many input pixels apart two neighbouring units are: the effective stride) and
``start`` (the input coordinate of the centre of the first unit's field; pixel ``i`` has its
centre at ``i``). The recurrence, for a layer of kernel ``k``, dilation ``d``, stride ``s`` and
padding ``p`` before the first input (Araujo, Norris & Sim, "Computing Receptive Fields of
Convolutional Neural Networks", Distill 2019):

    k' = d (k - 1) + 1;  size += (k' - 1) jump;  start += ((k' - 1) / 2 - p) jump;  jump *= s

Branches merge (Add, Concatenate, ...) by the union of their fields, which must share a jump.
Supported so far: convolutions (dilated, depthwise, separable), pooling, zero padding and
cropping, element-wise layers and merges; any other layer is refused by name rather than
guessed. Transposed convolutions, resizing and global pooling are for later.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

from segcourse.layers import CropToReference

_ELEMENTWISE = (keras.layers.Activation, keras.layers.BatchNormalization, keras.layers.ReLU,
                keras.layers.Dropout, keras.layers.Rescaling, keras.layers.Identity,
                keras.layers.LayerNormalization)
_MERGES = (keras.layers.Add, keras.layers.Concatenate, keras.layers.Multiply,
           keras.layers.Average, keras.layers.Maximum, keras.layers.Subtract)
_WINDOWED = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D,
             keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)


@dataclass(frozen=True)
class Field:
    """Receptive field along one axis (the models here are square in kernel and stride)."""

    size: float
    jump: float
    start: float

    def union(self, other: Field) -> Field:
        if self.jump != other.jump:
            raise ValueError(f"cannot merge fields with jumps {self.jump} and {other.jump}: "
                             "the branches do not have the same stride.")
        low = min(self.start - (self.size - 1) / 2, other.start - (other.size - 1) / 2)
        high = max(self.start + (self.size - 1) / 2, other.start + (other.size - 1) / 2)
        return Field(high - low + 1, self.jump, (low + high) / 2)


def _window(layer):
    kernel = getattr(layer, "kernel_size", None) or layer.pool_size
    strides = layer.strides
    dilation = getattr(layer, "dilation_rate", (1, 1))
    if len(set(kernel)) != 1 or len(set(strides)) != 1 or len(set(dilation)) != 1:
        raise ValueError(f"layer {layer.name!r} is not square (kernel {kernel}, strides "
                         f"{strides}, dilation {dilation}); only square layers are handled.")
    return kernel[0], strides[0], dilation[0]


def _through(layer, field: Field) -> Field:
    if isinstance(layer, _ELEMENTWISE):
        return field
    if isinstance(layer, keras.layers.ZeroPadding2D):
        return Field(field.size, field.jump, field.start - layer.padding[0][0] * field.jump)
    if isinstance(layer, keras.layers.Cropping2D):
        return Field(field.size, field.jump, field.start + layer.cropping[0][0] * field.jump)
    if isinstance(layer, CropToReference) and layer.offset is not None:
        return Field(field.size, field.jump, field.start + layer.offset * field.jump)
    if isinstance(layer, _WINDOWED):
        kernel, stride, dilation = _window(layer)
        span = dilation * (kernel - 1) + 1
        # 'same' with an input the stride divides: TF pads max(span - stride, 0) in all, the
        # smaller half first.
        before = max(span - stride, 0) // 2 if layer.padding == "same" else 0
        return Field(field.size + (span - 1) * field.jump, field.jump * stride,
                     field.start + ((span - 1) / 2 - before) * field.jump)
    raise ValueError(f"receptive_fields does not handle layer {layer.name!r} "
                     f"({type(layer).__name__}) yet.")


def receptive_fields(model: keras.Model) -> dict[str, Field]:
    """``{layer name: Field}`` for every layer of a functional model, in graph order."""
    fields: dict[str, Field] = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            fields[layer.name] = Field(1, 1, 0)
            continue
        inbound = layer._inbound_nodes[0].input_tensors
        sources = [fields[t._keras_history.operation.name] for t in inbound]
        if isinstance(layer, _MERGES):
            merged = sources[0]
            for other in sources[1:]:
                merged = merged.union(other)
            fields[layer.name] = merged
        else:
            if isinstance(layer, CropToReference):
                sources = sources[:1]  # the second input only gives the size
            if len(sources) != 1:
                raise ValueError(f"layer {layer.name!r} has {len(sources)} inputs; "
                                 "receptive_fields knows merges and single-input layers.")
            fields[layer.name] = _through(layer, sources[0])
    return fields


def receptive_field(model: keras.Model, layer_name: str) -> Field:
    """The field of one named layer."""
    fields = receptive_fields(model)
    if layer_name not in fields:
        raise ValueError(f"model {model.name!r} has no layer {layer_name!r}.")
    return fields[layer_name]
