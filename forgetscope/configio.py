"""Config files people write (training runs, sweeps, task specs, gate thresholds): read, check, explain.

Every config kind takes one path. `read_config` reads UTF-8 text and parses
YAML or TOML (keeping YAML's line numbers); `check` validates the mapping
against a pydantic dataclass; and whatever is wrong becomes one line naming
the file, the line, the field and what is expected:

    run.yaml line 31: stages[1].schedule: 'cosin' is not one of cosine, linear, constant

The same classes give a JSON Schema (`json_schema`) that editors use to
complete and check config files as they are typed.

The field types here are stricter than pydantic's defaults on purpose: a quoted
"5" is not an integer, `yes` is not a boolean and a set is not a list. Two
conversions are kept because YAML and TOML need them: a whole float is an
integer (`1e3`) and numeric text is a float (YAML 1.1 reads `3e-4` as text).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BeforeValidator, ConfigDict, Field, Strict, TypeAdapter, ValidationError, ValidationInfo, field_validator
from pydantic.dataclasses import dataclass
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from forgetscope.textfile import read_utf8, yaml_problem

if TYPE_CHECKING:
    from yaml import Node

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, packaged (a dependency there)
    import tomli as tomllib  # type: ignore[no-redef]

T = TypeVar("T")
M = TypeVar("M")

SUFFIXES = (".yaml", ".yml", ".toml")

#: The pydantic settings of every config class: unknown keys are errors, each field's docstring is its description.
CONFIG = ConfigDict(extra="forbid", use_attribute_docstrings=True)

#: Validation context of values read from a file or mapping (not of objects built in code).
INPUT = {"forgetscope_input": True}


# ---------------------------------------------------------------------------- field types

def _whole_float(value: Any) -> Any:
    """1e3 is a float in YAML and TOML; a whole one is accepted where an integer is expected."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _numeric_text(value: Any) -> Any:
    """YAML 1.1 reads `3e-4` (no dot) as text; numeric text is accepted where a float is expected."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def _list_as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _key_text(value: Any) -> Any:
    """Mapping keys that name things (tasks, categories): `2024:` in YAML is the name "2024"."""
    return value if isinstance(value, str) else str(value)


def integer(**bounds: Any) -> Any:
    """An integer type with bounds (`integer(gt=0)`): never true/false or text; a whole float such as 1e3 is accepted."""
    # the bounds come before the conversion, so they stay plain integer bounds (and JSON Schema minimum/maximum)
    return Annotated[int, Strict(), Field(**bounds), BeforeValidator(_whole_float)]


def number(**bounds: Any) -> Any:
    """A float type with bounds (`number(ge=0, lt=1)`): an integer is converted, numeric text ("3e-4") too; never true/false."""
    return Annotated[float, Strict(), Field(**bounds), BeforeValidator(_numeric_text)]


Int = integer()
ExactInt = Annotated[int, Strict()]
"""An integer written as one (not 1.0, not true/false, not text)."""
Float = number()
Number = Annotated[float, Strict(), Field(allow_inf_nan=False)]
"""A finite number written as a number (no text, no true/false)."""
Str = Annotated[str, Strict()]
Bool = Annotated[bool, Strict()]
"""true or false only (not yes/no, 1/0 or "true")."""
Key = Annotated[str, BeforeValidator(_key_text), Strict()]
List = Annotated[list[T], Strict()]
"""A list (not a set, not a single value)."""
Pair = Annotated[tuple[T, T], BeforeValidator(_list_as_tuple), Strict()]
"""Exactly two values, written as a list."""


def _drop_null_from_schema(schema: dict[str, Any]) -> None:
    """JSON Schema of a NullRefused class: optional fields do not accept null either."""
    for prop in schema.get("properties", {}).values():
        options = prop.get("anyOf")
        if options and {"type": "null"} in options:
            options = [o for o in options if o != {"type": "null"}]
            del prop["anyOf"]
            if len(options) == 1:
                prop.update(options[0])
            else:
                prop["anyOf"] = options


#: CONFIG for NullRefused subclasses.
NULL_REFUSED_CONFIG = ConfigDict(CONFIG, json_schema_extra=_drop_null_from_schema)  # type: ignore[misc]


@dataclass(config=NULL_REFUSED_CONFIG)
class NullRefused:
    """Base of config classes whose keys may be left out but not set to null in a file.

    Code may still pass None (it means "not set"); only input validated with
    the INPUT context is refused.
    """

    @field_validator("*", mode="before")
    @classmethod
    def _refuse_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.context and info.context.get("forgetscope_input"):
            raise PydanticCustomError("null_refused", "is null; write a value, or leave the key out for the default")
        return value


# ---------------------------------------------------------------------------- errors

class ConfigProblem(ValueError):
    """What is wrong with a config, in one line: `WHERE: FIELD.PATH: MESSAGE` (empty parts left out).

    `where` is the file (and line) when the value came from a file; `path` is
    the field path as written in the file (`stages[1].lr`).
    """

    def __init__(self, path: str, message: str, where: str = "") -> None:
        self.path, self.message, self.where = path, message, where
        super().__init__(message)

    def __str__(self) -> str:
        return ": ".join(part for part in (self.where, self.path, self.message) if part)


def join(path: str, key: str | int) -> str:
    """`stages` + 1 → `stages[1]`; `model` + `hidden` → `model.hidden`."""
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{path}[{key}]"
    key = str(key)
    if not key.isprintable():  # a line break in a key would break the one-line message
        key = repr(key)
    return f"{path}.{key}" if path else key


# ---------------------------------------------------------------------------- reading

@dataclasses.dataclass
class ConfigFile:
    """A parsed config file: its data, and (YAML) where each value was written."""

    path: Path
    data: Any
    node: "Node | None" = None
    """The YAML node tree (None for TOML)."""

    def where(self, field_path: str = "") -> str:
        """`run.yaml line 12` for the line holding `field_path` (YAML), else the file name."""
        if self.node is None:
            return str(self.path)
        return f"{self.path} line {_node_at(self.node, field_path).start_mark.line + 1}"

    def locate(self, problem: ConfigProblem) -> ConfigProblem:
        """`problem` (raised by a check after validation) with this file and its line as `where`."""
        if not problem.where:
            problem.where = self.where(problem.path)
        return problem


def read_config(path: Path | str, error: Callable[[ConfigProblem], Exception], noun: str = "config") -> ConfigFile:
    """Read a .yaml/.yml/.toml file; a missing file, bad bytes or bad syntax is `error(problem)`, one line."""
    path = Path(path)
    if not path.is_file():
        what = "is a directory, not a" if path.is_dir() else "no such"
        raise error(ConfigProblem("", f"{what} {noun} file; check the path", str(path)))
    if path.suffix.lower() not in SUFFIXES:
        raise error(ConfigProblem("", f"a {noun} is a .yaml, .yml or .toml file", str(path)))
    try:
        text = read_utf8(path, lambda message: error(ConfigProblem("", message)))
    except OSError as exc:
        raise error(ConfigProblem("", f"cannot read the {noun} ({exc.strerror or exc})", str(path))) from None
    if path.suffix.lower() == ".toml":
        try:
            return ConfigFile(path, tomllib.loads(text))
        except tomllib.TOMLDecodeError as exc:
            raise error(ConfigProblem("", f"not valid TOML ({exc}); fix the file", str(path))) from None
        except RecursionError:
            raise error(ConfigProblem("", "not valid TOML (nested too deeply to read); fix the file", str(path))) from None
    data, node = _parse_yaml(text, path, error)
    return ConfigFile(path, data, node)


def _parse_yaml(text: str, path: Path, error: Callable[[ConfigProblem], Exception]) -> tuple[Any, "Node | None"]:
    """`yaml.safe_load(text)`, keeping the node tree (for line numbers)."""
    import yaml

    loader = None
    try:
        loader = yaml.SafeLoader(text)  # the reader refuses control characters right away
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise error(ConfigProblem("", f"{yaml_problem(exc, path)}; fix the file")) from None
    except RecursionError:
        raise error(ConfigProblem("", "not valid YAML (nested too deeply to read); fix the file", str(path))) from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, node


def _node_at(node: "Node", field_path: str) -> "Node":
    """The YAML node where `field_path` (`stages[1].lr`) is written: its key or list item, else the nearest one above."""
    import yaml

    anchor, rest = node, field_path
    while rest:
        if isinstance(node, yaml.MappingNode):
            for key, value in reversed(node.value):  # a repeated key: the last one counts, as when loading
                name = join("", key.value) if isinstance(key, yaml.ScalarNode) else None
                if name is not None and (rest == name or rest.startswith((name + ".", name + "["))):
                    anchor, node, rest = key, value, rest[len(name):].lstrip(".")
                    break
            else:
                return anchor
        elif isinstance(node, yaml.SequenceNode) and rest.startswith("["):
            index, _, tail = rest[1:].partition("]")
            if not index.isdigit() or int(index) >= len(node.value):
                return anchor
            anchor = node = node.value[int(index)]
            rest = tail.lstrip(".")
        else:
            return anchor
    return anchor


# ---------------------------------------------------------------------------- validating

def check(cls: type[M], data: Any, error: Callable[[ConfigProblem], Exception], *,
          file: ConfigFile | None = None, origin: str = "") -> M:
    """`data` validated as `cls`; any problem is `error(problem)` naming the file and line (or `origin`)."""
    try:
        return TypeAdapter(cls).validate_python(data, context=INPUT)
    except ValidationError as exc:
        path, message = explain(exc, cls, data)
        raise error(ConfigProblem(path, message, file.where(path) if file is not None else origin)) from None
    except RecursionError:
        raise error(ConfigProblem("", "nested too deeply to check", file.where() if file else origin)) from None


def json_schema(cls: type, title: str, description: str) -> dict[str, Any]:
    """The JSON Schema of a config class (draft 2020-12), for editors."""
    schema = TypeAdapter(cls).json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": title, "description": description,
            **{k: v for k, v in schema.items() if k not in ("title", "description")}}


_UNKNOWN = {"extra_forbidden", "unexpected_keyword_argument"}
_TYPES = {"int_type", "int_parsing", "int_from_float", "float_type", "float_parsing", "string_type", "bool_type",
          "bool_parsing", "dict_type", "dataclass_type", "dataclass_exact_type", "model_type", "model_attributes_type",
          "list_type", "tuple_type", "set_type", "is_instance_of", "path_type"}  # fmt: skip
_RANGES = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def explain(exc: ValidationError, cls: type, data: Any) -> tuple[str, str]:
    """(field path, what is wrong) for the first problem pydantic found; an unknown key comes first.

    Type names and allowed values come from the config class itself, so the
    message says what to write (`expected an integer, got 'ten'`,
    `'cosin' is not one of cosine, linear, constant`, `must be in [0, 1), got 1.5`).
    """
    errors = exc.errors()
    # a list where `str | list[str]` is expected: the list's own error says more than "not a string"
    mismatched = [_wrong_member(e, cls) for e in errors]
    kept = [e for e, wrong in zip(errors, mismatched) if not wrong or not any(
        not other_wrong and tuple(other["loc"][: len(e["loc"]) - 1]) == tuple(e["loc"][:-1])
        for other, other_wrong in zip(errors, mismatched))]
    errors = kept or errors
    error = next((e for e in errors if e["type"] in _UNKNOWN), errors[0])
    kind, loc, value = error["type"], tuple(error["loc"]), error.get("input")
    spot = _walk(cls, loc)
    if kind in _UNKNOWN:
        owner, key, where = (spot.tp, spot.rest[0], spot.path) if spot.rest else (spot.parent, loc[-1], spot.parent_path)
        known = _fields(owner) or []
        close = difflib.get_close_matches(str(key), known, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        return join(where, key), f"unknown field; known: {', '.join(known)}{hint}"
    if spot.rest[1:2] == ("[key]",):
        return spot.path, f"key {_show(spot.rest[0])} is not {_type_name((get_args(spot.tp) or (Any,))[0])}"
    if spot.union is not None and kind in _TYPES:
        return spot.path, f"{_show(_value_at(data, loc[:-1]))} is not {_type_name(spot.union)}"
    if spot.rest and get_origin(spot.tp) in (Union, types.UnionType):
        return spot.path, f"{_show(_value_at(data, loc[: len(loc) - len(spot.rest)]))} is not {_type_name(spot.tp)}"
    if kind == "missing" and _fixed_tuple(spot.parent) and isinstance(value, (list, tuple)):
        return spot.parent_path, f"expected {len(get_args(spot.parent))} values, got {len(value)}"
    if kind == "too_long" and _fixed_tuple(spot.tp):
        return spot.path, f"expected {len(get_args(spot.tp))} values, got {error.get('ctx', {}).get('actual_length')}"
    if kind == "missing":
        return spot.path, "is required"
    if kind == "literal_error":
        return spot.path, f"{_show(value)} is not {_type_name(spot.tp)}"
    if kind in _TYPES:
        if not spot.path and _fields(spot.tp) is not None:
            return "", (f"expected a mapping of fields at the top level (known: {', '.join(_fields(spot.tp) or [])}), "
                        f"got {_show(value)}")
        return spot.path, f"expected {_type_name(spot.tp)}, got {_show(value)}"
    if kind in _RANGES:
        return spot.path, f"must be {_interval(spot.meta)}{_example(spot.meta)}, got {_show(value)}"
    if kind == "finite_number":
        return spot.path, f"expected a finite number, got {_show(value)}"
    if kind == "value_error":
        return spot.path, " ".join(str(error.get("ctx", {}).get("error", error["msg"])).split())
    return spot.path, " ".join(str(error["msg"]).split())


def _wrong_member(error: Any, cls: type) -> bool:
    """Whether `error` only says the value is not of one member of a union (another member may fit it)."""
    return error["type"] in _TYPES and _walk(cls, tuple(error["loc"])).union is not None


@dataclasses.dataclass
class _Spot:
    """Where a pydantic error location leads in the config class."""

    path: str
    tp: Any
    """The type expected there (Annotated and Optional removed)."""
    meta: list
    """Constraints on it (Ge, Lt, ... and FieldInfo for examples)."""
    rest: tuple = ()
    """Location parts not followed: an unknown field, `[key]`."""
    parent: Any = None
    parent_path: str = ""
    union: Any = None
    """The union whose member `tp` is, when the location's last part chose the member."""


def _walk(cls: type, loc: tuple) -> _Spot:
    """Follow an error location (`('stages', 1, 'lr')`) through the config class's types."""
    tp, meta = _unwrap(cls, [])
    spot = _Spot("", tp, meta)
    for i, part in enumerate(loc):
        fields = _pydantic_fields(tp)
        origin = get_origin(tp)
        union = None
        if fields is not None and isinstance(part, str) and part in fields:
            info = fields[part]
            step, step_meta, path = info.annotation, [*info.metadata, info], join(spot.path, part)
        elif origin in (list, tuple) and isinstance(part, int):
            args = get_args(tp)
            step = (args[part] if _fixed_tuple(tp) and part < len(args) else args[0]) if args else Any
            step_meta, path = [], join(spot.path, part)
        elif origin is dict and loc[i + 1: i + 2] != ("[key]",):
            step, step_meta, path = (get_args(tp) or (Any, Any))[1], [], join(spot.path, str(part))
        elif origin in (Union, types.UnionType) and _member(tp, part) is not None:
            step, step_meta, path, union = _member(tp, part), list(meta), spot.path, tp  # a tag: no path step
        else:
            spot.rest = loc[i:]
            return spot
        parent, parent_path = tp, spot.path
        tp, meta = _unwrap(step, step_meta)
        spot = _Spot(path, tp, meta, (), parent, parent_path, union)
    return spot


def _member(union: Any, tag: Any) -> Any:
    """The member of `union` that pydantic's location tag names (`str`, `constrained-int`, `list[str]`, `FewShotSpec`)."""
    if not isinstance(tag, str):
        return None
    for member in get_args(union):
        tp, _ = _unwrap(member, [])
        origin = get_origin(tp)
        name = getattr(origin or tp, "__name__", None)
        if name and (tag in (name, f"constrained-{name}") or (origin is not None and tag.startswith(name + "["))):
            return member
    return None


def _unwrap(tp: Any, meta: list) -> tuple[Any, list]:
    """`Annotated[X | None, ...]` → X, collecting constraints."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            args = get_args(tp)
            meta = [*meta, *args[1:]]
            tp = args[0]
        elif origin in (Union, types.UnionType) and type(None) in get_args(tp):
            rest = [a for a in get_args(tp) if a is not type(None)]
            tp = rest[0] if len(rest) == 1 else Union[tuple(rest)]
            if len(rest) > 1:
                return tp, meta
        else:
            return tp, meta


def _pydantic_fields(tp: Any) -> dict[str, FieldInfo] | None:
    return getattr(tp, "__pydantic_fields__", None) if isinstance(tp, type) else None


def _fields(tp: Any) -> list[str] | None:
    """Field names a file may set (those left out of the JSON Schema are not)."""
    fields = _pydantic_fields(tp)
    if fields is None:
        return None
    return [name for name, info in fields.items() if not _skipped(info)]


def _skipped(info: FieldInfo) -> bool:
    from pydantic.json_schema import SkipJsonSchema

    return any(isinstance(m, SkipJsonSchema) for m in info.metadata) or \
        any(isinstance(m, SkipJsonSchema) for m in get_args(info.annotation)[1:])


def _fixed_tuple(tp: Any) -> bool:
    args = get_args(tp)
    return get_origin(tp) is tuple and bool(args) and args[-1] is not Ellipsis


def _value_at(data: Any, loc: tuple) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return data
    return data


def _type_name(tp: Any) -> str:
    tp, _ = _unwrap(tp, [])
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin in (list, tuple):
        item = get_args(tp)[0] if get_args(tp) else Any
        plural = {"a string": "strings", "an integer": "integers", "a number": "numbers"}.get(_type_name(item))
        return f"a list of {plural}" if plural else "a list"
    if origin is dict or _pydantic_fields(tp) is not None:
        return "a mapping"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", Path: "a path"}
    return names.get(tp, "a value")


def _interval(meta: list) -> str:
    """`in [0, 1)`, `positive`, `>= 0`: the allowed range from the field's constraints."""
    low = high = None
    for m in _constraints(meta):
        for name in ("gt", "ge"):
            if getattr(m, name, None) is not None:
                low = (name, getattr(m, name))
        for name in ("lt", "le"):
            if getattr(m, name, None) is not None:
                high = (name, getattr(m, name))
    if low and high:
        return f"in {'(' if low[0] == 'gt' else '['}{_num(low[1])}, {_num(high[1])}{')' if high[0] == 'lt' else ']'}"
    if low:
        if low == ("gt", 0):
            return "positive"
        return f"{'greater than' if low[0] == 'gt' else 'at least'} {_num(low[1])}"
    if high:
        return f"{'less than' if high[0] == 'lt' else 'at most'} {_num(high[1])}"
    return "in range"


def _constraints(meta: list) -> list:
    out = []
    for m in meta:
        out.extend(m.metadata if isinstance(m, FieldInfo) else [m])
    return out


def _example(meta: list) -> str:
    examples = next((m.examples for m in meta if isinstance(m, FieldInfo) and m.examples), None)
    return f" (e.g. {_num(examples[0])})" if examples else ""


def _num(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _show(value: Any) -> str:
    """A value in a message: repr, one line, at most 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


__all__ = [
    "CONFIG", "Bool", "ConfigFile", "ConfigProblem", "ExactInt", "Float", "INPUT", "Int", "Key", "List", "NULL_REFUSED_CONFIG",
    "NullRefused", "Number", "Pair", "Str", "check", "explain", "integer", "join", "json_schema", "number", "read_config",
]
