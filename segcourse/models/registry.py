"""The model registry: ``build("unet", num_classes=2, input_shape=(128, 128, 3), width=0.25)``.

Each option of a model has a type, read from its builder: the annotation where there is one
(``batch_norm: bool | None = None``), else the type of its default (``depth=4``: a whole
number). ``check`` refuses a value of another type or out of range before anything is built,
and ``parse_options`` turns the command line's ``KEY=VALUE`` text into values of those types
(``skips=false`` is ``False``, never the string ``"false"``).

Each model also declares how it is trained beyond the course's common recipe
(:class:`TrainingRecipe`): the weights of its auxiliary outputs' losses, where it has any.
"""

from __future__ import annotations

import inspect
import math
import numbers
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass

# A model's size: the paper's configuration, or its small one (narrower, never shallower) that
# trains on a CPU in minutes. (Not keras-hub's "preset", which names pretrained weights.)
MODEL_SIZES = ("paper", "small")
_NOT_OPTIONS = ("num_classes", "input_shape")
_TRUE, _FALSE, _NONE = ("true", "yes", "on", "1"), ("false", "no", "off", "0"), ("none", "null")


@dataclass(frozen=True)
class OptionType:
    """What values one option takes: ``kind`` is bool, int, float, str or "ints" (a tuple of
    whole numbers); ``optional``: ``None`` is allowed too."""

    kind: object
    optional: bool = False

    def describe(self) -> str:
        """How the values read to a user: ``a whole number, or none``."""
        text = {bool: "true or false", int: "a whole number", float: "a number", str: "text",
                "ints": "whole numbers separated by commas"}[self.kind]
        return f"{text}, or none" if self.optional else text

    def accepts(self, value) -> bool:
        """Whether ``value`` (already a Python value, not text) is of this type."""
        if value is None:
            return self.optional
        if self.kind is bool:
            return isinstance(value, bool)
        if self.kind is int:
            return isinstance(value, numbers.Integral) and not isinstance(value, bool)
        if self.kind is float:
            return isinstance(value, numbers.Real) and not isinstance(value, bool)
        if self.kind is str:
            return isinstance(value, str)
        return isinstance(value, (tuple, list)) and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)

    def parse(self, text: str):
        """The value ``text`` stands for; ``ValueError`` when it is not of this type."""
        word = text.strip()
        if self.optional and word.lower() in _NONE:
            return None
        if self.kind is bool:
            if word.lower() in _TRUE:
                return True
            if word.lower() in _FALSE:
                return False
            raise ValueError(word)
        if self.kind is int:
            return int(word)
        if self.kind is float:
            return float(word)
        if self.kind is str:
            return word
        parts = word.strip("()[]").split(",")
        if parts[-1].strip() == "":
            parts = parts[:-1]
        if not parts:
            raise ValueError(word)
        return tuple(int(part) for part in parts)


def _option_type(name: str, parameter: inspect.Parameter, hints: dict) -> OptionType:
    hint = hints.get(parameter.name)
    if hint is None:
        if parameter.default is None or parameter.default is inspect.Parameter.empty:
            raise TypeError(f"{name}: option {parameter.name} has no default to take its type "
                            "from; annotate it (e.g. `batch_norm: bool | None = None`).")
        hint = type(parameter.default)
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        arguments = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(arguments) < len(typing.get_args(hint))
        hint = arguments[0] if len(arguments) == 1 else None
    if hint is tuple or typing.get_origin(hint) is tuple:
        hint = "ints"
    if hint not in (bool, int, float, str, "ints"):
        raise TypeError(f"{name}: option {parameter.name} has a type the registry cannot "
                        f"check ({hint!r}); use bool, int, float, str or tuple of ints.")
    return OptionType(hint, optional)


@dataclass(frozen=True)
class TrainingRecipe:
    """What training a model needs beyond the course's common recipe (masked cross-entropy,
    Adam, cosine decay): ``aux_loss_weights`` weigh the losses of the outputs after the main
    one, in order (PSPNet's deep supervision: 0.4, Zhao et al. 2017 §3.3 and §4); the main
    output's loss weighs 1. ``reference``: where the values come from."""

    aux_loss_weights: tuple[float, ...] = ()
    reference: str = ""

    def __post_init__(self):
        given = self.aux_loss_weights
        weights = tuple(given) if isinstance(given, tuple | list) else (given,)
        if not isinstance(given, tuple | list) or not all(
                isinstance(w, numbers.Real) and not isinstance(w, bool) and math.isfinite(w)
                and w >= 0 for w in weights):
            raise ValueError(f"aux_loss_weights are finite numbers of at least 0, one per "
                             f"output after the main one; got {self.aux_loss_weights!r}.")
        object.__setattr__(self, "aux_loss_weights", weights)

    def loss_weights(self, model: str, outputs: int) -> list[float] | None:
        """Keras' ``loss_weights`` for a build of ``model`` with ``outputs`` outputs: ``None``
        for one output (one loss, nothing to weigh), ``[1.0, *aux_loss_weights]`` when the
        outputs are the declared ones; a ``ValueError`` otherwise, never a guess."""
        if outputs == 1:
            return None
        if outputs != 1 + len(self.aux_loss_weights):
            declared = (f"declares loss weights for {1 + len(self.aux_loss_weights)} (the main "
                        f"output's 1.0 and {', '.join(map(str, self.aux_loss_weights))}; "
                        f"{self.reference or 'no source given'})" if self.aux_loss_weights
                        else "declares no auxiliary loss weights (PSPNet's 0.4, Zhao et al. "
                             "2017 §3.3, is PSPNet's and is not assumed for other models)")
            raise ValueError(
                f"{model} has {outputs} outputs, but its registration {declared}, so how much "
                "each output's loss counts is unknown. Declare one weight per output after "
                f"the main one where it is registered: register_model({model!r}, ..., "
                "recipe=TrainingRecipe(aux_loss_weights=(...))).")
        return [1.0, *self.aux_loss_weights]


SINGLE_OUTPUT = TrainingRecipe()  # a model whose registration declares no recipe


@dataclass(frozen=True)
class _Registered:
    """One registered model: its builder and what is known of it before anything is built,
    read once at registration."""

    builder: Callable
    small: dict
    check: Callable | None
    types: dict[str, OptionType]
    defaults: dict
    recipe: TrainingRecipe


_MODELS: dict[str, _Registered] = {}


# Ranges that hold for an option of this name in every model: (test, what is required).
_RANGES = {
    "width": (lambda v: math.isfinite(v) and v > 0,
              "a width multiplier above 0 (1.0 is the paper's width, 0.25 a quarter of it)"),
    "base_filters": (lambda v: v >= 1, "at least 1 (filters of the first level)"),
    "filters": (lambda v: v >= 1, "at least 1 (filters per convolution)"),
    "depth": (lambda v: v >= 1, "at least 1"),
    "dropout": (lambda v: 0 <= v < 1, "a rate from 0 up to (not including) 1"),
    "bins": (lambda v: len(v) > 0 and all(b >= 1 for b in v),
             "one or more bin counts of at least 1, e.g. 1,2,3,6"),
}


def register_model(name: str, small: dict | None = None, check: Callable | None = None,
                   recipe: TrainingRecipe | None = None):
    """Decorator: make a builder available as ``build(name, ...)``; ``small`` holds the options
    of its small size (narrower, never shallower: fewer filters, same ideas);
    ``check(input_shape, **options)`` (every option, defaults filled in) raises a
    ``ValueError`` for what the builder would refuse — choices, combinations, input sizes —
    so that ``check()`` can refuse it before anything is built; ``recipe``: how it is trained
    (:class:`TrainingRecipe`; default: one output, one loss)."""
    def decorate(builder):
        if name in _MODELS:
            raise ValueError(f"model name {name!r} is registered twice")
        hints = typing.get_type_hints(builder)
        parameters = {k: p for k, p in inspect.signature(builder).parameters.items()
                      if k not in _NOT_OPTIONS}
        _MODELS[name] = _Registered(  # an option whose type cannot be told fails at import
            builder, dict(small or {}), check,
            types={k: _option_type(name, p, hints) for k, p in parameters.items()},
            defaults={k: p.default for k, p in parameters.items()},
            recipe=recipe if recipe is not None else SINGLE_OUTPUT)
        return builder
    return decorate


def _known(name: str) -> _Registered:
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(_MODELS))}.")
    return _MODELS[name]


def option_types(name: str) -> dict[str, OptionType]:
    """``{option: OptionType}`` of the registered model ``name``."""
    return dict(_known(name).types)


def recipe(name: str) -> TrainingRecipe:
    """How the registered model ``name`` is trained (:class:`TrainingRecipe`)."""
    return _known(name).recipe


def describe_options(name: str) -> str:
    """One line per model: ``depth (a whole number, default 4), ...``."""
    model = _known(name)
    return ", ".join(f"{k} ({kind.describe()}, default {_show(model.defaults[k])})"
                     for k, kind in model.types.items())


def _show(value) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value).lower() if value is None or isinstance(value, bool) else str(value)


def _unknown_options(name: str, given) -> None:
    unknown = [k for k in given if k not in _MODELS[name].types]
    if unknown:
        raise ValueError(f"{name} has no option {', '.join(unknown)}; its options: "
                         f"{describe_options(name)}.")


def _check_value(name: str, key: str, value, kind: OptionType, shown=None) -> None:
    shown = shown if shown is not None else f"{value!r} ({type(value).__name__})"
    if not kind.accepts(value):
        raise ValueError(f"{name}: option {key} takes {kind.describe()}; got {shown}. Its "
                         f"options: {describe_options(name)}.")
    if value is not None and key in _RANGES:
        test, required = _RANGES[key]
        if not test(value):
            raise ValueError(f"{name}: option {key} must be {required}; got {shown}.")


def parse_options(name: str, pairs) -> dict:
    """``["depth=3", "skips=false"]`` → ``{"depth": 3, "skips": False}``, each value read by
    the type of its option (``true``/``false``, whole numbers, numbers, text, ``1,2,4`` for a
    tuple, ``none`` where allowed). Refuses a pair without ``=``, an option named twice, an
    option the model lacks and a value of the wrong type or out of range."""
    kinds, options = _known(name).types, {}
    for pair in pairs:
        key, equals, text = pair.partition("=")
        key = key.strip()
        if not equals or not key:
            raise ValueError(f"an option is KEY=VALUE (e.g. depth=3); got {pair!r}. "
                             f"{name}'s options: {describe_options(name)}.")
        if key in options:
            raise ValueError(f"option {key} is given twice ({key}={_show(options[key])} and "
                             f"{pair}); give each option once.")
        _unknown_options(name, [key])
        kind = kinds[key]
        try:
            value = kind.parse(text)
        except ValueError:
            example = _show(_MODELS[name].defaults[key])
            raise ValueError(f"{name}: option {key}={text} is not {kind.describe()}; write it "
                             f"like {key}={example} (its default). {name}'s options: "
                             f"{describe_options(name)}.") from None
        if kind.kind is float and not math.isfinite(value):
            raise ValueError(f"{name}: option {key} must be a finite number; got {text}.")
        _check_value(name, key, value, kind, shown=text)
        options[key] = value
    return options


def check(name: str, num_classes, input_shape=(None, None, 3), model_size="paper",
          **options) -> dict:
    """Everything ``build`` refuses, refused without building anything; returns the options
    the builder gets (the model size's, then the given ones). ``num_classes=None``: not known
    yet, not checked."""
    model = _known(name)
    if model_size not in MODEL_SIZES:
        raise ValueError(f"model_size must be one of {MODEL_SIZES}; got {model_size!r}.")
    if num_classes is not None:
        if not isinstance(num_classes, numbers.Integral) or isinstance(num_classes, bool) \
                or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer; got {num_classes!r}.")
        if num_classes == 1:
            raise ValueError(
                "num_classes must be at least 2; got 1: a softmax over one class always says "
                "class 0, whatever the image. For binary segmentation (object and background) "
                "use num_classes=2, with masks of 0 (background) and 1 (object).")
    _check_shape(name, input_shape)
    if model_size == "small":
        options = {**model.small, **options}
    _unknown_options(name, options)
    for key, value in options.items():
        _check_value(name, key, value, model.types[key])
    if model.check is not None:
        model.check(tuple(input_shape), **{**model.defaults, **options})
    return options


def _check_shape(name, input_shape) -> None:
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if shape is None or len(shape) != 3 or not all(
            s is None or (isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1)
            for s in shape) or shape[2] is None:
        raise ValueError(f"{name}: input_shape is (height, width, channels) with sizes of at "
                         f"least 1 (height and width may be None); got {input_shape!r}.")


def build(name: str, num_classes: int, input_shape=(None, None, 3), model_size="paper",
          **options):
    """Build the registered model ``name``; ``options`` are the builder's keyword arguments
    (``available()`` lists them). ``model_size="small"`` starts from the model's small
    configuration (declared at registration); explicit options override it. What would give a
    wrong model is refused first (:func:`check`)."""
    options = check(name, num_classes, input_shape, model_size, **options)
    return _MODELS[name].builder(num_classes=num_classes, input_shape=tuple(input_shape),
                                 **options)


def available() -> dict[str, dict]:
    """``{name: {"summary": first line, "options": {option: default}, "small": {option: value},
    "types": {option: description}}}``."""
    listing = {}
    for name, model in sorted(_MODELS.items()):
        summary = (inspect.getdoc(model.builder) or "").split("\n")[0]
        listing[name] = {"summary": summary, "options": dict(model.defaults),
                         "small": dict(model.small),
                         "types": {k: t.describe() for k, t in model.types.items()}}
    return listing


def check_input_size(input_shape, multiple: int, model: str) -> None:
    """Fail when a known height or width is not a multiple of the model's total stride."""
    if len(input_shape) != 3:
        raise ValueError(f"{model}: input_shape is (height, width, channels); got {input_shape}.")
    for axis, size in zip(("height", "width"), input_shape[:2], strict=True):
        if size is not None and size < 1:
            raise ValueError(f"{model}: input {axis} must be at least 1; got {size}.")
        if size is not None and size % multiple:
            below, above = size // multiple * multiple, -(-size // multiple) * multiple
            nearest = " or ".join(str(v) for v in (below, above) if v > 0)
            raise ValueError(
                f"{model}: input {axis} {size} is not a multiple of its total stride "
                f"{multiple}; the nearest valid sizes are {nearest}. Resize or pad the images.")


def pretrained_width(model: str, weights, width) -> None:
    """Pretrained weights fit only the paper's width: refuse the pair before building."""
    if weights is not None and width != 1.0:
        raise ValueError(f"{model}: pretrained weights ({weights!r}) need width=1.0; got width="
                         f"{width}. Drop the weights or the width option.")
