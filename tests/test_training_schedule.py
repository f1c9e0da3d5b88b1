"""Training options beyond the original: a cosine LR schedule, an exponential moving average of the
weights, the choice of the kept epoch, and the ViT's convolutional stem and pooling."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from src.checkpoint import load_model, read_checkpoint, save_checkpoint
from src.features import N_FRAMES, N_FREQ
from src.train import WeightAverage
from tests.conftest import TRAIN_OPTIONS, VIT_OPTIONS, DataTree, TrainingRun
from tests.helpers import (
    TEST_ENTRY,
    assert_same_training_state,
    describe,
    kill_group,
    run_module,
    split_entries,
    start_module,
    wait_until,
)

AVERAGED = ["--ema", "0.9", "--schedule", "cosine", "--select", "last", "--epochs", "2"]


@pytest.fixture(scope="module")
def averaged_run(data_tree: DataTree, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CNN trained two epochs with weight averaging and a cosine schedule; returns its --output."""
    output = tmp_path_factory.mktemp("averaged") / "cnn.pth"
    result = run_module("src.train_CNN", "--root", data_tree.root, "--output", output, "--log-dir",
                        output.parent / "logs", *AVERAGED, *TRAIN_OPTIONS)
    assert result.returncode == 0, describe(result)
    return output


def test_weight_average_moves_each_weight_towards_the_live_one():
    torch.manual_seed(0)
    live = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    average = WeightAverage(live, decay=0.75)
    average.updates = 100  # past the warm-up, where the decay is the one asked for
    before = {k: v.clone() for k, v in average.model.state_dict().items()}
    with torch.no_grad():
        for p in live.parameters():
            p.add_(1.0)
    live.train()(torch.randn(8, 3))  # moves running_mean / running_var and counts a batch
    average.update(live)
    now = live.state_dict()
    for name, value in average.model.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(value, 0.75 * before[name] + 0.25 * now[name])
        else:
            assert torch.equal(value, now[name]), name  # num_batches_tracked follows the live model
    assert not any(p.requires_grad for p in average.model.parameters())


def test_weight_average_forgets_the_initial_weights_in_a_short_run():
    live = nn.Linear(2, 2)
    average = WeightAverage(live, decay=0.999)
    with torch.no_grad():
        live.weight.fill_(1.0)
    for _ in range(200):
        average.update(live)
    # With a fixed 0.999, 82% of the initial weights would remain; the warm-up leaves under 5%.
    assert torch.all((average.model.weight - 1.0).abs() < 0.05 * (1.0 + live.weight.abs().max()))


def test_averaged_run_keeps_the_last_epochs_averaged_weights(averaged_run: Path):
    best, last = read_checkpoint(averaged_run), read_checkpoint(averaged_run.with_name("cnn_last.pth"))
    assert best["epoch"] == last["epoch"] == 1  # --select last: no choice by loss
    for name, value in last["state_dict"].items():
        assert torch.equal(best["state_dict"][name], value), name
    differs = [name for name, value in last["train_state_dict"].items()
               if value.is_floating_point() and not torch.equal(value, last["state_dict"][name])]
    assert differs, "the saved weights are the average, not the live training weights"
    assert last["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.0, abs=1e-12)  # cosine ends at 0
    model, info = load_model(averaged_run, "cnn")
    assert info.trained_on["ema"] == 0.9 and info.trained_on["schedule"] == "cosine"
    assert info.trained_on["select"] == "last"
    assert torch.isfinite(model(torch.zeros(1, 1, 1025, 94))).all()


def test_killed_averaged_run_resumes_to_the_uninterrupted_result(data_tree: DataTree, averaged_run: Path,
                                                                 tmp_path: Path):
    output = tmp_path / "cnn.pth"
    common = ["--root", data_tree.root, "--output", output, "--log-dir", tmp_path / "logs", *AVERAGED,
              *TRAIN_OPTIONS]
    last = output.with_name("cnn_last.pth")
    process = start_module("src.train_CNN", *common)
    wait_until(last.exists, process)
    time.sleep(np.random.default_rng(3).uniform(0, 0.5))
    kill_group(process)

    resumed = run_module("src.train_CNN", *common, "--resume")

    assert resumed.returncode == 0, describe(resumed)
    reference = averaged_run.with_name("cnn_last.pth")
    assert_same_training_state(last, reference)
    got, want = read_checkpoint(last)["train_state_dict"], read_checkpoint(reference)["train_state_dict"]
    assert all(torch.equal(got[name], value) for name, value in want.items())
    assert read_checkpoint(last)["average_updates"] == read_checkpoint(reference)["average_updates"] > 0


@pytest.mark.parametrize(("flags", "message"), [
    (["--epochs", "2", "--schedule", "cosine", "--select", "last"], "was trained with --ema"),
    (["--epochs", "2", "--ema", "0.9", "--select", "last"], "was trained with --schedule cosine"),
    (["--epochs", "3", "--ema", "0.9", "--schedule", "cosine"], "cosine schedule over 2 epochs, not --epochs 3"),
])
def test_resume_under_other_flags_is_refused(data_tree: DataTree, averaged_run: Path, flags: list, message: str):
    result = run_module("src.train_CNN", "--root", data_tree.root, "--output", averaged_run, "--log-dir",
                        averaged_run.parent / "logs", "--resume", *flags, *TRAIN_OPTIONS)
    assert result.returncode == 2 and message in result.stderr, describe(result)


def test_resume_with_another_teacher_is_refused(data_tree: DataTree, averaged_run: Path):
    result = run_module("src.train_CNN", "--root", data_tree.root, "--output", averaged_run, "--log-dir",
                        averaged_run.parent / "logs", "--resume", *AVERAGED, "--teacher", averaged_run,
                        *TRAIN_OPTIONS)
    assert result.returncode == 2, describe(result)
    assert "was trained with distillation settings {'teacher': None" in result.stderr


def test_select_test_keeps_the_epoch_with_the_lowest_test_loss(data_tree: DataTree, tmp_path: Path):
    output = tmp_path / "cnn.pth"
    result = run_module("src.train_CNN", "--root", data_tree.root, "--output", output, "--log-dir",
                        tmp_path / "logs", "--epochs", "2", "--select", "test", *TRAIN_OPTIONS)
    assert result.returncode == 0, describe(result)
    entries = split_entries((tmp_path / "logs" / "regularlog1.txt").read_text(), TEST_ENTRY)
    test_losses = [float(entry["loss"]) for entry in entries]
    assert len(test_losses) == 2
    best = read_checkpoint(output)
    assert best["epoch"] == int(np.argmin(test_losses))
    assert best["selection_loss"] == pytest.approx(min(test_losses), abs=5e-5)  # logged to 4 decimals


def test_vit_with_a_conv_stem_trains_and_fine_tunes_with_its_own_settings(data_tree: DataTree, tmp_path: Path):
    output = tmp_path / "vit.pth"
    common = ["--root", data_tree.root, "--epochs", "1", *TRAIN_OPTIONS]
    trained = run_module("src.train_vision_transformer", *common, "--output", output, "--log-dir",
                         tmp_path / "logs", *VIT_OPTIONS, "--stem", "conv")
    assert trained.returncode == 0, describe(trained)
    model, info = load_model(output, "vit")
    assert info.config["stem"] == "conv" and model.vit.patch_embed.num_patches == 17 * 12
    # Fine-tuning needs no model flags: they come from the checkpoint.
    tuned = run_module("src.train_vision_transformer", *common, "--output", tmp_path / "tuned.pth", "--log-dir",
                       tmp_path / "tuned_logs", "--init-weights", output)
    assert tuned.returncode == 0, describe(tuned)
    assert load_model(tmp_path / "tuned.pth", "vit")[1].config == info.config
    bad = run_module("src.train_vision_transformer", *common, "--output", tmp_path / "x.pth", "--stem", "conv3")
    assert bad.returncode == 2 and "argument --stem: invalid choice: 'conv3'" in bad.stderr


def test_vit_with_mean_pooling_trains_and_older_checkpoints_still_fine_tune(data_tree: DataTree, vit_run: TrainingRun,
                                                                              tmp_path: Path):
    common = ["--root", data_tree.root, "--epochs", "1", *TRAIN_OPTIONS]
    output = tmp_path / "avg.pth"
    trained = run_module("src.train_vision_transformer", *common, "--output", output, "--log-dir", tmp_path / "logs",
                         *VIT_OPTIONS, "--stem", "conv", "--pool", "avg")
    assert trained.returncode == 0, describe(trained)
    model, info = load_model(output, "vit")
    assert info.config["pool"] == "avg" and model.vit.cls_token is None
    assert model(torch.zeros(2, 1, N_FREQ, N_FRAMES)).shape == (2, 2)
    # a checkpoint saved before --pool existed names no pool: it is a class-token ViT and fine-tunes as one
    old_model, old_info = load_model(vit_run.output, "vit")
    old_config = {k: v for k, v in old_info.config.items() if k != "pool"}
    older = tmp_path / "older.pth"
    save_checkpoint(older, old_model, dataclasses.replace(old_info, config=old_config))
    assert load_model(older, "vit")[0].vit.cls_token is not None
    tuned = run_module("src.train_vision_transformer", *common, "--output", tmp_path / "tuned.pth", "--log-dir",
                       tmp_path / "tuned_logs", "--init-weights", older)
    assert tuned.returncode == 0, describe(tuned)
    assert load_model(tmp_path / "tuned.pth", "vit")[1].config == {**old_config, "pool": "cls"}
    bad = run_module("src.train_vision_transformer", *common, "--output", tmp_path / "x.pth", "--pool", "max")
    assert bad.returncode == 2 and "argument --pool: invalid choice: 'max'" in bad.stderr
