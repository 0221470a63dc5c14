"""Instruments for the labs: convolution arithmetic, receptive fields (theoretical and
effective), checkerboard measurement and per-layer summaries."""

from segcourse.analysis.arithmetic import (
    check_output_shape,
    conv_matrix,
    conv_output_length,
    plot_conv_matrix,
    pool_output_length,
    symbolic_convolution,
    symbolic_transposed_convolution,
    transposed_output_length,
)
from segcourse.analysis.effective_field import (
    EffectiveField,
    effective_receptive_field,
    gradient_support,
    input_gradient,
    linearized,
    plot_effective_field,
    theoretical_support,
)
from segcourse.analysis.receptive_field import (
    Field,
    field_table,
    plot_receptive_fields,
    receptive_field,
    receptive_fields,
    unit_fields,
)

__all__ = [
    "EffectiveField",
    "Field",
    "check_output_shape",
    "conv_matrix",
    "conv_output_length",
    "effective_receptive_field",
    "field_table",
    "gradient_support",
    "input_gradient",
    "linearized",
    "plot_conv_matrix",
    "plot_effective_field",
    "plot_receptive_fields",
    "pool_output_length",
    "receptive_field",
    "receptive_fields",
    "symbolic_convolution",
    "symbolic_transposed_convolution",
    "theoretical_support",
    "transposed_output_length",
    "unit_fields",
]
