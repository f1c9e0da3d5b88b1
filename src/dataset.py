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
from torch.utils.data import Dataset, Sampler

from src.audio import MP3_BITRATE_KBPS, AudioError, fix_length, list_audio_files, load_audio
from src.augment import Augmenter
from src.features import Stats, features, log_power_spectrogram
from src.metrics import AI, HUMAN

Item = tuple[str, int]  # (path, label)

_CHUNK_SUFFIX = re.compile(r"_chunk_\d+$")


def labelled_clips(ai_dir: str | os.PathLike, human_dir: str | os.PathLike) -> list[Item]:
    """All clips under an AI folder (label 0) and a human folder (label 1)."""
    return [(str(p), AI) for p in list_audio_files(ai_dir)] + [(str(p), HUMAN) for p in list_audio_files(human_dir)]


def clips_mp3_kbps(items: list[Item]) -> int:
    """The mp3 round trip the clips went through (`convert_and_divide --codec`): 48 for .mp3 clips,
    0 for lossless ones; a model trained on them expects the same at inference. Raises ValueError
    for a mix, which would leave the model's input contract undefined."""
    lossy = {Path(path).suffix.lower() == ".mp3" for path, _ in items}
    if len(lossy) > 1:
        raise ValueError("the clips mix mp3 and lossless files: convert the whole tree with one "
                         "--codec (python -m data.convert_and_divide)")
    return MP3_BITRATE_KBPS if True in lossy else 0


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


def source_folder(path: str | os.PathLike) -> str:
    """The folder right under a clip's `<class>_split` folder (e.g. one repository of a corpus); '' if none."""
    parts = Path(path).parts
    for i, part in enumerate(parts[:-2]):
        if part.endswith("_split"):
            return parts[i + 1]
    return ""


def paired_sources_only(items: list[Item]) -> list[Item]:
    """The clips of source folders that hold both classes: each page is then its own control, so
    "which page is this" tells nothing about the label (human-only corpora and AI-only pages drop out)."""
    labels_by_folder: dict[str, set[int]] = {}
    for path, label in items:
        labels_by_folder.setdefault(source_folder(path), set()).add(label)
    return [(path, label) for path, label in items if len(labels_by_folder[source_folder(path)]) == 2]


SOURCE_WEIGHTING = {"sqrt": 0.5, "equal": 1.0}  # a clip weighs 1 / size**power of its source folder


class EpochSampler(Sampler[int]):
    """A fixed number of clips per epoch, drawn afresh each epoch without replacement.

    Half of the draws come from each class; within a class, each source folder (see
    `source_folder`) weighs as the square root of its clip count (`weighting="sqrt"`), so
    large sources do not drown small ones, or all source folders weigh the same
    (`weighting="equal"`), so each page counts once whatever its size. The draw depends on
    (seed, epoch) only; under torchrun each process takes every world_size-th index of it.
    """

    def __init__(self, items: list[Item], per_epoch: int, seed: int, rank: int = 0, world_size: int = 1,
                 weighting: str = "sqrt"):
        self.per_epoch, self.seed, self.rank, self.world_size = min(per_epoch, len(items)), seed, rank, world_size
        self.epoch = 0
        groups = [(label, source_folder(path)) for path, label in items]
        sizes: dict[tuple, int] = {}
        for key in groups:
            sizes[key] = sizes.get(key, 0) + 1
        power = SOURCE_WEIGHTING[weighting]
        weights = torch.tensor([sizes[key] ** -power for key in groups], dtype=torch.float64)
        labels = torch.tensor([label for _, label in items])
        self.classes = [(torch.nonzero(labels == label).flatten(), weights[labels == label])
                        for label in labels.unique()]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        wanted, drawn = self.per_epoch, []
        for k, (indices, weights) in enumerate(sorted(self.classes, key=lambda c: len(c[0]))):
            share = min(len(indices), wanted // (len(self.classes) - k))  # a small class gives all it has
            drawn.append(indices[torch.multinomial(weights, share, replacement=False, generator=generator)])
            wanted -= share
        order = torch.cat(drawn)[torch.randperm(self.per_epoch, generator=generator)]
        return iter(order[self.rank::self.world_size].tolist())

    def __len__(self) -> int:
        return len(range(self.rank, self.per_epoch, self.world_size))


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
