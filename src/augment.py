"""Training-time augmentation, applied alike to both classes (never at evaluation).

Each clip, with probability `prob`, gets a random subset of: gain, reverb with a real
impulse response, additive noise at a random SNR (real noise files or coloured noise),
telephone band-limiting, codec re-encoding (mp3 at several bitrates, ogg vorbis); its
spectrogram then may get SpecAugment-style frequency and time masks.
"""

from __future__ import annotations

import io
import os

import numpy as np
import soundfile as sf
import soxr
import torch
from scipy.signal import fftconvolve

from src.audio import CLIP_SAMPLES, MP3_CODEC_DELAY, SAMPLE_RATE, fix_length, list_audio_files, load_audio


def _load_bank(folder: str | os.PathLike | None, max_seconds: float) -> list[np.ndarray]:
    if not folder:
        return []
    bank = []
    for path in list_audio_files(folder):
        samples = load_audio(path)[: int(max_seconds * SAMPLE_RATE)]
        if np.any(samples):
            bank.append(samples)
    return bank


def coloured_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """White, pink or brown noise of `n` samples."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    exponent = rng.choice([0.0, 0.5, 1.0])
    freqs = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
    return np.fft.irfft(spectrum / freqs**exponent, n).astype(np.float32)


def add_noise(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    signal_power = np.mean(x**2) + 1e-12
    noise_power = np.mean(noise**2) + 1e-12
    return x + noise * np.sqrt(signal_power / (noise_power * 10 ** (snr_db / 10)))


def reverb(x: np.ndarray, impulse: np.ndarray) -> np.ndarray:
    peak = int(np.argmax(np.abs(impulse)))
    wet = fftconvolve(x, impulse[peak:])[: len(x)]
    return wet * (np.abs(x).max() / (np.abs(wet).max() + 1e-9))


def telephone(x: np.ndarray) -> np.ndarray:
    """Band-limit to 4 kHz through an 8 kHz round trip; the length is kept (odd lengths too)."""
    narrow = soxr.resample(x, SAMPLE_RATE, 8000)
    return fix_length(soxr.resample(narrow, 8000, SAMPLE_RATE).astype(np.float32), len(x))


def recode(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Round trip through mp3 (16-64 kbps) or ogg vorbis at a random quality."""
    buffer = io.BytesIO()
    if rng.random() < 0.7:
        sf.write(buffer, x, SAMPLE_RATE, format="MP3", subtype="MPEG_LAYER_III",
                 compression_level=float(rng.choice([0.6, 0.7, 0.8, 0.85, 0.9])), bitrate_mode="CONSTANT")
    else:
        sf.write(buffer, x, SAMPLE_RATE, format="OGG", subtype="VORBIS", compression_level=float(rng.uniform(0.2, 0.9)))
    buffer.seek(0)
    decoded = sf.read(buffer, dtype="float32")[0]
    if len(decoded) > len(x):  # mp3 under 40 kbps gets no gapless header: the codec delay is still there
        decoded = decoded[MP3_CODEC_DELAY:]
    return fix_length(decoded, len(x))


def spec_augment(spec: torch.Tensor, rng: np.random.Generator, rounds: int = 2) -> torch.Tensor:
    """Zero (= dataset mean) random frequency bands and time spans of a normalised [1, F, T] map."""
    spec = spec.clone()
    _, n_freq, n_time = spec.shape
    for _ in range(rounds):
        width = int(rng.uniform(0, 0.15) * n_freq)
        start = int(rng.integers(0, n_freq - width + 1))
        spec[:, start:start + width, :] = 0
        width = int(rng.uniform(0, 0.2) * n_time)
        start = int(rng.integers(0, n_time - width + 1))
        spec[:, :, start:start + width] = 0
    return spec


class Augmenter:
    """Random waveform and spectrogram augmentation with optional noise and impulse-response banks."""

    def __init__(self, prob: float = 0.5, noise_dir: str | None = None, rir_dir: str | None = None,
                 codec_prob: float = 0.0):
        self.prob = prob
        self.codec_prob = codec_prob  # a codec round trip of its own, for models trained on lossless clips
        self.noises = _load_bank(noise_dir, max_seconds=120)
        self.impulses = _load_bank(rir_dir, max_seconds=2)

    def waveform(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() < self.codec_prob:
            x = recode(np.clip(x, -1, 1).astype(np.float32), rng)
        if rng.random() >= self.prob:
            return x
        if self.impulses and rng.random() < 0.3:
            x = reverb(x, self.impulses[rng.integers(len(self.impulses))])
        if rng.random() < 0.4:
            x = add_noise(x, self._noise(len(x), rng), rng.uniform(5, 30))
        if rng.random() < 0.15:
            x = telephone(x)
        if rng.random() < 0.3:
            x = recode(np.clip(x, -1, 1).astype(np.float32), rng)
        x = x * 10 ** (rng.uniform(-6, 6) / 20)
        return np.clip(x, -1, 1).astype(np.float32)

    def spectrogram(self, spec: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        return spec_augment(spec, rng) if rng.random() < self.prob * 0.5 else spec

    def _noise(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.noises and rng.random() < 0.7:
            source = self.noises[rng.integers(len(self.noises))]
            if len(source) < n:
                source = np.tile(source, n // len(source) + 1)
            start = int(rng.integers(0, len(source) - n + 1))
            return source[start:start + n]
        return coloured_noise(n, rng)


def describe(augmenter: Augmenter | None) -> dict:
    """What an augmenter does, for the checkpoint's record of its training."""
    if augmenter is None or augmenter.prob == augmenter.codec_prob == 0:
        return {"augment_prob": 0.0}
    return {"augment_prob": augmenter.prob, "codec_prob": augmenter.codec_prob, "noise_files": len(augmenter.noises),
            "impulse_responses": len(augmenter.impulses), "clip_samples": CLIP_SAMPLES}

