"""Block-by-block decoding, windowing and mp3 normalisation give what whole-file processing gives."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
from hypothesis import given, settings
from hypothesis import strategies as st

from src.audio import (
    CLIP_SAMPLES,
    SAMPLE_RATE,
    AudioError,
    load_audio,
    mp3_normalise,
    mp3_normalise_blocks,
    stream_audio,
    stream_windows,
    window_starts,
)
from tests.helpers import sine, write_audio


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference**2) / np.sum((reference - other) ** 2)))


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """Harmonic tone with a syllable-rate envelope: broadband enough to exercise the codec."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = 140 * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    tone = sum(np.sin(k * phase) / k for k in range(1, 20))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    return (0.2 * tone * envelope + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.mark.parametrize(("rate", "channels"), [(16000, 1), (44100, 2), (8000, 1)])
def test_blocks_join_to_the_whole_file_decode(tmp_path: Path, rate: int, channels: int):
    tone = sine(7.3, rate, 330.0, 0.5)
    data = np.stack([tone, 0.5 * tone], axis=1) if channels == 2 else tone
    path = write_audio(tmp_path / "tone.flac", data, rate)
    whole, _ = sf.read(str(path), dtype="float32", always_2d=True)
    expected = whole.mean(axis=1)
    if rate != SAMPLE_RATE:
        expected = soxr.resample(expected, rate, SAMPLE_RATE, quality="HQ")
    for block_seconds in (0.25, 1.0, 2.9, 60.0):
        joined = np.concatenate(list(stream_audio(path, block_seconds)))
        np.testing.assert_allclose(joined, expected, atol=1e-6)


def test_a_file_corrupt_halfway_raises_after_its_good_blocks(tmp_path: Path):
    path = write_audio(tmp_path / "half.wav", sine(4.0, SAMPLE_RATE), SAMPLE_RATE, "FLOAT")
    data = bytearray(path.read_bytes())
    samples = np.frombuffer(data[-4 * SAMPLE_RATE:], dtype="<f4").copy()
    samples[100] = np.nan  # the last second carries a NaN
    data[-4 * SAMPLE_RATE:] = samples.tobytes()
    path.write_bytes(bytes(data))
    blocks = stream_audio(path, block_seconds=1.0)
    assert len(next(blocks)) == SAMPLE_RATE
    with pytest.raises(AudioError, match="NaN or infinite"):
        list(blocks)


@settings(max_examples=60, deadline=None)
@given(n_samples=st.integers(0, 5 * CLIP_SAMPLES), block=st.integers(1, 2 * CLIP_SAMPLES))
def test_stream_windows_places_windows_like_window_starts(n_samples: int, block: int):
    samples = np.arange(n_samples, dtype=np.float32)
    blocks = [samples[i:i + block] for i in range(0, n_samples, block)]
    windows = list(stream_windows(blocks))
    assert [start for start, _ in windows] == window_starts(n_samples)
    for start, window in windows:
        np.testing.assert_array_equal(window, samples[start:start + CLIP_SAMPLES])


def test_mp3_normalise_is_lossy_but_aligned():
    samples = speechlike(5.0)
    coded = mp3_normalise(samples)
    assert len(coded) == len(samples) and coded.dtype == np.float32
    inner = slice(2000, -2000)
    lags = {lag: snr_db(samples[inner], np.roll(coded, -lag)[inner]) for lag in range(-3, 4)}
    assert max(lags, key=lags.get) == 0  # the codec delay is removed exactly
    assert 15 < lags[0] < 60  # it really went through a lossy codec


def test_mp3_normalise_blocks_matches_the_whole_file():
    samples = speechlike(20.0, seed=1)
    whole = mp3_normalise(samples)
    for block in (3 * SAMPLE_RATE, 7 * SAMPLE_RATE + 123):
        blocks = [samples[i:i + block] for i in range(0, len(samples), block)]
        joined = np.concatenate(list(mp3_normalise_blocks(blocks)))
        assert len(joined) == len(samples)
        # Codec noise differs between two encodings of the same signal, but no block-edge artefacts:
        assert snr_db(whole, joined) > 25
        assert snr_db(samples, joined) > 0.9 * snr_db(samples, whole)


def test_one_block_is_the_whole_file_normalisation():
    samples = speechlike(4.0, seed=2)
    np.testing.assert_array_equal(np.concatenate(list(mp3_normalise_blocks([samples]))), mp3_normalise(samples))


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_ffmpeg_files_stream_too(tmp_path: Path):
    wav = write_audio(tmp_path / "voice.wav", sine(5.0, 44100, 300.0, 0.4), 44100)
    m4a = tmp_path / "voice.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(wav), str(m4a)], check=True)
    blocks = list(stream_audio(m4a, block_seconds=1.0))
    assert len(blocks) >= 5
    assert abs(len(load_audio(m4a)) - 5 * SAMPLE_RATE) < 0.05 * SAMPLE_RATE
