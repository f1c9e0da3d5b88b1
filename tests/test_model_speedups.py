"""The inference-time speed-ups of the models change nothing they compute."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from src.model import CNN, for_inference


def original_order_forward(model: CNN, x: torch.Tensor) -> torch.Tensor:
    """The original Ai-SPY block order: conv -> batchnorm -> leaky ReLU -> max-pool."""
    for i, pool in enumerate(model.pools, start=1):
        x = F.max_pool2d(F.leaky_relu(getattr(model, f"bn{i}")(getattr(model, f"conv{i}")(x))), pool)
    x = torch.flatten(x, 1)
    return model.fc2(F.leaky_relu(model.dropout(model.fc1(x))))


def trained_looking_cnn() -> CNN:
    """A CNN whose batchnorms hold non-trivial running statistics, as after training."""
    torch.manual_seed(0)
    model = CNN()
    for i in range(1, 6):
        norm = getattr(model, f"bn{i}")
        norm.running_mean.uniform_(-0.5, 0.5)
        norm.running_var.uniform_(0.5, 2.0)
        norm.weight.data.uniform_(0.5, 1.5)
        norm.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def test_pooling_before_the_activation_is_exact():
    model = trained_looking_cnn()
    x = torch.randn(3, 1, 1025, 94)
    with torch.no_grad():
        torch.testing.assert_close(model(x), original_order_forward(model, x), rtol=0, atol=0)


def test_folded_batchnorm_and_channels_last_give_the_same_logits():
    model = trained_looking_cnn()
    fast = for_inference(copy.deepcopy(model))
    assert all(isinstance(getattr(fast, f"bn{i}"), torch.nn.Identity) for i in range(1, 6))
    x = torch.randn(4, 1, 1025, 94)
    with torch.no_grad():
        torch.testing.assert_close(fast(x.contiguous(memory_format=torch.channels_last)), model(x),
                                   rtol=1e-4, atol=1e-4)
