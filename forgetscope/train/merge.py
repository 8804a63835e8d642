"""Merge two checkpoints along an interpolation path, so the items can be followed along it.

    merge_checkpoints("post", "finetuned", [0, 0.25, 0.5, 0.75, 1], method="linear", output="merged")

writes one Hugging Face directory per α (`alpha-0.25/`: safetensors weights,
config, tokenizer) and a run manifest (`manifest.json`, the training
runner's format, stage "merge"), so `forgetscope sequence merged --task T`
and `report` evaluate and follow every item from A (α = 0) to B (α = 1).

Methods, per weight tensor a of A and b of B:
- linear: (1 − α) a + α b;
- slerp: spherical interpolation of each tensor as one flattened vector,
  sin((1 − α)θ)/sin θ · a + sin(αθ)/sin θ · b, θ the angle between a and b;
  linear where they are nearly parallel (|cos θ| > 0.9995).

The arithmetic is mergekit's (arcee-ai/mergekit, LGPL-3.0; imported only
here, when a merge runs): a maintained implementation, used as a library.
Before it runs, the two checkpoints are checked to be mergeable at all, and
refused with one line naming the difference otherwise: the same config
(architecture, sizes; names and versions aside), the same tokenizer files
(byte for byte), and the same weight names and shapes, read from the
safetensors headers. Pickle-only weights (pytorch_model.bin) are refused:
nothing from an input is unpickled.

Each α's directory is written to a temporary sibling and renamed, and the
manifest last, so a killed merge leaves no half-written checkpoint; a rerun
redoes only the α values whose directory is missing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from forgetscope.backends.digests import file_digest
from forgetscope.records.store import atomic_write_text
from forgetscope.train.checkpoints import MANIFEST_FORMAT, MANIFEST_VERSION, write_dir

METHODS = ("linear", "slerp")
#: config.json keys that name or version a checkpoint without changing what it computes.
_CONFIG_NOISE = {"_name_or_path", "transformers_version", "torch_dtype", "dtype", "_commit_hash"}
#: Files whose bytes define a tokenizer (those present on either side must match).
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "merges.txt", "vocab.txt")


class MergeError(ValueError):
    """Two checkpoints cannot be merged (message: what differs, and what to do)."""


@dataclass(frozen=True)
class MergeResult:
    manifest: Path
    checkpoints: list[Path]
    """One directory per α, in the order given."""


def parse_alphas(text: str) -> list[float]:
    """"0,0.25,0.5" -> [0.0, 0.25, 0.5]; each in [0, 1], no repeats."""
    try:
        alphas = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise MergeError(f"--alpha {text!r}: give numbers between 0 and 1 separated by commas, e.g. 0,0.5,1") from None
    if not alphas or any(not 0.0 <= a <= 1.0 for a in alphas):
        raise MergeError(f"--alpha {text!r}: every α must lie between 0 (A) and 1 (B)")
    if len(set(alphas)) != len(alphas):
        raise MergeError(f"--alpha {text!r}: an α is repeated")
    return alphas


def alpha_name(alpha: float) -> str:
    return f"alpha-{alpha:g}"


def _config(path: Path) -> dict:
    file = path / "config.json"
    if not file.is_file():
        raise MergeError(f"{path}: no config.json; give a Hugging Face model directory (save_pretrained)")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise MergeError(f"{file}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise MergeError(f"{file}: not a model config (a JSON object is expected)")
    return {k: v for k, v in data.items() if k not in _CONFIG_NOISE}


def _weight_shapes(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """Weight name -> (shape, dtype) from the safetensors headers (no tensor is read)."""
    files = sorted(path.glob("*.safetensors"))
    if not files:
        pickled = [f.name for f in path.glob("*.bin")]
        hint = f" (it has {', '.join(pickled)}: pickle, which forgetscope does not load)" if pickled else ""
        raise MergeError(f"{path}: no .safetensors weights{hint}; save the model with safe_serialization=True")
    shapes: dict[str, tuple[tuple[int, ...], str]] = {}
    for file in files:
        try:
            with open(file, "rb") as handle:
                size = int.from_bytes(handle.read(8), "little")
                if not 0 < size <= 100 * 2**20:
                    raise ValueError(f"header size {size}")
                header = json.loads(handle.read(size))
        except (OSError, ValueError) as exc:
            raise MergeError(f"{file}: not a readable safetensors file ({exc})") from None
        for name, info in header.items():
            if name != "__metadata__":
                shapes[name] = (tuple(info.get("shape", ())), str(info.get("dtype", "")))
    return shapes


def check_mergeable(a: Path, b: Path) -> None:
    """Raise MergeError unless A and B share config, tokenizer and weight names and shapes."""
    for path in (a, b):
        if not path.is_dir():
            raise MergeError(f"{path}: no such model directory")
    config_a, config_b = _config(a), _config(b)
    differ = sorted(k for k in set(config_a) | set(config_b) if config_a.get(k) != config_b.get(k))
    if differ:
        shown = "; ".join(f"{k}: {config_a.get(k)!r} vs {config_b.get(k)!r}" for k in differ[:4])
        raise MergeError(f"{a} and {b} are different architectures ({shown}); only checkpoints of one model can be merged")
    present = [name for name in _TOKENIZER_FILES if (a / name).is_file() or (b / name).is_file()]
    if not present:
        raise MergeError(f"{a}: no tokenizer files ({', '.join(_TOKENIZER_FILES)}); save the tokenizer beside the model")
    for name in present:
        if not ((a / name).is_file() and (b / name).is_file()) or file_digest(a / name) != file_digest(b / name):
            raise MergeError(f"{a} and {b} have different tokenizers ({name} differs); "
                             "token ids would mean different things in the merged model")
    shapes_a, shapes_b = _weight_shapes(a), _weight_shapes(b)
    if set(shapes_a) != set(shapes_b):
        only = sorted(set(shapes_a) ^ set(shapes_b))
        raise MergeError(f"{a} and {b} hold different weights (e.g. {only[0]!r} is in one only); cannot merge")
    for name in sorted(shapes_a):
        if shapes_a[name][0] != shapes_b[name][0]:
            raise MergeError(f"{a} and {b}: weight {name!r} has shape {list(shapes_a[name][0])} vs "
                             f"{list(shapes_b[name][0])}; cannot merge")


def _mergekit_config(a: Path, b: Path, alpha: float, method: str) -> dict:
    """The mergekit configuration of one merge: α = 0 is A, α = 1 is B."""
    if method == "linear":
        return {"merge_method": "linear", "dtype": "float32",
                "models": [{"model": str(a), "parameters": {"weight": 1.0 - alpha}},
                           {"model": str(b), "parameters": {"weight": alpha}}],
                "parameters": {"normalize": False}}
    return {"merge_method": "slerp", "base_model": str(a), "dtype": "float32",
            "models": [{"model": str(a)}, {"model": str(b)}], "parameters": {"t": alpha}}


def _run_mergekit(config: dict, out: Path) -> None:
    try:
        from mergekit.config import MergeConfiguration
        from mergekit.merge import MergeOptions, run_merge
    except ImportError:
        raise MergeError("merging needs mergekit: pip install -c .ci/constraints.txt mergekit") from None
    options = MergeOptions(copy_tokenizer=True, lazy_unpickle=False, cuda=False, safe_serialization=True,
                           trust_remote_code=False, quiet=True)
    run_merge(MergeConfiguration.model_validate(config), str(out), options=options)


def merge_checkpoints(a: str | Path, b: str | Path, alphas: Sequence[float], *, method: str = "linear",
                      output: str | Path) -> MergeResult:
    """Write the merged checkpoint of every α and a manifest listing them in the order given."""
    if method not in METHODS:
        raise MergeError(f"unknown merge method {method!r}; choose {' or '.join(METHODS)}")
    a, b, output = Path(a).resolve(), Path(b).resolve(), Path(output)
    check_mergeable(a, b)
    output.mkdir(parents=True, exist_ok=True)
    made = []
    for alpha in alphas:
        target = output / alpha_name(alpha)
        if not (target / "config.json").is_file():
            write_dir(target, lambda tmp: _run_mergekit(_mergekit_config(a, b, alpha, method), tmp),
                      ignore_errors=True)
        made.append(target)
    settings = {"a": str(a), "b": str(b), "method": method, "alphas": list(alphas)}
    config_hash = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    manifest = {
        "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "run": f"merge-{method}", "config_hash": config_hash,
        "checkpoints": [{"name": f"merge/{alpha_name(alpha)}", "path": alpha_name(alpha), "stage": "merge",
                         "step": i, "final": i == len(alphas) - 1, "alpha": alpha, "method": method}
                        for i, alpha in enumerate(alphas)],
        "merge": {**settings, "library": _library_version()},
    }
    path = output / "manifest.json"
    atomic_write_text(path, json.dumps(manifest, indent=1))
    return MergeResult(path, made)


def _library_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"mergekit {version('mergekit')}"
    except PackageNotFoundError:
        return "mergekit"
