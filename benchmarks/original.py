"""The original Ai-SPY inference path, rebuilt for timing: the baseline of `make bench`.

What the original's `src/inference_CNN.py` does per file (../shared/docs/original-ai-spy.md, section 6):
pydub decodes the file with ffmpeg into memory and exports it with ffmpeg as a 48 kbps, 16 kHz mp3
temp file; librosa loads that (mono); each whole 3-s window gets librosa's STFT, `power_to_db(S + 1e-10,
ref=np.max)` and the global normalisation, and goes through the CNN alone (batch 1, PyTorch fp32,
default threads). pydub is not installed here, so its two ffmpeg runs are made directly, with the
arguments pydub passes. Needs ffmpeg on PATH.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import librosa
import numpy as np
import torch

from src.features import ORIGINAL_MEAN, ORIGINAL_STD


def ffmpeg_available() -> bool:
    return shutil.which("ffmpeg") is not None


def convert_like_pydub(path: str | Path, folder: Path) -> Path:
    """AudioSegment.from_file(path) then .export(tmp, format="mp3", bitrate="48k", parameters=["-ar", "16000"])."""
    wav, mp3 = folder / "decoded.wav", folder / "converted.mp3"
    subprocess.run(["ffmpeg", "-y", "-v", "error", "-i", str(path), "-acodec", "pcm_s16le", "-vn", "-f", "wav",
                    str(wav)], check=True)
    subprocess.run(["ffmpeg", "-y", "-v", "error", "-f", "wav", "-i", str(wav), "-b:a", "48k", "-ar", "16000",
                    "-f", "mp3", str(mp3)], check=True)
    return mp3


def p_ai_like_original(path: str | Path, model: torch.nn.Module) -> list[float]:
    """P(AI) of each whole 3-s window, computed the original's way (one window per forward pass)."""
    with tempfile.TemporaryDirectory(prefix="aispy-original-") as tmp:
        samples, _ = librosa.load(convert_like_pydub(path, Path(tmp)), sr=16000)
    samples = np.clip(samples, -1.0, 1.0)
    scores = []
    for start in range(0, len(samples) - 48000 + 1, 48000):
        power = np.abs(librosa.stft(samples[start:start + 48000])) ** 2
        x = (librosa.power_to_db(power + 1e-10, ref=np.max) - ORIGINAL_MEAN) / ORIGINAL_STD
        with torch.inference_mode():
            logits = model(torch.from_numpy(x).float()[None, None])
        scores.append(float(torch.softmax(logits, dim=1)[0, 0]))
    return scores
