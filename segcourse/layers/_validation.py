"""Input checks shared by the layers (and, for :func:`concrete`, the metrics and losses): each
failure names the value, the rule and the fix."""

from __future__ import annotations

import keras
import numpy as np


def to_pair(value, name: str, owner: str) -> tuple[int, int]:
    """Return ``value`` as a (height, width) pair of positive integers."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v >= 1 for v in pair):
        raise ValueError(
            f"{owner}: `{name}` must be a positive integer or a pair of positive integers "
            f"(height, width); got {value!r}. Example: {name}=2 or {name}=(2, 2)."
        )
    return pair


def check_image_batch(shape, owner: str) -> None:
    """Fail unless ``shape`` is (batch, height, width, channels) with known channels."""
    shape = tuple(shape)
    if len(shape) != 4:
        raise ValueError(
            f"{owner} expects a batch of feature maps shaped (batch, height, width, channels), "
            f"rank 4, channels last; got shape {shape} (rank {len(shape)}). "
            "For a single image add a batch axis first, e.g. x[None]."
        )
    if shape[-1] is None:
        raise ValueError(
            f"{owner} needs a known number of channels; got shape {shape}. "
            "Give the model input a fixed channel count, e.g. keras.Input((None, None, 3))."
        )


def check_choice(value, choices, name: str, owner: str) -> None:
    """Fail unless ``value`` is one of ``choices``, listing them."""
    if value not in choices:
        raise ValueError(
            f"{owner}: unknown {name} {value!r}; choose one of {', '.join(map(repr, choices))}."
        )


def require_tensorflow(owner: str, reason: str, fix: str) -> None:
    """Refuse, saying what to do instead, what only TensorFlow can do when the Keras backend is
    another (docs/design.md §4.1, Backends)."""
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise ValueError(f"{owner}: {reason} needs TensorFlow, but the Keras backend is "
                         f"{backend!r}. {fix}, or set KERAS_BACKEND=tensorflow before Keras is "
                         "imported.")


def concrete(x):
    """``x`` as a NumPy array when its values exist now (NumPy input, eager tensors and
    variables), or ``None`` inside a traced graph (``tf.function``, ``jax.jit``, ``model.fit``'s
    compiled step, a functional model being built), where a check on values would have to be
    an op.

    Eager code can afford to look at every value and raise a ``ValueError`` that names them;
    compiled code cannot raise with values, so each caller documents what it does there.
    """
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, keras.KerasTensor):
        return None  # a functional model's placeholder: a shape and a dtype, no values
    try:
        return np.asarray(x)
    except NotImplementedError:  # TensorFlow's symbolic tensors and variables in a graph
        return None
    except TypeError as error:  # JAX's tracers inside jax.jit (Keras' compiled step there)
        if keras.backend.backend() == "jax":
            import jax

            if isinstance(error, jax.errors.TracerArrayConversionError):
                return None
        raise


def shapes_match(a, b) -> bool:
    """Whether two shapes agree, an unknown (``None``) size matching any."""
    a, b = tuple(a), tuple(b)
    return len(a) == len(b) and all(x is None or y is None or x == y
                                    for x, y in zip(a, b, strict=True))
