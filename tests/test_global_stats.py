"""getGlobalStats.py: the exact pooled mean and std over every training clip, recomputed here."""

from __future__ import annotations

import re
from pathlib import Path

import librosa
import numpy as np
import pytest
import torch

from src.audio import CLIP_SAMPLES, load_audio
from src.features import log_power_spectrogram, read_stats
from tests.conftest import DataTree
from tests.helpers import describe, run_python


@pytest.fixture(scope="module")
def clip_maps(data_tree: DataTree) -> list[np.ndarray]:
    """librosa dB maps of every clip getGlobalStats must cover (training set only, both classes)."""
    clips = data_tree.clips("ai") + data_tree.clips("human")
    maps = []
    for clip in clips:
        y = load_audio(clip)
        assert len(y) == CLIP_SAMPLES
        maps.append(librosa.power_to_db(np.abs(librosa.stft(y)) ** 2 + 1e-10, ref=np.max).astype(np.float64))
    return maps


def test_stats_file_has_the_exact_pooled_mean_and_std(data_tree: DataTree, clip_maps: list[np.ndarray]):
    stats = read_stats(data_tree.root / "global_stats.txt")
    values = np.concatenate([m.ravel() for m in clip_maps])
    assert values.size == len(clip_maps) * 1025 * 94
    assert stats.mean == pytest.approx(values.mean(), abs=1e-3)
    assert stats.std == pytest.approx(values.std(), abs=1e-3)

    # The original's "std" (size-weighted mean of per-file stds) differs clearly here; ours is the pooled one.
    mean_of_stds = float(np.mean([m.std() for m in clip_maps]))
    assert abs(mean_of_stds - values.std()) > 0.1
    assert abs(stats.std - values.std()) < abs(stats.std - mean_of_stds) / 100


def test_stats_equal_the_toolkit_spectrogram_to_float_precision(data_tree: DataTree):
    clips = data_tree.clips("ai") + data_tree.clips("human")
    maps = [log_power_spectrogram(torch.from_numpy(load_audio(c))).double().numpy().ravel() for c in clips]
    values = np.concatenate(maps)
    stats = read_stats(data_tree.root / "global_stats.txt")
    assert stats.mean == pytest.approx(values.mean(), rel=1e-9)
    assert stats.std == pytest.approx(values.std(), rel=1e-9)


def test_validation_clips_are_not_in_the_stats(data_tree: DataTree, clip_maps: list[np.ndarray]):
    stats = read_stats(data_tree.root / "global_stats.txt")
    with_validation = clip_maps + [
        librosa.power_to_db(np.abs(librosa.stft(load_audio(c))) ** 2 + 1e-10, ref=np.max).astype(np.float64)
        for c in data_tree.clips("validation_set/ai") + data_tree.clips("validation_set/human")
    ]
    values = np.concatenate([m.ravel() for m in with_validation])
    assert stats.mean != pytest.approx(values.mean(), abs=1e-3)


def test_output_lines(data_tree: DataTree):
    result = data_tree.commands["getGlobalStats"]
    stats = read_stats(data_tree.root / "global_stats.txt")
    n_clips = len(data_tree.clips("ai") + data_tree.clips("human"))
    assert re.search(rf"^Processing time: \d+\.\d seconds \({n_clips} clips\)$", result.stdout, re.M), describe(result)
    assert f"Global mean: {stats.mean}, Global std: {stats.std}" in result.stdout
    text = (data_tree.root / "global_stats.txt").read_text()
    assert re.fullmatch(r"global_mean: -?\d+\.\d+(e-?\d+)?\nglobal_std: \d+\.\d+(e-?\d+)?\n", text)


def test_same_result_with_worker_processes(data_tree: DataTree, tmp_path: Path):
    # Workers change only who decodes the clips, not the numbers.
    root = tmp_path / "data"
    root.mkdir()
    for key in ("ai", "human"):
        (root / f"{key}_split").symlink_to(data_tree.split_dir(key), target_is_directory=True)
    result = run_python("getGlobalStats.py", "--root", root, "--workers", "2", "--no-progress")
    assert result.returncode == 0, describe(result)
    assert read_stats(root / "global_stats.txt") == read_stats(data_tree.root / "global_stats.txt")


def test_no_clips_is_a_clear_error(tmp_path: Path):
    result = run_python("getGlobalStats.py", "--root", tmp_path, "--no-progress")
    assert result.returncode == 2
    assert "no clips" in result.stderr and "convert_and_divide" in result.stderr
    assert not (tmp_path / "global_stats.txt").exists()
