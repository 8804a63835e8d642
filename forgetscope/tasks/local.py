"""Local data files: JSONL, JSON, CSV and Parquet, chosen by extension.

Rows are read as plain dicts and keep their position, so an error can name
the exact line a person has to fix. Expected columns (rename others with
`columns:` in a spec file):

- multiple choice: `id`?, `question`, `choices` (a list; in CSV a JSON list
  string, or columns `choice_0..choice_n` / `A, B, C, D`), `answer` (0-based
  index or the choice text; a letter when choices are in A/B/C/D columns),
  `category`?. CSV cells that are plain integers are read as numbers, so a CSV
  answer "2" is the index 2 even when some choice reads "2" (use JSONL, where
  "2" and 2 differ, for numeric choice texts).
- generative: `id`?, `prompt`, `answer` (string) or `answers` (list), `category`?

A row without `id` gets its 0-based row index (as a string) as item id, so
ids stay stable only as long as rows are not inserted or reordered: give an
`id` column when the file will change.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from forgetscope.tasks.base import Kind, TaskError
from forgetscope.tasks.formats import MISSING, get_field, shown_name
from forgetscope.textfile import read_utf8

DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


@dataclass
class RowSet:
    """Raw rows and where each came from (for error messages)."""

    origin: str
    rows: list[dict[str, Any]]
    lines: list[int] | None = None
    """1-based line of each row in a text file; None for row-indexed sources."""
    notes: list[str] = field(default_factory=list)
    """Things a person should know about how the rows were chosen (shown in Task.source)."""
    unit: str = "row"
    """What a 0-based position is called in messages ("row", "example")."""
    positions: list[int] | None = None
    """Original 0-based position of each row when some source rows were skipped."""

    def where(self, index: int) -> str:
        if self.lines is not None:
            return f"{self.origin} line {self.lines[index]}"
        position = self.positions[index] if self.positions is not None else index
        return f"{self.origin} {self.unit} {position}"


def check_file(path: Path) -> None:
    if not path.exists():
        raise TaskError(f"{path}: file not found; check the path (relative paths start at {Path.cwd()})")


def read_rows(path: str | Path) -> RowSet:
    """Read a .jsonl/.json/.csv/.parquet file into rows."""
    path = Path(path)
    check_file(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rowset = _read_jsonl(path)
    elif suffix == ".json":
        rowset = _read_json(path)
    elif suffix == ".csv":
        rowset = _read_csv(path)
    elif suffix == ".parquet":
        rowset = _read_parquet(path)
    else:
        raise TaskError(f"{path}: unsupported file type {suffix!r}; use one of {', '.join(DATA_SUFFIXES)}")
    if not rowset.rows:
        raise TaskError(f"{path}: no rows found; the file is empty")
    return rowset


def _read_jsonl(path: Path) -> RowSet:
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    with io.StringIO(read_utf8(path, TaskError), newline=None) as handle:  # newlines as a text file reads them
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TaskError(
                    f"{path} line {number}: not valid JSON ({exc.msg} at column {exc.colno}); "
                    "each line must be one JSON object, fix or delete the line"
                ) from None
            except (ValueError, RecursionError) as exc:  # a 5000-digit number, nesting too deep
                raise TaskError(f"{path} line {number}: cannot be read as JSON ({_reason(exc)}); "
                                "fix or delete the line") from None
            if not isinstance(row, dict):
                raise TaskError(f"{path} line {number}: expected a JSON object {{...}}, got {type(row).__name__}")
            rows.append(row)
            lines.append(number)
    return RowSet(str(path), rows, lines)


def _reason(exc: BaseException) -> str:
    return "nested too deeply" if isinstance(exc, RecursionError) else str(exc)


def _read_json(path: Path) -> RowSet:
    text = read_utf8(path, TaskError)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TaskError(f"{path} line {exc.lineno}: not valid JSON ({exc.msg}); fix the file") from None
    except (ValueError, RecursionError) as exc:
        raise TaskError(f"{path}: cannot be read as JSON ({_reason(exc)}); fix the file") from None
    if isinstance(data, dict):
        lists = [k for k in ("data", "rows", "examples", "items") if isinstance(data.get(k), list)]
        if not lists:
            raise TaskError(f"{path}: expected a JSON list of objects (or {{\"data\": [...]}}); got an object")
        data = data[lists[0]]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise TaskError(f"{path}: expected a JSON list of objects, one per item")
    return RowSet(str(path), data)


def _read_csv(path: Path) -> RowSet:
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    with io.StringIO(read_utf8(path, TaskError), newline="") as handle:
        reader = csv.DictReader(handle)
        try:
            for row in reader:
                if None in row:
                    raise TaskError(f"{path} line {reader.line_num}: more cells than header columns; "
                                    "quote cells that contain commas")
                rows.append({k: _csv_cell(v) for k, v in row.items()})
                lines.append(reader.line_num)
        except csv.Error as exc:  # a NUL byte, a field over csv's size limit
            raise TaskError(f"{path} line {reader.line_num}: not readable CSV ({exc}); fix the file") from None
    return RowSet(str(path), rows, lines)


def _read_parquet(path: Path) -> RowSet:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise TaskError(f"{path}: not a readable Parquet file ({exc}); write it again") from None
    return RowSet(str(path), table.to_pylist())


def _csv_cell(value: str | None) -> Any:
    """CSV has no types: a cell holding a plain integer ("2", not "02") becomes an int,
    so an `answer` of digits is an index, as it would be in JSON."""
    if value is None:
        return ""
    digits = value[1:] if value.startswith("-") else value
    # isascii: "²" is a digit to isdigit but not to int(); past 4300 digits int() refuses
    if digits.isascii() and digits.isdigit() and len(digits) <= 4000 and str(int(value)) == value:
        return int(value)
    return value


def gather_choice_columns(row: Mapping[str, Any]) -> list[Any] | None:
    """Choices spread over columns `choice_0..choice_n` or `A, B, C, ...` (trailing blanks dropped)."""
    for names in (
        [f"choice_{i}" for i in range(26)],
        [f"choice{i}" for i in range(26)],
        [chr(ord("A") + i) for i in range(26)],
    ):
        values = []
        for name in names:
            if name not in row:
                break
            values.append(row[name])
        while values and (values[-1] is None or values[-1] == ""):
            values.pop()
        if len(values) >= 2:
            return values
    return None


def apply_columns(row: Mapping[str, Any], columns: Mapping[str, str], *, gather: bool = True) -> dict[str, Any]:
    """The row plus canonical names (`question`, `choices`, ...) taken from mapped columns.

    Raw columns stay, so templates may use either. Choices split over columns
    are gathered into `choices` when no `choices` column exists.
    """
    doc = dict(row)
    for canonical, column in columns.items():
        value = get_field(row, column)
        if value is MISSING:
            raise TaskError(
                f"column {column!r} (mapped to {canonical!r}) is missing; "
                f"columns are: {', '.join(map(shown_name, row))}"
            )
        doc[canonical] = value
    if gather and "choices" not in doc:
        gathered = gather_choice_columns(row)
        if gathered is not None:
            doc["choices"] = gathered
    return doc


def detect_kind(row: Mapping[str, Any]) -> Kind:
    """Multiple choice if the (mapped) row has choices, else generative."""
    return "multiple_choice" if "choices" in row else "generate"
