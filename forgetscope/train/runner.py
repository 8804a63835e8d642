"""Run every stage of a config in order: reuse finished stages, resume a killed one, write the manifest.

    from forgetscope.train import load_run_config, train_run
    result = train_run(load_run_config("examples/early_exposure.yaml"), "runs/ee")
    result.manifest   # runs/ee/manifest.json: every checkpoint, tokens seen, validation loss

A stage is identified by its plan hash. Its record in its home directory says
which checkpoints are finished; a complete stage is reused as it is, an
incomplete one resumes from its newest checkpoint (weights, optimizer state,
RNG state; the data order is recomputed from seeds), so a killed run ends
with the same weights as one that was never interrupted.
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from forgetscope.tasks.base import stable_hash
from forgetscope.train.checkpoints import StageRecord, StateError, checkpoint_name, load_state, write_manifest
from forgetscope.train.config import RunConfig
from forgetscope.train.ddp import Dist, from_env
from forgetscope.train.fields import to_mapping
from forgetscope.train.plan import StagePlan, init_hash, resolve_plans
from forgetscope.train.prepare import Prepared, prepare
from forgetscope.train.trainer import Runtime, StageData, train_stage

if TYPE_CHECKING:
    from transformers import PreTrainedModel


class RunError(RuntimeError):
    """A run directory holds something that does not fit this config (message says what to do)."""


@dataclass
class RunResult:
    """Where a run's checkpoints are and what this call did."""

    run_dir: Path
    manifest: Path
    finished: bool
    """False when `max_steps` stopped it before the end (run it again to resume)."""
    homes: dict[str, Path] = field(default_factory=dict)
    """Home directory of every stage."""
    hashes: dict[str, str] = field(default_factory=dict)
    trained: list[str] = field(default_factory=list)
    """Stages this call trained (the rest were reused)."""
    steps_run: int = 0


def config_hash(config: RunConfig) -> str:
    data = to_mapping(config)
    data.pop("base_dir", None)
    return stable_hash(data, n=32)


def pick_device(device: str, dist: Dist) -> str:
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and dist.enabled:
        device = f"cuda:{dist.local_rank}"
    return device


def _load_model(path: Path) -> "PreTrainedModel":
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32, use_safetensors=True)


def stage_data(prepared: Prepared) -> StageData:
    import torch

    names = list(prepared.sources)
    offsets, start = {}, 0
    for name in names:
        offsets[name] = start
        start += prepared.sources[name].train.shape[0]
    rows = torch.cat([prepared.sources[n].train for n in names]) if names else torch.empty(0, dtype=torch.long)
    return StageData(rows, offsets, {n: prepared.sources[n].val for n in names})


def plan_run(config: RunConfig, prepared: Prepared) -> list[StagePlan]:
    n_rows = {k: int(v.train.shape[0]) for k, v in prepared.sources.items()}
    return resolve_plans(config, n_rows, prepared.fingerprints, prepared.tokenizer_hash,
                         init_hash(config, prepared.tokenizer_hash))


def train_run(
    config: RunConfig,
    run_dir: str | Path,
    *,
    stage_home: Callable[[StagePlan], Path] | None = None,
    tokenizer_dir: str | Path | None = None,
    device: str = "auto",
    overwrite: bool = False,
    max_steps: int | None = None,
    log: Callable[[str], None] | None = print,
    log_every: int = 50,
    prepared: Prepared | None = None,
    until_stage: str | None = None,
) -> RunResult:
    """Train (or reuse, or resume) every stage of `config`; see the module docstring.

    `stage_home(plan)` places a stage's checkpoints (default: all in
    `run_dir`); a sweep points it at a directory named by the stage hash so
    identical stages are shared. `overwrite` retrains a stage whose record
    was made with different settings (otherwise that is an error).
    `max_steps` stops after that many optimizer steps in this call; `until_stage` after that
    stage (a sweep trains a stage that runs share once, before the runs go their own ways).
    """
    with quiet_transformers():
        return _train_run(config, Path(run_dir), stage_home, tokenizer_dir, device, overwrite, max_steps, log,
                          log_every, prepared, until_stage)


@contextmanager
def quiet_transformers():
    """No "Loading weights"/"Writing model shards" bars per checkpoint; the runner logs its own progress."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if was_enabled:
            hf_logging.enable_progress_bar()


def _train_run(config, run_dir: Path, stage_home, tokenizer_dir, device: str, overwrite: bool, max_steps, log,
               log_every: int, prepared, until_stage: str | None = None) -> RunResult:
    dist = from_env("cuda" if device.startswith("cuda") else device)
    device = pick_device(device, dist)
    if device == "cpu":
        from ..backends.malloc import tune_malloc

        tune_malloc()  # activations and gradients stay in the heap between steps (~5 % faster here)
    say = (log if dist.is_main else None) or (lambda _m: None)
    if prepared is None:
        prepared = prepare(config, Path(tokenizer_dir or run_dir / "tokenizer"), dist.is_main, dist.barrier)
    plans = plan_run(config, prepared)
    if until_stage is not None:
        names = [p.name for p in plans]
        if until_stage not in names:
            raise RunError(f"no stage {until_stage!r} in run {config.name!r} (stages: {', '.join(names)})")
        plans = plans[:names.index(until_stage) + 1]
    data = stage_data(prepared)
    runtime = Runtime(device, config.precision, config.compile, dist, log if dist.is_main else None, log_every)
    result = RunResult(run_dir, run_dir / "manifest.json", True)
    records: list[tuple[StageRecord, dict]] = []
    c_hash = config_hash(config)

    def manifest() -> None:
        extra = {"config": to_mapping(config), "stages": [
            {"name": r.stage, "hash": r.data.get("hash"), "home": str(Path(_rel(r.home, run_dir))),
             "complete": r.complete, **info} for r, info in records]}
        write_manifest(run_dir, config.name, c_hash, records, extra)

    budget = max_steps
    for plan in plans:
        home = (stage_home(plan) if stage_home else run_dir)
        result.homes[plan.name], result.hashes[plan.name] = home, plan.hash
        record = StageRecord(home, plan.name).load()
        if record.exists and record.data.get("hash") != plan.hash:
            if not overwrite:
                raise RunError(f"{record.path} was trained with other settings (stage {plan.name!r} changed); "
                               "pass --overwrite to retrain it and the stages after it, or use another output directory")
            if dist.is_main:
                _remove_stage(record)
            dist.barrier()
            record = StageRecord(home, plan.name)
        parent_entry = _parent_entry(plan, result.homes) if plan.parent else None
        info = {"start_from": parent_entry["name"] if parent_entry else None}
        records.append((record, info))
        if record.complete:
            say(f"[{plan.name}] reusing {home} (finished, stage {plan.hash[:12]})")
            continue
        if budget is not None and budget <= 0:
            result.finished = False
            break
        resume, model = None, None
        if dist.is_main:
            record.remove_stale_temps()  # left by a killed run of this stage
        _refuse_legacy_state(record)
        if record.checkpoints and record.state_path(record.checkpoints[-1]["step"]).exists():
            last = record.checkpoints[-1]
            try:
                resume = load_state(record.state_path(last["step"]))
            except StateError as exc:
                raise RunError(str(exc)) from None
            model = _load_model(home / last["path"])
            say(f"[{plan.name}] resuming from {last['name']} ({home})")
        else:
            if dist.is_main:
                record.start(plan.hash, _plan_info(plan, config.seq_len))
            dist.barrier()
            record.load()
            model = _load_model(parent_entry["abs_path"]) if parent_entry else config.model.build(prepared.tokenizer, config.seed)
            say(f"[{plan.name}] {plan.steps} steps × {plan.batch_size} sequences × {config.seq_len} tokens: "
                + ", ".join(f"{k} {v}" for k, v in plan.sequences_seen().items()) + " sequences")
        base_tokens = dict(parent_entry["tokens_seen"]) if parent_entry else {}
        ran = train_stage(plan, model, prepared.tokenizer, data, record, seq_len=config.seq_len, seed=config.seed,
                          base_tokens=base_tokens, runtime=runtime, resume=resume,
                          after_checkpoint=manifest, max_steps=budget)
        record.load()
        result.trained.append(plan.name)
        result.steps_run += ran
        if budget is not None:
            budget -= ran
        if not record.complete:
            result.finished = False
            break
    if dist.is_main:
        manifest()
    dist.barrier()
    return result


def _refuse_legacy_state(record: StageRecord) -> None:
    """A stage whose newest state is an old-format pickle (`.pt`) is not resumed from it (see
    checkpoints.legacy_state_path): the user decides, rather than the runner silently restarting."""
    if not record.checkpoints:
        return
    step = record.checkpoints[-1]["step"]
    legacy = record.legacy_state_path(step)
    if legacy.exists() and not record.state_path(step).exists():
        raise RunError(f"{legacy}: resume state in the pickle format of an older forgetscope, which is not loaded "
                       "(unpickling a file can run code); delete it to retrain stage "
                       f"{record.stage!r} from its start, or finish the stage with the version that wrote it")


def _rel(path: Path, start: Path) -> str:
    import os

    return os.path.relpath(path, start)


def _parent_entry(plan: StagePlan, homes: dict[str, Path]) -> dict:
    """The record entry of the checkpoint a stage starts from, with its absolute path."""
    stage, step = plan.parent
    record = StageRecord(homes[stage], stage).load()
    for entry in record.checkpoints:
        if (step is None and entry["final"]) or entry["step"] == step:
            return {**entry, "abs_path": homes[stage] / entry["path"]}
    wanted = checkpoint_name(stage, step) if step is not None else f"{stage} (final)"
    raise RunError(f"stage {plan.name!r} starts from {wanted}, which {record.path} does not list as finished")


def _plan_info(plan: StagePlan, seq_len: int) -> dict:
    return {"kind": plan.config.kind, "steps": plan.steps, "batch_size": plan.batch_size, "seq_len": seq_len,
            "sequences": plan.sequences_seen(), "fixed": plan.fixed, "pool": plan.pool,
            "start_from": list(plan.parent) if plan.parent else None}


def _remove_stage(record: StageRecord) -> None:
    for path in (record.home / "checkpoints").glob(f"{record.stage}-step*"):
        shutil.rmtree(path, ignore_errors=True)
    for path in (record.home / "state").glob(f"{record.stage}-step*"):
        path.unlink(missing_ok=True)
    record.path.unlink(missing_ok=True)
