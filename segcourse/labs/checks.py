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


#: Set by a dry run of the GPU profile (:func:`segcourse.labs.dry_run.install`): its scores after
#: a few steps mean nothing, so :func:`check_at_least` prints ``NOT_JUDGED`` instead of raising,
#: and the rest of the cell still runs. Every other check judges as always.
dry_run = False
NOT_JUDGED = "not judged in a dry run"


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
    """Exact equality of scalars, strings, tuples or lists (either answers the other) or
    arrays (shape and every value)."""
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
    elif _sequences_as_tuples(got) != _sequences_as_tuples(expected):
        raise CheckFailed(f"{what}: expected {_plain(expected)!r}, got {_plain(got)!r}. "
                          f"{hint}".strip())
    _passed(what)


def _sequences_as_tuples(value):
    """Lists and tuples alike as tuples, nested too: [1, 2] answers (1, 2) as well (the hidden
    checks compare JSON, where both are lists)."""
    if isinstance(value, (list, tuple)):
        return tuple(_sequences_as_tuples(item) for item in value)
    return value


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
    expected_array = np.asarray(expected, dtype=float)
    try:
        if got is None and not np.isnan(expected_array).any():  # NaN would match NaN
            raise TypeError("None is not a number")
        got_array = np.asarray(got, dtype=float)
    except (TypeError, ValueError):
        raise CheckFailed(f"{what}: expected numbers (shape {expected_array.shape}), got "
                          f"{_short(got)}. {hint}".strip()) from None
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


def check_prediction(what: str, got, expected, atol: float = 1e-6, hint: str = "") -> None:
    """A graded prediction against the right answer, which a failure does not show (the hidden
    check grades the same value: shown, it could be copied in). Numbers compare within
    ``atol``, anything else (tuples, lists of pairs, booleans) exactly."""
    try:
        got_array, expected_array = (np.asarray(v, dtype=float) for v in (got, expected))
        right = got_array.shape == expected_array.shape and bool(
            np.allclose(got_array, expected_array, atol=atol, rtol=0))
    except (TypeError, ValueError):
        right = bool(got == expected)
    if not right:
        raise CheckFailed(f"{what}: not what it is. Your prediction is graded, so the check does "
                          f"not show the answer: work it out again. {hint}".strip())
    _passed(what)


def check_at_least(what: str, value: float, threshold: float, hint: str = "") -> None:
    """``value >= threshold``; prints the threshold, never the value (it varies by run)."""
    if not value >= threshold and dry_run:
        print(f"{what}: {NOT_JUDGED} ({value:.4g} against {threshold:g})")
        return
    if not value >= threshold:
        raise CheckFailed(f"{what}: {value:.4g} is below {threshold:g}. {hint}".strip())
    _passed(f"{what} ≥ {threshold:g}")


def _short(value) -> str:
    """A value as a failure message shows it: a number plainly, a long array by its start."""
    value = _plain(value)
    if isinstance(value, np.ndarray) and value.size > 8:
        return f"an array of shape {value.shape} starting {np.array2string(value.ravel()[:6])}"
    if isinstance(value, np.ndarray):
        return " ".join(np.array2string(value, separator=", ").split())
    shown = repr(value)
    return shown if len(shown) <= 120 else shown[:110] + " ... " + shown[-5:]


def _difference(got, expected, source: str | None, atol, rtol) -> str | None:
    """None when ``got`` equals ``expected`` (as :func:`check_equal` compares, or as
    :func:`check_close` does when ``atol`` is given), else what differs, in words."""
    said = f"{source} gives" if source is not None else "expected"
    said = f"{said} {_short(expected)}"
    if atol is None and not isinstance(expected, np.ndarray) and not isinstance(got, np.ndarray):
        try:
            if bool(got == expected):
                return None
        except (TypeError, ValueError):
            pass
        return f"gives {_short(got)}, {said}"
    expected_array = np.asarray(expected, dtype=float if atol is not None else None)
    if got is None:
        return f"gives None, {said}"
    try:
        got_array = np.asarray(got, dtype=float if atol is not None else None)
    except (TypeError, ValueError):
        return f"gives {_short(got)}, {said}"
    if got_array.shape != expected_array.shape:
        return (f"gives shape {got_array.shape} ({_short(got)}), {said} "
                f"(shape {expected_array.shape})")
    same = np.asarray(np.isclose(got_array, expected_array, atol=atol, rtol=rtol, equal_nan=True)
                      if atol is not None else got_array == expected_array)
    if same.all():
        return None
    if expected_array.ndim == 0:
        return f"gives {_short(got_array)}, {said}"
    first = tuple(int(i) for i in np.argwhere(~same)[0])
    return (f"gives {_short(got)}, {said}: {int((~same).sum())} of {same.size} values differ, "
            f"the first at index {first} ({_short(got_array[first])} instead of "
            f"{_short(expected_array[first])})")


def check_cases(what: str, cases, answer, reference, *, names=None, source: str | None = None,
                atol: float | None = None, rtol: float = 0.0, hint: str = "") -> None:
    """Every case's answer equals the reference's; one ``what: ok`` line when all do.

    ``cases`` are argument tuples (or single arguments); ``answer(*case)`` (the student's
    function) and ``reference(*case)`` (the truth: a package function, Keras, a hand-made table)
    are compared as :func:`check_equal` does, or as :func:`check_close` does when ``atol`` is
    given. A failure names the first failing case by its inputs (``names`` label them), what the
    answer gives and what is expected (what ``source`` gives, when named): ``case 2 of 6 (n=7,
    k=3, s=2, padding='same') gives 13, Keras gives 14``.
    """
    cases = [case if isinstance(case, tuple) else (case,) for case in cases]
    for number, case in enumerate(cases, 1):
        differs = _difference(answer(*case), reference(*case), source, atol, rtol)
        if differs is None:
            continue
        labels = list(names) if names is not None else [None] * len(case)
        inputs = ", ".join(f"{name}={_short(value)}" if name else _short(value)
                           for name, value in zip(labels, case, strict=True))
        tolerance = f" (tolerance {atol:g} + {rtol:g}·|expected|)" if atol is not None else ""
        raise CheckFailed(f"{what}: case {number} of {len(cases)} ({inputs}) {differs}"
                          f"{tolerance}. {hint}".strip())
    _passed(what)
