"""Local vs Ray: the same 8 (checkpoint × task) units on the ~8M tiny model, one CPU thread per worker.

Four random-init checkpoints of the ~8M-parameter Llama (benchmarks/eval_vs_lmeval.py
--build-tiny) × two multiple-choice tasks, each task one unit (chunk_size ≥ items).
Four runs into fresh results directories:

- local:           LocalExecutor (evaluate() per checkpoint), threads=1, in this process;
- local, fresh:    the same in a new Python process (which imports torch and transformers, as a Ray
                   worker does);
- Ray, 1 worker:   RayExecutor(workers=1) on a local 2-CPU Ray cluster, threads=1;
- Ray, 2 workers:  RayExecutor(workers=2), threads=1.

Each Ray time includes starting its worker processes (imports), loading every
checkpoint and scoring; the cluster itself is started once before (its start
time is printed apart). The script checks that every run stored the same
decisions as the local one (so speed never comes from scoring less), then
prints Ray's overhead at one worker ((ray1 - local) / local) and the speed-up
of two workers over one. Use --rounds to repeat and take medians.

    python benchmarks/ray_executor.py --build-tiny /tmp/tiny8m --rounds 2

By default a unit holds 256 items, the executor's default chunk (EvalSettings.chunk_size).
Smaller units (--items 96) make each worker's fixed start (about 4 s of torch and
transformers imports, paid once per worker process) a bigger share of its time, which
lowers the two-worker speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

#: the item writer's styles of the two tasks (phrases: multi-token choices)
STYLES = ("phrases", "numbers")


def build_checkpoints(base: Path, n: int) -> list[Path]:
    """`n` ~8M checkpoints: the benchmark model (seed 0) and copies re-initialised with seeds 1..n-1."""
    from eval_vs_lmeval import build_tiny_model
    from transformers import AutoTokenizer

    first = build_tiny_model(base / "ckpt-0")
    tokenizer = AutoTokenizer.from_pretrained(str(first))
    return [first] + [build_tiny_model(base / f"ckpt-{seed}", seed=seed, tokenizer=tokenizer) for seed in range(1, n)]


def make_tasks(n_items: int):
    """Two four-choice tasks (phrases: multi-token choices) from the lm-eval benchmark's item writer."""
    from eval_vs_lmeval import write_items

    folder = Path(tempfile.mkdtemp(prefix="fs-ray-bench-items-"))
    for index, style in enumerate(STYLES):
        write_items(folder / f"bench_{style}.jsonl", n_items, seed=index, style=style)
    return make_tasks_from(folder), folder


def make_tasks_from(folder: Path):
    """The tasks `make_tasks` wrote into `folder`, loaded (also by the fresh-process local run)."""
    from forgetscope.train.tasks import load_task

    return [load_task(str(folder / f"bench_{style}.jsonl")) for style in STYLES]


def decisions(results: Path):
    from forgetscope.records.store import load_records

    frame = load_records([results])
    key = ["checkpoint", "task", "item_id", "repeat"]
    return frame[key + ["prediction", "correct"]].astype(str).sort_values(key).reset_index(drop=True)


def fresh_local_run(checkpoints: list[Path], items_dir: Path, out: Path, batch_size: int, n_items: int) -> None:
    """The local run again, in a new Python process (imports and all), as a Ray worker starts."""
    import subprocess
    import sys

    code = (
        "import sys, json\n"
        "from pathlib import Path\n"
        "sys.path.insert(0, %r)\n"
        "from ray_executor import make_tasks_from\n"
        "from forgetscope.engine.evaluate import Checkpoint, EvalSettings\n"
        "from forgetscope.engine.executor import EvalJob, LocalExecutor\n"
        "tasks = make_tasks_from(Path(%r))\n"
        "jobs = [EvalJob(Checkpoint(c, name=Path(c).name), tasks) for c in json.loads(%r)]\n"
        "LocalExecutor().evaluate(jobs, %r, EvalSettings(batch_size=%d, chunk_size=%d, threads=1))\n"
    ) % (str(Path(__file__).resolve().parent), str(items_dir), json.dumps([str(c) for c in checkpoints]), str(out),
         batch_size, max(n_items, 1))
    subprocess.run([sys.executable, "-c", code], check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build-tiny", type=Path, default=Path(tempfile.gettempdir()) / "fs-tiny8m",
                        help="where the checkpoints are built (once) and reused")
    parser.add_argument("--items", type=int, default=256,
                        help="items per task (each task is one unit; default: the executor's default chunk)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1, help="repeat the three runs, report medians")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local cluster for this process only

    import ray

    from forgetscope.engine.evaluate import Checkpoint, EvalSettings
    from forgetscope.engine.executor import EvalJob, LocalExecutor
    from forgetscope.engine.ray_executor import RayExecutor

    checkpoints = build_checkpoints(args.build_tiny, 4)
    tasks, items_dir = make_tasks(args.items)
    jobs = [EvalJob(Checkpoint(str(c), name=c.name), tasks) for c in checkpoints]
    settings = EvalSettings(batch_size=args.batch_size, chunk_size=max(args.items, 1), threads=1)
    print(f"{len(jobs)} checkpoints × {len(tasks)} tasks = {len(jobs) * len(tasks)} units of {args.items} items; "
          f"load average before: {os.getloadavg()}", flush=True)
    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning", log_to_driver=False)
    cluster_seconds = time.perf_counter() - start
    print(f"local Ray cluster (2 CPUs) started in {cluster_seconds:.1f} s (not counted below)", flush=True)

    times: dict[str, list[float]] = {"local": [], "local-fresh": [], "ray1": [], "ray2": []}
    work = Path(tempfile.mkdtemp(prefix="fs-ray-bench-"))
    reference = None
    try:
        for round_ in range(args.rounds):
            for name in ("local", "local-fresh", "ray1", "ray2"):
                out = work / f"{name}-{round_}"
                executor = RayExecutor(workers=int(name[-1]), threads=1) if name.startswith("ray") else LocalExecutor()
                start = time.perf_counter()
                if name == "local-fresh":  # a new Python process, which imports torch and transformers as a worker does
                    fresh_local_run(checkpoints, items_dir, out, args.batch_size, args.items)
                else:
                    executor.evaluate(jobs, out, settings)
                seconds = time.perf_counter() - start
                times[name].append(seconds)
                got = decisions(out)
                if reference is None:
                    reference = got
                elif not got.equals(reference):
                    raise SystemExit(f"{name}: the stored decisions differ from the local run's")
                where = ""
                if name.startswith("ray"):
                    busy: dict[str, float] = {}
                    for report in executor.reports:
                        busy[report.worker] = busy.get(report.worker, 0.0) + report.seconds
                    # time outside units: starting the worker processes, dispatch, planning and merging
                    outside = seconds - max(busy.values())
                    where = f"  (units on {', '.join(sorted(busy))}; model loads: " \
                            f"{sum(r.loaded_model for r in executor.reports)}; busy in units " \
                            f"{', '.join(f'{b:.1f}' for b in busy.values())} s; outside units {outside:.1f} s)"
                print(f"round {round_ + 1} {name:5s}: {seconds:7.1f} s{where}  load {os.getloadavg()[0]:.1f}",
                      flush=True)
    finally:
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(items_dir, ignore_errors=True)
    median = {k: statistics.median(v) for k, v in times.items()}
    items = len(jobs) * len(tasks) * args.items
    overhead = (median["ray1"] - median["local"]) / median["local"]
    overhead_fresh = (median["ray1"] - median["local-fresh"]) / median["local-fresh"]
    speedup = median["ray1"] / median["ray2"]
    print(f"items/s: local {items / median['local']:.1f}, Ray 1 worker {items / median['ray1']:.1f}, "
          f"Ray 2 workers {items / median['ray2']:.1f}")
    print(f"Ray overhead at 1 worker: {overhead * 100:+.1f} % against the in-process local run, "
          f"{overhead_fresh * 100:+.1f} % against a local run in a fresh process   (target ≤ 10 %)")
    print(f"speed-up, 2 workers vs 1: {speedup:.2f}×   (target ≥ 1.6×)")
    print(f"load average after: {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps({"seconds": times, "median": median, "overhead": overhead, "overhead_vs_fresh_process": overhead_fresh,
                                         "speedup": speedup, "cluster_start_seconds": cluster_seconds,
                                         "items": items}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
