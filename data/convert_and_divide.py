"""Convert recordings to 16 kHz mono 48 kbps mp3 (or lossless FLAC) and cut them into 3-s clips.

`python -m data.convert_and_divide [--root data] [--workers N] [--codec mp3|flac]`

For the training set and the validation set, every audio file under `<class>_full`
(recursively) becomes `<class>_converted/<same relative path>` (the name gets `.mp3`
appended unless it already ends in `.mp3`; `.flac` with `--codec flac`) and 3-s clips
`<class>_split/<relative folder>/<converted stem>_chunk_<i>.mp3` (or `.flac`).

`--codec mp3` (the default) passes every recording through the 48 kbps mp3 codec, and
models trained on it expect inference to do the same (their checkpoint says mp3_kbps 48).
`--codec flac` keeps the 16 kHz samples as they are: models trained on such clips (with
codec augmentation, `--codec-prob`) skip the mp3 round trip at inference, which is a
third of its CPU time. One tree holds one codec: training refuses a mix.

Clips are back to back from the start; when a tail shorter than 3 s is left, one last
clip is taken from the final 3 s of the recording (overlapping its neighbour), so no
audio is lost and no clip is zero-padded. A recording shorter than 3 s is converted
but gives no clips. Every file is written under a temporary name and renamed, and the
converted file is written last, so it marks a finished recording: re-running skips
those (unless the source is newer) and redoes anything interrupted. One run at a time
works on a tree: a second run started on the same root waits for the first to finish
(it says so), then finds its work done.
"""

from __future__ import annotations

import argparse
import fcntl
import itertools
import os
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

from tqdm import tqdm

from data.layout import CLASSES, set_roots
from src.atomic import remove_stale_partials, write_bytes_atomic
from src.audio import (
    CLIP_SAMPLES,
    SAMPLE_RATE,
    AudioError,
    decode_mp3_bytes,
    encode_flac,
    encode_mp3,
    list_audio_files,
    load_audio,
    window_starts,
)

LOCK_NAME = ".convert_and_divide.lock"


@contextmanager
def exclusive(root: Path) -> Iterator[None]:
    """Hold the tree's lock file (flock) for the run; while another run holds it, say so and wait.

    The lock file names the holder's pid while a run holds it and is emptied when the run ends;
    the kernel releases the lock of a killed run.
    """
    fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            print(f"another convert_and_divide is running on {root} (pid {holder}); waiting for it to finish",
                  file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
        os.ftruncate(fd, 0)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Job:
    source: Path
    converted: Path
    split_dir: Path
    codec: str = "mp3"


@dataclass(frozen=True)
class Outcome:
    source: Path
    status: str  # converted | skipped | short | failed
    clips: int = 0
    reason: str = ""


CODECS = ("mp3", "flac")


def converted_name(relative: Path, codec: str = "mp3") -> Path:
    """Converted file name for a source path relative to its *_full folder."""
    suffix = f".{codec}"
    return relative if relative.suffix == suffix else relative.with_name(relative.name + suffix)


def plan_jobs(full_dir: Path, converted_dir: Path, split_dir: Path, codec: str = "mp3"
              ) -> tuple[list[Job], list[Outcome]]:
    """One job per recording, and a failure for any whose output name another recording already takes
    (e.g. `a.wav` and `a.wav.mp3` side by side)."""
    jobs, clashes, claimed = [], [], {}
    for source in list_audio_files(full_dir):
        relative = converted_name(source.relative_to(full_dir), codec)
        if relative in claimed:
            reason = f"its output name {relative} is taken by {claimed[relative].name}: rename one of them"
            clashes.append(Outcome(source, "failed", reason=reason))
            continue
        claimed[relative] = source
        jobs.append(Job(source, converted_dir / relative, split_dir / relative.parent, codec))
    return jobs, clashes


def is_done(job: Job) -> bool:
    return job.converted.exists() and job.converted.stat().st_mtime >= job.source.stat().st_mtime


def clip_path(job: Job, index: int) -> Path:
    return job.split_dir / f"{job.converted.stem}_chunk_{index}.{job.codec}"


def remove_clips_from(job: Job, first_index: int) -> None:
    """Delete clips of this recording numbered `first_index` and up (left by an older, longer version)."""
    index = first_index
    while clip_path(job, index).exists():
        clip_path(job, index).unlink()
        index += 1


def process(job: Job) -> Outcome:
    """Convert one recording and write its clips; never raises for a bad input."""
    if is_done(job):
        return Outcome(job.source, "skipped")
    try:
        samples = load_audio(job.source)
        encode = encode_mp3 if job.codec == "mp3" else encode_flac
        encoded = encode(samples)
        converted = decode_mp3_bytes(encoded)[: len(samples)] if job.codec == "mp3" else samples
        starts = window_starts(len(converted))
        for index, start in enumerate(starts):
            write_bytes_atomic(clip_path(job, index), encode(converted[start:start + CLIP_SAMPLES]))
        remove_clips_from(job, len(starts))
        write_bytes_atomic(job.converted, encoded)
    except AudioError as exc:
        return Outcome(job.source, "failed", reason=str(exc))
    except OSError as exc:
        return Outcome(job.source, "failed", reason=f"{exc.strerror or exc}")
    if not starts:
        return Outcome(job.source, "short", reason=f"{len(samples) / SAMPLE_RATE:.2f} s is shorter than 3 s: no clips")
    return Outcome(job.source, "converted", clips=len(starts))


def run_folder(full_dir: Path, converted_dir: Path, split_dir: Path, workers: int, progress: bool,
               codec: str = "mp3") -> Counter:
    """Process one *_full folder; prints problems by name and returns counts per status."""
    for folder in (converted_dir, split_dir):
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(folder)
    jobs, clashes = plan_jobs(full_dir, converted_dir, split_dir, codec)
    counts: Counter = Counter()
    with Pool(workers) as pool:
        outcomes = itertools.chain(clashes, pool.imap_unordered(process, jobs, chunksize=1))
        for outcome in tqdm(outcomes, total=len(jobs) + len(clashes), desc=str(full_dir), unit="file",
                            disable=not progress):
            counts[outcome.status] += 1
            counts["clips"] += outcome.clips
            if outcome.status in ("failed", "short"):
                tqdm.write(f"{outcome.status}: {outcome.source}: {outcome.reason}", file=sys.stderr)
    return counts


def summary_line(full_dir: Path, counts: Counter) -> str:
    return (f"{full_dir}: {counts['converted']} converted ({counts['clips']} clips), "
            f"{counts['skipped']} already done, {counts['short']} too short, {counts['failed']} failed")


def convert_tree(root: Path, workers: int, progress: bool, codec: str = "mp3") -> int:
    """Every *_full folder of the training and validation sets; returns the number of failed files."""
    failed = 0
    for base in set_roots(root):
        for cls in CLASSES:
            full_dir = base / f"{cls}_full"
            if not full_dir.is_dir():
                continue
            counts = run_folder(full_dir, base / f"{cls}_converted", base / f"{cls}_split", workers, progress,
                                codec)
            print(summary_line(full_dir, counts), flush=True)
            failed += counts["failed"]
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m data.convert_and_divide",
        description=__doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--root", default="data", help="root of the data tree (default: data)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="parallel worker processes (default: all cores)")
    parser.add_argument("--codec", choices=CODECS, default="mp3",
                        help="mp3: 48 kbps mp3, as the original (default); flac: lossless 16 kHz, for models that "
                             "skip the mp3 round trip at inference")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    args = parser.parse_args(argv)
    if not Path(args.root).is_dir():
        parser.error(f"no data tree at {args.root}: run python -m data.generate_dirs --root {args.root} first")
    with exclusive(Path(args.root)):
        failed = convert_tree(Path(args.root), max(1, args.workers), not args.no_progress, args.codec)
    if failed:
        print(f"{failed} file(s) failed; they are listed above with the reason", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
