"""Instruments for the labs: convolution arithmetic, receptive fields (theoretical and
effective), checkerboard measurement, the valid taps of atrous filters and per-layer
summaries."""

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
from segcourse.analysis.atrous_taps import valid_tap_counts, valid_tap_fraction, valid_taps_1d
from segcourse.analysis.checkerboard import (
    checkerboard_score,
    compare_upsamplers,
    flat_field_response,
    gradient_checkerboard,
    overlap_counts,
    plot_overlap,
    score_map_checkerboard,
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
from segcourse.analysis.summary import ModelSummary, plot_summary, summarize

__all__ = [
    "EffectiveField",
    "Field",
    "ModelSummary",
    "check_output_shape",
    "checkerboard_score",
    "compare_upsamplers",
    "conv_matrix",
    "conv_output_length",
    "effective_receptive_field",
    "field_table",
    "flat_field_response",
    "gradient_checkerboard",
    "gradient_support",
    "input_gradient",
    "linearized",
    "overlap_counts",
    "plot_conv_matrix",
    "plot_effective_field",
    "plot_overlap",
    "plot_receptive_fields",
    "plot_summary",
    "pool_output_length",
    "receptive_field",
    "receptive_fields",
    "score_map_checkerboard",
    "summarize",
    "symbolic_convolution",
    "symbolic_transposed_convolution",
    "theoretical_support",
    "transposed_output_length",
    "unit_fields",
    "valid_tap_counts",
    "valid_tap_fraction",
    "valid_taps_1d",
]
