"""Training end to end: log files and formats, checkpoints and their metadata, the split, resume,
the LR scheduler, and a two-process torchrun run."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch

from src.checkpoint import load_model, read_checkpoint
from src.dataset import labelled_clips, source_of, split_by_source
from src.features import read_stats
from src.metrics import AI, HUMAN
from tests.conftest import TRAIN_OPTIONS, DataTree, TrainingRun
from tests.helpers import (
    TEST_ENTRY,
    VALIDATION_ENTRY,
    assert_same_logs,
    assert_same_training_state,
    describe,
    matrix,
    read_logs,
    run_module,
    run_python,
    split_entries,
)

CNN_LOGS = ("regularlog1.txt", "regular_validation1.txt", "regular_incorrect_validation1.txt")
VIT_LOGS = ("vision_transformer_log.txt", "vision_transformer_val_log.txt", "vision_transformer_incorrect.txt")


def training_clips(tree: DataTree) -> list[tuple[str, int]]:
    return labelled_clips(tree.split_dir("ai"), tree.split_dir("human"))


def validation_clips(tree: DataTree) -> list[tuple[str, int]]:
    return labelled_clips(tree.split_dir("validation_set/ai"), tree.split_dir("validation_set/human"))


def check_logs(run: TrainingRun, names: tuple[str, str, str], epochs: list[int], tree: DataTree) -> None:
    """The three log files hold one well-formed entry per epoch, consistent with the data."""
    assert sorted(p.name for p in run.log_dir.iterdir()) == sorted(names)
    test_log, val_log, incorrect_log = (run.log_dir / n for n in names)
    info = read_checkpoint(run.last)["info"]["trained_on"]

    tests = split_entries(test_log.read_text(), TEST_ENTRY)
    assert len(tests) == len(epochs)
    for entry in tests:
        correct, total, cm = int(entry["correct"]), int(entry["total"]), matrix(entry)
        assert total == info["test"]["clips"] == sum(cm)
        assert correct == cm[0] + cm[3]
        assert [cm[0] + cm[1], cm[2] + cm[3]] == [info["test"]["ai_clips"], info["test"]["human_clips"]]
        assert int(entry["percent"]) == round(100 * correct / total)
        assert float(entry["loss"]) == pytest.approx(float(entry["log_loss"]), abs=5e-5)
        assert 0 < float(entry["log_loss"]) < 5

    validations = split_entries(val_log.read_text(), VALIDATION_ENTRY)
    assert [int(v["epoch"]) for v in validations] == epochs
    val_items = validation_clips(tree)
    wrong_total = 0
    for entry in validations:
        correct, total, cm = int(entry["correct"]), int(entry["total"]), matrix(entry)
        assert total == len(val_items) == info["validation"]["clips"] == sum(cm)
        assert correct == cm[0] + cm[3]
        assert [cm[0] + cm[1], cm[2] + cm[3]] == [
            sum(1 for _, y in val_items if y == AI), sum(1 for _, y in val_items if y == HUMAN)]
        wrong_total += total - correct
    # The misclassified validation clips, one path per line, every epoch appended.
    wrong = incorrect_log.read_text().splitlines()
    assert len(wrong) == wrong_total
    assert set(wrong) <= {p for p, _ in val_items}


def test_cnn_logs(cnn_run: TrainingRun, data_tree: DataTree):
    check_logs(cnn_run, CNN_LOGS, [0, 1], data_tree)  # the original numbers CNN validation epochs from 0


def test_vit_logs(vit_run: TrainingRun, data_tree: DataTree):
    check_logs(vit_run, VIT_LOGS, [1, 2], data_tree)  # and ViT validation epochs from 1


@pytest.mark.parametrize("which", ["cnn", "vit"])
def test_checkpoint_metadata(which: str, request: pytest.FixtureRequest, data_tree: DataTree):
    run: TrainingRun = request.getfixturevalue(f"{which}_run")
    assert run.output.is_file() and run.last.is_file()
    assert run.last.name == run.output.stem + "_last" + run.output.suffix
    stats = read_stats(data_tree.root / "global_stats.txt")
    expected_config = {} if which == "cnn" else {
        "patch_size": 32, "embed_dim": 64, "depth": 2, "num_heads": 4, "stem": "patch", "pool": "cls"}
    for path in (run.output, run.last):
        info = read_checkpoint(path)["info"]
        assert info["architecture"] == which and info["config"] == expected_config
        assert (info["stats_mean"], info["stats_std"]) == (stats.mean, stats.std)
        assert (info["sample_rate"], info["clip_seconds"], info["labels"]) == (16000, 3, ["ai", "human"])
        assert info["input_shape"] == [1, 1025, 94]
        assert 0 < info["threshold"] < 1
        trained_on = info["trained_on"]
        train, test, val = trained_on["train"], trained_on["test"], trained_on["validation"]
        all_clips = training_clips(data_tree)
        assert train["clips"] + test["clips"] == len(all_clips) and test["clips"] > 0
        assert train["ai_clips"] + test["ai_clips"] == sum(1 for _, y in all_clips if y == AI)
        assert val["clips"] == len(validation_clips(data_tree))
        assert train["recordings"] + test["recordings"] == len(data_tree.sources["ai"] + data_tree.sources["human"])
        assert Path(trained_on["data_root"]) == data_tree.root.resolve()
        model, loaded = load_model(path, which)
        assert loaded.architecture == which and not model.training


@pytest.mark.parametrize("which", ["cnn", "vit"])
def test_best_checkpoint_is_the_best_validation_epoch(which: str, request: pytest.FixtureRequest):
    run: TrainingRun = request.getfixturevalue(f"{which}_run")
    name = "regular_validation1.txt" if which == "cnn" else "vision_transformer_val_log.txt"
    entries = split_entries((run.log_dir / name).read_text(), VALIDATION_ENTRY)
    losses = [float(e["log_loss"]) for e in entries]  # full precision
    best = read_checkpoint(run.output)
    assert best["epoch"] == losses.index(min(losses))
    assert best["selection_loss"] == pytest.approx(min(losses), rel=1e-12)
    last = read_checkpoint(run.last)
    assert last["epoch"] == len(losses) - 1 and last["best_loss"] == pytest.approx(min(losses), rel=1e-12)
    same_weights = all(torch.equal(best["state_dict"][k], last["state_dict"][k]) for k in best["state_dict"])
    assert same_weights == (best["epoch"] == last["epoch"])


def test_resume_continues_where_it_stopped(cnn_run: TrainingRun):
    assert cnn_run.first_last_epoch == 0
    first, second = cnn_run.runs
    assert "resuming from" in second.stdout and "after epoch 1" in second.stdout, describe(second)
    assert "epoch 2/2" in second.stdout and "epoch 1/2" not in second.stdout
    for name, before in cnn_run.first_logs.items():
        after = (cnn_run.log_dir / name).read_text()
        assert after.startswith(before)  # appended to, never rewritten
    for name, pattern in (("regularlog1.txt", TEST_ENTRY), ("regular_validation1.txt", VALIDATION_ENTRY)):
        assert len(split_entries(cnn_run.first_logs[name], pattern)) == 1
        assert len(split_entries((cnn_run.log_dir / name).read_text(), pattern)) == 2
    state = read_checkpoint(cnn_run.last)
    assert state["epoch"] == 1
    assert {"optimizer", "scheduler", "best_loss"} <= state.keys()
    assert state["optimizer"]["state"], "Adam moments are saved"


def test_resumed_run_equals_an_uninterrupted_run(cnn_run: TrainingRun, cnn_straight_run: TrainingRun):
    # Same seed, same flags, two epochs in one go: weights, optimizer and scheduler state and logs are
    # identical to the run that stopped after one epoch and was resumed.
    assert_same_training_state(cnn_run.last, cnn_straight_run.last)
    assert_same_logs(read_logs(cnn_run.log_dir), read_logs(cnn_straight_run.log_dir))


def test_resume_with_loader_workers_equals_an_uninterrupted_run(data_tree: DataTree, tmp_path: Path):
    # With DataLoader worker processes the shuffle and the workers' augmentation draws must also
    # depend only on (seed, epoch), or a resumed run would train on other batches.
    options = [opt if opt != "0" else "2" for opt in TRAIN_OPTIONS]
    assert options[:2] == ["--workers", "2"]
    common = ["--root", data_tree.root, "--augment-prob", "0.5", *options]
    resumed, straight = tmp_path / "resumed" / "cnn.pth", tmp_path / "straight" / "cnn.pth"
    for args in (["--output", resumed, "--epochs", "1"], ["--output", resumed, "--epochs", "2", "--resume"],
                 ["--output", straight, "--epochs", "2"]):
        result = run_module("src.train_CNN", *common, *args, "--log-dir", args[1].parent / "logs")
        assert result.returncode == 0, describe(result)
    a = read_checkpoint(resumed.with_name("cnn_last.pth"))["state_dict"]
    b = read_checkpoint(straight.with_name("cnn_last.pth"))["state_dict"]
    assert all(torch.equal(a[key], b[key]) for key in a)


def test_resume_without_a_checkpoint_is_refused(data_tree: DataTree, tmp_path: Path):
    result = run_module("src.train_CNN", "--root", data_tree.root, "--output", tmp_path / "m.pth", "--log-dir",
                        tmp_path / "logs", "--epochs", "1", "--resume", *TRAIN_OPTIONS)
    assert result.returncode == 2
    assert f"--resume: no checkpoint at {tmp_path / 'm_last.pth'}" in result.stderr


def test_training_without_clips_is_a_clear_error(tmp_path: Path):
    result = run_module("src.train_CNN", "--root", tmp_path, "--output", tmp_path / "m.pth", "--log-dir",
                        tmp_path / "logs", "--epochs", "1", *TRAIN_OPTIONS)
    assert result.returncode == 2
    assert "training needs clips" in result.stderr and "convert_and_divide" in result.stderr
    assert not (tmp_path / "m.pth").exists()


@pytest.mark.parametrize("flag", ["--augment-prob", "--codec-prob"])
def test_a_probability_outside_0_to_1_is_refused_before_training(flag: str, tmp_path: Path):
    result = run_module("src.train_CNN", "--root", tmp_path, "--output", tmp_path / "m.pth", "--epochs", "1",
                        flag, "1.5")
    assert result.returncode == 2
    assert f"argument {flag}: must be from 0 to 1, got 1.5" in result.stderr
    assert not (tmp_path / "m.pth").exists()


def test_lr_scheduler_acts_on_the_training_optimizer(cnn_run: TrainingRun, data_tree: DataTree, tmp_path: Path):
    state = read_checkpoint(cnn_run.last)
    lr = 8e-5  # the CNN default
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(lr)
    assert state["scheduler"]["_last_lr"] == pytest.approx([lr])
    # Put the plateau scheduler at the end of its patience: the next epoch cannot beat `best`.
    patience = state["scheduler"]["patience"]
    state["scheduler"].update(num_bad_epochs=patience, best=-1e9)
    output = tmp_path / "models" / "cnn.pth"
    output.parent.mkdir()
    torch.save(state, output.with_name("cnn_last.pth"))

    result = run_module("src.train_CNN", "--root", data_tree.root, "--output", output, "--log-dir",
                        tmp_path / "logs", "--epochs", "3", "--resume", *TRAIN_OPTIONS)

    assert result.returncode == 0, describe(result)
    assert "epoch 3/3" in result.stdout and "lr 8.00e-06" in result.stdout
    after = read_checkpoint(output.with_name("cnn_last.pth"))
    factor = after["scheduler"]["factor"]
    # The optimizer that trains (and is saved) got the reduced rate, not a discarded copy.
    assert after["optimizer"]["param_groups"][0]["lr"] == pytest.approx(lr * factor)
    assert after["scheduler"]["_last_lr"] == pytest.approx([lr * factor])
    assert after["epoch"] == 2


def test_split_by_source_keeps_recordings_whole():
    items = [(f"/d/ai_split/s{s}/rec{r}.wav_chunk_{c}.mp3", AI) for s in range(3) for r in range(5) for c in range(4)]
    items += [(f"/d/human_split/rec{r}_chunk_{c}.mp3", HUMAN) for r in range(7) for c in range(r % 3 + 1)]
    for seed in range(5):
        train, test = split_by_source(items, 0.2, seed)
        assert sorted(train + test) == sorted(items)
        train_sources = {source_of(p) for p, _ in train}
        test_sources = {source_of(p) for p, _ in test}
        assert not train_sources & test_sources
        for label, n_sources in ((AI, 15), (HUMAN, 7)):
            held_out = {source_of(p) for p, y in test if y == label}
            assert len(held_out) == round(0.2 * n_sources)
        assert split_by_source(items, 0.2, seed) == (train, test)  # reproducible
    assert len({tuple(split_by_source(items, 0.2, s)[1]) for s in range(5)}) > 1  # the seed matters


def test_split_by_source_edge_cases():
    two = [("/x/a_chunk_0.mp3", AI), ("/x/a_chunk_1.mp3", AI), ("/x/b_chunk_0.mp3", AI), ("/x/h_chunk_0.mp3", HUMAN)]
    train, test = split_by_source(two, 0.01, 0)
    # Two AI recordings: one on each side even with a tiny fraction; one human recording: kept for training.
    assert len({source_of(p) for p, y in test if y == AI}) == 1
    assert [y for _, y in test].count(HUMAN) == 0
    assert source_of("/x/rec_chunk_3.wav_chunk_12.mp3") == "/x/rec_chunk_3.wav"


def test_training_split_of_the_tree_is_by_recording(cnn_run: TrainingRun, data_tree: DataTree):
    train, test = split_by_source(training_clips(data_tree), 0.2, 42)
    assert not {source_of(p) for p, _ in train} & {source_of(p) for p, _ in test}
    trained_on = read_checkpoint(cnn_run.last)["info"]["trained_on"]
    assert (trained_on["train"]["clips"], trained_on["test"]["clips"]) == (len(train), len(test))


def test_torchrun_two_processes(data_tree: DataTree, tmp_path: Path):
    # A copy of the tree without global_stats.txt: rank 0 computes it, both ranks read it.
    root = tmp_path / "data"
    shutil.copytree(data_tree.root, root, ignore=shutil.ignore_patterns("global_stats.txt", "*_full", "*_converted"))
    output, log_dir = tmp_path / "models" / "ddp.pth", tmp_path / "CNNLogs"
    result = run_python(
        "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "src.train_CNN", "--root", root, "--epochs", "1", "--output", output, "--log-dir", log_dir,
        *TRAIN_OPTIONS, timeout=400,
    )
    assert result.returncode == 0, describe(result)
    assert "2 process(es)" in result.stdout
    # the same stats, up to float summation order (torchrun runs each rank with one thread)
    ddp_stats, single = read_stats(root / "global_stats.txt"), read_stats(data_tree.root / "global_stats.txt")
    assert (ddp_stats.mean, ddp_stats.std) == pytest.approx((single.mean, single.std), rel=1e-9)
    # Only rank 0 writes: one entry per log, not one per process.
    assert len(split_entries((log_dir / "regularlog1.txt").read_text(), TEST_ENTRY)) == 1
    assert len(split_entries((log_dir / "regular_validation1.txt").read_text(), VALIDATION_ENTRY)) == 1
    assert (log_dir / "regular_incorrect_validation1.txt").is_file()
    for path in (output, output.with_name("ddp_last.pth")):
        state = read_checkpoint(path)
        assert not any(k.startswith("module.") for k in state["state_dict"])
        model, info = load_model(path, "cnn")
        assert info.trained_on["train"]["clips"] + info.trained_on["test"]["clips"] == len(training_clips(data_tree))
    assert math.isfinite(read_checkpoint(output)["selection_loss"])
