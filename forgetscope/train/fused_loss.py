"""LM head + cross-entropy fused and chunked: the same loss and gradients without the logits tensor.

For a small model the LM head is a large share of the work (vocab 8192 ×
hidden 256: as many FLOPs as two decoder layers), and the plain path is slow
for a reason other than FLOPs: it materialises [tokens, vocab] fp32 logits
(64 MB for 2048 tokens) and passes over them ~6 times (log-softmax forward,
its backward, the gather...), which is memory-bound on a CPU. Here the
logits of a chunk of 512 tokens (16 MB at vocab 8192: stays in L3) are
turned into d(loss)/d(logits) = softmax − one-hot in place, and both
matmuls of the backward (hidden and weight gradients) are done in the same
pass; `backward` only scales them by the incoming gradient. Measured on this
2-core CPU for 2032 tokens × vocab 8192 × hidden 256: ~2.3× faster than
`F.cross_entropy(hidden @ W.T)` with the same loss (to 1e-6 relative) and
gradients (tested).

The loss is final (a scalar that nothing else uses), which is what makes
computing its gradient in the forward pass legal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

CHUNK = 512


def _function():
    import torch

    class FusedLinearCrossEntropy(torch.autograd.Function):
        @staticmethod
        def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int,
                    matmul_dtype: torch.dtype | None) -> torch.Tensor:
            with torch.autocast(hidden.device.type, enabled=False):  # dtypes are chosen here, explicitly
                low = matmul_dtype not in (None, hidden.dtype)
                w = weight.to(matmul_dtype) if low else weight
                grad_hidden = torch.empty_like(hidden)
                grad_weight = torch.zeros_like(weight)
                total = hidden.new_zeros((), dtype=torch.float32)
                for start in range(0, hidden.shape[0], chunk):
                    h = hidden[start:start + chunk]
                    h = h.to(matmul_dtype) if low else h
                    t = targets[start:start + chunk]
                    logits = (h @ w.t()).float()
                    lse = torch.logsumexp(logits, dim=1)
                    total += (lse - logits.gather(1, t[:, None]).squeeze(1)).sum()
                    logits.sub_(lse[:, None]).exp_()  # softmax, in place, in fp32
                    logits[torch.arange(t.shape[0], device=t.device), t] -= 1.0  # − one-hot
                    d = logits.to(matmul_dtype) if low else logits
                    grad_hidden[start:start + chunk] = d @ w
                    if low:
                        grad_weight += (d.t() @ h).float()
                    else:
                        grad_weight.addmm_(d.t(), h)
            ctx.save_for_backward(grad_hidden, grad_weight)
            return total

        @staticmethod
        def backward(ctx, grad_output: torch.Tensor):
            grad_hidden, grad_weight = ctx.saved_tensors
            return grad_hidden * grad_output, grad_weight * grad_output, None, None, None

    return FusedLinearCrossEntropy


_FUNCTION = None


def linear_cross_entropy_sum(hidden: "torch.Tensor", weight: "torch.Tensor", targets: "torch.Tensor",
                             chunk: int = CHUNK, matmul_dtype: "torch.dtype | None" = None) -> "torch.Tensor":
    """sum over rows of cross_entropy(hidden @ weight.T, targets): hidden [N, H], weight [V, H], targets [N].

    `matmul_dtype=torch.bfloat16` runs the three matmuls in bf16 (as autocast
    would) while softmax, loss and gradient accumulation stay in fp32.
    """
    global _FUNCTION
    if _FUNCTION is None:
        _FUNCTION = _function()
    return _FUNCTION.apply(hidden, weight, targets, chunk, matmul_dtype)
