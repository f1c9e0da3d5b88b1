"""`python -m src.export`: the ONNX model reproduces the PyTorch scores on real clips and carries its metadata."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from src.audio import stream_windows
from src.decoding import samples
from src.features import log_power_spectrogram
from src.inference import Detector
from tests.helpers import REPO, describe, run_module

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

CLIPS = [REPO / "assets" / "sample_human.mp3", REPO / "assets" / "sample_ai.mp3"]


def windows_of(detector: Detector, path: Path) -> np.ndarray:
    """The 3-s windows the inference engine scores for this file (decoded and mp3-normalised as it does)."""
    return np.stack([window for _, window in stream_windows(samples(path, detector.info.mp3_kbps))])


@pytest.mark.parametrize("architecture", ["cnn", "vit"])
def test_onnx_runtime_reproduces_pytorch_scores(architecture: str, tmp_path: Path):
    weights = REPO / "pretrained_weights" / ("CNN_Ai-SPY.pth" if architecture == "cnn" else "ViT_Ai-SPY.pth")
    output = tmp_path / "model.onnx"
    result = run_module("src.export", "--weights", weights, "--format", "onnx", "-o", output, timeout=600)
    assert result.returncode == 0, describe(result)
    detector = Detector(weights, architecture, "cpu", precision="fp32", engine="torch")
    windows = np.concatenate([windows_of(detector, path) for path in CLIPS])
    assert len(windows) >= 4
    expected = detector.probabilities(windows)
    session = ort.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    spectrograms = log_power_spectrogram(torch.from_numpy(windows)).numpy()
    got = session.run(["p_ai"], {"log_power_db": spectrograms})[0]
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert (got[: len(windows_of(detector, CLIPS[0]))].mean() >= detector.info.threshold) == \
        (expected[: len(windows_of(detector, CLIPS[0]))].mean() >= detector.info.threshold)

    meta = {p.key: p.value for p in onnx.load(str(output)).metadata_props}
    assert meta["architecture"] == architecture
    assert float(meta["threshold"]) == pytest.approx(detector.info.threshold)
    assert float(meta["stats_mean"]) == pytest.approx(detector.info.stats_mean)
    assert json.loads(meta["labels"])[0] == "ai"
    contract = json.loads(meta["input_contract"])
    assert contract["sample_rate"] == 16000 and contract["n_fft"] == 2048 and contract["shape"] == [1025, 94]


def test_export_refuses_what_is_not_a_checkpoint(tmp_path: Path):
    bogus = tmp_path / "bogus.pth"
    bogus.write_bytes(b"not a checkpoint")
    result = run_module("src.export", "--weights", bogus, "-o", tmp_path / "x.onnx")
    assert result.returncode == 2 and "error:" in result.stderr and not (tmp_path / "x.onnx").exists()
