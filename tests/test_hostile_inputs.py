"""Hostile inputs in one folder, through the real commands: `src.inference_CNN` and `data.convert_and_divide`.

Each bad file gets its own specific error, each good file a verdict (or its clips), and no file stops the batch.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import shutil
import struct
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from src.audio import encode_mp3, load_audio, window_starts
from tests.conftest import TrainingRun
from tests.helpers import describe, run_module, write_audio
from tests.synth import ai_like, write_recording
from tests.test_inference import ERROR_KEYS, check_result


def permission_prefix() -> tuple[str, ...] | None:
    """A command prefix under which chmod 000 stops reads: none for a normal user; for root, setpriv without
    the two capabilities that bypass file permissions; None when root cannot be restricted that way."""
    if os.geteuid() != 0:
        return ()
    prefix = (shutil.which("setpriv") or "setpriv", "--bounding-set=-dac_override,-dac_read_search")
    try:
        works = subprocess.run([*prefix, "true"], capture_output=True).returncode == 0
    except OSError:
        works = False
    return prefix if works else None


PREFIX = permission_prefix()


@dataclass(frozen=True)
class Case:
    """A file written by `make`; `error` is the part of the message it must get, None for a verdict."""

    name: bytes  # file name as bytes: not every name is valid UTF-8
    make: Callable[[Path], object]
    error: str | None = None

    def path(self, folder: Path) -> Path:
        return Path(os.fsdecode(os.fsencode(folder) + b"/" + self.name))


def tone(seconds: float, rate: int = 16000, seed: int = 0) -> np.ndarray:
    return ai_like(seconds, rate, np.random.default_rng(seed))


def float_wav_with(value: float) -> Callable[[Path], object]:
    def make(path: Path) -> None:
        samples = tone(4.0)
        samples[1000] = value
        write_audio(path, samples, 16000, subtype="FLOAT")
    return make


def wav_bytes(samples: np.ndarray, rate: int) -> bytearray:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return bytearray(buffer.getvalue())


def header_lies_about_length(path: Path) -> None:
    """5 s of audio whose RIFF and data chunk sizes claim 100 MB."""
    data = wav_bytes(tone(5.0), 16000)
    data[4:8] = struct.pack("<I", 100_000_036)
    data[data.find(b"data") + 4:][:4] = struct.pack("<I", 100_000_000)
    path.write_bytes(bytes(data))


def header_claims_1_hz(path: Path) -> None:
    """3 s of 8 kHz audio whose header says 1 Hz: it would resample to 6.7 hours."""
    data = wav_bytes(tone(3.0, 8000), 8000)
    data[24:32] = struct.pack("<II", 1, 2)  # sample rate, byte rate
    path.write_bytes(bytes(data))


def truncated_mp3(path: Path) -> None:
    """An 8-s mp3 cut in the middle of a frame after about 4.5 s."""
    data = encode_mp3(tone(8.0))
    path.write_bytes(data[: len(data) * 9 // 16 + 7])


def symlink_loop(path: Path) -> None:
    os.symlink(path.name.replace("_a", "_b"), path)
    os.symlink(path.name, path.with_name(path.name.replace("_a", "_b")))


def unreadable(path: Path) -> None:
    write_recording(path, "ai", 4.0, seed=9)
    path.chmod(0)


CASES = [
    Case(b"empty.wav", lambda p: p.write_bytes(b""), "empty file"),
    Case(b"random.mp3", lambda p: p.write_bytes(np.random.default_rng(3).bytes(5000)), "decod"),  # ffmpeg or not
    Case(b"truncated.mp3", truncated_mp3),
    Case(b"header_lies.wav", header_lies_about_length),
    Case(b"header_1hz.wav", header_claims_1_hz, "sample rate 1 Hz"),
    Case(b"tenth.wav", lambda p: write_audio(p, tone(0.1), 16000), "too short: 0.10 s"),
    Case(b"silence.wav", lambda p: write_audio(p, np.zeros(4 * 16000, np.float32), 16000), "digital silence"),
    Case(b"nan.wav", float_wav_with(np.nan), "NaN or infinite"),
    Case(b"inf.wav", float_wav_with(np.inf), "NaN or infinite"),
    Case(b"eight_channels.wav", lambda p: write_recording(p, "ai", 4.0, seed=5, channels=8)),
    Case(b"rate_192k.flac", lambda p: write_recording(p, "human", 4.0, seed=6, sample_rate=192000)),
    Case(b"rate_8k.wav", lambda p: write_recording(p, "ai", 4.0, seed=7, sample_rate=8000)),
    # a latin-1 name, not UTF-8 (written under a plain name first: soundfile cannot open such a name as str)
    Case(b"caf\xe9.wav", lambda p: write_recording(p.with_name("cafe_tmp.wav"), "human", 4.0, seed=8).rename(p)),
    Case(b"loop_a.wav", symlink_loop, "symbolic link loop"),
    Case(b"loop_b.wav", lambda p: None, "symbolic link loop"),  # made with loop_a.wav
]
if PREFIX is not None:  # else root reads a chmod 000 file anyway: see test_unreadable_files_are_covered
    CASES.append(Case(b"locked.wav", unreadable, "permission denied"))
IDS = [os.fsdecode(c.name) for c in CASES]


def make_folder(folder: Path) -> None:
    """Every case, a folder symlink that loops back, and files that are not audio."""
    folder.mkdir(parents=True)
    for case in CASES:
        case.make(case.path(folder))
    (folder / "again").symlink_to(".", target_is_directory=True)
    (folder / "notes.txt").write_text("not audio\n")
    (folder / "cover.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg either")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hostile") / "inputs"
    make_folder(folder)
    return folder


@pytest.fixture(scope="module")
def scored(hostile: Path, cnn_run: TrainingRun, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The folder and a missing path scored by the CNN command, JSON lines to a file."""
    out = tmp_path_factory.mktemp("scored") / "results.jsonl"
    result = run_module("src.inference_CNN", hostile, hostile / "missing.wav", "--model", cnn_run.output,
                        "--no-progress", "--output", out, prefix=PREFIX or ())
    assert result.returncode == 1, describe(result)
    return {"result": result, "by_name": {r["name"]: r for r in map(json.loads, out.read_text().splitlines())}}


def test_one_result_per_audio_file_and_nothing_else(scored: dict, hostile: Path):
    expected = {str(case.path(hostile)) for case in CASES} | {str(hostile / "missing.wav")}
    assert set(scored["by_name"]) == expected  # no text, image or looped-folder entries
    failed = sum(case.error is not None for case in CASES) + 1
    assert f"{failed} file(s) could not be analysed" in scored["result"].stderr


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_each_file_gets_its_error_or_a_correct_verdict(case: Case, scored: dict, hostile: Path,
                                                        cnn_run: TrainingRun):
    path = case.path(hostile)
    result = scored["by_name"][str(path)]
    if case.error is None:
        assert "error" not in result, result
        check_result(result, cnn_run.output, "cnn")  # the windows, scores and verdict of what the file holds
    else:
        assert set(result) == ERROR_KEYS and case.error in result["error"], result
        assert f"error: {path}: {result['error']}" in scored["result"].stderr


def test_missing_path_is_reported(scored: dict, hostile: Path):
    assert scored["by_name"][str(hostile / "missing.wav")]["error"] == "no such file"


def test_partly_readable_files_are_scored_on_what_they_hold(scored: dict, hostile: Path):
    durations = {case.name: scored["by_name"][str(case.path(hostile))]["duration_s"]
                 for case in CASES if case.name in (b"truncated.mp3", b"header_lies.wav")}
    assert durations[b"header_lies.wav"] == 5.0
    assert 4.0 < durations[b"truncated.mp3"] < 5.0


@pytest.mark.parametrize("to_file", [False, True], ids=["stdout", "output-file"])
def test_csv_keeps_names_that_are_not_utf8(to_file: bool, hostile: Path, cnn_run: TrainingRun, tmp_path: Path):
    out = tmp_path / "results.csv"
    result = run_module("src.inference_CNN", hostile, "--model", cnn_run.output, "--no-progress", "--format", "csv",
                        *(["--output", out] if to_file else []), text=False, prefix=PREFIX or (),
                        env={"PYTHONIOENCODING": "utf-8"})  # strict, as under most UTF-8 locales
    assert result.returncode == 1, describe(result)
    text = (out.read_bytes() if to_file else result.stdout).decode("utf-8", "surrogateescape")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert sorted(row["name"] for row in rows) == sorted(str(case.path(hostile)) for case in CASES)
    (row,) = [row for row in rows if row["name"].endswith("caf\udce9.wav")]  # the file's own bytes
    assert row["Prediction"] in ("ai", "human") and row["error"] == ""


def test_unreadable_files_are_covered():
    if PREFIX is None:
        pytest.skip("running as root without a working setpriv: root reads chmod 000 files, so the "
                    "'permission denied' case cannot be made here")
    assert "locked.wav" in IDS


def test_convert_and_divide_reports_each_bad_file_and_converts_the_rest(tmp_path: Path):
    root = tmp_path / "data"
    make_folder(root / "ai_full")
    full = root / "ai_full"
    result = run_module("data.convert_and_divide", "--root", root, "--workers", "2", "--no-progress",
                        prefix=PREFIX or ())
    stdout, stderr = result.stdout, result.stderr
    assert result.returncode == 1, describe(result)
    for case in CASES:
        source = case.path(full)
        converted = root / "ai_converted" / (source.name + ".mp3" if source.suffix != ".mp3" else source.name)
        clips = sorted((root / "ai_split").glob(f"{glob.escape(converted.stem)}_chunk_*.mp3"))
        if case.error is None or case.error == "digital silence":  # silence is converted; only the detector refuses it
            assert len(clips) == len(window_starts(len(load_audio(source)))) > 0, source
            assert converted.is_file()
        elif case.error.startswith("too short"):
            assert f"short: {source}: 0.10 s is shorter than 3 s" in stderr
        else:
            assert f"failed: {source}: " in stderr and case.error in stderr.split(f"failed: {source}: ")[1], stderr
            assert not converted.exists() and not clips
    failed = sum(case.error not in (None, "digital silence") and not case.error.startswith("too short")
                 for case in CASES)
    assert f"{failed} failed" in stdout and f"{failed} file(s) failed" in stderr
