"""The benchmark's own test audio: podcast-like mp3 (44.1 kHz stereo, 128 kbps) of any length.

Content: the two `assets/` samples (one human, one AI) alternating with random gain and a
little noise, so decoding and the model see real speech; only speed is measured on it.
"""

from __future__ import annotations

from pathlib import Path

import lameenc
import numpy as np
import soxr

from src.audio import load_audio

RATE = 44100
ASSETS = Path(__file__).resolve().parent.parent / "assets"


def speech(seconds: float, seed: int) -> np.ndarray:
    """Stereo float32 [frames, 2] at 44.1 kHz made of the asset samples."""
    rng = np.random.default_rng(seed)
    pieces = [soxr.resample(load_audio(ASSETS / name), 16000, RATE) for name in ("sample_human.mp3", "sample_ai.mp3")]
    out, n = [], int(seconds * RATE)
    while sum(len(p) for p in out) < n:
        out.append(pieces[len(out) % 2] * rng.uniform(0.5, 1.0))
    mono = np.concatenate(out)[:n]
    mono = mono + rng.normal(0, 1e-3, n)
    return np.stack([mono, 0.9 * mono], axis=1).astype(np.float32)


def write_mp3(path: Path, seconds: float, seed: int = 0) -> Path:
    """Write `seconds` of test speech as a 128 kbps stereo mp3, encoded a minute at a time."""
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(128)
    encoder.set_in_sample_rate(RATE)
    encoder.set_channels(2)
    encoder.set_quality(7)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        done = 0.0
        while done < seconds:
            chunk = min(60.0, seconds - done)
            pcm = np.round(np.clip(speech(chunk, seed + int(done)), -1, 1) * 32767).astype("<i2")
            out.write(encoder.encode(pcm.tobytes()))
            done += chunk
        out.write(encoder.flush())
    return path
