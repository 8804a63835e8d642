"""Checkpoints on disk: HF model directories, resume state, stage records and the run manifest.

Layout of a stage's home directory (a single run uses one home for all stages;
a sweep gives every distinct stage its own, shared by the runs that agree on it):

    checkpoints/<stage>-step000100/        save_pretrained: model.safetensors, config.json, tokenizer files
    state/<stage>-step000100.safetensors   optimizer, RNG states, losses: only what resuming needs
    stage-<stage>.json                     the stage record: hash, plan, finished checkpoints

The resume state holds no pickle: its tensors (optimizer moments and steps,
RNG states) are safetensors, everything else (step, hash, optimizer settings,
losses) is JSON in the file's metadata, so reading a planted state file can
fail but never runs code. State files of older versions (`.pt`, pickle) are
not read (see `legacy_state_path`).

A checkpoint is written to a temporary directory and renamed, then its state
file, then the stage record (atomically); the record is the commit point, so
a kill at any moment leaves either a listed, complete checkpoint or nothing
that counts. The temporaries a kill leaves (`.NAME.PID@HOST.tmp`) are removed
when the stage next trains, once their process is gone. The HF directory
holds nothing but the model and tokenizer, so
`AutoModelForCausalLM.from_pretrained` and `forgetscope eval` load it as is.

The run manifest (`<run_dir>/manifest.json`, format `forgetscope-run-manifest`
version 1) lists the checkpoints of every stage of a run in training order,
with paths relative to the manifest's directory; other forgetscope commands
(sequences, reports) read it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from forgetscope.records.store import atomic_write_text
from forgetscope.records.tempfiles import remove_stale, temp_sibling

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

MANIFEST_FORMAT = "forgetscope-run-manifest"
MANIFEST_VERSION = 1


def checkpoint_dirname(stage: str, step: int) -> str:
    return f"{stage}-step{step:06d}"


def checkpoint_name(stage: str, step: int) -> str:
    """The name other tools show: `pretrain/step-100`."""
    return f"{stage}/step-{step}"


def write_dir(target: Path, write: Callable[[Path], None], *, ignore_errors: bool = False) -> Path:
    """Make directory `target` atomically: `write` fills a temporary sibling, which then takes target's place.

    A temporary of this process left from before, and a `target` already there, are removed first
    (os.replace does not overwrite a directory that holds files); with `ignore_errors` what cannot be
    removed is left (shutil.rmtree's ignore_errors), else the error is raised."""
    def remove(path: Path) -> None:
        if ignore_errors:
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            shutil.rmtree(path)

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(target)
    remove(tmp)
    write(tmp)
    remove(target)
    os.replace(tmp, target)
    return target


def save_model_dir(model: "PreTrainedModel", tokenizer: "PreTrainedTokenizerBase", target: Path) -> Path:
    """save_pretrained (safetensors) + tokenizer into `target`, atomically (temp dir, then rename). A `target`
    already there was left by a run killed before it listed this checkpoint (not part of any record): replaced."""
    def write(tmp: Path) -> None:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))

    return write_dir(target, write)


STATE_FORMAT = "forgetscope-train-state"
STATE_VERSION = "1"


class StateError(RuntimeError):
    """A resume state file cannot be read (message names the file and what to do)."""


def save_state(state: dict, path: Path) -> None:
    """Write a resume state (nested dicts, lists, tuples, numbers, strings, tensors) as one
    safetensors file: the tensors as tensors, the structure as JSON metadata. Atomic (temp, rename)."""
    from safetensors.torch import save_file

    tensors: dict[str, Any] = {}
    skeleton = _encode(state, tensors)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    metadata = {"format": STATE_FORMAT, "version": STATE_VERSION, "state": json.dumps(skeleton)}
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def load_state(path: Path) -> dict:
    """The state `save_state` wrote, tensors on the CPU. Nothing in the file is executed."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
        if metadata.get("format") != STATE_FORMAT or metadata.get("version") != STATE_VERSION:
            raise ValueError(f"not a {STATE_FORMAT} version {STATE_VERSION} file")
        return _decode(json.loads(metadata["state"]), tensors)
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as exc:
        raise StateError(f"{path}: not a readable resume state ({str(exc).splitlines()[0] if str(exc) else exc!r}); "
                         "delete it to retrain this stage from its start") from None


def _encode(value: Any, tensors: dict[str, Any]) -> Any:
    """JSON for `value`; every tensor goes into `tensors` and is replaced by its name.

    Dicts and tuples are tagged so that they come back as they were (int keys of an
    optimizer's state, tuple betas): a dict is {"$dict": [[key, value], ...]}, a tuple
    {"$tuple": [...]}, a tensor {"$tensor": name}.
    """
    import torch

    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Tensor):
        name = f"t{len(tensors)}"
        tensors[name] = value.detach().cpu().contiguous()
        return {"$tensor": name}
    if isinstance(value, dict):
        return {"$dict": [[_encode(k, tensors), _encode(v, tensors)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"$tuple": [_encode(v, tensors) for v in value]}
    if isinstance(value, list):
        return [_encode(v, tensors) for v in value]
    raise TypeError(f"resume state cannot hold a {type(value).__name__}")


def _decode(value: Any, tensors: dict[str, Any]) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if isinstance(value, dict):
        if set(value) == {"$tensor"}:
            return tensors[value["$tensor"]]
        if set(value) == {"$tuple"}:
            return tuple(_decode(v, tensors) for v in value["$tuple"])
        if set(value) == {"$dict"}:
            return {_decode(k, tensors): _decode(v, tensors) for k, v in value["$dict"]}
        raise ValueError(f"unexpected entry {sorted(value)[:3]} in the state")
    return value


class StageRecord:
    """The JSON record of one stage in its home: hash, plan summary, finished checkpoints, losses."""

    def __init__(self, home: Path, stage: str) -> None:
        self.home, self.stage = home, stage
        self.path = home / f"stage-{stage}.json"
        self.data: dict[str, Any] = {}

    def load(self) -> "StageRecord":
        try:
            self.data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.data = {}
        return self

    @property
    def exists(self) -> bool:
        return bool(self.data)

    @property
    def complete(self) -> bool:
        return bool(self.data.get("complete"))

    @property
    def checkpoints(self) -> list[dict]:
        return list(self.data.get("checkpoints", []))

    def start(self, stage_hash: str, info: dict) -> None:
        self.data = {"stage": self.stage, "hash": stage_hash, "complete": False, "checkpoints": [], **info}
        self.write()

    def add_checkpoint(self, entry: dict, *, complete: bool, extra: dict | None = None) -> None:
        self.data["checkpoints"] = [c for c in self.checkpoints if c["step"] != entry["step"]] + [entry]
        self.data["complete"] = complete
        self.data.update(extra or {})
        self.write()

    def write(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(self.data, indent=1))

    def state_path(self, step: int) -> Path:
        return self.home / "state" / f"{checkpoint_dirname(self.stage, step)}.safetensors"

    def legacy_state_path(self, step: int) -> Path:
        """Where forgetscope before the safetensors state wrote it (a pickle, `torch.save`).

        Such a file is never loaded: unpickling a file can run any code, and a state
        file is easy to plant. The runner refuses to resume from it (see runner.py).
        """
        return self.home / "state" / f"{checkpoint_dirname(self.stage, step)}.pt"

    def remove_stale_temps(self) -> list[Path]:
        """Temporary checkpoint directories and state files of killed runs (never a live writer's)."""
        return remove_stale(self.home / "checkpoints") + remove_stale(self.home / "state")

    def drop_old_states(self, keep_step: int) -> None:
        """Only the newest state file is needed to resume; earlier ones (and old-format ones) are deleted."""
        for path in (self.home / "state").glob(f"{self.stage}-step*"):
            if path.is_file() and path.suffix in (".safetensors", ".pt") and path != self.state_path(keep_step):
                path.unlink(missing_ok=True)


def write_manifest(run_dir: Path, run: str, config_hash: str, stages: list[tuple[StageRecord, dict]],
                   extra: dict | None = None) -> Path:
    """Write `<run_dir>/manifest.json` from the stage records, in training order (atomic)."""
    checkpoints = []
    for record, info in stages:
        for entry in record.checkpoints:
            absolute = record.home / entry["path"]
            checkpoints.append({**entry, "path": os.path.relpath(absolute, run_dir), **info})
    manifest = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "run": run, "config_hash": config_hash,
                "checkpoints": checkpoints, **(extra or {})}
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "manifest.json"
    atomic_write_text(path, json.dumps(manifest, indent=1))
    return path


def read_manifest(path: Path | str) -> dict:
    """A run manifest (a file or the run directory holding it); checks the format and version."""
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.json"
    data = json.loads(path.read_text())
    if data.get("format") != MANIFEST_FORMAT or data.get("version") != MANIFEST_VERSION:
        raise ValueError(f"{path}: not a {MANIFEST_FORMAT} version {MANIFEST_VERSION} file")
    return data
