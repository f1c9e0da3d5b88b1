"""The one spectrogram feature shared by every model, and its normalisation stats.

A 3-s clip at 16 kHz (48,000 samples) becomes a 1025 x 94 map: STFT with n_fft 2048,
hop 512, periodic Hann window, centred with zero padding; power in dB relative to the
clip's own maximum with an 80 dB floor (librosa's `power_to_db(S + 1e-10, ref=np.max)`);
then (x - mean) / std with the dataset's global statistics.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from src.atomic import write_text_atomic
from src.contract import (  # noqa: F401  (the contract's constants and Stats, re-exported)
    AMIN,
    HOP_LENGTH,
    N_FFT,
    N_FRAMES,
    N_FREQ,
    ORIGINAL_MEAN,
    ORIGINAL_STD,
    TOP_DB,
    Stats,
)

STATS_FILE_NAME = "global_stats.txt"

_window_cache: dict[torch.device, torch.Tensor] = {}


def _hann(device: torch.device) -> torch.Tensor:
    if device not in _window_cache:
        _window_cache[device] = torch.hann_window(N_FFT, periodic=True, device=device)
    return _window_cache[device]


def log_power_spectrogram(waveforms: torch.Tensor) -> torch.Tensor:
    """dB power spectrogram of clips [B, samples] -> [B, 1025, frames], max 0 dB, floor -80 dB."""
    squeeze = waveforms.dim() == 1
    if squeeze:
        waveforms = waveforms.unsqueeze(0)
    spec = torch.stft(
        waveforms.float(),
        n_fft=N_FFT,
        hop_length=HOP_LENGTH,
        window=_hann(waveforms.device),
        center=True,
        pad_mode="constant",
        return_complex=True,
    )
    power = spec.real.square() + spec.imag.square() + AMIN
    db = 10.0 * torch.log10(torch.clamp(power, min=AMIN))
    peak = db.amax(dim=(-2, -1), keepdim=True)
    db = torch.maximum(db - peak, torch.full_like(db, -TOP_DB))
    return db.squeeze(0) if squeeze else db


def features(waveforms: torch.Tensor, stats: Stats) -> torch.Tensor:
    """Model input for clips [B, 48000]: normalised spectrograms [B, 1, 1025, 94]."""
    return stats.normalise(log_power_spectrogram(waveforms)).unsqueeze(1)


def stats_path(root: str | os.PathLike) -> Path:
    return Path(root) / STATS_FILE_NAME


def write_stats(path: str | os.PathLike, stats: Stats) -> None:
    """Write stats in the original's two-line format (`global_mean: x` / `global_std: y`)."""
    write_text_atomic(path, f"global_mean: {stats.mean!r}\nglobal_std: {stats.std!r}\n")


def read_stats(path: str | os.PathLike) -> Stats:
    """Read a `global_stats.txt`; raises ValueError naming the file when it is malformed."""
    text = Path(path).read_text()
    values = dict(re.findall(r"^\s*(global_mean|global_std)\s*:\s*(\S+)\s*$", text, re.M))
    try:
        stats = Stats(float(values["global_mean"]), float(values["global_std"]))
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{path}: expected lines 'global_mean: <float>' and 'global_std: <float>'") from exc
    if not stats.std > 0:
        raise ValueError(f"{path}: global_std must be positive, got {stats.std}")
    return stats
