"""A sweep on a Ray cluster: training runs as Ray tasks (shared stages trained once), then every stage
checkpoint's evaluation as units of the Ray executor, then the frontier, as `run_sweep` writes it.

Runs that share stages (the same plan hash: e.g. pretraining of runs that
differ only in fine-tuning) must not train them twice, nor at the same time.
`stage_graph` turns every run's chain of stage hashes into Ray tasks: a
shared stage is trained once by a task of its own ("train run R up to stage
S"), and every task waits for the shared stages it starts from; the rest of
each run is one task. Runs that share nothing train in parallel from the start.

Every task asks Ray for one GPU (device cuda, or auto on a cluster with GPUs)
or `threads` CPUs. A training task whose worker dies is retried: the runner
resumes the stage from its newest checkpoint. An exception in a task (a bad
config, a stage that diverged) stops the sweep with that exception.

The sweep directory must be on storage every node sees at the same path (a
shared filesystem): stages are written there and read by the evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from forgetscope.train.frontier import run_evaluations
from forgetscope.train.sweep import (SweepConfig, SweepResult, finish_sweep, stage_home_for, start_sweep,
                                     tokenizer_dir_for)


@dataclass
class TrainTask:
    """Train run `run` up to stage `until` (None: every stage), after the tasks named in `after`."""

    name: str
    run: str
    until: str | None
    after: list[str]


def stage_graph(chains: dict[str, list[tuple[str, str]]]) -> list[TrainTask]:
    """The training tasks of runs given as run → [(stage name, stage hash), ...] in training order.

    A stage shared by several runs is trained by its own task, once; where consecutive shared stages
    are shared by the same runs, one task trains them together. Each run's last task trains what is
    its own and writes its manifest. Every task runs after the shared-stage tasks of the stages
    before it in its run."""
    runs_of: dict[str, set[str]] = {}
    for run, chain in chains.items():
        for _, digest in chain:
            runs_of.setdefault(digest, set()).add(run)
    tasks: list[TrainTask] = []
    named: dict[str, str] = {}  # stage hash -> the task that trains it
    for run, chain in chains.items():
        before: list[str] = []
        for k, (stage, digest) in enumerate(chain):
            sharers = runs_of[digest]
            if len(sharers) < 2:
                continue
            if k + 1 < len(chain) and runs_of[chain[k + 1][1]] == sharers:
                continue  # the next stage is shared by the same runs: trained in one task with it
            if digest not in named:
                named[digest] = f"shared {stage} {digest[:12]}"
                tasks.append(TrainTask(named[digest], run, stage, list(before)))
            before.append(named[digest])
        # the run's own stages, and its manifest (also when every stage is shared: then it only writes that)
        tasks.append(TrainTask(f"run {run}", run, None, list(before)))
    return tasks


def _train_remote(config, run_dir: str, output: str, tokenizer_dir: str, device: str, until: str | None,
                  threads: int, log_every: int, *after):
    """A Ray task: train (resuming or reusing what exists). Returns (trained stages, where) or the error."""
    import os

    import ray
    import torch

    from forgetscope.train.runner import train_run

    torch.set_num_threads(threads)
    where = f"{ray.util.get_node_ip_address()} pid {os.getpid()}"
    try:
        result = train_run(config, run_dir, stage_home=stage_home_for(Path(output)), tokenizer_dir=tokenizer_dir,
                           device=device, log=None, log_every=log_every, until_stage=until)
    except Exception as exc:  # not retried: the same config fails the same way
        return {"error": exc, "text": f"{type(exc).__name__}: {exc}", "where": where}
    return {"trained": list(result.trained), "where": where}


def run_sweep_on_ray(sweep: SweepConfig, output: str | Path, *, address: str | None = None,
                     workers: int | None = None, device: str = "auto", threads: int | None = None,
                     log: Callable[[str], None] | None = print, log_every: int = 50, progress=None,
                     plot: bool = True, retries: int = 3) -> SweepResult:
    """`run_sweep` on a Ray cluster (module docstring); `progress` follows the evaluation's units."""
    import ray

    from forgetscope.engine.evaluate import EvalSettings
    from forgetscope.engine.executor import EvalJob, WorkerLostError
    from forgetscope.engine.ray_executor import RayExecutor, connect, unit_resources
    from forgetscope.train.prepare import prepare
    from forgetscope.train.runner import plan_run

    executor = RayExecutor(address=address, workers=workers, progress=progress, retries=retries, threads=threads)
    output = Path(output).resolve()
    say = log or (lambda _m: None)
    result = start_sweep(sweep, output)
    runs = result.runs
    chains, tokenizers = {}, {}
    for run in runs:  # tokenizers are trained here, once each, before any worker needs them
        tokenizers[run.name] = tokenizer_dir_for(run, output)
        prepared = prepare(run.config, tokenizers[run.name])
        chains[run.name] = [(plan.name, plan.hash) for plan in plan_run(run.config, prepared)]
    tasks = stage_graph(chains)
    by_name = {run.name: run for run in runs}
    started = connect(address, workers * (threads or 1) if address is None and workers else None)
    try:
        resources = unit_resources(EvalSettings(device=device), threads or 1, ray.cluster_resources().get("GPU", 0))
        train = ray.remote(_train_remote).options(**resources, max_retries=retries)
        refs: dict[str, Any] = {}
        pending: dict[Any, TrainTask] = {}
        for task in tasks:  # in dependency order: a task's `after` were made before it
            run = by_name[task.run]
            refs[task.name] = train.remote(run.config, str(output / "runs" / run.name), str(output),
                                           str(tokenizers[run.name]), device, task.until, threads or 1,
                                           log_every, *[refs[name] for name in task.after])
            pending[refs[task.name]] = task
        trained: dict[str, list[str]] = {run.name: [] for run in runs}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            task = pending.pop(ready[0])
            try:
                outcome = ray.get(ready[0])
            except ray.exceptions.RayError as exc:
                raise WorkerLostError(f"training task {task.name!r}: its worker died {retries + 1} times "
                                      f"({type(exc).__name__}); finished stages are kept, re-run the same command "
                                      "to resume") from None
            if "error" in outcome:
                for ref in pending:
                    ray.cancel(ref, force=True)
                raise outcome["error"] if isinstance(outcome["error"], BaseException) else RuntimeError(outcome["text"])
            trained[task.run] += [s for s in outcome["trained"] if s not in trained[task.run]]
            done = ", ".join(outcome["trained"]) or "nothing (reused)"
            say(f"── {task.name}: trained {done} on {outcome['where']}")
        # a stage trained by a shared task belongs to its first run, as in a local sweep
        seen: set[str] = set()
        for run in runs:
            hashes = dict(chains[run.name])
            result.trained[run.name] = [s for s in trained[run.name] if hashes[s] not in seen]
            seen |= {hashes[s] for s in result.trained[run.name]}
        jobs, planned = [], {}
        for run in runs:
            planned[run.name] = run_evaluations(run, output, sweep.eval)
            (_, _, run_tasks), checkpoints = planned[run.name]
            jobs += [EvalJob(checkpoint, run_tasks) for _, checkpoint in checkpoints]
        settings = EvalSettings(batch_size=sweep.eval.batch_size, device=device)
        executor.evaluate(jobs, output / "results", settings)
        result.units = executor.reports
    finally:
        if started:
            ray.shutdown()
    # every row is stored now: this reads them, it loads no model
    return finish_sweep(result, sweep, device=device, plot=plot, planned=planned)
