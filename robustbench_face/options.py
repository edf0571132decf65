"""Typed plugin options: what ``-a key=value`` (attacks), ``--defense name:key=value`` and
``--dataset name:key=value`` may say, checked against the constructor's signature.

A plugin's options are the keyword parameters of its constructor (or factory), with their
annotations as types and their defaults as defaults, the way a dataclass declares fields.
:func:`check_options` refuses an unknown name or a value of the wrong type *before* anything is
built, with one line that names the option and lists every accepted one with its type::

    attack pgd: unknown option 'epss'; accepted: eps (float or None), alpha (float or None),
    steps (int), norm ('linf' or 'l2'), random_start (bool), seed (int)

Values arrive typed from Python callers and as text or loosely typed values from the CLI
(:func:`robustbench_face.runner.parse_value` turns ``8/255`` into a float), so each value is
coerced to its annotation: text to numbers and booleans, integral floats to ints, numbers to
floats. A factory that takes ``**kwargs`` without named parameters cannot be checked; its
options pass through unchanged (third-party plugins that have not declared them).
"""

from __future__ import annotations

import inspect
import types
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Literal, Union, get_args, get_origin, get_type_hints

from .errors import InputError

_NONE_TEXT = ("none", "null")


def signature_options(fn: Callable) -> dict[str, tuple[Any, Any]] | None:
    """``{name: (annotation, default)}`` of ``fn``'s keyword parameters; None when ``fn`` only
    takes ``**kwargs`` (nothing to check). ``self`` and ``*args`` are skipped."""
    target = fn.__init__ if inspect.isclass(fn) else fn
    try:
        sig = inspect.signature(target)
        hints = get_type_hints(target)
    except (TypeError, ValueError, NameError):
        return None
    out: dict[str, tuple[Any, Any]] = {}
    for name, p in sig.parameters.items():
        if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        out[name] = (hints.get(name, Any), p.default)
    if not out and any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return out


def type_name(ann: Any) -> str:
    """A reader's name for an annotation.

    >>> type_name(float | None), type_name(Literal["linf", "l2"]), type_name(int)
    ('float or None', "'linf' or 'l2'", 'int')
    """
    if ann is Any or ann is inspect.Parameter.empty:
        return "any"
    origin = get_origin(ann)
    if origin is Literal:
        return " or ".join(repr(a) for a in get_args(ann))
    if origin is Union or origin is types.UnionType:
        return " or ".join("None" if a is type(None) else type_name(a) for a in get_args(ann))
    if origin in (tuple, list):
        args = [a for a in get_args(ann) if a is not Ellipsis]
        return f"list of {type_name(args[0])}" if args else "list"
    return getattr(ann, "__name__", str(ann))


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
        return value.lower() in ("true", "yes", "1")
    raise ValueError("not a boolean (true / false)")


def _to_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value)
    raise ValueError("not an integer")


def _to_float(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(Fraction(value.strip()))
        except (ValueError, ZeroDivisionError):
            pass
    raise ValueError("not a number")


def _to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise ValueError("not text")


def _to_path(value: Any) -> Path:
    if isinstance(value, (str, Path)):
        return Path(value)
    raise ValueError("not a path")


_SCALARS = {bool: _to_bool, int: _to_int, float: _to_float, str: _to_str, Path: _to_path}


def _to_union(value: Any, ann: Any) -> Any:
    args = get_args(ann)
    if type(None) in args and (value is None or (isinstance(value, str) and value.lower() in _NONE_TEXT)):
        return None
    errors = []
    for a in (a for a in args if a is not type(None)):
        try:
            return coerce(value, a)
        except ValueError as exc:
            errors.append(str(exc))
    raise ValueError(errors[0] if len(errors) == 1 else f"expected {type_name(ann)}")


def coerce(value: Any, ann: Any) -> Any:
    """``value`` as annotation ``ann``, or ``ValueError`` (the message says what was expected).

    >>> coerce("8/255", float), coerce(3.0, int), coerce("yes", bool), coerce("none", int | None)
    (0.03137254901960784, 3, True, None)
    >>> coerce("abc", float)
    Traceback (most recent call last):
    ...
    ValueError: not a number
    """
    if ann is Any or ann is inspect.Parameter.empty:
        return value
    origin = get_origin(ann)
    if origin is Literal:
        if value in get_args(ann):
            return value
        raise ValueError(f"not one of {', '.join(map(repr, get_args(ann)))}")
    if origin is Union or origin is types.UnionType:
        return _to_union(value, ann)
    if origin in (tuple, list):
        items = [v.strip() for v in value.split(",")] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise ValueError("not a list")
        args = [a for a in get_args(ann) if a is not Ellipsis]
        return tuple(coerce(v, args[0] if args else Any) for v in items)
    if ann in _SCALARS:
        return _SCALARS[ann](value)
    if isinstance(ann, type) and isinstance(value, ann):
        return value
    raise ValueError(f"expected {type_name(ann)}")


def describe_options(options: dict[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{k} ({type_name(a)})" for k, (a, _) in options.items()) or "(none)"


def check_options(what: str, fn: Callable, kwargs: dict[str, Any],
                  reserved: tuple[str, ...] = ()) -> dict[str, Any]:
    """``kwargs`` checked and coerced against ``fn``'s keyword parameters (module docstring).

    ``what`` names the plugin in messages (``"attack pgd"``); ``reserved`` options are set by
    the runner and not listed as accepted (``device``).
    """
    options = signature_options(fn)
    if options is None:
        return dict(kwargs)
    shown = {k: v for k, v in options.items() if k not in reserved}
    out = {}
    for key, value in kwargs.items():
        if key not in options:
            raise InputError(f"{what}: unknown option {key!r}; accepted: {describe_options(shown)}")
        ann = options[key][0]
        try:
            out[key] = coerce(value, ann)
        except ValueError as exc:
            raise InputError(f"{what}: option {key}={value!r} is {exc} (expected {type_name(ann)}); "
                             f"accepted: {describe_options(shown)}") from None
    return out
