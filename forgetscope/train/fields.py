"""The training runner's config error, and the helpers its checks share.

Configs are pydantic dataclasses (see `forgetscope.configio`); the checks that
span several fields (a mixture naming an unknown source, ...) and the errors
found later (a data file that does not exist) raise `ConfigError` with the
field's path in the file, e.g. ``stages[1].start_from: 'x' is not one of the
earlier stages``, because the person reading it has the file open.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from forgetscope.configio import ConfigProblem, join


class ConfigError(ConfigProblem):
    """A config value is missing, unknown or out of range; the message starts with its field path
    (and, for a value read from a file, the file and line)."""

    @classmethod
    def of(cls, problem: ConfigProblem) -> "ConfigError":
        return cls(problem.path, problem.message, problem.where)


def to_mapping(obj: Any) -> Any:
    """A dataclass tree as plain JSON-safe data (tuples → lists)."""
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


__all__ = ["ConfigError", "check", "join", "to_mapping"]
