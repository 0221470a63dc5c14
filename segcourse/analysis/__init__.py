"""Instruments for the labs: receptive fields (so far); convolution arithmetic, checkerboard
measurement and per-layer summaries are to come."""

from segcourse.analysis.receptive_field import Field, receptive_field, receptive_fields

__all__ = ["Field", "receptive_field", "receptive_fields"]
