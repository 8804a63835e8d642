"""Two real checkpoints with real forgetting, built from scratch on CPU in minutes.

The story, at toy scale:

1. train a tokenizer on the synthetic suite and build a tiny random Llama;
2. stage 1 ("pretrain/post-train") on general text + invented facts +
   arithmetic → checkpoint A, which knows the facts;
3. stage 2: fine-tune A on a different objective only (reversing letter
   strings, no replay) → checkpoint B.

Comparing A and B item by item then shows forgetting (facts A got right and B
gets wrong), learning (string reversal B gets right and A did not) and plain
noise (items near chance flip both ways), which is what forgetscope is for.
Everything is deterministic given `seed`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from forgetscope.tasks.base import Task

if TYPE_CHECKING:
    from forgetscope.train.synthetic import Source


@dataclass(frozen=True)
class DemoConfig:
    """Sizes and schedules of the demo; `quick()` is the test-sized variant."""

    vocab_size: int = 1024
    hidden: int = 128
    layers: int = 2
    heads: int = 4
    seq_len: int = 128
    batch_size: int = 16
    n_countries: int = 50
    """Invented countries (3 facts each) in the knowledge base."""
    n_people: int = 25
    """Invented people (2 facts each)."""
    stage1_docs: tuple[tuple[str, int], ...] = (("general", 800), ("facts", 2000), ("arithmetic", 8000))
    """Documents per source in stage 1 (A)."""
    stage1_steps: int = 900
    stage1_lr: float = 3e-3
    stage2_docs: tuple[tuple[str, int], ...] = (("reverse", 3000),)
    """Documents per source in stage 2 (B): the new objective only, no replay."""
    stage2_steps: int = 150
    stage2_lr: float = 1e-3
    n_items: int = 100
    """Eval items per task."""

    @classmethod
    def quick(cls) -> "DemoConfig":
        return cls(
            vocab_size=512,
            n_countries=16,
            n_people=8,
            stage1_docs=(("general", 200), ("facts", 1000), ("arithmetic", 800)),
            stage1_steps=150,
            stage2_docs=(("reverse", 1000),),
            stage2_steps=100,
            stage2_lr=2e-3,
            n_items=40,
        )


@dataclass
class DemoArtifacts:
    """What `build_demo_checkpoints` made: two checkpoint directories and the tasks to compare them on."""

    pretrained_dir: Path
    """Checkpoint A: after stage 1 (facts + arithmetic + general text)."""
    finetuned_dir: Path
    """Checkpoint B: A fine-tuned on string reversal only."""
    tasks: list[Task]
    """synth_facts_mc, synth_arithmetic_mc, synth_reverse_mc, synth_facts_gen."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time per phase (tokenizer, stage1, stage2, total)."""


DEMO_TASKS = ("synth_facts_mc", "synth_arithmetic_mc", "synth_reverse_mc", "synth_facts_gen")


def demo_sources(config: DemoConfig) -> "dict[str, Source]":
    """The synthetic sources as the demo configures them (the tasks must come from the same ones)."""
    from forgetscope.train.synthetic import SOURCES, FactsSource

    sources: dict[str, Source] = {name: make() for name, make in SOURCES.items()}
    sources["facts"] = FactsSource(n_countries=config.n_countries, n_people=config.n_people)
    return sources


def demo_tasks(config: DemoConfig | None = None, seed: int = 0) -> list[Task]:
    """The demo's eval tasks, without building anything."""
    from forgetscope.train.synthetic import synthetic_tasks

    config = config or DemoConfig()
    return synthetic_tasks(DEMO_TASKS, n_items=config.n_items, seed=seed, sources=demo_sources(config))


def build_demo_checkpoints(
    out_dir: str | Path,
    seed: int = 0,
    quick: bool = False,
    *,
    config: DemoConfig | None = None,
    log: Callable[[str], None] | None = print,
) -> DemoArtifacts:
    """Build checkpoints A (`out_dir/A-pretrained`) and B (`out_dir/B-finetuned`); see the module docstring.

    About 2-3 minutes on 2 CPU cores (`quick=True`: well under a minute).
    Writes `out_dir/demo.json` with the settings and timings. Torch's thread
    count is left to the caller (on a crowded machine, 1 thread can be several
    times faster than 2).
    """
    from forgetscope.train.loop import fit, pack_texts
    from forgetscope.train.synthetic import mixture, tokenizer_corpus
    from forgetscope.train.tiny import make_model, save_checkpoint, train_tokenizer

    config = config or (DemoConfig.quick() if quick else DemoConfig())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    say = log or (lambda _msg: None)
    sources = demo_sources(config)
    seconds: dict[str, float] = {}
    start = time.perf_counter()

    tokenizer = train_tokenizer(tokenizer_corpus(n=2000, seed=seed), vocab_size=config.vocab_size,
                                model_max_length=config.seq_len * 2)
    model = make_model(tokenizer, "llama", hidden=config.hidden, layers=config.layers, heads=config.heads,
                       context=config.seq_len * 2, seed=seed)
    seconds["tokenizer"] = time.perf_counter() - start

    def stage(name: str, docs: tuple[tuple[str, int], ...], steps: int, lr: float, data_seed: int, target: Path):
        t0 = time.perf_counter()
        rows = pack_texts(tokenizer, mixture(dict(docs), seed=data_seed, sources=sources), config.seq_len)
        say(f"[demo] {name}: {steps} steps on {rows.shape[0]} sequences of {config.seq_len} tokens")
        stats = fit(model, rows, steps=steps, batch_size=config.batch_size, lr=lr, warmup=max(1, steps // 20),
                    schedule="cosine", min_lr=lr / 10, weight_decay=0.1, seed=data_seed,
                    log_every=max(1, steps // 5), log=log)
        save_checkpoint(model, tokenizer, target)
        (target / "train_log.json").write_text(json.dumps(stats.to_dict(), indent=1))
        seconds[name] = time.perf_counter() - t0

    pretrained = out / "A-pretrained"
    finetuned = out / "B-finetuned"
    stage("stage1", config.stage1_docs, config.stage1_steps, config.stage1_lr, seed, pretrained)
    stage("stage2", config.stage2_docs, config.stage2_steps, config.stage2_lr, seed + 1, finetuned)
    seconds["total"] = time.perf_counter() - start

    tasks = demo_tasks(config, seed)
    manifest = {
        "seed": seed,
        "quick": quick,
        "config": asdict(config),
        "checkpoints": {"A": pretrained.name, "B": finetuned.name},
        "tasks": {t.name: t.fingerprint() for t in tasks},
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
    }
    tmp = out / "demo.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    tmp.replace(out / "demo.json")
    say(f"[demo] A={pretrained}  B={finetuned}  ({seconds['total']:.0f} s)")
    return DemoArtifacts(pretrained, finetuned, tasks, seconds)


def run_demo(output: str | Path = "demo-results", *, quick: bool = False, seed: int = 0, console=None) -> dict:
    """The README's first command: build A and B, evaluate both on the demo tasks, compare, print.

    Checkpoints already built in `output` (same config) are reused, and so are
    cached records, so a second run only re-prints. Returns the comparison as
    a JSON-safe dict (also written to `output/compare.json`).
    """
    import torch
    from rich.console import Console

    from forgetscope.compare import compare_checkpoints, describe_items
    from forgetscope.evaluate import EvalSettings
    from forgetscope.report.progress import ProgressBars
    from forgetscope.report.tables import comparison_table, items_table
    from forgetscope.store import atomic_write_text

    console = console or Console()
    out = Path(output)
    config = DemoConfig.quick() if quick else DemoConfig()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    console.rule("[bold]forgetscope demo")
    console.print("Train a tiny Llama on general text + invented facts + arithmetic (checkpoint A), fine-tune it on "
                  "string reversal only (checkpoint B), then compare A and B item by item.\n")
    marker = out / "checkpoints" / "demo.json"
    pretrained, finetuned = out / "checkpoints" / "A-pretrained", out / "checkpoints" / "B-finetuned"
    if _built_with(marker, config, seed):
        console.print(f"reusing checkpoints in {out / 'checkpoints'} (delete it to retrain)")
        tasks = demo_tasks(config, seed)
    else:
        artifacts = build_demo_checkpoints(out / "checkpoints", seed, config=config, log=console.print)
        pretrained, finetuned, tasks = artifacts.pretrained_dir, artifacts.finetuned_dir, artifacts.tasks
    console.print("\n[bold]Evaluating A and B[/bold] (every item scored once per checkpoint; cached in "
                  f"{out / 'results'})")
    with ProgressBars(console) as progress:
        comparison, before, after = compare_checkpoints(
            str(pretrained), str(finetuned), tasks, out / "results", EvalSettings(batch_size=16), seed=seed,
            progress=progress)
    console.print(comparison_table(comparison.tasks, f"A = {pretrained}   B = {finetuned}", ["task"]))
    console.print(comparison_table(comparison.overall.assign(scope="overall"), "overall (from items)", ["scope"]))
    from forgetscope.analysis import transition_items

    for kind, title in (("1to0", "forgotten (right in A, wrong in B)"), ("0to1", "learned (wrong in A, right in B)")):
        items = transition_items(comparison.paired, kind)
        shown = describe_items(items.groupby("task", observed=True).head(2).head(8), before, after)
        console.print(items_table(shown, f"{title}: {len(items)} items, a few of them"))
    figures = comparison.to_json_dict()
    atomic_write_text(out / "compare.json", json.dumps(figures, indent=2))
    overall = figures["overall"]
    console.print(
        f"\n[bold]What it shows:[/bold] of {overall['n']} items, {overall['n_10']} were forgotten (1→0) and "
        f"{overall['n_01']} newly learned (0→1); accuracy went {overall['acc_before']:.3f} → {overall['acc_after']:.3f}. "
        "Per task, the chance-adjusted F_true and BT_true separate real forgetting from guessing noise.")
    records_a = sorted({p.parent.parent for p in (out / "results" / "records").rglob("records.parquet")
                        if _meta_model(p.parent) == str(pretrained)})
    records_b = sorted({p.parent.parent for p in (out / "results" / "records").rglob("records.parquet")
                        if _meta_model(p.parent) == str(finetuned)})
    if records_a and records_b:
        console.print(f"\nCompare again from the stored records, without any model:\n"
                      f"  forgetscope compare {records_a[0]} {records_b[0]} --show-items 1to0")
    console.print(f"figures: {out / 'compare.json'}")
    return figures


def _built_with(marker: Path, config: DemoConfig, seed: int) -> bool:
    """True if `marker` (demo.json) records a finished build with this config and seed."""
    try:
        built = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return built.get("config") == json.loads(json.dumps(asdict(config))) and built.get("seed") == seed


def _meta_model(run_dir: Path) -> str:
    try:
        return json.loads((run_dir / "meta.json").read_text()).get("model", "")
    except (OSError, ValueError):
        return ""
