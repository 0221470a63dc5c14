"""Hidden check counterparts: the values a graded check's exercise gives on unseen inputs.

A public check cell tells a student ``ok`` or what is wrong; a line any program can print, so it
cannot be what earns points. Each point-bearing check therefore has a *hidden* counterpart in the
reference notebook (a code cell with ``metadata.segcourse = {"id", "role": "hidden",
"check": <the check's id>}``), which the student version leaves out. It calls the student's
functions on inputs drawn from :func:`hidden_rng` and hands the results to :func:`submit`.

The grader (:mod:`segcourse.grading`) runs every hidden cell twice with one seed drawn per
grading run: after the reference solution (the expected values) and after the student's
solution, in a sandbox. The two sets of values are compared in the grader's own process, with the
reference's tolerance: a kernel can print anything, but it can only submit the right values by
computing them. In a plain Jupyter kernel (an instructor running the reference) the cell prints
a one-line summary of what it would submit, with a fixed seed.
"""

from __future__ import annotations

import json
import os
import zlib

import numpy as np

#: The grader puts its per-run seed here; unset, hidden inputs use :data:`DEFAULT_SEED`.
SEED_VARIABLE = "SEGCOURSE_GRADING_SEED"
DEFAULT_SEED = 20240917

#: Set by the grading runner in its own process: called with each submitted payload.
_sink = None


def grading_seed() -> int:
    """The grading run's seed, or :data:`DEFAULT_SEED` outside a grading run."""
    value = os.environ.get(SEED_VARIABLE, "").strip()
    return int(value) if value else DEFAULT_SEED


def hidden_rng(salt: str = "") -> np.random.Generator:
    """A generator for hidden inputs: the run's seed, mixed with ``salt`` (use the check id, so
    that every hidden cell draws different inputs from the same run seed)."""
    return np.random.default_rng([grading_seed(), zlib.crc32(salt.encode())])


def encode(value):
    """A JSON-ready, type-tagged form of ``value`` (numbers and arrays, strings, None, lists,
    tuples and dicts of them). Anything else is encoded by its ``repr`` and never matches."""
    if value is None or isinstance(value, str):
        return {"str": value} if isinstance(value, str) else {"none": True}
    if isinstance(value, dict):
        return {"dict": {str(key): encode(item) for key, item in value.items()}}
    if isinstance(value, (list, tuple)) and not _numeric(value):
        return {"list": [encode(item) for item in value]}
    try:
        array = np.asarray(value)
    except Exception:
        array = None
    if array is not None and array.dtype.kind in "biuf":
        return {"array": array.astype(float).ravel().tolist(), "shape": list(array.shape)}
    return {"repr": repr(value)[:200]}


def _numeric(sequence) -> bool:
    try:
        return np.asarray(sequence).dtype.kind in "biuf"
    except Exception:
        return False


def submit(values: dict, *, atol: float = 1e-6, rtol: float = 1e-5) -> None:
    """Hand the hidden check's ``values`` (a dict: name -> value) to the grader.

    Numbers and arrays are compared as ``np.allclose(got, expected, atol, rtol,
    equal_nan=True)`` with equal shapes; strings, None and the structure of lists and dicts
    exactly. The tolerance that counts is the one the *reference* run submitted.
    """
    if not isinstance(values, dict) or not values:
        raise TypeError("submit() takes a non-empty dict of named values, e.g. "
                        "submit({'confusion': confusion(truth, prediction, 4)}).")
    payload = {"values": {str(k): encode(v) for k, v in values.items()},
               "atol": float(atol), "rtol": float(rtol)}
    json.dumps(payload, allow_nan=True)  # fail here, in the cell, if it cannot travel
    if _sink is not None:
        _sink(payload)
        return
    kinds = ", ".join(f"{name} {_describe(item)}" for name, item in payload["values"].items())
    print(f"hidden check: {len(payload['values'])} value(s) ({kinds})")


def _describe(encoded) -> str:
    if "array" in encoded:
        return f"shape {tuple(encoded['shape'])}"
    return next(iter(encoded))
