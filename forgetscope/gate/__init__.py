"""The release gate: decide (decide.py) from a comparison and thresholds (config.py), rendered for CI (render.py).

    from forgetscope.gate import decide, load_config, to_markdown
"""

from .config import EXCEED, PROVE_BELOW, GateConfig, GateConfigError, Threshold, load_config, parse_config
from .decide import DECISION_COLUMNS, GateError, GateResult, decide, forgetting_p_value, holm_adjust
from .render import error_junit_xml, error_markdown, to_json, to_junit_xml, to_markdown

__all__ = [
    "DECISION_COLUMNS", "EXCEED", "GateConfig", "GateConfigError", "GateError", "GateResult", "PROVE_BELOW",
    "Threshold", "decide", "error_junit_xml", "error_markdown", "forgetting_p_value", "holm_adjust", "load_config",
    "parse_config", "to_json", "to_junit_xml", "to_markdown",
]
