"""Thresholds of the release gate: defaults, per task, per category; from the CLI or a YAML/TOML file.

    # gate.yaml (or gate.toml with the same keys)
    metric: acc              # acc, acc_norm, acc_per_token or exact_match
    holm: true               # Holm-adjust p-values across every gated group
    defaults:
      max_forgetting: 0.02   # largest F_true allowed
      alpha: 0.05            # significance level
      prove_below: false     # true: pass only when F_true < max_forgetting is shown at level alpha
    tasks:
      mmlu: {max_forgetting: 0.03}
      safety: {prove_below: true}
    categories:              # categories are gated only when named here
      mmlu:
        "*": {max_forgetting: 0.10}              # every category of mmlu
        abstract_algebra: {alpha: 0.01}

A more specific entry wins, field by field: category → "*" of that task →
task → defaults. Options given on the command line (--max-forgetting,
--alpha, --prove-below, --holm, --metric) replace the file's top-level values, not its
per-task or per-category entries.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field
from pydantic import dataclasses as pydantic_dataclasses

from ..configio import (CONFIG, NULL_REFUSED_CONFIG, Bool, ConfigFile, ConfigProblem, Key, NullRefused, Number, check,
                        read_config)
from ..records.schema import METRIC_COLUMNS

DEFAULT_MAX_FORGETTING = 0.02
DEFAULT_ALPHA = 0.05
#: Threshold.mode values (the `mode` of each gate decision): the claim each group's p tests.
EXCEED, PROVE_BELOW = "exceed", "prove-below"
Metric = Literal[tuple(METRIC_COLUMNS)]  # type: ignore[valid-type]


class GateConfigError(ValueError):
    """A gate config or option is invalid (message names the field and the allowed values)."""


@dataclass(frozen=True)
class Threshold:
    """When one group fails the gate."""

    max_forgetting: float = DEFAULT_MAX_FORGETTING
    """Largest chance-adjusted forgetting F_true allowed, as a share of items (0.02 = 2 items in 100)."""
    alpha: float = DEFAULT_ALPHA
    """Significance level of the group's one-sided test."""
    prove_below: bool = False
    """Equivalence mode: pass only when F_true < max_forgetting is shown at level alpha (few items fail);
    otherwise (default) fail only when F_true > max_forgetting is shown."""

    @property
    def mode(self) -> str:
        return PROVE_BELOW if self.prove_below else EXCEED


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


# ---------------------------------------------------------------------------- the file

@pydantic_dataclasses.dataclass(config=NULL_REFUSED_CONFIG)
class ThresholdEntry(NullRefused):
    """Thresholds given for one scope; a field left out comes from the scope above."""

    max_forgetting: Annotated[Number, Field(ge=0, le=1, examples=[DEFAULT_MAX_FORGETTING])] | None = None
    """Largest chance-adjusted forgetting F_true allowed, as a share of items (0.02 = 2 items in 100)."""
    alpha: Annotated[Number, Field(gt=0, lt=1, examples=[DEFAULT_ALPHA])] | None = None
    """Significance level of the group's one-sided test."""
    prove_below: Bool | None = None
    """Pass only when F_true < max_forgetting is shown at level alpha (equivalence mode; default false)."""


@pydantic_dataclasses.dataclass(config=CONFIG)
class GateFile:
    """A gate config file (YAML or TOML). A more specific entry wins, field by field:
    category → "*" of that task → task → defaults."""

    metric: Metric = "acc"
    """Which correctness the transitions use."""
    holm: Bool = False
    """Holm-adjust the p-values across every gated group (tasks and categories)."""
    defaults: ThresholdEntry | None = None
    """Thresholds of every task without its own entry (built-in: max_forgetting 0.02, alpha 0.05)."""
    tasks: dict[Key, ThresholdEntry | None] | None = None
    """Per-task thresholds, by task name."""
    categories: dict[Key, dict[Key, ThresholdEntry | None]] | None = None
    """task → category ("*": every category of the task) → thresholds; categories are gated only when named here."""


def _gate_error(problem: ConfigProblem) -> GateConfigError:
    return GateConfigError(str(problem))


def parse_config(data: dict | None, source: str = "gate config", *, max_forgetting: float | None = None,
                 alpha: float | None = None, prove_below: bool | None = None, holm: bool | None = None,
                 metric: str | None = None,
                 file: ConfigFile | None = None) -> GateConfig:
    """Build a GateConfig from parsed YAML/TOML (or None) and command-line overrides.

    Errors name `source` (or the file and line) and the field.
    """
    parsed = check(GateFile, {} if data is None else data, _gate_error, file=file, origin=source)
    given = {k: v for k, v in (("max_forgetting", max_forgetting), ("alpha", alpha), ("prove_below", prove_below))
             if v is not None}
    options = {k: v for k, v in (("holm", holm), ("metric", metric)) if v is not None}
    command_line = check(ThresholdEntry, given, _gate_error, origin="command line")
    overrides = check(GateFile, options, _gate_error, origin="command line")
    default = _merged(command_line, _merged(parsed.defaults, Threshold()))
    tasks = {task: _merged(entry, default) for task, entry in (parsed.tasks or {}).items()}
    categories: dict[str, dict[str, Threshold]] = {}
    for task, entries in (parsed.categories or {}).items():
        base = tasks.get(task, default)
        star = _merged(entries["*"], base) if "*" in entries else base
        categories[task] = {category: _merged(entry, star) for category, entry in entries.items()}
    return GateConfig(default, tasks, categories, overrides.holm if holm is not None else parsed.holm,
                      overrides.metric if metric is not None else parsed.metric)


def load_config(path: Path | str | None, **overrides) -> GateConfig:
    """Read a .yaml/.yml or .toml gate config (None: defaults) and apply command-line overrides."""
    if path is None:
        return parse_config(None, "command line", **overrides)
    file = read_config(path, _gate_error, noun="gate config")
    return parse_config(file.data, str(path), file=file, **overrides)


def _merged(entry: ThresholdEntry | None, base: Threshold) -> Threshold:
    """`base` with the fields `entry` gives."""
    if entry is None:
        return base
    fields = {k: float(v) for k, v in (("max_forgetting", entry.max_forgetting), ("alpha", entry.alpha))
              if v is not None}
    if entry.prove_below is not None:
        fields["prove_below"] = bool(entry.prove_below)
    return replace(base, **fields)
