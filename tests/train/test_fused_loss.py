"""The fused, chunked LM-head cross-entropy gives the plain loss and gradients."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from forgetscope.train.fused_loss import linear_cross_entropy_sum  # noqa: E402


@pytest.mark.parametrize("chunk", [7, 64, 1000])  # chunks that do and do not divide the 50 rows
def test_matches_plain_cross_entropy(chunk: int) -> None:
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(50, 16, generator=generator, requires_grad=True)
    weight = torch.randn(40, 16, generator=generator, requires_grad=True)
    targets = torch.randint(0, 40, (50,), generator=generator)
    plain = F.cross_entropy(hidden @ weight.t(), targets, reduction="sum")
    (plain * 0.3).backward()
    expected = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    fused = linear_cross_entropy_sum(hidden, weight, targets, chunk=chunk)
    (fused * 0.3).backward()  # the incoming gradient scales both
    assert float(fused.detach()) == pytest.approx(float(plain.detach()), rel=1e-6)
    assert torch.allclose(hidden.grad, expected[0], atol=1e-6) and torch.allclose(weight.grad, expected[1], atol=1e-6)


def test_tied_weights_collect_both_gradients() -> None:
    """With tied embeddings the head weight is also the embedding: autograd adds the two gradients."""
    generator = torch.Generator().manual_seed(1)
    embedding = torch.randn(30, 8, generator=generator, requires_grad=True)
    ids = torch.randint(0, 30, (12,), generator=generator)
    targets = torch.randint(0, 30, (12,), generator=generator)
    F.cross_entropy(torch.tanh(embedding[ids]) @ embedding.t(), targets, reduction="sum").backward()
    expected = embedding.grad.clone()
    embedding.grad = None
    linear_cross_entropy_sum(torch.tanh(embedding[ids]), embedding, targets, chunk=5).backward()
    assert torch.allclose(embedding.grad, expected, atol=1e-6)


def test_bf16_matmuls_stay_close_to_fp32() -> None:
    generator = torch.Generator().manual_seed(2)
    hidden = torch.randn(64, 32, generator=generator, requires_grad=True)
    weight = (0.1 * torch.randn(100, 32, generator=generator)).requires_grad_()
    targets = torch.randint(0, 100, (64,), generator=generator)
    exact = linear_cross_entropy_sum(hidden, weight, targets, chunk=16)
    exact.backward()
    expected = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    low = linear_cross_entropy_sum(hidden, weight, targets, chunk=16, matmul_dtype=torch.bfloat16)
    low.backward()
    assert low.dtype == torch.float32 and hidden.grad.dtype == torch.float32
    assert float(low.detach()) == pytest.approx(float(exact.detach()), rel=1e-2)
    assert torch.allclose(hidden.grad, expected[0], atol=2e-2) and torch.allclose(weight.grad, expected[1], atol=2e-2)
