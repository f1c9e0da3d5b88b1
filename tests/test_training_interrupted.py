"""Training SIGKILLed during epoch 2 and resumed: weights, optimizer, scheduler and logs equal those of an
uninterrupted run, with each epoch logged once."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from src.checkpoint import read_checkpoint
from src.train import log_state, rewind_logs
from tests.conftest import TRAIN_OPTIONS, DataTree, TrainingRun
from tests.helpers import (
    assert_same_logs,
    assert_same_training_state,
    dead_pid,
    describe,
    files_named,
    kill_group,
    read_logs,
    run_module,
    start_module,
    wait_until,
)


def test_training_killed_in_epoch_2_resumes_to_the_uninterrupted_result(
        data_tree: DataTree, cnn_straight_run: TrainingRun, tmp_path: Path):
    output, log_dir = tmp_path / "models" / "cnn.pth", tmp_path / "CNNLogs"
    common = ["--root", data_tree.root, "--output", output, "--log-dir", log_dir, "--epochs", "2", *TRAIN_OPTIONS]
    last = output.with_name("cnn_last.pth")
    process = start_module("src.train_CNN", *common)
    wait_until(last.exists, process)  # epoch 1 is finished and checkpointed
    time.sleep(np.random.default_rng(7).uniform(0, 0.8))
    kill_group(process)
    assert read_checkpoint(last)["epoch"] in (0, 1)

    resumed = run_module("src.train_CNN", *common, "--resume")

    assert resumed.returncode == 0, describe(resumed)
    assert_same_training_state(last, cnn_straight_run.last)
    assert_same_logs(read_logs(log_dir), read_logs(cnn_straight_run.log_dir))
    assert files_named(tmp_path, ".partial") == []


def test_epoch_logged_but_not_checkpointed_is_logged_once_after_resume(
        data_tree: DataTree, cnn_run: TrainingRun, cnn_straight_run: TrainingRun, tmp_path: Path):
    # The state a kill leaves between the end-of-epoch log lines and the checkpoint: the logs hold
    # epoch 2, the last checkpoint is still the one of epoch 1.
    output, log_dir = tmp_path / "models" / "cnn.pth", tmp_path / "CNNLogs"
    shutil.copytree(cnn_run.log_dir, log_dir)
    output.parent.mkdir()
    shutil.copy(cnn_run.first_last_copy, output.with_name("cnn_last.pth"))
    assert_same_logs(read_logs(log_dir), read_logs(cnn_straight_run.log_dir))  # epoch 2 is in the logs already
    # and the temporary files a kill during the checkpoint and log writes leaves
    for path in (output.with_name(f".cnn_last.pth.{dead_pid()}.partial"),
                 log_dir / f".regularlog1.txt.{dead_pid()}.partial"):
        path.write_bytes(b"half written")

    resumed = run_module("src.train_CNN", "--root", data_tree.root, "--output", output, "--log-dir", log_dir,
                         "--epochs", "2", "--resume", *TRAIN_OPTIONS)

    assert resumed.returncode == 0, describe(resumed)
    assert "epoch 2/2" in resumed.stdout and "removed the entries written after that checkpoint" in resumed.stdout
    assert_same_logs(read_logs(log_dir), read_logs(cnn_straight_run.log_dir))
    assert files_named(tmp_path, ".partial") == []


def test_rewind_leaves_logs_that_are_not_the_recorded_ones(tmp_path: Path):
    log = tmp_path / "regularlog1.txt"
    log.write_text("\nepoch 1")
    state = log_state(tmp_path, ("regularlog1.txt", "missing.txt"))
    log.write_text("\nepoch 1\nepoch 2")
    assert rewind_logs(tmp_path, state) == ["regularlog1.txt"] and log.read_text() == "\nepoch 1"
    log.write_text("\nanother run's epoch 1\nepoch 2")  # e.g. --log-dir changed: not this run's log
    assert rewind_logs(tmp_path, state) == [] and log.read_text() == "\nanother run's epoch 1\nepoch 2"
    assert not (tmp_path / "missing.txt").exists()
