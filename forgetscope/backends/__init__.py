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

BACKENDS = ("hf",)


def create_backend(name: str, model: str, **options: Any) -> Backend:
    """Build backend `name` ("hf") for `model` (local dir, hub id or .gguf file)."""
    if name == "hf":
        from .hf import HFBackend

        return HFBackend.from_pretrained(model, **options)
    if name == "vllm":
        raise BackendError("the vLLM backend is not available yet; use --backend hf")
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
