"""`python -m src.release`: a training checkpoint becomes shipped weights that score exactly as it did."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import torch

from src.checkpoint import load_model, read_checkpoint
from tests.conftest import TrainingRun
from tests.helpers import describe, run_module


def test_release_keeps_weights_and_metadata_and_drops_resume_state(cnn_run: TrainingRun, tmp_path: Path):
    folder = tmp_path / "pretrained_weights"
    folder.mkdir()
    (folder / "SHA256SUMS").write_text("0" * 64 + "  other.pth\n" + "1" * 64 + "  CNN.pth\n")
    shipped = folder / "CNN.pth"
    result = run_module("src.release", "--weights", cnn_run.last, "--chosen-by", "last epoch, validation EER",
                        "-o", shipped)
    assert result.returncode == 0, describe(result)
    digest = hashlib.sha256(shipped.read_bytes()).hexdigest()
    assert result.stdout.strip() == f"{digest}  {shipped}"
    assert (folder / "SHA256SUMS").read_text() == f"{'0' * 64}  other.pth\n{digest}  CNN.pth\n"

    original, payload = read_checkpoint(cnn_run.last), read_checkpoint(shipped)
    assert "optimizer" in original and set(payload) == {"format_version", "info", "state_dict", "epoch"}
    assert payload["info"]["trained_on"]["chosen_by"] == "last epoch, validation EER"
    assert payload["info"]["threshold"] == original["info"]["threshold"]
    (model, info), (reference, _) = load_model(shipped), load_model(cnn_run.last)
    x = torch.randn(2, 1, 1025, 94)
    assert torch.equal(model(x), reference(x))
    assert info.trained_on["train"] == original["info"]["trained_on"]["train"]


def test_release_refuses_a_file_that_is_not_a_checkpoint(tmp_path: Path):
    bogus = tmp_path / "bogus.pth"
    shutil.copy(Path(__file__), bogus)
    result = run_module("src.release", "--weights", bogus, "--chosen-by", "x", "-o", tmp_path / "out.pth")
    assert result.returncode == 2 and "error:" in result.stderr and not (tmp_path / "out.pth").exists()
