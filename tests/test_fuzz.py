"""Arbitrary bytes in an audio file: decoding gives finite float32 samples or an AudioError, nothing else."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from src.audio import AudioError, encode_mp3, load_audio
from tests.helpers import sine


def _valid_wav() -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, sine(0.05, 8000), 8000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


VALID = {".wav": _valid_wav(), ".mp3": encode_mp3(sine(0.2, 16000))}


@st.composite
def file_contents(draw) -> tuple[str, bytes]:
    """A suffix and either random bytes or a real file with some bytes overwritten or cut off."""
    suffix = draw(st.sampled_from(sorted(VALID)))
    if draw(st.booleans()):
        return suffix, draw(st.binary(max_size=4096))
    data = bytearray(VALID[suffix])
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    return suffix, bytes(data[: draw(st.integers(0, len(data)))])


# No example database: a run leaves nothing behind in the working tree.
@settings(max_examples=50, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
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
