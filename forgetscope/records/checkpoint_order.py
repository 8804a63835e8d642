"""Which checkpoint came first: the order a command was given, recorded beside the records.

A results directory can hold the records of many checkpoints, and nothing in
the records says which came first (names sort in any order: "finetuned" before
"posttrained"). So the commands that are given an order record it:
`compare A B --output R` records "A before B" in R, `sequence C1 C2 C3 --output R`
records "C1, C2, C3", as one small JSON file each,

    R/orders/<hash of the order>.json    {"format": ..., "version": 1, "checkpoints": ["A", "B"]}

written atomically (temporary file, then rename) and named by its content:
two commands never overwrite each other's order, and repeating a command
rewrites the same file.

Reading (`known_order`): every recorded order says that each of its
checkpoints comes before the later ones; the checkpoints of a directory are
in a known order only if every two of them are ordered that way, directly or
through other checkpoints (A before B and B before C: A before C). Otherwise
(nothing recorded, orders that leave two checkpoints unordered, or orders
that contradict each other) the caller must be told the order: it is never
guessed.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Iterable, Sequence

ORDERS_DIR = "orders"
ORDER_FORMAT = "forgetscope-checkpoint-order"


class OrderError(ValueError):
    """The order of some checkpoints is not known (or recorded orders are unreadable or disagree)."""


def record_order(results_dir: str | Path, checkpoints: Sequence[str]) -> Path | None:
    """Record that `checkpoints` (names as in the records) came in this order; None for fewer than two (or
    when results_dir is a URL: the file is written there, records.fsstore)."""
    from .store import atomic_write_text

    names = list(dict.fromkeys(str(c) for c in checkpoints))
    if len(names) < 2:
        return None
    text = json.dumps({"format": ORDER_FORMAT, "version": 1, "checkpoints": names}, indent=1)
    name = f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"
    from .fsstore import exists, is_url, write_text

    if is_url(str(results_dir)):  # a results directory at a URL (records.fsstore)
        url = f"{str(results_dir).rstrip('/')}/{ORDERS_DIR}/{name}"
        if not exists(url):
            write_text(url, text)
        return None
    path = Path(results_dir) / ORDERS_DIR / name
    if not path.exists():
        atomic_write_text(path, text)
    return path


def results_root(path: str | Path) -> Path | None:
    """The results directory a records path belongs to (RESULTS, RESULTS/records/... or a file in it)."""
    path = Path(path)
    if path.is_dir() and ((path / "records").is_dir() or (path / ORDERS_DIR).is_dir()):
        return path
    for part in [path, *path.parents]:
        if part.name == "records":
            return part.parent
    return None


def recorded_orders(results_dir: str | Path | None) -> list[list[str]]:
    """Every order recorded in a results directory (none if it has no `orders/`)."""
    if results_dir is None:
        return []
    folder = Path(results_dir) / ORDERS_DIR
    orders = []
    for file in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(file.read_bytes().decode("utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise OrderError(f"{file}: unreadable checkpoint order ({type(exc).__name__}); delete the file and give "
                             "the order with --order") from None
        names = data.get("checkpoints") if isinstance(data, dict) and data.get("format") == ORDER_FORMAT else None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise OrderError(f"{file}: not a checkpoint order (needs \"format\": {ORDER_FORMAT!r} and a list of "
                             "\"checkpoints\"); delete the file and give the order with --order")
        orders.append(names)
    return orders


def known_order(checkpoints: Iterable[str], orders: list[list[str]]) -> list[str]:
    """`checkpoints` in the order the recorded `orders` imply, or OrderError saying why it is not known."""
    names = list(dict.fromkeys(checkpoints))
    if len(names) < 2:
        return names
    later: dict[str, set[str]] = {}
    for order in orders:
        for i, name in enumerate(order):
            later.setdefault(name, set()).update(order[i + 1:])
    after = {name: _reachable(name, later) for name in names}
    for a in names:
        for b in names:
            if a < b and b in after[a] and a in after[b]:
                raise OrderError(f"the recorded orders disagree: {a} both before and after {b}")
    unordered = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]
                 if b not in after[a] and a not in after[b]]
    if unordered:
        a, b = unordered[0]
        why = "no order is recorded" if not orders else f"no recorded order says whether {a} or {b} came first"
        raise OrderError(why)
    return sorted(names, key=lambda n: -len(after[n] & set(names)))


def _reachable(start: str, later: dict[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(later.get(start, ()))
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(later.get(name, ()))
    return seen


_STEP = re.compile(r"(step|checkpoint|ckpt|iter)[-_]?\d+", re.IGNORECASE)


def short_names(names: Sequence[str]) -> list[str]:
    """Shortest unique path suffixes of checkpoint names, for axis labels:
    "/runs/x/A-pretrained" and "/runs/x/B-finetuned" become "A-pretrained" and "B-finetuned"."""
    parts = [str(n).rstrip("/").split("/") for n in names]
    # "step-350" alone says nothing of the stage: keep "pretrain/step-350" whole
    start = 2 if any(len(p) > 1 and _STEP.fullmatch(p[-1]) for p in parts) else 1
    for k in range(start, max((len(p) for p in parts), default=1) + 1):
        short = ["/".join(p[-k:]) for p in parts]
        if len(set(short)) == len(short):
            return short
    return [str(n) for n in names]
