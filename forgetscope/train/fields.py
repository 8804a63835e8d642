"""Typed dataclasses from plain mappings (YAML/TOML), with errors that name the field.

The configs of the training runner are ordinary dataclasses; this module turns
a parsed YAML/TOML mapping into them, checking every value against the field's
type hint. Every error is one line that starts with the field's path in the
file, e.g. ``stages[1].schedule: 'cosin' is not one of cosine, linear, constant``,
because the person reading it has the file open and wants to know where to look.
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value is missing, unknown or out of range; the message starts with its field path."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


def join(path: str, key: str | int) -> str:
    """`stages` + 1 → `stages[1]`; `model` + `hidden` → `model.hidden`."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if not key.isprintable():  # a line break in a key would break the one-line message
        key = repr(key)
    return f"{path}.{key}" if path else key


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp) if a is not type(None))
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    if origin in (list, tuple):
        return "a list"
    if origin is dict:
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def convert(value: Any, tp: Any, path: str) -> Any:
    """Check `value` against the type hint `tp` and convert it (mappings → dataclasses, lists → tuples)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(path, "is required (got null)")
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return convert(value, arg, path)
            except ConfigError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise ConfigError(path, f"{value!r} is not {_type_name(tp)}")
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(path, f"{value!r} is not one of {', '.join(str(a) for a in allowed)}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, path)
    if origin is dict:
        key_tp, value_tp = get_args(tp) or (str, Any)
        if not isinstance(value, dict):
            raise ConfigError(path, f"expected a mapping, got {value!r}")
        return {convert(k, key_tp, path): convert(v, value_tp, join(path, str(k))) for k, v in value.items()}
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(path, f"expected a list, got {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(path, f"expected {len(args)} values, got {len(value)}")
            return tuple(convert(v, a, join(path, i)) for i, (v, a) in enumerate(zip(value, args)))
        item_tp = args[0] if args else Any
        items = [convert(v, item_tp, join(path, i)) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(path, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)  # 1e3 in YAML is a float
            raise ConfigError(path, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if isinstance(value, str):  # YAML 1.1 reads "3e-4" (no dot) as a string
                try:
                    return float(value)
                except ValueError:
                    pass
            raise ConfigError(path, f"expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(path, f"expected a string, got {value!r}")
        return value
    return value


def from_mapping(cls: type[T], data: Any, path: str = "") -> T:
    """Build dataclass `cls` from a mapping: unknown keys and missing required fields are errors."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(path, f"expected a mapping, got {data!r}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise ConfigError(join(path, str(unknown[0])), f"unknown field; known: {', '.join(fields)}")
    kwargs = {}
    for name, field in fields.items():
        if name in data:
            kwargs[name] = convert(data[name], hints[name], join(path, name))
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(join(path, name), "is required")
    return cls(**kwargs)


def to_mapping(obj: Any) -> Any:
    """A dataclass tree as plain JSON-safe data (tuples → lists), the inverse of `from_mapping`."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_mapping(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_mapping(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_mapping(v) for v in obj]
    return obj


def check(condition: bool, path: str, message: str) -> None:
    """Raise ConfigError(path, message) unless `condition`."""
    if not condition:
        raise ConfigError(path, message)


__all__ = ["ConfigError", "check", "convert", "from_mapping", "join", "to_mapping"]
