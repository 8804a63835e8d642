"""Hugging Face datasets: a hub id, or the same data on local disk.

Local data is first-class because evaluation machines are often offline:
`path` may be a folder written by `Dataset.save_to_disk` /
`DatasetDict.save_to_disk`, a folder of data files (`test.jsonl`,
`data/validation-00000-of-00001.parquet`, ... named by split, the layout of a
hub dataset repository), or a single .jsonl/.json/.csv/.parquet file. Only a
path that does not exist is treated as a hub id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from forgetscope.tasks.base import TaskError
from forgetscope.tasks.local import RowSet

BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
SPLIT_ALIASES = {"dev": "validation", "validation": "dev", "val": "validation"}
DEFAULT_HINT = "write a spec file with `path: /path/to/local/data` (a .jsonl/.parquet file or a dataset folder)"


def load_hf_rows(
    path: str,
    name: str | None = None,
    split: str = "test",
    *,
    hint: str = DEFAULT_HINT,
    exact_split: bool = False,
) -> RowSet:
    """Rows of one split, from local disk when `path` exists, else from the hub.

    A local folder holding a single split is used whatever `split` says
    (someone who points at one file means those are the items), unless
    `exact_split` is set, as for few-shot splits that must not silently be
    the evaluated rows themselves.
    """
    local = Path(path).expanduser()
    if local.exists():
        return _load_local(local, name, split, exact_split)
    return _load_hub(path, name, split, hint)


def _load_hub(path: str, name: str | None, split: str, hint: str) -> RowSet:
    import datasets

    label = f"Hugging Face dataset {path!r}" + (f" (config {name!r}, split {split!r})" if name else f" (split {split!r})")
    try:
        dataset = datasets.load_dataset(path, name, split=split)
    except Exception as exc:  # datasets raises many types (ConnectionError, OSError, ValueError, ...)
        offline = bool(getattr(datasets.config, "HF_HUB_OFFLINE", False)) or isinstance(exc, ConnectionError)
        if offline:
            reason = "it could not be loaded offline (the Hub is unreachable and it is not in the local cache)"
        else:
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            reason = f"loading failed with {type(exc).__name__}: {first}"
        raise TaskError(f"cannot load {label}: {reason}; to use local files instead, {hint}") from None
    origin = f"hf:{path}" + (f"/{name}" if name else "") + f"[{split}]"
    return RowSet(origin, dataset.to_list())


def _load_local(path: Path, name: str | None, split: str, exact_split: bool) -> RowSet:
    import datasets

    if path.is_file():
        builder = BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise TaskError(f"{path}: unsupported file type; use one of {', '.join(BUILDERS)} or a dataset folder")
        if exact_split:
            raise TaskError(
                f"{path}: a single file has no split {split!r}; give a few-shot file instead, "
                "or point at a folder with one file per split (train.jsonl, test.jsonl)"
            )
        dataset = _call(path, lambda: datasets.load_dataset(builder, data_files=str(path), split="train"))
        return RowSet(str(path), dataset.to_list())
    if (path / "state.json").exists() and (path / "dataset_info.json").exists():
        if exact_split:
            raise TaskError(f"{path}: a saved single Dataset has no split {split!r}; save a DatasetDict instead")
        return RowSet(str(path), _call(path, lambda: datasets.load_from_disk(str(path))).to_list())
    if (path / "dataset_dict.json").exists():
        splits = _call(path, lambda: datasets.load_from_disk(str(path)))
    else:
        splits = _call(path, lambda: datasets.load_dataset(str(path), name))
    return _pick_split(path, splits, split, exact_split)


def _call(path: Path, load: Any) -> Any:
    try:
        return load()
    except TaskError:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise TaskError(f"{path}: cannot be read as a dataset ({type(exc).__name__}: {first})") from None


def _pick_split(path: Path, splits: Any, split: str, exact_split: bool) -> RowSet:
    names = list(splits.keys())
    if split in names:
        return RowSet(f"{path}[{split}]", splits[split].to_list())
    alias = SPLIT_ALIASES.get(split)
    if alias in names:  # datasets names a local dev.jsonl "validation"
        return RowSet(f"{path}[{alias}]", splits[alias].to_list())
    if len(names) == 1 and not exact_split:
        rows = RowSet(f"{path}[{names[0]}]", splits[names[0]].to_list())
        rows.notes.append(f"no split {split!r}, used the only split {names[0]!r}")
        return rows
    raise TaskError(
        f"{path}: no split {split!r}; it has {', '.join(map(repr, names))}. "
        "Name one (`split:` in a spec file) or name the files by split (test.jsonl, train.jsonl)"
    )
