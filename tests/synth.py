"""Synthetic recordings for the tests: varied, deterministic and easy to tell apart.

"ai" files are clean harmonic tones with a steady, slowly gliding pitch; "human" files
are noise bursts shaped by a syllable-like envelope. Neither is speech: they exercise the
pipeline, they do not make a detector.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def ai_like(seconds: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = rng.uniform(100, 250) * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t))
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    harmonics = sum(np.sin(k * phase) / k for k in range(1, 12) if k * f0.max() < sample_rate / 2)
    return (0.3 * harmonics / np.abs(harmonics).max()).astype(np.float32)


def human_like(seconds: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    noise = rng.standard_normal(n)
    envelope = np.clip(np.sin(2 * np.pi * rng.uniform(2, 5) * t + rng.uniform(0, 6)), 0, None) ** 2
    signal = np.convolve(noise * envelope, np.hanning(rng.integers(3, 12)), mode="same")
    return (0.3 * signal / np.abs(signal).max()).astype(np.float32)


def write_recording(path: Path, kind: str, seconds: float, seed: int, sample_rate: int = 16000,
                    channels: int = 1, subtype: str | None = None) -> Path:
    """Write one synthetic recording; the format follows the file extension."""
    rng = np.random.default_rng(seed)
    make = ai_like if kind == "ai" else human_like
    mono = make(seconds, sample_rate, rng)
    data = np.stack([mono] * channels, axis=1) if channels > 1 else mono
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, sample_rate, subtype=subtype)
    return path


def make_corpus(full_dir: Path, kind: str, count: int, seed: int, seconds=(4.0, 8.0)) -> list[Path]:
    """`count` recordings of varied length, rate and format under `full_dir`."""
    rng = np.random.default_rng(seed)
    formats = [(".wav", 16000), (".flac", 22050), (".mp3", 16000), (".ogg", 44100), (".wav", 8000)]
    paths = []
    for i in range(count):
        ext, rate = formats[i % len(formats)]
        sub = full_dir / f"speaker{i % 3}"
        paths.append(write_recording(sub / f"{kind}_{i}{ext}", kind, float(rng.uniform(*seconds)),
                                     seed * 1000 + i, sample_rate=rate))
    return paths
