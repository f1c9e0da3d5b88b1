"""What a model takes and what it says, without PyTorch: the input contract, `ModelInfo`, and the
spectrogram in NumPy.

The inference commands on a CPU (ONNX Runtime) need nothing else, so they start without importing
PyTorch (its import took about 1 s of every start; make bench: a one-hour file now peaks at 190 MB
for the CNN command, 0.6-0.7 GB before). `src.features.log_power_spectrogram` computes
the same spectrogram with PyTorch for training and the PyTorch engine; `tests/test_features.py`
holds the two within 0.01 dB of each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.fft

from src.audio import CLIP_SECONDS, MP3_BITRATE_KBPS, SAMPLE_RATE

N_FFT = 2048
HOP_LENGTH = 512
N_FREQ = N_FFT // 2 + 1  # 1025
N_FRAMES = 94  # 1 + 48000 // 512
TOP_DB = 80.0
AMIN = 1e-10

# The original Ai-SPY dataset's statistics, used for its released weights.
ORIGINAL_MEAN = -58.18715250929163
ORIGINAL_STD = 15.877255962380845

LABELS = ("ai", "human")  # the models' output classes, in order


class CheckpointError(Exception):
    """A weights file that cannot be used; the message says why."""


@dataclass(frozen=True)
class Stats:
    """Global mean and standard deviation of the dB spectrogram values of a dataset."""

    mean: float
    std: float

    def normalise(self, db):
        """(db - mean) / std, for a NumPy array or a PyTorch tensor."""
        return (db - self.mean) / self.std


@dataclass
class ModelInfo:
    """What a model needs around its weights: architecture, input contract and decision rule."""

    architecture: str
    config: dict = field(default_factory=dict)
    stats_mean: float = ORIGINAL_MEAN
    stats_std: float = ORIGINAL_STD
    sample_rate: int = SAMPLE_RATE
    clip_seconds: int = CLIP_SECONDS
    input_shape: tuple = (1, N_FREQ, N_FRAMES)
    labels: tuple = LABELS
    threshold: float = 0.5  # a window is AI when P(AI) >= threshold
    mp3_kbps: int = MP3_BITRATE_KBPS  # inputs pass through this mp3 codec first; 0 = off
    trained_on: dict = field(default_factory=dict)

    @property
    def stats(self) -> Stats:
        return Stats(self.stats_mean, self.stats_std)


_HANN = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)  # periodic


def log_power_db(windows: np.ndarray) -> np.ndarray:
    """dB power spectrogram of windows [N, samples] -> [N, 1025, frames] float32, max 0 dB, floor -80 dB:
    STFT n_fft 2048, hop 512, periodic Hann, centred with zero padding."""
    padded = np.pad(np.asarray(windows, np.float32), ((0, 0), (N_FFT // 2, N_FFT // 2)))
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT, axis=-1)[:, ::HOP_LENGTH]
    spectrum = scipy.fft.rfft(frames * _HANN, axis=-1)
    db = 10.0 * np.log10(np.maximum(spectrum.real**2 + spectrum.imag**2 + AMIN, AMIN))
    db = np.maximum(db - db.max(axis=(-2, -1), keepdims=True), -TOP_DB)
    return np.ascontiguousarray(db.swapaxes(-1, -2), np.float32)
