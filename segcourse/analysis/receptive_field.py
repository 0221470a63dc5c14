"""Theoretical receptive fields of a Keras functional model, layer by layer.

For every layer: ``size`` (how many input pixels, along one axis, can reach one of its units),
``jump`` (how many input pixels apart two neighbouring units are: the effective stride) and
``start`` (the input coordinate of the centre of the first unit's field; pixel ``i`` has its
centre at ``i``; unit ``m``'s field is centred at ``start + m jump``). For a chain of
convolutions and poolings these follow the recurrence of
Araujo, Norris & Sim ("Computing Receptive Fields of Convolutional Neural Networks", Distill
2019), for kernel ``k``, dilation ``d``, stride ``s`` and padding ``p`` before the first input:

    k' = d (k - 1) + 1;  size += (k' - 1) jump;  start += ((k' - 1) / 2 - p) jump;  jump *= s

Upsampling breaks that recurrence: after a transposed convolution or a resize, neighbouring
units no longer see translated copies of one field (a stride-2 transposed convolution with
k = 3 gives one input unit to even outputs and two to odd ones — the checkerboard, seen from
the receptive field). So the fields here are computed *exactly, unit by unit*: an interval of
output units is mapped back through every layer to the interval of input pixels it can depend
on (the hull over all paths through branches and skips; :func:`unit_fields`). ``size`` is the
largest such field over one period of units in the middle of the map, ``jump`` the mean
spacing of their centres and ``start`` the mean offset (centres wobble around
``start + m jump`` by less than the coarsest jump). Without upsampling this is the recurrence
above, number for number. Padding counts as input (the usual convention); resizing reads clamp
to the edge of the map, so global context is the whole map, not more.

Handled: convolutions (strided, dilated, depthwise, separable, transposed), pooling (also with
argmax, adaptive and global: global pooling sees the whole input, size ``inf``), zero padding,
cropping, resizing (nearest, bilinear, bicubic, Lanczos, area; by a factor, to a size or to a
reference), bed of nails, max unpooling, merges, element-wise layers, and this package's
composite layers (ASPP, PyramidPooling, ContextModule, AtrousConvBlock, ResizeConv). Anything
else is refused by name rather than guessed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import keras
import numpy as np

from segcourse import graph
from segcourse.analysis.arithmetic import same_padding, span
from segcourse.layers import (
    ASPP,
    AtrousConvBlock,
    BedOfNails,
    ContextModule,
    CropToReference,
    MaxPoolingWithArgmax2D,
    MaxUnpooling2D,
    PyramidPooling,
    Resize,
    ResizeConv,
)

_ELEMENTWISE = (keras.layers.Activation, keras.layers.BatchNormalization, keras.layers.ReLU,
                keras.layers.LeakyReLU, keras.layers.Softmax, keras.layers.Dropout,
                keras.layers.SpatialDropout2D, keras.layers.Rescaling, keras.layers.Identity,
                keras.layers.LayerNormalization, keras.layers.GroupNormalization,
                keras.layers.Normalization)
_MERGES = (keras.layers.Add, keras.layers.Concatenate, keras.layers.Multiply,
           keras.layers.Average, keras.layers.Maximum, keras.layers.Minimum,
           keras.layers.Subtract)
_WINDOWED = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D,
             keras.layers.MaxPooling2D, keras.layers.AveragePooling2D, MaxPoolingWithArgmax2D)
_TRANSPOSED = (keras.layers.Conv2DTranspose,)
_GLOBAL = (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)
# half-width of the interpolation kernel, in input pixels, for resizing up
_RADIUS = {"bilinear": 1, "bicubic": 2, "mitchellcubic": 2, "lanczos3": 3, "lanczos5": 5}


@dataclass(frozen=True)
class Field:
    """Receptive field along one axis, in input pixels (``size`` is ``inf`` when every input
    pixel can reach a unit, e.g. after global pooling)."""

    size: float
    jump: float
    start: float

    @property
    def whole_input(self) -> bool:
        """Whether the field covers the whole input (``inf``: a global pooling on its path)."""
        return math.isinf(self.size)


# --------------------------------------------------------------------------------------------
# Intervals of units: arrays of inclusive (lo, hi); empty where lo > hi


def _hull(a, b):
    if a is None:
        return b
    lo_a, hi_a = a
    lo_b, hi_b = b
    empty_a, empty_b = lo_a > hi_a, lo_b > hi_b
    lo = np.where(empty_a, lo_b, np.where(empty_b, lo_a, np.minimum(lo_a, lo_b)))
    hi = np.where(empty_a, hi_b, np.where(empty_b, hi_a, np.maximum(hi_a, hi_b)))
    return lo, hi


def _floor_div(numerator, denominator):
    """floor(numerator / denominator) for arrays that may hold ±inf."""
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(numerator), np.floor(numerator / denominator), numerator)


def _ceil_div(numerator, denominator):
    return -_floor_div(-numerator, denominator)


def _window(interval, kernel, stride, dilation, before):
    lo, hi = interval
    return lo * stride - before, hi * stride - before + span(kernel, dilation) - 1


def _whole(interval, length=None):
    """Every unit of a map of ``length`` units (all of them, ``inf``, when unknown)."""
    lo, hi = interval
    empty = lo > hi
    first, last = (-np.inf, np.inf) if length is None else (0, length - 1)
    return np.where(empty, lo, first), np.where(empty, hi, last)


def _clamp(interval, length):
    """Resizing reads clamp to the edge: nothing beyond the map is read."""
    if length is None:
        return interval
    lo, hi = interval
    empty = lo > hi
    return (np.where(empty, lo, np.clip(lo, 0, length - 1)),
            np.where(empty, hi, np.clip(hi, 0, length - 1)))


def _resample(interval, n_in, n_out, interpolation, antialias=False, length=None):
    """Input pixels that half-pixel resampling by ``n_out / n_in`` reads for each output:
    sample ``m`` sits at ``x = (m + 1/2) n_in / n_out - 1/2``; ``length``, when known, is the
    input's size (reads are clamped to it)."""
    lo, hi = interval
    if interpolation == "nearest":  # the input pixel whose cell holds the sample
        return _clamp((_floor_div((2 * lo + 1) * n_in, 2 * n_out),
                       _floor_div((2 * hi + 1) * n_in, 2 * n_out)), length)
    if interpolation == "area":  # every input cell the output cell overlaps
        return _clamp((_floor_div(lo * n_in, n_out), _ceil_div((hi + 1) * n_in, n_out) - 1),
                      length)
    if interpolation not in _RADIUS:
        raise ValueError(f"receptive fields do not know the support of {interpolation!r} "
                         f"resizing; known: nearest, area, {', '.join(_RADIUS)}.")
    radius = Fraction(_RADIUS[interpolation])
    if antialias and n_out < n_in:  # the kernel is stretched when shrinking
        radius *= Fraction(n_in, n_out)
    # |i - x| < radius, with 2 n_out x = (2m + 1) n_in - n_out kept in integers. Lanczos
    # weights at |i - x| = radius are sin(k pi) in floating point: tiny but not zero, so the
    # closed interval is what the arithmetic really reads.
    reach = float(2 * n_out * radius)
    centre_lo, centre_hi = (2 * lo + 1) * n_in - n_out, (2 * hi + 1) * n_in - n_out
    if interpolation.startswith("lanczos"):
        first, last = _ceil_div(centre_lo - reach, 2 * n_out), _floor_div(centre_hi + reach,
                                                                            2 * n_out)
    else:
        first = _floor_div(centre_lo - reach, 2 * n_out) + 1
        last = _ceil_div(centre_hi + reach, 2 * n_out) - 1
    return _clamp((first, last), length)


# --------------------------------------------------------------------------------------------
# One layer, backwards: the interval of each input tensor that an interval of outputs reads


def _length(tensor, axis):
    return tensor.shape[1 + axis]


def _same_before(length, kernel, stride, dilation):
    if length is None:  # assume the stride divides the input
        return max(span(kernel, dilation) - stride, 0) // 2
    return same_padding(length, kernel, stride, dilation)[0]


def _axis_value(value, axis):
    return value[axis] if isinstance(value, tuple | list) else value


def _conv_back(layer, interval, length, axis):
    kernel = _axis_value(getattr(layer, "kernel_size", None) or layer.pool_size, axis)
    stride = _axis_value(getattr(layer, "strides", None) or layer.pool_size, axis)
    dilation = _axis_value(getattr(layer, "dilation_rate", 1), axis)
    padding = getattr(layer, "padding", "valid")
    before = _same_before(length, kernel, stride, dilation) if padding == "same" else 0
    return _window(interval, kernel, stride, dilation, before)


def _transposed_back(layer, interval, length_out, axis):
    kernel, stride = layer.kernel_size[axis], layer.strides[axis]
    dilation = layer.dilation_rate[axis]
    crop = _same_before(length_out, kernel, stride, dilation) if layer.padding == "same" else 0
    lo, hi = interval
    # full output u = i s + t d: inputs ceil((u - k' + 1) / s) .. floor(u / s)
    return (_ceil_div(lo + crop - span(kernel, dilation) + 1, stride),
            _floor_div(hi + crop, stride))


def _need(length, layer, what):
    if length is None:
        raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) needs a known {what} "
                         "to compute receptive fields; build the model with a fixed input size, "
                         "e.g. keras.Input((64, 64, 3)).")
    return length


def _resize_back(layer, interval, inputs, outputs, axis):
    length = _length(inputs[0], axis)
    if layer.scale is not None:
        n_in, n_out = 1, layer.scale[axis]
    else:
        n_in = _need(length, layer, "input size")
        n_out = _need(_length(outputs[0], axis), layer, "output size")
    return _resample(interval, n_in, n_out, layer.interpolation, layer.antialias, length)


def _aspp_back(layer, interval, length):
    fields = _whole(interval, length)  # the image-pooling branch sees the whole map
    for rate in (1, *layer.rates):
        fields = _hull(fields, _window(interval, 3 if rate > 1 else 1, 1, rate,
                                       rate if rate > 1 else 0))
    return fields


def _context_back(layer, interval):
    for dilation in reversed(layer.dilations):  # the final 1x1 changes nothing
        interval = _window(interval, 3, 1, dilation, dilation)
    return interval


def _pyramid_back(layer, interval, length, axis):
    n = _need(length, layer, "input size")
    field = interval  # the identity branch
    for bins in layer.bins:
        cells = _resample(interval, bins, n, layer.interpolation, length=bins)  # back to n
        lo, hi = cells  # adaptive bins: cell j covers [floor(j n / b), ceil((j + 1) n / b))
        field = _hull(field, (_floor_div(lo * n, bins), _ceil_div((hi + 1) * n, bins) - 1))
    return field


def _crop_offset(layer, inputs, axis):
    if layer.offset is not None:
        return layer.offset
    size = _need(_length(inputs[0], axis), layer, "input size")
    target = _need(_length(inputs[1], axis), layer, "reference size")
    return (size - target) // 2


def _backward(layer, interval, inputs, outputs, axis):
    """``[(input position, interval), ...]`` for one layer."""
    length = _length(inputs[0], axis)
    lo, hi = interval
    if isinstance(layer, _ELEMENTWISE):
        result = interval
    elif isinstance(layer, _MERGES):
        return [(i, interval) for i in range(len(inputs))]
    elif isinstance(layer, keras.layers.ZeroPadding2D):
        before = layer.padding[axis][0]
        result = (lo - before, hi - before)
    elif isinstance(layer, keras.layers.Cropping2D):
        before = layer.cropping[axis][0]
        result = (lo + before, hi + before)
    elif isinstance(layer, CropToReference):
        offset = _crop_offset(layer, inputs, axis)
        result = (lo + offset, hi + offset)
    elif isinstance(layer, _TRANSPOSED):
        result = _transposed_back(layer, interval, _length(outputs[0], axis), axis)
    elif isinstance(layer, _WINDOWED):
        result = _conv_back(layer, interval, length, axis)
    elif isinstance(layer, _GLOBAL):
        result = _whole(interval, length)
    elif isinstance(layer, Resize):
        result = _resize_back(layer, interval, inputs, outputs, axis)
    elif isinstance(layer, keras.layers.UpSampling2D):
        result = _resample(interval, 1, layer.size[axis], layer.interpolation, length=length)
    elif isinstance(layer, MaxUnpooling2D):  # any window position may hold the maximum
        factor = layer.pool_size[axis]
        result = (_floor_div(lo, factor), _floor_div(hi, factor))
    elif isinstance(layer, BedOfNails):  # only every factor-th output holds a value
        factor = layer.factor[axis]
        result = (_ceil_div(lo, factor), _floor_div(hi, factor))
    elif isinstance(layer, AtrousConvBlock):
        k, d = layer.kernel_size, layer.dilation_rate
        result = _window(interval, k, 1, d, _same_before(None, k, 1, d))
    elif isinstance(layer, ResizeConv):
        k = layer.kernel_size[axis]
        result = _resample(_window(interval, k, 1, 1, _same_before(None, k, 1, 1)), 1,
                           layer.factor[axis], layer.interpolation, length=length)
    elif isinstance(layer, ASPP):
        result = _aspp_back(layer, interval, length)
    elif isinstance(layer, ContextModule):
        result = _context_back(layer, interval)
    elif isinstance(layer, PyramidPooling):
        result = _pyramid_back(layer, interval, length, axis)
    elif isinstance(layer, keras.Model):
        raise ValueError(f"receptive fields: layer {layer.name!r} is a nested model; build the "
                         "outer model on its layers instead, e.g. keras.Model(inner.input, "
                         "head(inner.output)).")
    else:
        raise ValueError(f"receptive fields: layer {layer.name!r} ({type(layer).__name__}) is "
                         "not handled; supported are convolutions, pooling, padding, cropping, "
                         "resizing, unpooling, merges, element-wise layers and segcourse's "
                         "composite layers.")
    return [(0, result)]  # extra inputs (unpooling indices, a resize or crop reference) only
    # give positions or sizes; the indices come from the same pooled units as the values


# --------------------------------------------------------------------------------------------
# The graph


def _call(layer):
    """The layer's one call in the graph (shared layers are refused)."""
    found = graph.calls(layer)
    if len(found) > 1:
        raise ValueError(f"layer {layer.name!r} is used {len(found)} times "
                         "(shared weights); receptive fields handle layers used once.")
    return found[0]


def _source(tensor):
    """(name of the layer that made ``tensor``, which of its outputs it is)."""
    made_by = graph.producer(tensor)
    return made_by.operation.name, made_by.index


def _input_name(model):
    if len(model.inputs) != 1:
        raise ValueError(f"receptive fields need a model with one input; {model.name!r} has "
                         f"{len(model.inputs)}.")
    return _source(model.inputs[0])[0]


def unit_fields(model: keras.Model, layer_name: str, units, axis: int = 0):
    """Exact input-pixel intervals ``(first, last)`` (inclusive, before clipping to the image)
    that units ``units`` (indices along ``axis``: 0 rows, 1 columns) of layer ``layer_name``
    can depend on. Arrays; ``first > last`` marks a unit no input reaches."""
    layers = {layer.name: layer for layer in model.layers}
    if layer_name not in layers:
        raise ValueError(f"model {model.name!r} has no layer {layer_name!r}; its layers: "
                         f"{', '.join(list(layers)[:12])}, ...")
    units = np.asarray(units, dtype="float64")
    pending = {(layer_name, None): (units, units.copy())}  # None: any output of the layer
    input_name = _input_name(model)
    for layer in reversed(model.layers):
        interval = None
        for key in [k for k in pending if k[0] == layer.name]:
            interval = _hull(interval, pending.pop(key))
        if interval is None or layer.name == input_name:
            if interval is not None:
                pending[(input_name, None)] = interval
            continue
        inputs, outputs = _call(layer)
        for position, reached in _backward(layer, interval, inputs, outputs, axis):
            key = _source(inputs[position])
            pending[key] = _hull(pending.get(key), reached)
    interval = None  # (a Sequential model does not list its input layer)
    for key in [k for k in pending if k[0] == input_name]:
        interval = _hull(interval, pending.pop(key))
    if interval is None:
        raise ValueError(f"layer {layer_name!r} does not depend on the model input.")
    return interval


def _jumps(model: keras.Model, axis: int) -> dict[str, Fraction | None]:
    """The spacing of each layer's units in input pixels (None: a single global unit)."""
    jumps: dict[str, Fraction | None] = {_input_name(model): Fraction(1)}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            jumps[layer.name] = Fraction(1)
            continue
        inputs, outputs = _call(layer)
        sources = [jumps[_source(t)[0]] for t in inputs]
        if isinstance(layer, _MERGES):
            known = {j for j in sources if j is not None}
            if len(known) > 1:
                raise ValueError(f"layer {layer.name!r} merges branches with strides "
                                 f"{sorted(float(j) for j in known)}: their units do not line up.")
            jumps[layer.name] = known.pop() if known else None
        elif isinstance(layer, _GLOBAL) or sources[0] is None:
            jumps[layer.name] = None
        else:
            jumps[layer.name] = sources[0] * _scale(layer, inputs, outputs, axis)
    return jumps


def _scale(layer, inputs, outputs, axis) -> Fraction:
    """How many of its input's units one step between a layer's outputs moves."""
    if isinstance(layer, _TRANSPOSED):
        return Fraction(1, layer.strides[axis])
    if isinstance(layer, _WINDOWED):
        return Fraction(_axis_value(getattr(layer, "strides", None) or layer.pool_size, axis))
    if isinstance(layer, keras.layers.UpSampling2D):
        return Fraction(1, layer.size[axis])
    if isinstance(layer, Resize):
        if layer.scale is not None:
            return Fraction(1, layer.scale[axis])
        return Fraction(_need(_length(inputs[0], axis), layer, "input size"),
                        _need(_length(outputs[0], axis), layer, "output size"))
    if isinstance(layer, ResizeConv):
        return Fraction(1, layer.factor[axis])
    if isinstance(layer, MaxUnpooling2D):
        return Fraction(1, layer.pool_size[axis])
    if isinstance(layer, BedOfNails):
        return Fraction(1, layer.factor[axis])
    return Fraction(1)


def _field(model, layer, jump, coarsest, axis) -> Field:
    # fields repeat once every unit of the coarsest grid has come round again; measure one
    # period in the middle of the map, away from the borders
    period = 1 if jump is None else min(512, math.ceil(coarsest / jump))
    length = _length(_call(layer).outputs[0], axis)
    units = np.arange(period) + (max(0, length // 2 - period // 2) if length else 0)
    lo, hi = unit_fields(model, layer.name, units, axis)
    sizes = np.where(lo > hi, 0, hi - lo + 1)
    with np.errstate(invalid="ignore"):  # the centre of a whole-input field is undefined
        start = float(np.mean((lo + hi) / 2 - units * float(jump or 0)))
    return Field(float(sizes.max()), math.nan if jump is None else float(jump), start)


def _coarsest(jumps) -> Fraction:
    return max((j for j in jumps.values() if j is not None), default=Fraction(1))


def receptive_fields(model: keras.Model, axis: int = 0) -> dict[str, Field]:
    """``{layer name: Field}`` for every layer of a functional model, in graph order."""
    jumps = _jumps(model, axis)
    coarsest = _coarsest(jumps)
    return {layer.name: _field(model, layer, jumps[layer.name], coarsest, axis)
            for layer in model.layers}


def receptive_field(model: keras.Model, layer_name: str, axis: int = 0) -> Field:
    """The field of one named layer."""
    layers = {layer.name: layer for layer in model.layers}
    if layer_name not in layers:
        raise ValueError(f"model {model.name!r} has no layer {layer_name!r}.")
    jumps = _jumps(model, axis)
    return _field(model, layers[layer_name], jumps[layer_name], _coarsest(jumps), axis)


def field_table(model: keras.Model, axis: int = 0) -> str:
    """One line per layer: name, type, output size, field size, jump and start."""
    fields = receptive_fields(model, axis)
    lines = [f"{'layer':<28} {'type':<22} {'output':>8} {'field':>7} {'jump':>7} {'start':>8}"]
    for layer in model.layers:
        field = fields[layer.name]
        shape = tuple(_call(layer).outputs[0].shape)
        output = "x".join("?" if s is None else str(s) for s in shape[1:3])
        size = "all" if field.whole_input else f"{field.size:g}"
        lines.append(f"{layer.name[:28]:<28} {type(layer).__name__[:22]:<22} {output:>8} "
                     f"{size:>7} {field.jump:>7g} {field.start:>8g}")
    return "\n".join(lines)


def plot_receptive_fields(model: keras.Model, layer_names=None, axis: int = 0, ax=None):
    """Field size and jump per layer (log scale), with the input size for reference."""
    import matplotlib.pyplot as plt

    fields = receptive_fields(model, axis)
    names = list(layer_names) if layer_names is not None else [
        layer.name for layer in model.layers if not isinstance(layer, _ELEMENTWISE)]
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6, 0.3 * len(names)), 3.5))
    sizes = [fields[n].size for n in names]
    finite = [s for s in sizes if math.isfinite(s)]
    top = 2 * max(finite, default=1)
    label = "receptive field" + ("" if len(finite) == len(sizes) else " (whole input: top)")
    ax.plot(range(len(names)), [s if math.isfinite(s) else top for s in sizes], "o-",
            label=label)
    ax.plot(range(len(names)), [fields[n].jump for n in names], "s--", label="jump")
    length = model.inputs[0].shape[1 + axis]
    if length:
        ax.axhline(length, color="grey", lw=0.8, label=f"input size {length}")
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=90, fontsize=7)
    ax.set_ylabel("input pixels")
    ax.legend(fontsize=8)
    ax.figure.tight_layout()
    return ax.figure
