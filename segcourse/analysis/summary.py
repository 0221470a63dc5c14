"""Per-layer tables: output shape, activation memory, parameters and multiply-accumulates.

The classic walk-through of VGG16 (Simonyan & Zisserman 2015) counts, per layer, the numbers a
forward pass stores (activations) and learns (parameters): memory is spent early, at full
resolution, while parameters pile up late, in the fully connected layers. :func:`summarize`
gives those counts exactly for any functional model, so a lab can set them beside the lecture's
rounded figures.

Counted: ``activations`` = elements of each layer's output per picture (the input included;
reshaping layers that only re-view their input — Flatten, Reshape, Identity — are not counted
again); ``macs`` = multiply-accumulates of convolutions (plain, dilated, depthwise, separable,
transposed) and dense layers, also inside segcourse's composite layers; element-wise layers,
pooling and resizing count 0 MACs. FLOPs are quoted as 2 × MACs.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from segcourse import graph
from segcourse.layers import ASPP, AtrousConvBlock, ContextModule, PyramidPooling, ResizeConv

_VIEWS = (keras.layers.Flatten, keras.layers.Reshape, keras.layers.Identity,
          keras.layers.Permute)


@dataclass(frozen=True)
class LayerSummary:
    """One layer: its output shape, activations per picture, parameters and MACs."""
    name: str
    kind: str
    output_shape: tuple
    activations: int
    params: int
    macs: int | None  # None: a layer whose arithmetic is not counted here


@dataclass(frozen=True)
class ModelSummary:
    """A model layer by layer (one picture), with totals, as the lecture's VGG table."""
    rows: list[LayerSummary]
    bytes_per_value: int

    @property
    def params(self) -> int:
        """Parameters of every layer together."""
        return sum(r.params for r in self.rows)

    @property
    def activations(self) -> int:
        """Values of every layer's output for one picture."""
        return sum(r.activations for r in self.rows)

    @property
    def activation_bytes(self) -> int:
        """The activations' memory at ``bytes_per_value`` each (4 for float32)."""
        return self.activations * self.bytes_per_value

    @property
    def macs(self) -> int:
        """Multiply-accumulates of one forward pass over the counted layers."""
        return sum(r.macs or 0 for r in self.rows)

    def row(self, name: str) -> LayerSummary:
        """The summary of the layer called ``name``."""
        for r in self.rows:
            if r.name == name:
                return r
        raise ValueError(f"no layer {name!r} in the summary.")

    def table(self) -> str:
        """The layers and totals as an aligned text table."""
        lines = [f"{'layer':<24} {'output':>16} {'activations':>12} {'memory':>10} "
                 f"{'params':>12} {'MACs':>15}"]
        for r in self.rows:
            memory = _bytes(r.activations * self.bytes_per_value)
            macs = "?" if r.macs is None else f"{r.macs:,}"
            lines.append(f"{r.name[:24]:<24} {r.output_shape!s:>16} {r.activations:>12,} "
                         f"{memory:>10} {r.params:>12,} {macs:>15}")
        lines.append(f"{'total':<24} {'':>16} {self.activations:>12,} "
                     f"{_bytes(self.activation_bytes):>10} {self.params:>12,} {self.macs:>15,}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return (f"{self.params:,} parameters; {self.activations:,} activations per picture "
                f"= {_bytes(self.activation_bytes)} at {self.bytes_per_value} bytes each "
                "(forward pass; training keeps about as much again for the gradients); "
                f"{self.macs / 1e9:.2f} G multiply-accumulates ({2 * self.macs / 1e9:.2f} GFLOPs)")


def _bytes(count: int) -> str:
    if count < 1000:
        return f"{count:.0f} B"
    for unit in ("KB", "MB", "GB"):
        count /= 1000
        if count < 1000 or unit == "GB":
            return f"{count:.1f} {unit}"


def _spatial(shape) -> int:
    return int(np.prod(shape[1:-1]))


def _conv_macs(layer, in_shape, out_shape) -> int:
    """Multiply-accumulates of one convolution, from its kernel and its shapes."""
    if isinstance(layer, keras.layers.SeparableConv2D):
        depthwise = _spatial(out_shape) * in_shape[-1] * int(np.prod(layer.kernel_size)) \
            * layer.depth_multiplier
        return depthwise + _spatial(out_shape) * in_shape[-1] * layer.depth_multiplier \
            * out_shape[-1]
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return _spatial(out_shape) * out_shape[-1] * int(np.prod(layer.kernel_size))
    kernel = int(np.prod(layer.kernel.shape))
    if isinstance(layer, keras.layers.Conv2DTranspose):  # every input paints the kernel
        return _spatial(in_shape) * kernel
    if isinstance(layer, keras.layers.Dense):
        return int(np.prod(out_shape[1:-1], dtype=int)) * kernel
    return _spatial(out_shape) * kernel


def _composite_macs(layer, out_shape) -> int | None:
    pixels = _spatial(out_shape)
    if isinstance(layer, AtrousConvBlock):
        return pixels * int(np.prod(layer.conv.kernel.shape))
    if isinstance(layer, ASPP):
        per_pixel = sum(int(np.prod(b.conv.kernel.shape)) for b in layer.branches)
        per_pixel += int(np.prod(layer.fuse.conv.kernel.shape))
        return pixels * per_pixel + int(np.prod(layer.pool_conv.conv.kernel.shape))
    if isinstance(layer, ContextModule):
        return pixels * sum(int(np.prod(c.kernel.shape)) for c in layer.convs)
    if isinstance(layer, ResizeConv):
        return pixels * int(np.prod(layer.conv.kernel.shape))
    if isinstance(layer, PyramidPooling):
        return sum(b * b * int(np.prod(c.conv.kernel.shape))
                   for b, c in zip(layer.bins, layer.convs, strict=True))
    return None


_NORMALIZATIONS = (keras.layers.BatchNormalization, keras.layers.LayerNormalization,
                   keras.layers.GroupNormalization)
_CONVS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D,
          keras.layers.Conv2DTranspose, keras.layers.Dense)


def _macs(layer, in_shape, out_shape) -> int | None:
    if isinstance(layer, _CONVS):
        return _conv_macs(layer, in_shape, out_shape)
    composite = _composite_macs(layer, out_shape)
    if composite is not None:
        return composite
    if not layer.count_params() or isinstance(layer, _NORMALIZATIONS):
        return 0  # element-wise, pooling, resizing, merges: no multiply-accumulates counted
    return None  # weights we do not know how to count: say so rather than guess


def summarize(model: keras.Model, bytes_per_value: int | None = None) -> ModelSummary:
    """One :class:`LayerSummary` per layer of a functional model with a fixed input size."""
    if bytes_per_value is None:
        bytes_per_value = np.dtype(keras.backend.standardize_dtype(
            model.inputs[0].dtype)).itemsize
    rows = []
    for layer in model.layers:
        call = graph.calls(layer)[0]
        out_shape = tuple(call.outputs[0].shape)
        if None in out_shape[1:]:
            raise ValueError(f"layer {layer.name!r} has output shape {out_shape}; summaries "
                             "need a fixed input size, e.g. keras.Input((224, 224, 3)).")
        in_shape = tuple(call.inputs[0].shape) if call.inputs else out_shape
        activations = 0 if isinstance(layer, _VIEWS) else int(np.prod(out_shape[1:]))
        rows.append(LayerSummary(layer.name, type(layer).__name__, out_shape[1:], activations,
                                 layer.count_params(), _macs(layer, in_shape, out_shape)))
    return ModelSummary(rows, bytes_per_value)


def plot_summary(summary: ModelSummary, skip=("InputLayer",)):
    """Two bar charts, layer by layer: activation memory and parameters (log scale; a layer
    without parameters, such as a pooling, has no bar there, and a 0 under the axis)."""
    import matplotlib.pyplot as plt

    rows = [r for r in summary.rows if r.kind not in skip]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(6, 0.35 * len(rows)), 5), sharex=True)
    positions = range(len(rows))
    top.bar(positions, [r.activations * summary.bytes_per_value / 1e6 for r in rows])
    top.set_ylabel("activations (MB)")
    with_params = [(position, r.params) for position, r in zip(positions, rows, strict=True)
                   if r.params]
    bottom.bar([p for p, _ in with_params], [n for _, n in with_params], color="tab:orange")
    bottom.set_yscale("log")
    for position, r in zip(positions, rows, strict=True):
        if not r.params:  # a log axis has no 0: say it where the bar would stand
            bottom.annotate("0", (position, 0), xycoords=("data", "axes fraction"),
                            xytext=(0, 2), textcoords="offset points", ha="center",
                            fontsize=6, color="tab:orange")
    bottom.set_ylabel("parameters")
    bottom.set_xticks(list(positions))
    bottom.set_xticklabels([r.name for r in rows], rotation=90, fontsize=7)
    top.set_title(str(summary).split(";")[0] + f"; {_bytes(summary.activation_bytes)} of "
                  "activations per picture", fontsize=9)
    fig.tight_layout()
    return fig
