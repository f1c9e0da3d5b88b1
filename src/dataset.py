"""The one dataset class: labelled 3-s clips in, spectrograms out.

Used by training (train/test/validation), by `getGlobalStats.py` (with no stats, giving
raw dB maps) and by evaluation. Also finds the clips of a data tree and splits them by
source recording, so no recording has clips on both sides of a split.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from src.audio import AudioError, fix_length, list_audio_files, load_audio
from src.augment import Augmenter
from src.features import Stats, features, log_power_spectrogram
from src.metrics import AI, HUMAN

Item = tuple[str, int]  # (path, label)

_CHUNK_SUFFIX = re.compile(r"_chunk_\d+$")


def labelled_clips(ai_dir: str | os.PathLike, human_dir: str | os.PathLike) -> list[Item]:
    """All clips under an AI folder (label 0) and a human folder (label 1)."""
    return [(str(p), AI) for p in list_audio_files(ai_dir)] + [(str(p), HUMAN) for p in list_audio_files(human_dir)]


def source_of(path: str | os.PathLike) -> str:
    """The recording a clip was cut from: its path without the `_chunk_<i>` suffix."""
    path = Path(path)
    return str(path.parent / _CHUNK_SUFFIX.sub("", path.stem))


def split_by_source(items: list[Item], test_fraction: float, seed: int) -> tuple[list[Item], list[Item]]:
    """Split clips into (train, test) by source recording, per class, reproducibly.

    About `test_fraction` of each class's recordings go to test; a class with at
    least two recordings always has one on each side.
    """
    train, test = [], []
    for label in (AI, HUMAN):
        sources = sorted({source_of(p) for p, y in items if y == label})
        random.Random(f"{seed}-{label}").shuffle(sources)
        n_test = round(len(sources) * test_fraction)
        if len(sources) >= 2:
            n_test = min(max(n_test, 1), len(sources) - 1)
        test_sources = set(sources[:n_test])
        for path, y in items:
            if y == label:
                (test if source_of(path) in test_sources else train).append((path, y))
    return train, test


class ClipDataset(Dataset):
    """Labelled 3-s clips as spectrograms [1, 1025, 94].

    With `stats`, values are normalised model inputs; without, raw dB (for statistics).
    With an `augmenter` (training only), each draw is randomly augmented.
    Items are (spectrogram, label, index into `items`).
    """

    def __init__(self, items: list[Item], stats: Stats | None = None, augmenter: Augmenter | None = None):
        self.items = list(items)
        self.stats = stats
        self.augmenter = augmenter

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        path, label = self.items[index]
        try:
            samples = load_audio(path)
        except AudioError as exc:
            raise AudioError(f"{path}: {exc}") from exc
        samples = fix_length(samples)
        rng = None
        if self.augmenter is not None:
            # torch's RNG is seeded per worker and per epoch by the DataLoader: reproducible draws
            rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,))))
            samples = self.augmenter.waveform(samples, rng)
        wave = torch.from_numpy(samples).unsqueeze(0)
        spec = features(wave, self.stats)[0] if self.stats else log_power_spectrogram(wave)
        if rng is not None:
            spec = self.augmenter.spectrogram(spec, rng)
        return spec, label, index
