"""The benchmark's own pieces work: its test audio and one measurement process (no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import soundfile as sf

from benchmarks.corpus import RATE, write_mp3
from src.audio import SAMPLE_RATE, load_audio
from tests.conftest import TrainingRun
from tests.helpers import describe, run_module


def test_test_audio_is_stereo_mp3_of_the_asked_length(tmp_path: Path):
    path = write_mp3(tmp_path / "a.mp3", 75.0)
    info = sf.info(str(path))
    assert (info.format, info.samplerate, info.channels) == ("MP3", RATE, 2)
    # Written in 60-s chunks: nothing lost, only the codec's delay and padding (< 0.3 s) added.
    assert 75.0 <= len(load_audio(path)) / SAMPLE_RATE < 75.3


def test_one_inference_measurement(cnn_run: TrainingRun, tmp_path: Path):
    audio = write_mp3(tmp_path / "b.mp3", 10.0)
    result = run_module("benchmarks.measure", "infer", audio, "--arch", "cnn", "--weights", cnn_run.output)
    assert result.returncode == 0, describe(result)
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert abs(measured["audio_s"] - 10.0) < 0.1
    assert measured["engine_s"] > 0 and measured["peak_mb"] > 50
    assert measured["precision"] in ("fp32", "bf16")


def test_avx2_simulation_reaches_the_measured_process():
    """--simulate-avx2 caps the child processes at AVX2 without bf16, whatever this CPU has."""
    from benchmarks.run import AVX2_ONLY

    normal = run_module("benchmarks.measure", "cpu")
    capped = run_module("benchmarks.measure", "cpu", env=AVX2_ONLY)
    assert normal.returncode == capped.returncode == 0, describe(capped)
    line = json.loads(capped.stdout.strip().splitlines()[-1])["cpu"]
    assert "PyTorch kernels: AVX2, native bf16: no" in line
    assert "CPU features:" in json.loads(normal.stdout.strip().splitlines()[-1])["cpu"]
