"""A lossless tree (convert_and_divide --codec flac): its clips, a model trained on it, and that
model's inference, which skips the mp3 round trip the 48 kbps models need."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data.convert_and_divide import converted_name
from src.audio import CLIP_SAMPLES, SAMPLE_RATE, load_audio, mp3_normalise, window_starts
from src.checkpoint import read_checkpoint
from src.inference import Detector
from tests.conftest import TRAIN_OPTIONS, TrainingRun
from tests.helpers import describe, run_module, run_python
from tests.synth import make_corpus


@dataclass
class LosslessRun:
    root: Path
    weights: Path
    sources: list[Path]


@pytest.fixture(scope="module")
def lossless(tmp_path_factory: pytest.TempPathFactory) -> LosslessRun:
    root = tmp_path_factory.mktemp("lossless") / "data"
    assert run_module("data.generate_dirs", "--root", root).returncode == 0
    sources = []
    plan = [("ai", 4), ("human", 4), ("validation_set/ai", 2), ("validation_set/human", 2)]
    for seed, (key, count) in enumerate(plan, start=31):
        sources += make_corpus(root / f"{key}_full", key.rsplit("/", 1)[-1], count, seed=seed)
    result = run_module("data.convert_and_divide", "--root", root, "--codec", "flac", "--workers", "2", "--no-progress")
    assert result.returncode == 0, describe(result)
    result = run_python("getGlobalStats.py", "--root", root, "--workers", "0", "--no-progress")
    assert result.returncode == 0, describe(result)
    weights = root.parent / "cnn_lossless.pth"
    result = run_module("src.train_CNN", "--root", root, "--output", weights, "--log-dir", root.parent / "logs",
                        "--epochs", "1", "--codec-prob", "0.5", *TRAIN_OPTIONS)
    assert result.returncode == 0, describe(result)
    return LosslessRun(root, weights, sources)


def test_clips_are_the_recordings_own_samples_in_flac(lossless: LosslessRun):
    for source in lossless.sources:
        full_dir = source.parent.parent  # <class>_full/speakerN/file
        relative = converted_name(source.relative_to(full_dir), "flac")
        converted = full_dir.with_name(full_dir.name.replace("_full", "_converted")) / relative
        split_dir = full_dir.with_name(full_dir.name.replace("_full", "_split")) / relative.parent
        original = load_audio(source)
        starts = window_starts(len(original))
        assert len(starts) > 0, source
        for index, start in enumerate(starts):
            clip = split_dir / f"{converted.stem}_chunk_{index}.flac"
            info = sf.info(str(clip))
            assert (info.format, info.samplerate, info.channels, info.frames) == ("FLAC", SAMPLE_RATE, 1, CLIP_SAMPLES)
            np.testing.assert_allclose(load_audio(clip), original[start:start + CLIP_SAMPLES], atol=1 / 32767)
        np.testing.assert_allclose(load_audio(converted), original, atol=1 / 32767)
    assert not [p for p in lossless.root.rglob("*.mp3") if "_full" not in str(p)]
    assert len(list(lossless.root.rglob("*_chunk_*.flac"))) == sum(
        len(window_starts(len(load_audio(s)))) for s in lossless.sources)


def test_model_trained_on_it_records_no_mp3_round_trip(lossless: LosslessRun):
    info = read_checkpoint(lossless.weights)["info"]
    assert info["mp3_kbps"] == 0
    assert info["trained_on"]["augmentation"]["codec_prob"] == 0.5


def test_its_inference_scores_the_samples_as_they_are(lossless: LosslessRun, tmp_path: Path):
    recording = lossless.sources[0]
    samples = load_audio(recording)
    windows = np.stack([samples[s:s + CLIP_SAMPLES] for s in window_starts(len(samples))])
    for engine in ("torch", "onnx"):
        detector = Detector(lossless.weights, device="cpu", engine=engine, decoders=1)
        scored = [w["ai_probability"] for w in detector.analyse(recording)["windows"]]
        # Scores are printed to 6 decimals; a barely trained model moves little, so the gap is small but clear.
        raw = np.abs(np.asarray(scored) - detector.probabilities(windows)).max()
        through_mp3 = np.stack([mp3_normalise(samples)[s:s + CLIP_SAMPLES] for s in window_starts(len(samples))])
        coded = np.abs(np.asarray(scored) - detector.probabilities(through_mp3)).max()
        assert raw < 2e-6 and coded > 5e-6, (engine, raw, coded)


def test_a_tree_mixing_mp3_and_lossless_clips_is_refused(lossless: LosslessRun, tmp_path: Path):
    root = tmp_path / "data"
    shutil.copytree(lossless.root, root)
    clip = next((root / "human_split").rglob("*.flac"))
    sf.write(str(clip.with_suffix(".mp3")), load_audio(clip), SAMPLE_RATE, format="MP3")
    result = run_module("src.train_CNN", "--root", root, "--output", tmp_path / "m.pth", "--log-dir", tmp_path / "l",
                        "--epochs", "1", *TRAIN_OPTIONS)
    assert result.returncode == 2, describe(result)
    assert "mix mp3 and lossless" in result.stderr
    assert not (tmp_path / "m.pth").exists()


def test_a_lossless_student_distils_from_a_lossless_teacher_only(lossless: LosslessRun, cnn_run: TrainingRun,
                                                                    tmp_path: Path):
    student = tmp_path / "student.pth"
    result = run_module("src.train_CNN", "--root", lossless.root, "--output", student, "--log-dir", tmp_path / "l",
                        "--epochs", "1", "--teacher", lossless.weights, *TRAIN_OPTIONS)
    assert result.returncode == 0, describe(result)
    info = read_checkpoint(student)["info"]
    assert info["mp3_kbps"] == 0 and info["trained_on"]["teacher"] == str(lossless.weights)

    mismatched = tmp_path / "mismatched.pth"
    result = run_module("src.train_CNN", "--root", lossless.root, "--output", mismatched, "--log-dir", tmp_path / "m",
                        "--epochs", "1", "--teacher", cnn_run.output, *TRAIN_OPTIONS)
    assert result.returncode == 2, describe(result)
    assert "48 kbps mp3 round trip" in result.stderr and "no mp3 round trip" in result.stderr
    assert not mismatched.exists()
