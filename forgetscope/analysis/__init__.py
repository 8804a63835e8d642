"""Transitions between two checkpoints: pairing, chance adjustment, statistics.

    from forgetscope.analysis import compare_records
    result = compare_records(before_records, after_records, metric="acc")
    result.tasks            # one row per task: forgetting, backward transfer, ...
    result.to_json_dict()   # the same, JSON-safe
"""

from .chance import chance_forgetting, chance_terms, max_forgetting
from .pairing import ItemMismatchError, PairedItems, PairingError, pair_records
from .sequence import checkpoint_sequence
from .stats import bootstrap_ci, mcnemar_p
from .transitions import (
    HEADLINE_COLUMNS,
    SUMMARY_COLUMNS,
    Comparison,
    compare_records,
    transition_items,
    transition_summary,
)

__all__ = [
    "Comparison",
    "HEADLINE_COLUMNS",
    "ItemMismatchError",
    "PairedItems",
    "PairingError",
    "SUMMARY_COLUMNS",
    "bootstrap_ci",
    "chance_forgetting",
    "chance_terms",
    "checkpoint_sequence",
    "compare_records",
    "max_forgetting",
    "mcnemar_p",
    "pair_records",
    "transition_items",
    "transition_summary",
]
