"""A model's main output: what every prediction path of segcourse reads.

A model with auxiliary heads (PSPNet's deep supervision, ``aux_head=True``: Zhao et al. 2017,
§3.3) returns a list, ``[main, aux, ...]``; its prediction is the first. A leaf: no imports.
"""

from __future__ import annotations


def main_output(outputs):
    """``outputs`` itself, or its first entry when a model returned several."""
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs
