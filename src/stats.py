"""Global mean and standard deviation of the dB spectrogram values of a set of clips.

Streamed over batches with Chan's parallel update, so the result is the exact pooled
mean and standard deviation of every value, not a mean of per-file statistics.
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from src.dataset import ClipDataset, Item
from src.features import Stats


class RunningMoments:
    """Count, mean and sum of squared deviations, merged batch by batch in float64."""

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0

    def update(self, values: torch.Tensor) -> None:
        values = values.detach().double().flatten()
        n = values.numel()
        if n == 0:
            return
        batch_mean = values.mean().item()
        batch_m2 = (values - batch_mean).square().sum().item()
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * n / total
        self.m2 += batch_m2 + delta * delta * self.count * n / total
        self.count = total

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.count) if self.count else math.nan


def compute_stats(items: list[Item], workers: int = 0, batch_size: int = 32, progress: bool = True) -> Stats:
    """Exact mean and (population) standard deviation over all clips' dB spectrogram values."""
    if not items:
        raise ValueError("no clips to compute statistics from")
    loader = DataLoader(ClipDataset(items, stats=None), batch_size=batch_size, num_workers=workers)
    moments = RunningMoments()
    for spectrograms, _, _ in tqdm(loader, desc="global stats", unit="batch", disable=not progress):
        moments.update(spectrograms)
    return Stats(moments.mean, moments.std)
