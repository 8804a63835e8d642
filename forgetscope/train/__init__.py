"""Training: tiny models and tokenizers, the synthetic suite, and the staged training runner.

    from forgetscope.train import load_run_config, train_run
    train_run(load_run_config("examples/early_exposure.yaml"), "runs/ee")

Heavy libraries (torch, transformers) load only when something is trained.
"""

from forgetscope.train.config import (
    EarlyExposureConfig,
    MidtrainingConfig,
    ModelConfig,
    ReplayConfig,
    RunConfig,
    SourceConfig,
    StageConfig,
    TokenizerConfig,
    load_run_config,
    parse_run_config,
)
from forgetscope.train.fields import ConfigError

__all__ = [
    "ConfigError",
    "EarlyExposureConfig",
    "MidtrainingConfig",
    "ModelConfig",
    "ReplayConfig",
    "RunConfig",
    "SourceConfig",
    "StageConfig",
    "TokenizerConfig",
    "load_run_config",
    "parse_run_config",
    "train_run",
]


def __getattr__(name: str):
    if name == "train_run":  # imports the runner (and, when used, torch) only on demand
        from forgetscope.train.runner import train_run

        return train_run
    raise AttributeError(name)
