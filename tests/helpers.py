"""Shared helpers for the tests: running the commands as real processes, log parsing, hashing."""

from __future__ import annotations

import hashlib
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from src.checkpoint import read_checkpoint

REPO = Path(__file__).resolve().parents[1]

# A float as Python or numpy prints it (repr of a float, or nan).
FLOAT = r"(?:-?\d+(?:\.\d+)?(?:e[-+]?\d+)?|nan)"
# numpy's repr of a 2 x 2 integer matrix: `[[3030  319]\n [ 124 2936]]` (rows: true AI, human).
MATRIX = r"\[\[\s*(?P<m00>\d+)\s+(?P<m01>\d+)\]\n \[\s*(?P<m10>\d+)\s+(?P<m11>\d+)\]\]"
HEAD = (
    rf"Average loss: (?P<loss>\d+\.\d{{4}}), Accuracy: (?P<correct>\d+)/(?P<total>\d+) \((?P<percent>\d+)%\), "
    rf"MCC: (?P<mcc>{FLOAT}), F1: (?P<f1>{FLOAT}), Average Log Loss: (?P<log_loss>{FLOAT}), "
    rf"Confusion Matrix: {MATRIX}"
)
# One entry of the test-set log (`regularlog1.txt`, `vision_transformer_log.txt`).
TEST_ENTRY = re.compile(
    rf"\nTest set: {HEAD}, Precision:(?P<precision>{FLOAT}), Recall: (?P<recall>{FLOAT}), "
    rf"ROC AUC: (?P<auc>{FLOAT}), EER: (?P<eer>{FLOAT})"
)
# One entry of the validation log (`regular_validation1.txt`, `vision_transformer_val_log.txt`).
VALIDATION_ENTRY = re.compile(rf"\nValidation (?P<epoch>\d+): {HEAD}, EER: (?P<eer>{FLOAT})")


def matrix(match: re.Match) -> list[int]:
    """The confusion matrix of a parsed log entry, row by row."""
    return [int(match[k]) for k in ("m00", "m01", "m10", "m11")]


def run_python(*args: str | os.PathLike, timeout: float = 300, env: dict | None = None, text: bool = True,
               prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run `[PREFIX...] python ARGS...` (this interpreter) in the repository root; output as text or bytes."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([*prefix, sys.executable, *map(str, args)], cwd=REPO, capture_output=True, text=text,
                          timeout=timeout, env=full_env)


def run_module(module: str, *args: str | os.PathLike, **options) -> subprocess.CompletedProcess:
    """Run `python -m MODULE ARGS...` in the repository root (options as for run_python)."""
    return run_python("-m", module, *args, **options)


def start_module(module: str, *args: str | os.PathLike, capture: bool = False) -> subprocess.Popen:
    """Start `python -m MODULE ARGS...` in its own process group (so that a kill takes its workers too)."""
    output = subprocess.PIPE if capture else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "-m", module, *map(str, args)], cwd=REPO, start_new_session=True,
                            stdout=output, stderr=output, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def wait_until(condition: Callable[[], bool], process: subprocess.Popen, timeout: float = 120) -> None:
    """Poll `condition` until it holds or the process has ended."""
    deadline = time.monotonic() + timeout
    while not condition() and process.poll() is None:
        assert time.monotonic() < deadline, "the command made no progress"
        time.sleep(0.01)


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the process and every process it started, then reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # it had finished already
    process.wait()


def dead_pid() -> int:
    """A process id that no process has now."""
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid += 1


def describe(result: subprocess.CompletedProcess) -> str:
    """Exit status and output of a finished command, for assertion messages."""
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def split_entries(text: str, pattern: re.Pattern) -> list[re.Match]:
    """Parse a whole log file as consecutive entries; fails if anything else is in it."""
    matches, position = [], 0
    while position < len(text):
        match = pattern.match(text, position)
        assert match is not None, f"unexpected log text at {position}: {text[position:position + 300]!r}"
        matches.append(match)
        position = match.end()
    return matches


def file_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder`, keyed by relative path."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def files_named(folder: Path, suffix: str) -> list[Path]:
    """Every file (hidden ones included) under `folder` whose name ends with `suffix`."""
    return [Path(d, n) for d, _, names in os.walk(folder) for n in names if n.endswith(suffix)]


def sine(seconds: float, sample_rate: int, freq: float = 440.0, amplitude: float = 0.4) -> np.ndarray:
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_audio(path: Path, samples: np.ndarray, sample_rate: int, subtype: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), samples, sample_rate, subtype=subtype)
    return path


def dominant_frequency(samples: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / sample_rate)[np.argmax(spectrum)])


def assert_same_training_state(last: Path, reference: Path) -> None:
    """Two `_last` checkpoints hold the same epoch, weights, Adam state and scheduler state. The best
    validation loss is compared to float rounding: evaluation on CPU is not bit-reproducible every run."""
    got, want = read_checkpoint(last), read_checkpoint(reference)
    assert got["epoch"] == want["epoch"]
    assert math.isclose(got["best_loss"], want["best_loss"], rel_tol=1e-5), (got["best_loss"], want["best_loss"])
    assert got["state_dict"].keys() == want["state_dict"].keys()
    for key, value in want["state_dict"].items():
        assert torch.equal(value, got["state_dict"][key]), key
    assert got["optimizer"]["param_groups"] == want["optimizer"]["param_groups"]
    for index, moments in want["optimizer"]["state"].items():
        for name, value in moments.items():
            assert torch.equal(value, got["optimizer"]["state"][index][name]), (index, name)
    assert got["scheduler"] == want["scheduler"]


def read_logs(log_dir: Path) -> dict[str, str]:
    """Every log file in a folder by name."""
    return {p.name: p.read_text() for p in sorted(log_dir.iterdir()) if p.is_file()}


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e-?\d+)?")


def assert_same_logs(first: dict[str, str], second: dict[str, str], rel: float = 1e-5) -> None:
    """The same log files with the same lines; numbers may differ by float rounding in the last digits
    (CPU kernels are not bit-reproducible in every run; the weights are compared bit for bit elsewhere)."""
    assert sorted(first) == sorted(second)
    for name in first:
        assert _NUMBER.sub("#", first[name]) == _NUMBER.sub("#", second[name]), name
        a, b = _NUMBER.findall(first[name]), _NUMBER.findall(second[name])
        close = (math.isclose(float(x), float(y), rel_tol=rel, abs_tol=1e-9) for x, y in zip(a, b, strict=True))
        assert all(close), (name, a, b)
