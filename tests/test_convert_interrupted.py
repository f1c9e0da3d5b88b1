"""convert_and_divide SIGKILLed at seeded moments and rerun, and two runs at once on one tree: the tree ends
equal, byte for byte, to that of one uninterrupted run."""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from data.convert_and_divide import LOCK_NAME
from tests.helpers import describe, file_hashes, files_named, kill_group, run_module, start_module, wait_until
from tests.synth import make_corpus

CONVERT = ("data.convert_and_divide", "--workers", "2", "--no-progress")


def count_clips(root: Path) -> int:
    return sum(len(files_named(root / f"{kind}_split", ".mp3")) for kind in ("ai", "human"))


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data tree with recordings in ai_full and human_full, not yet converted."""
    root = tmp_path_factory.mktemp("sources") / "data"
    for seed, kind in enumerate(("ai", "human"), start=31):
        make_corpus(root / f"{kind}_full", kind, 5, seed=seed, seconds=(6.0, 12.0))
    return root


@pytest.fixture(scope="module")
def reference(sources: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Every file (sha256) of the tree after one uninterrupted run."""
    root = tmp_path_factory.mktemp("reference") / "data"
    shutil.copytree(sources, root)
    result = run_module(*CONVERT, "--root", root)
    assert result.returncode == 0, describe(result)
    return file_hashes(root)


def copy_of(sources: Path, tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(sources, root)
    return root


def test_convert_killed_at_random_moments_then_rerun_equals_an_uninterrupted_run(
        sources: Path, reference: dict[str, str], tmp_path: Path):
    root = copy_of(sources, tmp_path)
    total = sum(1 for name in reference if "_chunk_" in name)
    rng = np.random.default_rng(2024)
    # Kill points: 0.2-0.6 s after the start (before or around the first clip), then once the run has
    # written a seeded number of clips, plus a seeded delay of up to 0.15 s.
    points = [(0, rng.uniform(0.2, 0.6)), *((int(n), rng.uniform(0, 0.15))
                                             for n in sorted(rng.choice(np.arange(1, total), 3, replace=False)))]
    killed_after = []
    for clips, delay in points:
        process = start_module(*CONVERT, "--root", root)
        wait_until(lambda n=clips: count_clips(root) >= n, process)
        time.sleep(delay)
        killed_after.append(count_clips(root))
        kill_group(process)
    assert killed_after[0] < total, "no kill landed before the end of the work"

    final = run_module(*CONVERT, "--root", root)

    assert final.returncode == 0, describe(final)
    assert files_named(root, ".partial") == []
    assert file_hashes(root) == reference, f"clips present at each kill: {killed_after}"


def test_two_runs_at_once_convert_each_file_once(sources: Path, reference: dict[str, str], tmp_path: Path):
    root = copy_of(sources, tmp_path)
    runs = [start_module(*CONVERT, "--root", root, capture=True) for _ in range(2)]
    outputs = [process.communicate(timeout=120) for process in runs]
    assert [process.returncode for process in runs] == [0, 0], outputs
    converted = [int(line.split(": ", 1)[1].split()[0]) for out, _ in outputs for line in out.splitlines()]
    assert sum(converted) == 10, outputs  # one run converted each recording, the other found it done
    assert file_hashes(root) == reference
    assert files_named(root, ".partial") == []


def test_a_second_run_waits_for_the_first_and_says_so(sources: Path, reference: dict[str, str], tmp_path: Path):
    root = copy_of(sources, tmp_path)
    with open(root / LOCK_NAME, "a+") as lock:  # this test plays the first run
        fcntl.flock(lock, fcntl.LOCK_EX)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        second = start_module(*CONVERT, "--root", root, capture=True)
        message = second.stderr.readline()
        time.sleep(0.3)
        assert second.poll() is None and count_clips(root) == 0, "the second run did not wait"
    out, err = second.communicate(timeout=120)
    assert message == (f"another convert_and_divide is running on {root} (pid {os.getpid()}); "
                       "waiting for it to finish\n"), message + err
    assert second.returncode == 0, err
    assert file_hashes(root) == reference


