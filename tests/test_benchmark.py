"""The benchmark's own pieces work: its test audio, its baseline, its memory probe and one measurement process
(no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import soundfile as sf
import torch

from benchmarks.corpus import RATE, write_mp3
from benchmarks.memory import PeakMemory
from benchmarks.original import convert_like_pydub, ffmpeg_available, p_ai_like_original
from src.audio import SAMPLE_RATE, load_audio
from src.checkpoint import load_model
from tests.conftest import TrainingRun
from tests.helpers import REPO, describe, run_module


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


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: the check would run, not refuse")
def test_gpu_check_without_a_gpu_says_how_to_try_it_on_the_cpu():
    result = run_module("benchmarks.gpu")
    assert result.returncode == 2, describe(result)
    assert "no CUDA device here; use --device cpu" in result.stderr


def test_avx2_simulation_reaches_the_measured_process():
    """--simulate-avx2 caps the child processes at AVX2 without bf16, whatever this CPU has."""
    from benchmarks.run import AVX2_ONLY

    normal = run_module("benchmarks.measure", "cpu")
    capped = run_module("benchmarks.measure", "cpu", env=AVX2_ONLY)
    assert normal.returncode == capped.returncode == 0, describe(capped)
    line = json.loads(capped.stdout.strip().splitlines()[-1])["cpu"]
    assert "PyTorch kernels: AVX2, native bf16: no" in line
    assert "CPU features:" in json.loads(normal.stdout.strip().splitlines()[-1])["cpu"]


@pytest.mark.skipif(not ffmpeg_available(), reason="the original Ai-SPY path needs ffmpeg (apt-get install ffmpeg)")
def test_the_original_path_scores_every_whole_window(tmp_path: Path):
    """The baseline `make bench` compares against: pydub-style ffmpeg conversion, then one 3-s window per pass."""
    audio = write_mp3(tmp_path / "c.mp3", 10.0)
    model = load_model(REPO / "pretrained_weights" / "CNN_Ai-SPY.pth", "cnn")[0]
    scores = p_ai_like_original(audio, model)
    assert len(scores) == 3 and all(0.0 <= p <= 1.0 for p in scores)  # the original drops the last 1 s
    with tempfile.TemporaryDirectory() as folder:
        converted = convert_like_pydub(audio, Path(folder))
        info = sf.info(str(converted))
        assert (info.format, info.samplerate, info.channels) == ("MP3", 16000, 2)  # channels kept, as pydub does


@pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="needs Linux /proc")
def test_peak_memory_includes_child_processes():
    """The inference command's decoders are child processes: their memory must be counted."""
    grow = "import time; block = bytearray(300 * 2**20); block[::4096] = b'x' * len(block[::4096]); time.sleep(1.5)"
    with PeakMemory(interval=0.05) as alone:
        time.sleep(0.3)
    with PeakMemory(interval=0.05) as with_child:
        subprocess.run([sys.executable, "-c", grow], check=True)
    assert with_child.mb - alone.mb > 250, (alone.mb, with_child.mb)
