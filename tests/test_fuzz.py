"""Arbitrary bytes in an audio file: decoding gives finite float32 samples or an AudioError, and the whole
detector path (decoding, mp3 normalisation, windows, spectrograms, model) gives a verdict or an error, quickly."""

from __future__ import annotations

import io
import math
import struct
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from src.audio import AudioError, encode_mp3, load_audio
from src.checkpoint import ModelInfo, save_checkpoint
from src.inference import Detector
from src.model import CNN
from tests.helpers import sine


def _valid_wav(seconds: float = 0.05) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, sine(seconds, 8000), 8000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


VALID = {".wav": _valid_wav(), ".mp3": encode_mp3(sine(0.2, 16000))}
# Long enough (3.2 s) for the detector to get past "too short" and compute windows.
LONG = {".wav": _valid_wav(3.2), ".mp3": encode_mp3(sine(3.2, 16000))}
# 0.5 s of 8 kHz audio whose header says 1 Hz: it claims 67 minutes once resampled to 16 kHz.
ONE_HZ = bytearray(_valid_wav(0.5))
ONE_HZ[24:32] = struct.pack("<II", 1, 2)


@st.composite
def file_contents(draw, seeds: dict[str, bytes] = VALID) -> tuple[str, bytes]:
    """A suffix and either random bytes or a real file with some bytes overwritten or cut off."""
    suffix = draw(st.sampled_from(sorted(seeds)))
    if draw(st.booleans()):
        return suffix, draw(st.binary(max_size=4096))
    data = bytearray(seeds[suffix])
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    return suffix, bytes(data[: draw(st.integers(0, len(data)))])


# A wav with an odd byte count that libsndfile refuses; ffmpeg, where installed, decodes it and
# pydub then failed on the ragged last sample with a bare ValueError.
RAGGED = (b"\x00IFF$\xc8\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00@\x1f\x00\x00\x80>\x00\x00"
          b"\x02\x00\x10\x00data\x00\xc8\x00\x00\x00")


# No example database: a run leaves nothing behind in the working tree.
@settings(max_examples=50, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@example((".wav", RAGGED))
@given(file_contents())
def test_arbitrary_bytes_decode_or_raise_audio_error(case: tuple[str, bytes]):
    suffix, data = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"input{suffix}"
        path.write_bytes(data)
        try:
            samples = load_audio(path)
        except AudioError as exc:
            assert str(exc)
            return
    assert isinstance(samples, np.ndarray) and samples.dtype == np.float32 and samples.ndim == 1
    assert np.isfinite(samples).all()


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> Detector:
    """A CNN with random weights: the path through the model matters here, not its verdicts."""
    torch.manual_seed(0)
    weights = tmp_path_factory.mktemp("fuzz") / "cnn.pth"
    save_checkpoint(weights, CNN(), ModelInfo("cnn"))
    return Detector(weights, "cnn", "cpu")


@settings(max_examples=30, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@example((".wav", bytes(ONE_HZ)))
@example((".wav", RAGGED))
@given(case=file_contents(LONG))
def test_arbitrary_bytes_through_the_detector_give_a_verdict_or_an_error(detector: Detector,
                                                                        case: tuple[str, bytes]):
    suffix, data = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"input{suffix}"
        path.write_bytes(data)
        started = time.perf_counter()
        result = detector.analyse(path)
        elapsed = time.perf_counter() - started
    assert elapsed < 10, f"{elapsed:.1f} s for {len(data)} bytes"  # a header cannot make it hang
    if "error" in result:
        assert set(result) == {"name", "error"} and result["error"]
        return
    probabilities = [w["ai_probability"] for w in result["windows"]]
    assert probabilities and all(0 <= p <= 1 for p in probabilities)
    assert math.isfinite(result["mean_ai_probability"]) and result["Prediction"] in ("ai", "human")
