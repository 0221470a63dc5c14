"""Compare a submission's hidden-check values with the reference's, in the grader's process.

The values arrive as the type-tagged JSON that :func:`segcourse.labs.hidden.encode` makes. The
tolerance is the one the *reference* run submitted; the submission's own numbers for it are
ignored. Anything malformed, deeper than :data:`MAX_DEPTH`, or of another type or shape does
not match.
"""

from __future__ import annotations

import numpy as np

MAX_DEPTH = 32


def payload_matches(expected: dict, got) -> bool:
    """One hidden cell's submission against the reference's."""
    if not isinstance(got, dict) or not isinstance(got.get("values"), dict):
        return False
    atol, rtol = float(expected.get("atol", 1e-6)), float(expected.get("rtol", 1e-5))
    try:
        return _equal(expected["values"], got["values"], atol, rtol, 0, mapping=True)
    except (TypeError, ValueError, KeyError, OverflowError, RecursionError):
        return False


def _equal(expected, got, atol, rtol, depth, mapping=False) -> bool:
    if depth > MAX_DEPTH:
        return False
    if mapping:
        return (isinstance(got, dict) and set(got) == set(expected)
                and all(_equal(expected[k], got[k], atol, rtol, depth + 1) for k in expected))
    if not isinstance(expected, dict) or not isinstance(got, dict) or set(got) != set(expected):
        return False
    if "array" in expected:
        shape = expected["shape"]
        if not isinstance(got["shape"], list) or got["shape"] != shape:
            return False
        if not isinstance(got["array"], list) or len(got["array"]) != len(expected["array"]):
            return False
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in got["array"]):
            return False
        want, have = np.asarray(expected["array"], float), np.asarray(got["array"], float)
        return bool(np.allclose(have, want, atol=atol, rtol=rtol, equal_nan=True))
    if "str" in expected:
        return got["str"] == expected["str"]
    if "none" in expected:
        return True
    if "dict" in expected:
        return _equal(expected["dict"], got["dict"], atol, rtol, depth + 1, mapping=True)
    if "list" in expected:
        return (isinstance(got["list"], list) and len(got["list"]) == len(expected["list"])
                and all(_equal(e, g, atol, rtol, depth + 1)
                        for e, g in zip(expected["list"], got["list"], strict=True)))
    return False  # "repr": an object the reference could not encode matches nothing


def differing_names(expected: dict, got) -> list[str]:
    """The names of the submitted values that do not match (for feedback: names, not values)."""
    if not isinstance(got, dict) or not isinstance(got.get("values"), dict):
        return sorted(expected.get("values", {}))
    atol, rtol = float(expected.get("atol", 1e-6)), float(expected.get("rtol", 1e-5))
    wrong = []
    for name, value in expected["values"].items():
        try:
            same = _equal(value, got["values"].get(name), atol, rtol, 0)
        except (TypeError, ValueError, KeyError, OverflowError, RecursionError):
            same = False
        if not same:
            wrong.append(name)
    return wrong
