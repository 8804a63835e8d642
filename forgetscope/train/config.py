"""The training runner's configuration: typed dataclasses, loaded from YAML or TOML.

A run is a model, a tokenizer, named data sources and a list of stages
(pretrain → post-train → fine-tune). Every field is documented where it is
declared, with its type and range (pydantic checks them, and writes the JSON
Schema editors use); `load_run_config` reads a file and `RunConfig.validate`
checks what one field cannot check alone (a mixture naming an unknown source,
a `start_from` pointing at a checkpoint that will never exist, ...). All
errors are `ConfigError`s naming the field path, and the file and line when
the value came from a file.
"""

from __future__ import annotations

from dataclasses import field as dataclass_field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic.dataclasses import dataclass

from forgetscope.configio import CONFIG, Bool, ConfigFile, Float, Int, List, Pair, Str, integer, number, read_config
from forgetscope.configio import check as check_config
from forgetscope.train.fields import ConfigError, check, join

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

STAGE_KINDS = ("pretrain", "posttrain", "finetune")


Positive = integer(gt=0)
NonNegative = integer(ge=0)
PositiveFloat = number(gt=0)
NonNegativeFloat = number(ge=0)
Fraction = number(ge=0, lt=1)
"""A share in [0, 1)."""
OpenFraction = number(gt=0, lt=1)
"""A share in (0, 1)."""
SeqLen = integer(ge=2)


@dataclass(config=CONFIG)
class ModelConfig:
    """A Llama-style decoder (or GPT-2) built from a transformers config, random-initialised from the run seed."""

    arch: Literal["llama", "gpt2"] = "llama"
    """Model family: `llama` (RMSNorm, rotary, SwiGLU) or `gpt2`."""
    hidden: Positive = 128
    """Hidden size."""
    layers: Positive = 2
    """Decoder layers."""
    heads: Positive = 4
    """Attention heads; must divide `hidden`."""
    intermediate: Int | None = None
    """MLP width (default 4 × hidden)."""
    context: Positive = 256
    """Context length in tokens (max positions); `seq_len` must not exceed it."""
    dropout: Fraction = 0.0
    """Default dropout of every stage that does not set its own."""
    init: Str | None = None
    """Start from this Hugging Face checkpoint directory instead of a random init (then `tokenizer.path` should match)."""

    def build(self, tokenizer: "PreTrainedTokenizerBase", seed: int) -> "PreTrainedModel":
        """The initial model: loaded from `init`, or random-initialised with `seed` (same seed → same weights)."""
        if self.init:
            import torch
            from transformers import AutoModelForCausalLM

            from forgetscope.backends.weights import pickle_weight_files

            pickled = pickle_weight_files(Path(self.init))
            if pickled:  # transformers would unpickle them; a pickle can run code
                raise ConfigError("model.init", f"{self.init} holds weights only in pickle format "
                                  f"({', '.join(pickled[:3])}); convert them to safetensors "
                                  "(model.save_pretrained(dir, safe_serialization=True)) and point init there")
            return AutoModelForCausalLM.from_pretrained(self.init, dtype=torch.float32, use_safetensors=True)
        from forgetscope.train.tiny import make_model

        return make_model(tokenizer, self.arch, hidden=self.hidden, layers=self.layers, heads=self.heads,
                          context=self.context, seed=seed, intermediate=self.intermediate)


@dataclass(config=CONFIG)
class TokenizerConfig:
    """Load a tokenizer, or train a byte-level BPE on the run's own data (offline)."""

    path: Str | None = None
    """A tokenizer directory to load; when unset, one is trained."""
    vocab_size: Int = 1024
    """Vocabulary of the trained tokenizer."""
    docs_per_source: Int = 1000
    """Documents taken from each source to train it."""
    sources: List[Str] | None = None
    """Sources to train it on (default: every source of the run)."""


@dataclass(config=CONFIG)
class SourceConfig:
    """Where a source's documents come from. Documents are packed into `seq_len` rows once per run."""

    type: Literal["synthetic", "text", "jsonl", "hf"]
    """`synthetic` (built in), `text` (plain files, one document per file or per blank-line block), `jsonl`, or `hf` (a datasets dataset)."""
    path: Str | None = None
    """text/jsonl: file or glob (relative to the config file); hf: dataset name, script or saved directory; synthetic: the generator (default: the source's key)."""
    docs: Int | None = None
    """synthetic: documents to generate; other types: keep at most this many."""
    field: Str = "text"
    """jsonl/hf: the column holding the text."""
    name: Str | None = None
    """hf: dataset configuration name."""
    split: Str = "train"
    """hf: split to read."""
    data_files: List[Str] | None = None
    """hf: local data files (e.g. with `path: json`)."""
    separator: Literal["file", "blank_line", "line"] = "blank_line"
    """text: what separates documents inside a file."""
    options: dict[Str, Any] = dataclass_field(default_factory=dict)
    """synthetic: keyword arguments of the generator (e.g. `n_countries` for facts)."""
    seed: Int = 0
    """synthetic: generation seed (the data, not the run: sweeping the run seed keeps the data fixed)."""


@dataclass(config=CONFIG)
class ReplayConfig:
    """Mix a fraction of another source (usually general text) back into a stage."""

    source: Str
    """Source replayed."""
    fraction: Fraction
    """Share of the stage's sequences taken from it, in [0, 1)."""


@dataclass(config=CONFIG)
class EarlyExposureConfig:
    """Mix a fraction λ of a later stage's target data into this (pretraining) stage.

    With T = the target source's sequences in the target stage (steps × batch ×
    its share), E = round(λ·T) target sequences are spread evenly through this
    stage, on top of its own budget. `compute_matched`: the target stage keeps
    only T − E of them (its steps shrink to match), so the whole run costs what
    λ = 0 costs and each target example is used exactly once. `additive`: the
    target stage keeps all T and the E are extra, fresh examples.
    """

    source: Str
    """The target (post-training) source."""
    fraction: Fraction
    """λ in [0, 1)."""
    mode: Literal["compute_matched", "additive"] = "compute_matched"
    """How the target budget is split (see the class docstring)."""
    target_stage: Str | None = None
    """The stage whose data is moved (default: the next `posttrain` stage)."""


@dataclass(config=CONFIG)
class MidtrainingConfig:
    """Specialised data entering this stage part-way, with a step or a linear ramp."""

    source: Str
    """The specialised source (not also in `mixture`)."""
    weight: OpenFraction
    """Its mixture weight once fully in, in (0, 1); the mixture's sources share the rest."""
    start: Fraction | None = None
    """Where it enters, as a fraction of the stage's steps in [0, 1) (or use `start_step`)."""
    start_step: NonNegative | None = None
    """Where it enters, as an optimizer step."""
    shape: Literal["step", "linear"] = "step"
    """`step`: full weight from the start; `linear`: ramps from 0 at the start to `weight`."""
    ramp_steps: Positive | None = None
    """linear: steps of the ramp (default: until the end of the stage)."""


@dataclass(config=CONFIG)
class StageConfig:
    """One training stage: its data, budget, optimizer and schedule."""

    name: Str
    """Unique name; checkpoints are `NAME/step-N`."""
    kind: Literal["pretrain", "posttrain", "finetune"]
    """The stage's role (the sweep's frontier reads post-training and fine-tuning)."""
    mixture: dict[Str, NonNegativeFloat]
    """Sampling weight per source (normalised); sequences, not tokens, are sampled, and all have `seq_len` tokens."""
    steps: Positive | None = None
    """Optimizer steps; token budget = steps × batch_size × seq_len (or give `tokens`)."""
    tokens: Int | None = None
    """Token budget instead of `steps` (rounded down to whole steps)."""
    batch_size: Positive = 16
    """Sequences per optimizer step (the global batch under torchrun)."""
    lr: PositiveFloat = 1e-3
    """Peak learning rate."""
    min_lr: Float = 0.0
    """Learning rate at the end of the decay, in [0, lr]."""
    warmup: NonNegative = 0
    """Linear warmup steps."""
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    """Decay after warmup."""
    weight_decay: NonNegativeFloat = 0.1
    """AdamW decoupled weight decay (matrices only; never norms or biases)."""
    betas: Pair[Fraction] = (0.9, 0.95)
    """AdamW betas, each in [0, 1)."""
    eps: Float = 1e-8
    """AdamW epsilon."""
    grad_clip: PositiveFloat | None = 1.0
    """Clip the global gradient norm to this (null: no clipping)."""
    dropout: Fraction | None = None
    """Residual and attention dropout in this stage (default: `model.dropout`)."""
    checkpoint_every: Positive | None = None
    """Also save a checkpoint every N steps (the stage end is always saved)."""
    start_from: Str | None = None
    """`STAGE` (its final checkpoint) or `STAGE/step-N` (an intermediate one); default: the previous stage's final."""
    replay: ReplayConfig | None = None
    """Replay of another source during this stage."""
    early_exposure: EarlyExposureConfig | None = None
    """Early exposure to a later stage's data (pretraining)."""
    midtraining: MidtrainingConfig | None = None
    """Specialised data entering part-way (pretraining)."""

    def weights(self) -> dict[str, float]:
        """Normalised mixture with the replay source folded in (before midtraining and early exposure)."""
        total = sum(self.mixture.values())
        weights = {k: v / total for k, v in self.mixture.items() if v > 0}
        if self.replay and self.replay.fraction > 0:
            weights = {k: v * (1 - self.replay.fraction) for k, v in weights.items()}
            weights[self.replay.source] = weights.get(self.replay.source, 0.0) + self.replay.fraction
        return weights


@dataclass(config=CONFIG)
class RunConfig:
    """A whole training run."""

    stages: List[StageConfig]
    """Stages in training order."""
    sources: dict[Str, SourceConfig]
    """Data sources by name (the names used in mixtures)."""
    name: Str = "run"
    """Run name (in the manifest)."""
    seed: Int = 0
    """Model init and data order."""
    seq_len: SeqLen = 128
    """Tokens per training sequence."""
    val_sequences: NonNegative = 16
    """Sequences held out of every source for the validation loss in the manifest."""
    model: ModelConfig = dataclass_field(default_factory=ModelConfig)
    """The model."""
    tokenizer: TokenizerConfig = dataclass_field(default_factory=TokenizerConfig)
    """The tokenizer."""
    precision: Literal["fp32", "bf16"] = "fp32"
    """fp32, or bf16 autocast (GPU; slower on most CPUs)."""
    compile: Bool = False
    """torch.compile the model (worth it on a GPU for long runs)."""
    base_dir: Str = "."
    """Directory that relative source paths are resolved against (set by the loader: the config file's)."""

    def stage(self, name: str) -> StageConfig:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    def validate(self) -> "RunConfig":
        """Cross-field checks (each field's own type and range are checked on construction); returns self.

        Raises ConfigError naming the field.
        """
        check(bool(self.stages), "stages", "at least one stage is required")
        check(bool(self.sources), "sources", "at least one source is required")
        check(self.seq_len <= self.model.context, "seq_len",
              f"{self.seq_len} exceeds model.context ({self.model.context})")
        m = self.model
        check(m.hidden % m.heads == 0, "model.heads", f"{m.heads} does not divide model.hidden ({m.hidden})")
        for key, src in self.sources.items():
            path = join("sources", key)
            if src.type in ("text", "jsonl"):
                check(bool(src.path), join(path, "path"), f"is required for type {src.type}")
            if src.type == "hf":
                check(bool(src.path), join(path, "path"), "is required for type hf (a dataset name or directory)")
            if src.type == "synthetic":
                from forgetscope.train.synthetic import SOURCES

                kind = src.path or key
                check(kind in SOURCES, join(path, "path"),
                      f"{kind!r} is not one of {', '.join(SOURCES)} (the built-in synthetic sources)")
                check(src.docs is not None and src.docs > 0, join(path, "docs"),
                      "synthetic sources need a positive number of documents")
        if self.tokenizer.sources:
            for i, key in enumerate(self.tokenizer.sources):
                self._known_source(key, join("tokenizer.sources", i))
        names = [s.name for s in self.stages]
        for i, stage in enumerate(self.stages):
            self._validate_stage(i, stage, names)
        return self

    def _known_source(self, key: str, path: str) -> None:
        check(key in self.sources, path, f"{key!r} is not one of {', '.join(self.sources)} (the sources)")

    def _validate_stage(self, i: int, stage: StageConfig, names: list[str]) -> None:
        path = join("stages", i)
        check(names.count(stage.name) == 1, join(path, "name"), f"{stage.name!r} is used by more than one stage")
        check(bool(stage.name) and "/" not in stage.name, join(path, "name"), "must be non-empty without '/'")
        check(bool(stage.mixture), join(path, "mixture"), "needs at least one source")
        for key in stage.mixture:
            self._known_source(key, join(join(path, "mixture"), key))
        check(sum(stage.mixture.values()) > 0, join(path, "mixture"), "weights sum to 0")
        check((stage.steps is None) != (stage.tokens is None), join(path, "steps"), "give exactly one of steps and tokens")
        if stage.tokens is not None:
            check(stage.tokens >= stage.batch_size * self.seq_len, join(path, "tokens"),
                  f"{stage.tokens} is less than one step (batch_size × seq_len = {stage.batch_size * self.seq_len})")
        check(0 <= stage.min_lr <= stage.lr, join(path, "min_lr"), f"must be in [0, lr], got {stage.min_lr}")
        if stage.start_from is not None:
            parent, _, step = stage.start_from.partition("/")
            earlier = names[:i]
            check(parent in earlier, join(path, "start_from"),
                  f"{parent!r} is not one of the earlier stages ({', '.join(earlier) or 'none'})")
            if step:
                check(step.startswith("step-") and step[5:].isdigit(), join(path, "start_from"),
                      f"{stage.start_from!r}: write STAGE or STAGE/step-N")
        if stage.replay is not None:
            rp = join(path, "replay")
            self._known_source(stage.replay.source, join(rp, "source"))
        if stage.midtraining is not None:
            self._validate_midtraining(path, stage)
        if stage.early_exposure is not None:
            self._validate_early_exposure(path, i, stage)

    def _validate_midtraining(self, path: str, stage: StageConfig) -> None:
        mt, mp = stage.midtraining, join(path, "midtraining")
        assert mt is not None
        self._known_source(mt.source, join(mp, "source"))
        check(mt.source not in stage.mixture, join(mp, "source"),
              f"{mt.source!r} is also in the mixture; give it through midtraining only")
        check((mt.start is None) != (mt.start_step is None), join(mp, "start"), "give exactly one of start and start_step")

    def _validate_early_exposure(self, path: str, i: int, stage: StageConfig) -> None:
        ee, ep = stage.early_exposure, join(path, "early_exposure")
        assert ee is not None
        self._known_source(ee.source, join(ep, "source"))
        check(ee.source not in stage.mixture, join(ep, "source"),
              f"{ee.source!r} is also in this stage's mixture; give it through early_exposure only")
        later = [s for s in self.stages[i + 1:]]
        if ee.target_stage is None:
            posttrain = [s.name for s in later if s.kind == "posttrain"]
            check(bool(posttrain), join(ep, "target_stage"), "no later posttrain stage; name the target stage")
            ee.target_stage = posttrain[0]
        check(ee.target_stage in [s.name for s in later], join(ep, "target_stage"),
              f"{ee.target_stage!r} is not one of the later stages ({', '.join(s.name for s in later) or 'none'})")
        target = self.stage(ee.target_stage)
        check(target.weights().get(ee.source, 0) > 0, join(ep, "source"),
              f"{ee.source!r} is not in the mixture of stage {target.name!r}, so there is no target data to move")
        check(target.early_exposure is None, join(ep, "target_stage"), "the target stage has early exposure itself")


def parse_run_config(data: Any, base_dir: str | Path = ".", *, file: ConfigFile | None = None) -> RunConfig:
    """A validated RunConfig from a parsed mapping; relative paths resolve against `base_dir`.

    With `file` (what `data` was read from), every error names the file and the line.
    """
    if isinstance(data, dict) and "base_dir" not in data:
        data = {**data, "base_dir": str(base_dir)}
    config = check_config(RunConfig, data, ConfigError.of, file=file)
    try:
        return config.validate()
    except ConfigError as exc:
        raise exc if file is None else file.locate(exc)


def load_run_config(path: str | Path) -> RunConfig:
    """Read and validate a run config file (YAML or TOML)."""
    file = read_config(path, ConfigError.of)
    return parse_run_config(file.data, base_dir=Path(path).resolve().parent, file=file)
