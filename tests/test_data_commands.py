"""data.generate_dirs and data.convert_and_divide, run as the real commands on recordings of known length."""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data.layout import all_dirs
from src.audio import CLIP_SAMPLES, SAMPLE_RATE, load_audio
from tests.helpers import dead_pid, describe, file_hashes, files_named, run_module, write_audio
from tests.synth import write_recording

TWELVE = [
    "ai_full", "ai_converted", "ai_split", "human_full", "human_converted", "human_split",
    *(f"validation_set/{c}_{s}" for c in ("ai", "human") for s in ("full", "converted", "split")),
]


def test_generate_dirs_creates_the_twelve_folders_and_is_idempotent(tmp_path: Path):
    root = tmp_path / "data"
    first = run_module("data.generate_dirs", "--root", root)
    assert first.returncode == 0, describe(first)
    made = sorted(str(Path(d).relative_to(root)) for d, _, _ in os.walk(root) if Path(d) != root)
    assert made == sorted([*TWELVE, "validation_set"])
    assert "12 folder(s) created" in first.stdout
    assert sorted(str(p.relative_to(root)) for p in all_dirs(root)) == sorted(TWELVE)

    keep = root / "ai_full" / "keep.wav"
    keep.write_bytes(b"precious")
    (root / "human_split").rmdir()
    second = run_module("data.generate_dirs", "--root", root)
    assert second.returncode == 0, describe(second)
    assert "1 folder(s) created, 11 already there" in second.stdout
    assert keep.read_bytes() == b"precious"
    assert all((root / d).is_dir() for d in TWELVE)


@dataclass
class Case:
    """A recording put in a *_full folder and the clips it must give."""

    relative: str  # under <root>
    seconds: float
    rate: int = SAMPLE_RATE
    channels: int = 1
    kind: str = "ai"

    @property
    def clips(self) -> int:
        """3-s clips back to back, plus one end-aligned clip for a tail; none under 3 s."""
        return 0 if self.seconds < 3 else math.ceil(self.seconds / 3 - 1e-9)

    def locate(self, root: Path, stage: str) -> tuple[Path, Path]:
        """(folder of this recording in the `stage` tree, path relative to its *_full folder)."""
        parts = Path(self.relative).parts
        i = next(k for k, part in enumerate(parts) if part.endswith("_full"))
        relative = Path(*parts[i + 1:])
        return root.joinpath(*parts[:i], parts[i].replace("_full", f"_{stage}"), relative.parent), relative


CASES = [
    Case("ai_full/long.wav", 7.5),
    Case("ai_full/exact.wav", 3.0),
    Case("ai_full/a.wav", 4.0),
    Case("ai_full/a.mp3", 5.0, kind="human"),
    Case("ai_full/one/same.flac", 3.5, rate=22050),
    Case("ai_full/two/same.flac", 6.0, rate=22050, kind="human"),
    Case("ai_full/stereo.ogg", 4.0, rate=44100, channels=2),
    Case("ai_full/short.wav", 2.0),
    Case("human_full/deep/er/h.flac", 9.2, rate=8000, kind="human"),
    Case("validation_set/human_full/v.wav", 3.2, kind="human"),
]
AI_CASES = [c for c in CASES if c.relative.startswith("ai_full/")]


def converted_of(root: Path, case: Case) -> Path:
    """Where the converted copy goes: same relative path in *_converted, `.mp3` appended unless already there."""
    folder, relative = case.locate(root, "converted")
    return folder / (relative.name if relative.suffix == ".mp3" else relative.name + ".mp3")


def clips_of(root: Path, case: Case) -> list[Path]:
    folder, _ = case.locate(root, "split")
    return [folder / f"{converted_of(root, case).stem}_chunk_{i}.mp3" for i in range(case.clips)]


@dataclass
class Converted:
    root: Path
    originals: dict[str, np.ndarray]  # relative path -> 16 kHz mono samples of the source
    hashes_before: dict[str, str]
    first: object
    second: object
    clip_mtimes: dict[Path, float]


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Converted:
    root = tmp_path_factory.mktemp("convert") / "data"
    assert run_module("data.generate_dirs", "--root", root).returncode == 0
    for seed, case in enumerate(CASES):
        write_recording(root / case.relative, case.kind, case.seconds, seed, case.rate, case.channels)
    broken = root / "ai_full" / "broken.mp3"
    broken.write_bytes(np.random.default_rng(1).bytes(5000))
    originals = {case.relative: load_audio(root / case.relative) for case in CASES}
    hashes_before = file_hashes(root)
    first = run_module("data.convert_and_divide", "--root", root, "--workers", "2", "--no-progress")
    clip_mtimes = {p: p.stat().st_mtime for p in root.rglob("*_chunk_*.mp3")}
    second = run_module("data.convert_and_divide", "--root", root, "--workers", "2", "--no-progress")
    return Converted(root, originals, hashes_before, first, second, clip_mtimes)


def test_clip_names_and_counts(converted: Converted):
    expected = sorted(p for case in CASES for p in clips_of(converted.root, case))
    assert sorted(converted.root.rglob("*_chunk_*.mp3")) == expected
    assert len(clips_of(converted.root, CASES[0])) == 3  # 7.5 s -> 0-3, 3-6, 4.5-7.5
    assert (converted.root / "ai_split" / "long.wav_chunk_2.mp3").is_file()


def test_every_clip_is_exactly_3_s_of_16k_mono(converted: Converted):
    clips = sorted(converted.root.rglob("*_chunk_*.mp3"))
    assert len(clips) > 10
    for clip in clips:
        info = sf.info(str(clip))
        assert (info.format, info.samplerate, info.channels) == ("MP3", SAMPLE_RATE, 1), clip
        data, rate = sf.read(str(clip), dtype="float32")
        assert data.ndim == 1 and len(data) == CLIP_SAMPLES, clip
        assert len(load_audio(clip)) == CLIP_SAMPLES


def test_converted_files_are_16k_mono_48kbps_mp3_of_the_whole_recording(converted: Converted):
    for case in CASES:
        path = converted_of(converted.root, case)
        info = sf.info(str(path))
        assert (info.format, info.samplerate, info.channels) == ("MP3", SAMPLE_RATE, 1), path
        decoded = load_audio(path)
        original = converted.originals[case.relative]
        assert len(decoded) == len(original), path
        assert np.corrcoef(decoded, original)[0, 1] > 0.95, path
        if case.seconds >= 5:
            assert path.stat().st_size / case.seconds == pytest.approx(6000, rel=0.05), path


def test_clips_hold_their_part_of_the_recording(converted: Converted):
    # Each clip, including the end-aligned last one, matches the stretch of its own source.
    for case in CASES:
        original = converted.originals[case.relative]
        starts = [3 * SAMPLE_RATE * i for i in range(case.clips)]
        if starts and starts[-1] + CLIP_SAMPLES > len(original):
            starts[-1] = len(original) - CLIP_SAMPLES
        for start, clip in zip(starts, clips_of(converted.root, case), strict=True):
            corr = np.corrcoef(load_audio(clip), original[start:start + CLIP_SAMPLES])[0, 1]
            assert corr > 0.9, (clip, start, corr)


def test_same_name_in_different_folders_both_survive(converted: Converted):
    one = converted.root / "ai_converted" / "one" / "same.flac.mp3"
    two = converted.root / "ai_converted" / "two" / "same.flac.mp3"
    assert one.is_file() and two.is_file() and one.read_bytes() != two.read_bytes()
    assert len(list((converted.root / "ai_split" / "one").glob("same.flac_chunk_*.mp3"))) == 2
    assert len(list((converted.root / "ai_split" / "two").glob("same.flac_chunk_*.mp3"))) == 2


def test_same_stem_with_different_extensions_both_survive(converted: Converted):
    wav, mp3 = converted.root / "ai_converted" / "a.wav.mp3", converted.root / "ai_converted" / "a.mp3"
    assert wav.is_file() and mp3.is_file()
    assert len(load_audio(wav)) == 4 * SAMPLE_RATE and len(load_audio(mp3)) == 5 * SAMPLE_RATE
    split = converted.root / "ai_split"
    assert sorted(p.name for p in split.glob("a*_chunk_*.mp3")) == [
        "a.wav_chunk_0.mp3", "a.wav_chunk_1.mp3", "a_chunk_0.mp3", "a_chunk_1.mp3"]


def test_corrupt_file_is_reported_by_name_and_the_rest_is_processed(converted: Converted):
    result = converted.first
    assert result.returncode == 1, describe(result)
    broken = converted.root / "ai_full" / "broken.mp3"
    assert f"failed: {broken}: not decodable" in result.stderr
    assert "1 file(s) failed" in result.stderr
    done = [c for c in AI_CASES if c.clips]
    summary = f"{converted.root / 'ai_full'}: {len(done)} converted ({sum(c.clips for c in done)} clips), " \
              f"0 already done, 1 too short, 1 failed"
    assert summary in result.stdout
    assert not (converted.root / "ai_converted" / "broken.mp3").exists()
    assert not list(converted.root.rglob("broken*chunk*"))


def test_short_file_is_reported_and_gives_no_clip(converted: Converted):
    short = converted.root / "ai_full" / "short.wav"
    assert f"short: {short}: 2.00 s is shorter than 3 s: no clips" in converted.first.stderr
    assert not list((converted.root / "ai_split").glob("short*"))


def test_rerun_skips_finished_work(converted: Converted):
    result = converted.second
    root = converted.root
    # A short recording is converted too (it only gives no clips), so it counts as done.
    assert f"{root / 'ai_full'}: 0 converted (0 clips), {len(AI_CASES)} already done, 0 too short, 1 failed" \
        in result.stdout
    assert f"{root / 'human_full'}: 0 converted (0 clips), 1 already done" in result.stdout
    assert f"{root / 'validation_set' / 'human_full'}: 0 converted (0 clips), 1 already done" in result.stdout
    # The broken file is still reported, and still fails the run.
    assert result.returncode == 1 and "broken.mp3" in result.stderr
    assert {p: p.stat().st_mtime for p in root.rglob("*_chunk_*.mp3")} == converted.clip_mtimes


def test_inputs_are_never_modified(converted: Converted):
    after = file_hashes(converted.root)
    full = {k: v for k, v in after.items() if "_full" in k}
    assert full == converted.hashes_before


def test_no_temporary_files_are_left(converted: Converted):
    assert files_named(converted.root, ".partial") == []


def test_interrupted_work_is_redone_and_leftovers_cleaned(converted: Converted, tmp_path: Path):
    root = tmp_path / "data"
    shutil.copytree(converted.root, root)  # copy2 keeps the modification times
    split, conv = root / "ai_split", root / "ai_converted"
    # An interrupted run: a stale temporary file of a dead process, the converted file missing
    # (it is written last) and a clip left over from an older, longer version of the recording.
    stale = split / f".long.wav_chunk_1.mp3.{dead_pid()}.partial"
    stale.write_bytes(b"half a clip")
    (conv / "long.wav.mp3").unlink()
    leftover = split / "long.wav_chunk_3.mp3"
    shutil.copy(split / "long.wav_chunk_0.mp3", leftover)
    # A source edited after conversion is done again.
    newer = root / "ai_full" / "exact.wav"
    write_audio(newer, np.zeros(SAMPLE_RATE * 7, np.float32) + 0.1, SAMPLE_RATE)
    os.utime(newer, (newer.stat().st_atime, (conv / "exact.wav.mp3").stat().st_mtime + 10))

    result = run_module("data.convert_and_divide", "--root", root, "--workers", "1", "--no-progress")

    summary = f"{root / 'ai_full'}: 2 converted (6 clips), {len(AI_CASES) - 2} already done, 0 too short, 1 failed"
    assert summary in result.stdout, describe(result)
    assert not stale.exists() and not leftover.exists()
    assert (conv / "long.wav.mp3").is_file()
    assert sorted(p.name for p in split.glob("exact.wav_chunk_*")) == [f"exact.wav_chunk_{i}.mp3" for i in range(3)]
    assert files_named(root, ".partial") == []


def test_missing_root_is_a_clear_error(tmp_path: Path):
    result = run_module("data.convert_and_divide", "--root", tmp_path / "nowhere")
    assert result.returncode == 2
    assert "run python -m data.generate_dirs" in result.stderr


def test_two_inputs_that_would_share_an_output_name_are_not_overwritten(tmp_path: Path):
    root = tmp_path / "data"
    assert run_module("data.generate_dirs", "--root", root).returncode == 0
    first = write_recording(root / "ai_full" / "a.wav", "ai", 4.0, seed=1)
    second = write_recording(root / "ai_full" / "a.wav.mp3", "ai", 5.0, seed=2)
    result = run_module("data.convert_and_divide", "--root", root, "--workers", "1", "--no-progress")
    assert result.returncode == 1, describe(result)
    # files are taken in sorted order: a.wav claims the name, a.wav.mp3 is reported and left alone
    assert f"failed: {second}: its output name a.wav.mp3 is taken by {first.name}" in result.stderr
    assert "1 converted" in result.stdout and "1 failed" in result.stdout
    kept = load_audio(root / "ai_converted" / "a.wav.mp3")
    assert abs(len(kept) / SAMPLE_RATE - 4.0) < 0.05
