"""Backends turn token ids into scores. Heavy libraries are imported lazily."""

from __future__ import annotations

from typing import Any

from .base import (
    Backend,
    BackendError,
    GenerationRequest,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    Tokenization,
)

BACKENDS = ("hf", "vllm")
#: options only the vLLM backend understands
VLLM_OPTIONS = ("gpu_memory_utilization", "max_model_len", "tensor_parallel_size", "seed")


def create_backend(name: str, model: str, **options: Any) -> Backend:
    """Build backend `name` ("hf" or "vllm") for `model` (local dir, hub id; .gguf file for hf).

    vLLM-only options (VLLM_OPTIONS) are dropped for hf; max_model_len and
    tensor_parallel_size other than their defaults are an error there.
    """
    if name == "hf":
        from .hf import HFBackend

        vllm_only = {key: options.pop(key) for key in VLLM_OPTIONS if key in options}
        if vllm_only.get("max_model_len") is not None or vllm_only.get("tensor_parallel_size", 1) != 1:
            raise BackendError("--max-model-len and --tensor-parallel-size are options of --backend vllm; "
                               "the hf backend takes --max-length")
        return HFBackend.from_pretrained(model, **options)
    if name == "vllm":
        from .adapters import is_adapter_dir
        from .vllm import VLLMBackend

        if options.get("model_args"):
            raise BackendError("--model-args applies to --backend hf (vLLM takes its engine options)")
        if is_adapter_dir(model):
            raise BackendError(f"{model} is a PEFT adapter; adapters load with --backend hf")

        return VLLMBackend.from_pretrained(model, **options)
    raise BackendError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")


__all__ = [
    "Backend",
    "BackendError",
    "GenerationRequest",
    "LoglikelihoodRequest",
    "LoglikelihoodResult",
    "Tokenization",
    "create_backend",
    "BACKENDS",
]
