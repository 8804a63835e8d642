"""Reading people's text files: UTF-8, or an error that says where the file stops being UTF-8.

Task files, specs, training configs and other tools' logs are written by people
and by other programs; a stray Latin-1 byte must give one line that names the
file, the byte offset and the line, not a UnicodeDecodeError traceback. The
readers here raise the caller's own error class, so each module keeps its one
exception type (TaskError, ConfigError, LogFormatError).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable


def non_utf8_position(path: Path | str) -> tuple[int, int, int] | None:
    """(byte offset, 1-based line, the byte) of the first byte that is not UTF-8; None if the file decodes.

    Read line by line in binary: a newline byte never occurs inside a UTF-8
    sequence, so each line decodes on its own and large logs are never held whole.
    """
    offset = 0
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                return offset + exc.start, number, raw[exc.start]
            offset += len(raw)
    return None


def describe_non_utf8(path: Path | str) -> str:
    """What is wrong and where, without the file name: `not UTF-8 text: byte 0xff at offset 14 (line 1); ...`."""
    try:
        position = non_utf8_position(path)
    except OSError:
        position = None
    where = "" if position is None else f": byte 0x{position[2]:02x} at byte offset {position[0]} (line {position[1]})"
    return f"not UTF-8 text{where}; save the file as UTF-8"


def read_utf8(path: Path | str, error: Callable[[str], Exception]) -> str:
    """The file's text (a leading BOM dropped); `error(message)` is raised when it is not UTF-8."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise error(f"{path}: {describe_non_utf8(path)}") from None


def yaml_problem(exc: Exception, path: Path | str) -> str:
    """A PyYAML error in one line: `spec.yaml line 3: not valid YAML (expected ',' or ']' at column 7)`.

    PyYAML's own message spans several lines and quotes the text with a caret.
    """
    mark: Any = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = " ".join(str(getattr(exc, "problem", None) or getattr(exc, "context", None) or exc).split())
    if mark is None:
        return f"{path}: not valid YAML ({problem})"
    return f"{path} line {mark.line + 1}: not valid YAML ({problem} at column {mark.column + 1})"


__all__ = ["describe_non_utf8", "non_utf8_position", "read_utf8", "yaml_problem"]
