"""Shared settings and strategies of the property-based input tests.

Every loader of a file that people or other tools write must, for any bytes,
either load or raise forgetscope's own error with a one-line message. The
strategies make three kinds of input: raw bytes; well-formed files with values
of every JSON/YAML type where a field is expected (type confusion); and a
valid file with bytes inserted, replaced or cut off (damage).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

#: Reproducible in CI (derandomize), no example database written into the repository, no
#: per-example deadline (a first call imports pandas/pyarrow). Sized so the whole fuzz suite
#: adds well under a minute to the default suite; FORGETSCOPE_FUZZ_EXAMPLES=2000 searches deeper.
FUZZ = settings(max_examples=int(os.environ.get("FORGETSCOPE_FUZZ_EXAMPLES", "60")), deadline=None,
                derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def one_line(exc: BaseException) -> str:
    """The error's message, checked: non-empty and one line (what the CLI prints after `error: `)."""
    message = str(exc)
    assert message.strip(), f"{type(exc).__name__} with an empty message"
    assert "\n" not in message and "\r" not in message, f"multi-line message: {message!r}"
    return message


# ------------------------------------------------------------------ values

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 5), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(["", "0", "1", "A", "true", "null", "[]", "a", "b", "{x}", "{{ x }}"]),
)
#: JSON-representable values of any shape: what a field may hold in a hand-edited or foreign file.
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


def fields(names: list[str], values=json_values, extra: bool = True):
    """Mappings over the given field names (any subset, values of any type), plus unknown keys."""
    known = st.dictionaries(st.sampled_from(names), values, max_size=len(names))
    if not extra:
        return known
    return st.tuples(known, st.dictionaries(st.text(max_size=6), values, max_size=2)).map(
        lambda pair: {**pair[1], **pair[0]})


def to_json(value) -> str:
    """JSON the way Python writes it (NaN and Infinity included, as some tools write them)."""
    return json.dumps(value, allow_nan=True)


def yaml_text(value) -> str:
    import yaml

    return yaml.safe_dump(value, allow_unicode=True, sort_keys=False)


def finite(value) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


# ------------------------------------------------------------------ damage

@st.composite
def damaged(draw, valid: bytes) -> bytes:
    """`valid` with a few bytes inserted or overwritten (non-UTF-8 ones likely) and maybe cut short."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        junk = draw(st.one_of(st.binary(min_size=1, max_size=3), st.sampled_from(
            [b"\xff", b"\xe9", b"\xc3", b"\x00", b"\n", b'"', b",", b"{", b"[", b":", b"\r", b"\xef\xbb\xbf"])))
        if draw(st.booleans()):
            data[at:at + len(junk)] = junk
        else:
            data[at:at] = junk
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


def any_bytes(valid: bytes):
    """Raw bytes, or `valid` damaged."""
    return st.one_of(st.binary(max_size=200), damaged(valid))


def write(folder: Path, name: str, data: bytes | str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path
