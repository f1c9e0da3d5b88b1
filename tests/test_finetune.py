"""Fine-tuning: --init-weights starts training from an existing checkpoint's weights."""

from __future__ import annotations

from pathlib import Path

import torch

from src.checkpoint import load_model, read_checkpoint
from tests.conftest import TRAIN_OPTIONS, VIT_OPTIONS, DataTree, TrainingRun
from tests.helpers import describe, run_module


def test_training_starts_from_the_given_weights(data_tree: DataTree, cnn_run: TrainingRun, tmp_path: Path):
    output = tmp_path / "tuned.pth"
    result = run_module("src.train_CNN", "--root", data_tree.root, "--output", output, "--log-dir", tmp_path / "logs",
                        "--epochs", "1", "--lr", "0", "--init-weights", cnn_run.output, *TRAIN_OPTIONS)
    assert result.returncode == 0, describe(result)
    start, _ = load_model(cnn_run.output)
    tuned, info = load_model(output)
    assert info.trained_on["init_weights"] == str(cnn_run.output)
    # with a learning rate of 0 only batchnorm running statistics move: the conv and linear weights are the start's
    for name, value in start.state_dict().items():
        if "running" not in name and "num_batches" not in name:
            torch.testing.assert_close(tuned.state_dict()[name], value, rtol=0, atol=0)
    assert read_checkpoint(output)["epoch"] == 0


def test_init_weights_with_other_settings_is_refused(data_tree: DataTree, vit_run: TrainingRun, tmp_path: Path):
    result = run_module("src.train_vision_transformer", "--root", data_tree.root, "--output", tmp_path / "v.pth",
                        "--log-dir", tmp_path / "logs", "--epochs", "1", "--init-weights", vit_run.output,
                        *TRAIN_OPTIONS, *VIT_OPTIONS[:-2], "--num-heads", "2")
    assert result.returncode == 2
    assert "--init-weights" in result.stderr and "has settings" in result.stderr
    wrong_kind = run_module("src.train_CNN", "--root", data_tree.root, "--output", tmp_path / "c.pth",
                            "--log-dir", tmp_path / "logs", "--epochs", "1", "--init-weights", vit_run.output,
                            *TRAIN_OPTIONS)
    assert wrong_kind.returncode == 2 and "not a CNN" in wrong_kind.stderr

