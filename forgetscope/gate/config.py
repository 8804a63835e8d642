"""Thresholds of the release gate: defaults, per task, per category; from the CLI or a YAML/TOML file.

    # gate.yaml (or gate.toml with the same keys)
    metric: acc              # acc, acc_norm, acc_per_token or exact_match
    holm: true               # Holm-adjust p-values across every gated group
    defaults:
      max_forgetting: 0.02   # largest F_true allowed
      alpha: 0.05            # significance level
    tasks:
      mmlu: {max_forgetting: 0.03}
    categories:              # categories are gated only when named here
      mmlu:
        "*": {max_forgetting: 0.10}              # every category of mmlu
        abstract_algebra: {alpha: 0.01}

A more specific entry wins, field by field: category → "*" of that task →
task → defaults. Options given on the command line (--max-forgetting,
--alpha, --holm, --metric) replace the file's top-level values, not its
per-task or per-category entries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..records.schema import METRIC_COLUMNS
from ..textfile import read_config

DEFAULT_MAX_FORGETTING = 0.02
DEFAULT_ALPHA = 0.05
TOP_LEVEL_FIELDS = ("metric", "holm", "defaults", "tasks", "categories")
THRESHOLD_FIELDS = ("max_forgetting", "alpha")


class GateConfigError(ValueError):
    """A gate config or option is invalid (message names the field and the allowed values)."""


@dataclass(frozen=True)
class Threshold:
    """When one group fails the gate."""

    max_forgetting: float = DEFAULT_MAX_FORGETTING
    """Largest chance-adjusted forgetting F_true allowed, as a share of items (0.02 = 2 items in 100)."""
    alpha: float = DEFAULT_ALPHA
    """Significance level of the one-sided test that F_true exceeds max_forgetting."""


@dataclass(frozen=True)
class GateConfig:
    """All thresholds of one gate run."""

    default: Threshold = Threshold()
    """Thresholds of every task without its own entry."""
    tasks: dict[str, Threshold] = field(default_factory=dict)
    """Per-task thresholds (already merged with the defaults)."""
    categories: dict[str, dict[str, Threshold]] = field(default_factory=dict)
    """task → category ("*" = all of the task's categories) → thresholds; only these categories are gated."""
    holm: bool = False
    """Holm-adjust the p-values across every gated group (tasks and categories)."""
    metric: str = "acc"
    """Which correctness the transitions use (acc, acc_norm, acc_per_token, exact_match)."""

    def for_task(self, task: str) -> Threshold:
        return self.tasks.get(task, self.default)

    def for_category(self, task: str, category: str) -> Threshold | None:
        """Thresholds of a category, or None when the config does not gate it."""
        entries = self.categories.get(task, {})
        return entries.get(category, entries.get("*"))


def parse_config(data: dict | None, source: str = "gate config", *, max_forgetting: float | None = None,
                 alpha: float | None = None, holm: bool | None = None, metric: str | None = None) -> GateConfig:
    """Build a GateConfig from parsed YAML/TOML (or None) and command-line overrides."""
    data = {} if data is None else data
    _mapping(data, source)
    _known(data, TOP_LEVEL_FIELDS, source)
    default = _threshold(data.get("defaults"), Threshold(), f"{source}: defaults")
    default = _threshold({k: v for k, v in (("max_forgetting", max_forgetting), ("alpha", alpha)) if v is not None},
                         default, "command line")
    tasks = {str(task): _threshold(entry, default, f"{source}: tasks.{_name(task)}")
             for task, entry in _mapping(data.get("tasks") or {}, f"{source}: tasks").items()}
    categories: dict[str, dict[str, Threshold]] = {}
    for task, entries in _mapping(data.get("categories") or {}, f"{source}: categories").items():
        base = tasks.get(str(task), default)
        entries = _mapping(entries, f"{source}: categories.{_name(task)}")
        star = _threshold(entries.get("*"), base, f"{source}: categories.{_name(task)}.*") if "*" in entries else base
        categories[str(task)] = {str(c): _threshold(e, star, f"{source}: categories.{_name(task)}.{_name(c)}")
                                 for c, e in entries.items()}
    holm_value = holm if holm is not None else data.get("holm", False)
    if not isinstance(holm_value, bool):
        raise GateConfigError(f"{source}: holm is {holm_value!r}; allowed: true or false")
    metric_value = metric if metric is not None else data.get("metric", "acc")
    if not isinstance(metric_value, str) or metric_value not in METRIC_COLUMNS:
        raise GateConfigError(f"{source}: metric is {metric_value!r}; allowed: {', '.join(METRIC_COLUMNS)}")
    return GateConfig(default, tasks, categories, holm_value, metric_value)


def load_config(path: Path | str | None, **overrides) -> GateConfig:
    """Read a .yaml/.yml or .toml gate config (None: defaults) and apply command-line overrides."""
    if path is None:
        return parse_config(None, "command line", **overrides)
    path = Path(path)
    if path.suffix.lower() not in (".toml", ".yaml", ".yml"):
        raise GateConfigError(f"{path}: unknown config format {path.suffix!r}; allowed: .yaml, .yml, .toml")
    try:
        data = read_config(path, GateConfigError)
    except OSError as exc:
        raise GateConfigError(f"{path}: cannot read the gate config ({exc.strerror or exc})") from None
    return parse_config(data, str(path), **overrides)


def _threshold(entry, base: Threshold, where: str) -> Threshold:
    """`base` with the fields `entry` gives, each checked."""
    if entry is None:
        return base
    _mapping(entry, where)
    _known(entry, THRESHOLD_FIELDS, where)
    values = {}
    for name, value in entry.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise GateConfigError(f"{where}: {name} is {value!r}; it must be a number")
        if name == "max_forgetting" and not 0 <= value <= 1:
            raise GateConfigError(f"{where}: max_forgetting is {value}; allowed: 0 to 1 (a share of items)")
        if name == "alpha" and not 0 < value < 1:
            raise GateConfigError(f"{where}: alpha is {value}; allowed: between 0 and 1, e.g. 0.05")
        values[name] = float(value)
    return replace(base, **values)


def _mapping(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise GateConfigError(f"{where}: expected a mapping of names to values, found {type(value).__name__}")
    return value


def _known(entry: dict, allowed: tuple[str, ...], where: str) -> None:
    unknown = [_name(k) for k in entry if k not in allowed]
    if unknown:
        raise GateConfigError(f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")


def _name(key) -> str:
    """A task, category or field name in a message: as is, or quoted when it holds a line break."""
    return str(key) if str(key).isprintable() else repr(str(key))
