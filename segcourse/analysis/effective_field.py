"""The effective receptive field (Luo, Li, Urtasun & Zemel, "Understanding the Effective
Receptive Field in Deep Convolutional Neural Networks", NeurIPS 2016) and the gradient probe.

The gradient of one output unit with respect to the input says how much each input pixel moves
it. Averaged (in absolute value) over random inputs it is the *effective* receptive field: a
roughly Gaussian blob, much smaller than the theoretical field (for ``n`` stacked convolutions
its width grows like ``sqrt(n)`` while the theoretical one grows like ``n``), and it changes as
the network trains.

Where the gradient is non-zero is the *support*. It never leaves the theoretical field; in a
:func:`linearized` copy (no ReLU, max pooling as averaging, max unpooling as copying, every
weight positive) nothing cancels and it fills the field exactly — which is how
:mod:`~segcourse.analysis.receptive_field` is tested.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from segcourse import graph
from segcourse.analysis.receptive_field import unit_fields
from segcourse.layers import MaxPoolingWithArgmax2D, MaxUnpooling2D
from segcourse.layers._validation import require_tensorflow

register = keras.saving.register_keras_serializable(package="segcourse.analysis")


# --------------------------------------------------------------------------------------------
# Linearization


@register
class _AveragePoolingWithIndices(MaxPoolingWithArgmax2D):
    """Average pooling that still hands on (max) indices, so unpooling layers keep their
    inputs."""

    def call(self, x):
        _, indices = super().call(x)
        values = keras.ops.average_pool(x, self.pool_size, self.pool_size, self.padding)
        return values, indices


@register
class _CopyUnpooling(MaxUnpooling2D):
    """Unpooling that copies each value into its whole window: every position could have been
    the maximum."""

    def call(self, inputs):
        values = inputs[0]
        out = keras.ops.repeat(keras.ops.repeat(values, self.pool_size[0], axis=1),
                               self.pool_size[1], axis=2)
        if len(inputs) == 3:
            _, height, width, _ = keras.ops.shape(inputs[2])
            out = out[:, :height, :width, :]
        return out


def _linear_copy(layer):
    config = layer.get_config()
    if isinstance(layer, keras.layers.Activation | keras.layers.ReLU | keras.layers.LeakyReLU
                  | keras.layers.Softmax):
        return keras.layers.Identity(name=layer.name)
    if isinstance(layer, keras.layers.MaxPooling2D):
        return keras.layers.AveragePooling2D(layer.pool_size, layer.strides, layer.padding,
                                             name=layer.name)
    if isinstance(layer, MaxPoolingWithArgmax2D):
        return _AveragePoolingWithIndices.from_config(config)
    if isinstance(layer, MaxUnpooling2D):
        return _CopyUnpooling.from_config(config)
    return layer.__class__.from_config(config)


def _positive(variable):
    name = variable.path.split("/")[-1]
    shape = tuple(variable.shape)
    if name.endswith("kernel"):
        fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
        return np.full(shape, 1.0 / fan_in, "float32")
    if name in ("gamma", "moving_variance", "scale"):
        return np.ones(shape, "float32")
    return np.zeros(shape, "float32")  # biases, beta, moving_mean, ...


def linearized(model: keras.Model) -> keras.Model:
    """A copy of ``model`` in which nothing cancels: activations removed (also those inside
    convolutions and composite layers), max pooling averaged, max unpooling copied, every
    kernel a positive constant, biases zero, batch norms the identity. Its input gradient is
    non-zero on the whole theoretical receptive field."""
    copy = keras.models.clone_model(model, clone_function=_linear_copy)
    for layer in graph.sublayers(copy):
        if hasattr(layer, "activation") and callable(layer.activation):
            layer.activation = keras.activations.linear
    for variable in copy.weights:
        variable.assign(_positive(variable))
    return copy


# --------------------------------------------------------------------------------------------
# Gradients of one unit


def _tap(model: keras.Model, layer_name: str | None) -> keras.Model:
    if layer_name is None:
        return model
    return keras.Model(model.inputs, model.get_layer(layer_name).output)


def _name(model: keras.Model, layer_name: str | None) -> str:
    """The layer a probe looks at: ``layer_name``, or the layer that makes the model's output."""
    return layer_name or graph.producer(model.outputs[0]).operation.name


def _clipped(model: keras.Model, bounds):
    """Per-axis (first, last) input pixels clipped to the picture; None if outside it."""
    clipped = []
    for axis, (first, last) in enumerate(bounds):
        first, last = max(first, 0), min(last, model.inputs[0].shape[1 + axis] - 1)
        if first > last:
            return None
        clipped.append((int(first), int(last)))
    return tuple(clipped)


def _bounds(model: keras.Model, position, layer_name: str | None):
    """Per-axis theoretical (first, last) input pixels of one unit, before clipping."""
    name = _name(model, layer_name)
    return [tuple(float(v[0]) for v in unit_fields(model, name, [position[axis]], axis))
            for axis in (0, 1)]


def input_gradient(model: keras.Model, inputs, position, layer_name: str | None = None,
                   channel: int | None = None) -> np.ndarray:
    """``d unit / d inputs`` for the unit at ``position`` (row, column) of ``layer_name``
    (default: the model's output), summed over channels unless ``channel`` is given, and over
    the batch (each picture's gradient only depends on itself)."""
    # TensorFlow-only: the gradient comes from tf.GradientTape (keras.ops takes no gradients).
    require_tensorflow("input_gradient", "the input gradient",
                       "The theoretical field (unit_fields) runs on every backend")
    import tensorflow as tf

    tapped = _tap(model, layer_name)
    inputs = tf.Variable(np.asarray(inputs, "float32"))
    with tf.GradientTape() as tape:
        output = tapped(inputs, training=False)
        unit = output[:, position[0], position[1], :]
        unit = tf.reduce_sum(unit if channel is None else unit[..., channel])
    return tape.gradient(unit, inputs).numpy()


def gradient_support(model: keras.Model, position, layer_name: str | None = None,
                     input_shape=None) -> tuple[tuple[int, int], tuple[int, int]]:
    """(first, last) input row and column with a non-zero input gradient for one unit, on a
    picture of ones (``input_shape`` without the batch; default the model's); None when the
    unit does not depend on the picture (e.g. it only sees padding)."""
    shape = tuple(input_shape or model.inputs[0].shape[1:])
    gradient = np.abs(input_gradient(model, np.ones((1, *shape)), position, layer_name))
    touched = gradient[0].sum(axis=-1) > 0
    rows, cols = np.nonzero(touched.any(axis=1))[0], np.nonzero(touched.any(axis=0))[0]
    if not len(rows):
        return None
    return (int(rows.min()), int(rows.max())), (int(cols.min()), int(cols.max()))


def theoretical_support(model: keras.Model, position, layer_name: str | None = None):
    """The theoretical field of one unit, clipped to the input: (first, last) row and column;
    None when it lies wholly outside the picture (in the padding)."""
    return _clipped(model, _bounds(model, position, layer_name))


# --------------------------------------------------------------------------------------------
# The effective receptive field


@dataclass
class EffectiveField:
    """Mean |input gradient| of one unit over random inputs (``heatmap``, max 1) with the
    unit's ``centre`` in input pixels, the half-width ``radius`` of the smallest square around
    it that holds ``mass`` of the total, the gradient-weighted standard deviation ``std`` per
    axis, and the theoretical field (first, last) per axis."""

    heatmap: np.ndarray
    centre: tuple[float, float]
    radius: int
    mass: float
    std: tuple[float, float]
    theoretical: tuple[tuple[int, int], tuple[int, int]]

    @property
    def theoretical_radius(self) -> float:
        """Half-width of the theoretical field (the larger axis), clipped to the input."""
        return max((last - first) / 2 for first, last in self.theoretical)

    def __str__(self) -> str:
        return (f"effective radius {self.radius} px ({self.mass:.0%} of the gradient), "
                f"std {self.std[0]:.2f} x {self.std[1]:.2f} px; theoretical radius "
                f"{self.theoretical_radius:g} px")


def _mass_radius(heatmap, centre, mass):
    rows, cols = np.indices(heatmap.shape)
    distance = np.maximum(np.abs(rows - centre[0]), np.abs(cols - centre[1]))
    order = np.argsort(distance, axis=None, kind="stable")
    cumulative = np.cumsum(heatmap.ravel()[order])
    reached = np.searchsorted(cumulative, mass * cumulative[-1])
    return int(np.ceil(distance.ravel()[order][min(reached, len(order) - 1)]))


def effective_receptive_field(model: keras.Model, layer_name: str | None = None,
                              position=None, samples: int = 16, mass: float = 0.95,
                              seed: int = 0, inputs=None) -> EffectiveField:
    """Luo et al.'s effective receptive field of the unit at ``position`` (default: the
    centre of the layer's map), from ``samples`` standard-normal inputs (or ``inputs``)."""
    tapped = _tap(model, layer_name)
    shape = tuple(model.inputs[0].shape[1:])
    if None in shape:
        raise ValueError(f"model {model.name!r} has input shape {shape}; build it with a fixed "
                         "size, e.g. keras.Input((64, 64, 3)), to measure a receptive field.")
    if position is None:
        position = tuple(int(s) // 2 for s in tapped.outputs[0].shape[1:3])
    if inputs is None:
        inputs = np.random.default_rng(seed).standard_normal((samples, *shape))
    gradient = np.abs(input_gradient(model, inputs, position, layer_name)).mean(axis=0).sum(-1)
    if gradient.max() == 0:
        raise ValueError(f"unit {position} has a zero input gradient (dead ReLUs?); try another "
                         "position or layer.")
    heatmap = gradient / gradient.max()
    bounds = _bounds(model, position, layer_name)
    centre = tuple((first + last) / 2 for first, last in bounds)
    theoretical = _clipped(model, bounds)
    weights = heatmap / heatmap.sum()
    std = tuple(float(np.sqrt((weights.sum(axis=1 - a) * (np.arange(heatmap.shape[a])
                                                            - centre[a]) ** 2).sum()))
                for a in (0, 1))
    return EffectiveField(heatmap, centre, _mass_radius(heatmap, centre, mass), mass, std,
                          theoretical)


def plot_effective_field(field: EffectiveField, title: str | None = None, ax=None):
    """The heat map with the theoretical field (dashed) and the effective radius (solid)."""
    import matplotlib.patches as patches
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(field.heatmap, cmap="magma")
    (top, bottom), (left, right) = field.theoretical
    ax.add_patch(patches.Rectangle((left - 0.5, top - 0.5), right - left + 1, bottom - top + 1,
                                   fill=False, ls="--", ec="cyan", label="theoretical"))
    r, (cy, cx) = field.radius, field.centre
    ax.add_patch(patches.Rectangle((cx - r - 0.5, cy - r - 0.5), 2 * r + 1, 2 * r + 1,
                                   fill=False, ec="white", label=f"{field.mass:.0%} of gradient"))
    ax.legend(loc="lower right", fontsize=7)
    ax.set_title(title or str(field).replace("; ", "\n"), fontsize=8)
    ax.set_axis_off()
    return ax.figure
