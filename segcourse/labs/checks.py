"""Check helpers for the labs' check cells.

A check prints one short, deterministic line when it passes (``"<what>: ok"``): that line is the
stored output nbval compares, the same in the CPU and the GPU profile. When it fails it raises
:class:`CheckFailed`, whose message tells the student what was expected, what they gave, and
where to look. Numbers a trained model produces are compared inside the check with a tolerance
or a threshold, never printed.
"""

from __future__ import annotations

import numpy as np


class CheckFailed(AssertionError):
    """A lab check did not pass; the message says what was expected and what was found."""


def _passed(what: str) -> None:
    print(f"{what}: ok")


def check(what: str, condition: bool, hint: str = "") -> None:
    """Pass when ``condition`` holds; otherwise fail with ``hint``."""
    if not condition:
        raise CheckFailed(f"{what}: not yet. {hint}".strip())
    _passed(what)


def _plain(value):
    """A NumPy scalar as the Python number it holds: `3`, not `np.int64(3)` (NumPy 2's repr)."""
    return value.item() if isinstance(value, np.generic) else value


def check_equal(what: str, got, expected, hint: str = "") -> None:
    """Exact equality of scalars, strings, tuples or arrays (shape and every value)."""
    if isinstance(expected, np.ndarray) or isinstance(got, np.ndarray):
        got_array, expected_array = np.asarray(got), np.asarray(expected)
        if got_array.shape != expected_array.shape:
            raise CheckFailed(f"{what}: expected shape {expected_array.shape}, got "
                              f"{got_array.shape}. {hint}".strip())
        wrong = np.argwhere(got_array != expected_array)
        if len(wrong):
            first = tuple(int(i) for i in wrong[0])
            raise CheckFailed(
                f"{what}: {len(wrong)} of {expected_array.size} values differ; the first at "
                f"index {first}: expected {_plain(expected_array[first])!r}, "
                f"got {_plain(got_array[first])!r}. "
                f"{hint}".strip())
    elif got != expected:
        raise CheckFailed(f"{what}: expected {_plain(expected)!r}, got {_plain(got)!r}. "
                          f"{hint}".strip())
    _passed(what)


def check_shape(what: str, array, expected_shape, hint: str = "") -> None:
    """The array's shape is ``expected_shape`` (``None`` matches any size on that axis)."""
    shape = tuple(np.shape(array))
    expected_shape = tuple(expected_shape)
    fits = len(shape) == len(expected_shape) and all(
        e is None or e == s for s, e in zip(shape, expected_shape, strict=True))
    if not fits:
        raise CheckFailed(f"{what}: expected shape {expected_shape}, got {shape}. {hint}".strip())
    _passed(f"{what} {expected_shape}")


def check_close(what: str, got, expected, atol: float = 1e-6, rtol: float = 1e-5,
                hint: str = "") -> None:
    """Values equal within tolerance (``np.allclose`` semantics), shapes equal."""
    got_array, expected_array = np.asarray(got, dtype=float), np.asarray(expected, dtype=float)
    if got_array.shape != expected_array.shape:
        raise CheckFailed(f"{what}: expected shape {expected_array.shape}, got "
                          f"{got_array.shape}. {hint}".strip())
    close = np.isclose(got_array, expected_array, atol=atol, rtol=rtol, equal_nan=True)
    if not close.all():
        first = tuple(int(i) for i in np.argwhere(~close)[0])
        where = f" at index {first}" if got_array.ndim else ""
        raise CheckFailed(
            f"{what}: {int((~close).sum())} of {close.size} values differ; the first{where}: "
            f"expected {expected_array[first]:.6g}, got {got_array[first]:.6g} "
            f"(tolerance {atol:g} + {rtol:g}·|expected|). {hint}".strip())
    _passed(what)


def check_at_least(what: str, value: float, threshold: float, hint: str = "") -> None:
    """``value >= threshold``; prints the threshold, never the value (it varies by run)."""
    if not value >= threshold:
        raise CheckFailed(f"{what}: {value:.4g} is below {threshold:g}. {hint}".strip())
    _passed(f"{what} ≥ {threshold:g}")
