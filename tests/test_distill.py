"""Distillation: --teacher makes training follow a trained model's verdicts as well as the labels."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from src.audio import MP3_BITRATE_KBPS
from src.checkpoint import load_model, save_checkpoint
from src.distill import Teacher, distillation_loss
from src.features import N_FRAMES, N_FREQ, Stats
from tests.conftest import TRAIN_OPTIONS, DataTree, TrainingRun
from tests.helpers import describe, run_module


def inverted_copy(weights: Path, output: Path, **info_changes) -> Path:
    """The same CNN with its two output units swapped: it calls AI what the original calls human."""
    model, info = load_model(weights)
    with torch.no_grad():
        model.fc2.weight.copy_(model.fc2.weight.flip(0))
        model.fc2.bias.copy_(model.fc2.bias.flip(0))
    save_checkpoint(output, model, dataclasses.replace(info, **info_changes))
    return output


def test_teacher_sees_the_windows_in_its_own_normalisation(cnn_run: TrainingRun, tmp_path: Path):
    weights = inverted_copy(cnn_run.output, tmp_path / "teacher.pth", stats_mean=-40.0, stats_std=8.0)
    model, _ = load_model(weights)
    student_stats = Stats(-62.0, 17.0)
    db = -60 + 15 * torch.randn(4, 1, N_FREQ, N_FRAMES, generator=torch.Generator().manual_seed(0))
    teacher = Teacher(weights, student_stats, MP3_BITRATE_KBPS, torch.device("cpu"))
    with torch.no_grad():
        expected = model((db + 40.0) / 8.0)
    got = teacher.logits(student_stats.normalise(db))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert not any(p.requires_grad for p in teacher.model.parameters())


def test_distillation_loss_mixes_label_and_teacher_cross_entropy():
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.3], [-1.0, 1.5]])
    labels = torch.tensor([0, 1, 1])
    teacher = torch.tensor([[2.2, 0.0], [-1.4, 0.0], [0.4, 0.0]])  # P(AI) 0.90, 0.20, 0.60
    hard = F.cross_entropy(logits, labels)
    soft = -(torch.softmax(teacher, 1) * F.log_softmax(logits, dim=1)).sum(1).mean()
    assert distillation_loss(logits, labels, None, 0.5) == pytest.approx(hard.item())
    assert distillation_loss(logits, labels, teacher, 0.0) == pytest.approx(hard.item())
    assert distillation_loss(logits, labels, teacher, 1.0) == pytest.approx(soft.item())
    assert distillation_loss(logits, labels, teacher, 0.25) == pytest.approx(0.75 * hard.item() + 0.25 * soft.item())
    certain = 50 * (F.one_hot(labels, 2).float() - 0.5)  # a teacher sure of the labels teaches the labels
    assert distillation_loss(logits, labels, certain, 1.0) == pytest.approx(hard.item(), abs=1e-6)


def test_a_temperature_softens_both_sides_and_keeps_the_gradient_scale():
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.3]])
    labels = torch.tensor([0, 1])
    teacher = torch.tensor([[6.0, 0.0], [-3.0, 0.0]])
    t = 4.0
    soft = -(torch.softmax(teacher / t, 1) * F.log_softmax(logits / t, dim=1)).sum(1).mean() * t**2
    assert distillation_loss(logits, labels, teacher, 1.0, t) == pytest.approx(soft.item())
    # a student that already has the teacher's logits is at the minimum: no gradient
    student = teacher.clone().requires_grad_(True)
    distillation_loss(student, labels, teacher, 1.0, t).backward()
    torch.testing.assert_close(student.grad, torch.zeros_like(student.grad), atol=1e-7, rtol=0)


def auc_on_training_recordings(weights: Path, tree: DataTree, report: Path) -> float:
    result = run_module("src.evaluate", "--weights", weights, "--human-dir", tree.root / "human_full",
                        "--ai-dir", tree.root / "ai_full", "--report", report, "--device", "cpu", "--no-progress")
    assert result.returncode == 0, describe(result)
    return json.loads(report.read_text())["overall"]["roc_auc"]


def test_a_student_follows_its_teacher_even_against_the_labels(data_tree: DataTree, cnn_run: TrainingRun,
                                                               tmp_path: Path):
    assert auc_on_training_recordings(cnn_run.output, data_tree, tmp_path / "teacher.json") > 0.9
    teacher = inverted_copy(cnn_run.output, tmp_path / "inverted.pth")
    student = tmp_path / "student.pth"
    result = run_module("src.train_CNN", "--root", data_tree.root, "--output", student, "--log-dir", tmp_path / "logs",
                        "--epochs", "2", "--augment-prob", "0", "--teacher", teacher, "--distill-weight", "1",
                        *TRAIN_OPTIONS)
    assert result.returncode == 0, describe(result)
    _, info = load_model(student)
    assert info.trained_on["teacher"] == str(teacher) and info.trained_on["distill_weight"] == 1.0
    assert info.trained_on["distill_temperature"] == 1.0
    # taught only by a teacher that has the classes the wrong way round, the student ranks them the wrong way
    # round too (the teacher, trained on the labels for two epochs, ranks them right: asserted above)
    assert auc_on_training_recordings(student, data_tree, tmp_path / "student.json") < 0.4


@pytest.mark.parametrize("flags, message", [
    (["--teacher", "missing.pth"], "--teacher"),
    (["--distill-weight", "1.5"], "argument --distill-weight: must be from 0 to 1, got 1.5"),
    (["--distill-temperature", "0"], "--distill-temperature must be positive"),
])
def test_bad_distillation_flags_are_refused(data_tree: DataTree, tmp_path: Path, flags: list[str], message: str):
    output = tmp_path / "model.pth"
    result = run_module("src.train_CNN", "--root", data_tree.root, "--output", output, "--log-dir", tmp_path / "logs",
                        "--epochs", "1", *flags, *TRAIN_OPTIONS)
    assert result.returncode == 2, describe(result)
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not output.exists()
