"""The model registry: ``build("unet", num_classes=2, input_shape=(128, 128, 3), width=0.25)``."""

from __future__ import annotations

import inspect
from collections.abc import Callable

_BUILDERS: dict[str, Callable] = {}
_CPU_PRESETS: dict[str, dict] = {}
PRESETS = ("full", "cpu")


def register_model(name: str, cpu: dict | None = None):
    """Decorator: make a builder available as ``build(name, ...)``; ``cpu`` holds the options
    of its small CPU configuration (narrower, never shallower: fewer filters, same ideas)."""
    def decorate(builder):
        if name in _BUILDERS:
            raise ValueError(f"model name {name!r} is registered twice")
        _BUILDERS[name] = builder
        _CPU_PRESETS[name] = dict(cpu or {})
        return builder
    return decorate


def build(name: str, num_classes: int, input_shape=(None, None, 3), preset="full", **options):
    """Build the registered model ``name``; ``options`` are the builder's keyword arguments
    (``available()`` lists them). ``preset="cpu"`` starts from the model's small CPU
    configuration; explicit options override it."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(_BUILDERS))}.")
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {PRESETS}; got {preset!r}.")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer; got {num_classes!r}.")
    builder = _BUILDERS[name]
    if preset == "cpu":
        options = {**_CPU_PRESETS[name], **options}
    accepted = inspect.signature(builder).parameters
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        known = [k for k in accepted if k not in ("num_classes", "input_shape")]
        raise ValueError(f"{name} has no option {', '.join(unknown)}; its options: "
                         f"{', '.join(known)}.")
    return builder(num_classes=num_classes, input_shape=tuple(input_shape), **options)


def available() -> dict[str, dict]:
    """``{name: {"summary": first line, "options": {option: default}, "cpu": {option: value}}}``."""
    listing = {}
    for name in sorted(_BUILDERS):
        builder = _BUILDERS[name]
        options = {k: p.default for k, p in inspect.signature(builder).parameters.items()
                   if k not in ("num_classes", "input_shape")}
        summary = (inspect.getdoc(builder) or "").split("\n")[0]
        listing[name] = {"summary": summary, "options": options, "cpu": _CPU_PRESETS[name]}
    return listing


def check_input_size(input_shape, multiple: int, model: str) -> None:
    """Fail when a known height or width is not a multiple of the model's total stride."""
    if len(input_shape) != 3:
        raise ValueError(f"{model}: input_shape is (height, width, channels); got {input_shape}.")
    for axis, size in zip(("height", "width"), input_shape[:2], strict=True):
        if size is not None and size % multiple:
            below, above = size // multiple * multiple, -(-size // multiple) * multiple
            nearest = " or ".join(str(v) for v in (below, above) if v > 0)
            raise ValueError(
                f"{model}: input {axis} {size} is not a multiple of its total stride "
                f"{multiple}; the nearest valid sizes are {nearest}. Resize or pad the images.")
