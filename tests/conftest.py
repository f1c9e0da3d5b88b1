"""Session fixtures: one tiny data tree made by the real commands, one tiny CNN and one tiny ViT.

Everything is built once per test session in a temporary folder and reused, so the end-to-end
tests stay fast on two cores.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import describe, read_logs, run_module, run_python, write_audio
from tests.synth import ai_like, make_corpus, write_recording

# A small ViT: the architecture is the real one, only narrower and shallower.
VIT_OPTIONS = ["--embed-dim", "64", "--depth", "2", "--num-heads", "4"]
TRAIN_OPTIONS = ["--workers", "0", "--no-progress", "--device", "cpu", "--batch-size", "8"]


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ONNX exports made by the tests (and the commands they run) go to a temporary cache, not ~/.cache."""
    folder = tmp_path_factory.mktemp("aispy-cache")
    os.environ["AISPY_CACHE_DIR"] = str(folder)
    return folder


@dataclass
class DataTree:
    """A data tree made by generate_dirs, convert_and_divide and getGlobalStats."""

    root: Path
    sources: dict[str, list[Path]]  # "ai", "human", "validation_set/ai", "validation_set/human"
    commands: dict[str, subprocess.CompletedProcess] = field(default_factory=dict)

    def split_dir(self, key: str) -> Path:
        return self.root / f"{key}_split"

    def clips(self, key: str) -> list[Path]:
        return sorted(self.split_dir(key).rglob("*.mp3"))


@dataclass
class TrainingRun:
    """A finished training: checkpoints, log folder and what each run printed."""

    output: Path
    last: Path
    log_dir: Path
    runs: list[subprocess.CompletedProcess]
    first_logs: dict[str, str] = field(default_factory=dict)  # log files after the first run
    first_last_epoch: int | None = None  # `epoch` of the last checkpoint after the first run
    first_last_copy: Path | None = None  # a copy of the last checkpoint as the first run left it


@pytest.fixture(scope="session")
def data_tree(tmp_path_factory: pytest.TempPathFactory) -> DataTree:
    root = tmp_path_factory.mktemp("tree") / "data"
    tree = DataTree(root, {})
    tree.commands["generate_dirs"] = run_module("data.generate_dirs", "--root", root)
    assert tree.commands["generate_dirs"].returncode == 0, describe(tree.commands["generate_dirs"])
    plan = [("ai", 5), ("human", 5), ("validation_set/ai", 2), ("validation_set/human", 2)]
    for seed, (key, count) in enumerate(plan, start=11):
        kind = key.rsplit("/", 1)[-1]
        tree.sources[key] = make_corpus(root / f"{key}_full", kind, count, seed=seed)
    tree.commands["convert_and_divide"] = run_module(
        "data.convert_and_divide", "--root", root, "--workers", "2", "--no-progress")
    assert tree.commands["convert_and_divide"].returncode == 0, describe(tree.commands["convert_and_divide"])
    tree.commands["getGlobalStats"] = run_python("getGlobalStats.py", "--root", root, "--workers", "0",
                                                 "--no-progress")
    assert tree.commands["getGlobalStats"].returncode == 0, describe(tree.commands["getGlobalStats"])
    return tree


@pytest.fixture(scope="session")
def cnn_run(data_tree: DataTree, tmp_path_factory: pytest.TempPathFactory) -> TrainingRun:
    """CNN trained for one epoch, then resumed to two epochs with --resume."""
    from src.checkpoint import read_checkpoint

    work = tmp_path_factory.mktemp("cnn")
    run = TrainingRun(work / "models" / "cnn.pth", work / "models" / "cnn_last.pth", work / "CNNLogs", [])
    common = ["--root", data_tree.root, "--output", run.output, "--log-dir", run.log_dir, *TRAIN_OPTIONS]
    first = run_module("src.train_CNN", *common, "--epochs", "1")
    assert first.returncode == 0, describe(first)
    run.runs.append(first)
    run.first_logs = read_logs(run.log_dir)
    run.first_last_epoch = int(read_checkpoint(run.last)["epoch"])
    run.first_last_copy = Path(shutil.copy(run.last, work / "last_after_first_run.pth"))
    second = run_module("src.train_CNN", *common, "--epochs", "2", "--resume")
    assert second.returncode == 0, describe(second)
    run.runs.append(second)
    return run


@pytest.fixture(scope="session")
def cnn_straight_run(data_tree: DataTree, tmp_path_factory: pytest.TempPathFactory) -> TrainingRun:
    """The same CNN training as `cnn_run`, two epochs in one go: what an uninterrupted run gives."""
    work = tmp_path_factory.mktemp("cnn_straight")
    run = TrainingRun(work / "models" / "cnn.pth", work / "models" / "cnn_last.pth", work / "CNNLogs", [])
    result = run_module("src.train_CNN", "--root", data_tree.root, "--output", run.output, "--log-dir", run.log_dir,
                        "--epochs", "2", *TRAIN_OPTIONS)
    assert result.returncode == 0, describe(result)
    run.runs.append(result)
    return run


@pytest.fixture(scope="session")
def vit_run(data_tree: DataTree, tmp_path_factory: pytest.TempPathFactory) -> TrainingRun:
    """A small ViT trained for two epochs."""
    work = tmp_path_factory.mktemp("vit")
    run = TrainingRun(work / "models" / "vit.pth", work / "models" / "vit_last.pth", work / "Vit_Logs", [])
    result = run_module("src.train_vision_transformer", "--root", data_tree.root, "--output", run.output,
                        "--log-dir", run.log_dir, "--epochs", "2", *TRAIN_OPTIONS, *VIT_OPTIONS)
    assert result.returncode == 0, describe(result)
    run.runs.append(result)
    return run


@dataclass
class InferenceInputs:
    folder: Path  # good recordings in nested folders, plus a non-audio notes.txt
    audio: list[Path]  # the audio files under `folder`
    long_ai: Path  # 7.5 s, 16 kHz wav: windows 0-3, 3-6, 4.5-7.5
    bad: dict[str, Path]  # reason -> file (or missing path) that must get an error


@pytest.fixture(scope="session")
def inference_inputs(tmp_path_factory: pytest.TempPathFactory) -> InferenceInputs:
    base = tmp_path_factory.mktemp("inputs")
    folder = base / "recordings"
    long_ai = write_recording(folder / "long_ai.wav", "ai", 7.5, seed=101)
    audio = [
        long_ai,
        write_recording(folder / "nested" / "human.flac", "human", 5.0, seed=102, sample_rate=22050),
        write_recording(folder / "nested" / "deeper" / "ai.mp3", "ai", 4.0, seed=103),
        write_recording(folder / "nested" / "stereo.ogg", "human", 3.5, seed=104, sample_rate=44100, channels=2),
    ]
    (folder / "notes.txt").write_text("not audio\n")
    (folder / "nested" / "cover.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    bad_dir = base / "bad"
    bad_dir.mkdir()
    rng = np.random.default_rng(7)
    bad = {
        "empty": bad_dir / "empty.wav",
        "not decodable": bad_dir / "random.mp3",
        "too short": write_audio(bad_dir / "short.wav", ai_like(1.0, 16000, rng), 16000),
        "digital silence": write_audio(bad_dir / "silent.wav", np.zeros(4 * 16000, np.float32), 16000),
        "no such file": base / "missing.wav",
    }
    bad["empty"].write_bytes(b"")
    bad["not decodable"].write_bytes(rng.bytes(4000))
    return InferenceInputs(folder, sorted(audio), long_ai, bad)

