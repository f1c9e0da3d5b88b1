"""Build the training corpus from public repositories listed in `data/sources.csv`.

`python -m data.build_public_corpus --snapshots ../.mirror --out /path/to/corpus`

Every repository is read at its pinned commit, from a local snapshot folder when `--snapshots`
holds one (the `fetch` tool's `owner+name/repo` layout, or a plain clone), otherwise from a
blob-less clone made under `--clones`. Whole repositories go to one pool: train (the data
tree's *_full folders), validation (`validation_set/`, for choosing epochs and thresholds) or
test (`test_set/`, scored once per shipped model and never used to choose anything).

Both classes go through the same processing: decoded, mixed to mono, resampled to 16 kHz,
edges trimmed, clips under 3 s joined per system with 30 ms fades, a random channel drawn from
the same shares for both (wide, 7 kHz, telephone, GSM), a random peak level and dither, 16-bit
FLAC. Within a held-out repository (validation, test) that has both classes, the larger class is
cut to the smaller one's duration, spread over its systems, so each page scores on equal terms;
in a training repository it is cut to `--train-ratio` times the smaller one (demo pages hold many
systems per ground-truth clip, and the training sampler draws both classes equally anyway). A file whose bytes already
appeared (same sha256) is used once, in the first pool it appears in (test, then validation,
then train). `<out>/manifest.csv` lists every recording with its repository, commit, source
paths and the sha256 of each source file.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import random
import shutil
import sys
import tempfile
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from data.build_training_set import channel, concatenate, prepare, slug, write_flac
from data.sources import TABLE, SourceError, assign, by_repo, open_repository, read_table
from src.atomic import write_text_atomic
from src.audio import CLIP_SAMPLES, SAMPLE_RATE, AudioError, load_audio
from src.cli import HelpFormatter

POOL_ORDER = ("test", "validation", "train")  # a duplicate file stays in the first pool that has it
POOL_BASE = {"train": ".", "validation": "validation_set", "test": "test_set"}
CHANNEL_SHARES = {"wide": 0.70, "g722": 0.15, "phone8k": 0.10, "gsm": 0.05}
JOIN_MIN_SECONDS = 6.0
TRAIN_RATIO = 3.0  # in a training repository, the larger class keeps at most this many times the smaller's seconds
MANIFEST_FIELDS = ["path", "label", "split", "family", "system", "corpus", "source", "speaker", "duration_s",
                   "channel", "language", "commit", "source_paths", "sha256", "orig_sample_rate"]


@dataclass
class Clip:
    """One decoded source file."""

    path: str
    sha256: str
    rate: int
    samples: np.ndarray


@dataclass
class Recording:
    """One file written to the corpus; `path` is relative to the output folder."""

    path: str
    label: str
    split: str
    family: str
    system: str
    corpus: str
    source: str
    speaker: str
    duration_s: float
    channel: str
    language: str
    commit: str
    source_paths: str
    sha256: str
    orig_sample_rate: str


def decode(path: str, data: bytes) -> Clip:
    """A source file's bytes as 16 kHz mono, edges trimmed (AudioError when it is not audio)."""
    digest = hashlib.sha256(data).hexdigest()
    try:
        rate = sf.info(io.BytesIO(data)).samplerate
    except (sf.LibsndfileError, RuntimeError):
        rate = 0  # a container libsndfile does not read: load_audio tries ffmpeg
    with tempfile.NamedTemporaryFile(suffix=Path(path).suffix.lower()) as handle:
        handle.write(data)
        handle.flush()
        samples = load_audio(handle.name)
    return Clip(path, digest, rate, prepare(samples, SAMPLE_RATE))


def _decode_job(job: tuple[str, bytes]) -> Clip | str:
    path, data = job
    try:
        return decode(path, data)
    except AudioError as exc:
        return f"{path}: {exc}"


def join_short(clips: list[Clip]) -> list[list[Clip]]:
    """Clips of 3 s and more stand alone; shorter ones are joined, in order, into recordings of 6 s or more.

    A remainder of 3 s or more stands alone; a shorter one joins the last group of short clips, or is
    dropped when there is none."""
    groups, current = [], []
    for clip in clips:
        if len(clip.samples) >= CLIP_SAMPLES:
            groups.append([clip])
            continue
        current.append(clip)
        if sum(len(c.samples) for c in current) >= JOIN_MIN_SECONDS * SAMPLE_RATE:
            groups.append(current)
            current = []
    joined = [g for g in groups if len(g) > 1]
    if current and sum(len(c.samples) for c in current) >= CLIP_SAMPLES:
        groups.append(current)
    elif current and joined:
        joined[-1].extend(current)
    return groups


def seconds(group: list[Clip]) -> float:
    return sum(len(c.samples) for c in group) / SAMPLE_RATE


def balance(groups: dict[tuple, list[list[Clip]]], budget_s: float, seed: str) -> dict[tuple, list[list[Clip]]]:
    """Keep about `budget_s` seconds of one class, taking recordings in turn from each system."""
    rng = random.Random(seed)
    queues = {key: rng.sample(items, len(items)) for key, items in groups.items()}
    kept: dict[tuple, list[list[Clip]]] = {key: [] for key in groups}
    total = 0.0
    while total < budget_s and any(queues.values()):
        for key in sorted(queues):
            if queues[key] and total < budget_s:
                group = queues[key].pop()
                kept[key].append(group)
                total += seconds(group)
    return kept


def draw_channel(rng: np.random.Generator) -> str:
    names = list(CHANNEL_SHARES)
    return str(rng.choice(names, p=[CHANNEL_SHARES[n] for n in names]))


def _write_job(job: tuple) -> tuple[float, str]:
    target, samples, seed = job
    rng = np.random.default_rng(seed)
    chan = draw_channel(rng)
    return write_flac(Path(target), channel(samples, chan), rng), chan


class CorpusBuilder:
    """Reads repositories, balances and writes their recordings, and keeps the manifest rows."""

    def __init__(self, out: Path, snapshots: Path | None, clones: Path, seed: int, workers: int,
                 train_ratio: float = TRAIN_RATIO, paired_only: bool = False):
        self.out, self.snapshots, self.clones, self.seed, self.workers = out, snapshots, clones, seed, workers
        self.train_ratio, self.paired_only = train_ratio, paired_only
        self.recordings: list[Recording] = []
        self.seen: dict[str, str] = {}  # sha256 -> pool
        self.counts: Counter = Counter()
        self.errors: list[str] = []

    def add_repository(self, repo: str, rows: list) -> None:
        pool, commit = rows[0].pool, rows[0].commit
        repository = open_repository(repo, commit, self.snapshots, self.clones)
        files = assign(rows, repository.paths())
        jobs = ((path, repository.read(path)) for path, _ in files)
        with Pool(self.workers) as workers:
            decoded = list(tqdm(workers.imap(_decode_job, jobs, chunksize=4), total=len(files), desc=repo,
                                unit="file", leave=False))
        by_key: dict[tuple, list[Clip]] = defaultdict(list)
        for (_, row), clip in zip(files, decoded, strict=True):
            if isinstance(clip, str):
                self.errors.append(f"{repo}: {clip}")
                continue
            if clip.sha256 in self.seen:  # the same bytes again: once only, in the first pool that had them
                self.counts["duplicate files left out"] += 1
                continue
            self.seen[clip.sha256] = pool
            by_key[(row.label, row.system, row.family, row.corpus, row.language)].append(clip)
        if pool == "train" and self.paired_only and len({key[0] for key in by_key}) < 2:
            self.counts["one-class training repositories left out"] += 1  # its files still count as seen
            return
        groups = {key: join_short(clips) for key, clips in by_key.items()}
        ratio = self.train_ratio if pool == "train" else 1.0
        self._write(repo, commit, pool, self._balanced(repo, groups, ratio))

    def _balanced(self, repo: str, groups: dict[tuple, list[list[Clip]]],
                  ratio: float) -> dict[tuple, list[list[Clip]]]:
        per_label = {label: {k: v for k, v in groups.items() if k[0] == label} for label in ("human", "ai")}
        totals = {label: sum(seconds(g) for v in keyed.values() for g in v) for label, keyed in per_label.items()}
        if min(totals.values()) == 0:
            return groups
        larger = max(totals, key=totals.get)
        kept = balance(per_label[larger], ratio * totals[min(totals, key=totals.get)], f"{self.seed}-{repo}")
        self.counts[f"{larger} seconds cut for balance"] += round(totals[larger] - sum(
            seconds(g) for v in kept.values() for g in v))
        return {**groups, **kept}

    def _write(self, repo: str, commit: str, pool: str, groups: dict[tuple, list[list[Clip]]]) -> None:
        jobs, rows = [], []
        for (label, system, family, corpus, language), recordings in sorted(groups.items()):
            folder = Path(POOL_BASE[pool], f"{label}_full", slug(repo.replace("/", "+")), slug(system))
            for k, group in enumerate(recordings):
                samples = concatenate([c.samples for c in group]) if len(group) > 1 else group[0].samples
                if len(samples) < CLIP_SAMPLES:
                    self.counts["recordings under 3 s left out"] += 1
                    continue
                rel = folder / f"{slug(corpus)}_{k:05d}.flac"
                seed = int(hashlib.sha256(f"{self.seed}:{rel}".encode()).hexdigest()[:8], 16)
                jobs.append((str(self.out / rel), samples, seed))
                rows.append(Recording(str(rel), label, pool, family, system, corpus, repo, "", 0.0, "", language,
                                      commit, ";".join(c.path for c in group), ";".join(c.sha256 for c in group),
                                      ";".join(str(c.rate) for c in group)))
        with Pool(self.workers) as workers:
            for row, (duration, chan) in zip(rows, workers.imap(_write_job, jobs, chunksize=4), strict=True):
                row.duration_s, row.channel = duration, chan
                self.recordings.append(row)

    def build(self, table: list) -> None:
        grouped = by_repo(table)
        order = sorted(grouped, key=lambda repo: (POOL_ORDER.index(grouped[repo][0].pool), repo))
        for repo in tqdm(order, desc="repositories", unit="repo"):
            try:
                self.add_repository(repo, grouped[repo])
            except SourceError as exc:
                self.errors.append(str(exc))
                print(f"skipped {repo}: {exc}", file=sys.stderr)


def summary(recordings: list[Recording]) -> dict:
    """Hours, recordings, systems and repositories per pool and class."""
    result: dict = {}
    for pool in POOL_ORDER:
        for label in ("human", "ai"):
            rows = [r for r in recordings if r.split == pool and r.label == label]
            result[f"{pool}/{label}"] = {
                "hours": round(sum(r.duration_s for r in rows) / 3600, 3), "recordings": len(rows),
                "systems": len({(r.source, r.system) for r in rows if label == "ai"}),
                "system_names": len({r.system for r in rows if label == "ai"}),
                "repositories": len({r.source for r in rows}), "corpora": len({r.corpus for r in rows}),
                "languages": sorted({r.language for r in rows})}
    return result


def write_manifest(path: Path, recordings: list[Recording]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=MANIFEST_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(asdict(r) for r in recordings)
    write_text_atomic(path, buffer.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data.build_public_corpus", description=__doc__.split("\n\n")[1],
                                     formatter_class=HelpFormatter)
    parser.add_argument("--table", default=str(TABLE), help="source table (repo, commit, pattern, label, ...)")
    parser.add_argument("--snapshots", help="folder of local repository snapshots (e.g. ../.mirror); repositories "
                                            "not found there are cloned at their pinned commit")
    parser.add_argument("--clones", default="cache/repos", help="where clones are made when no snapshot is found")
    parser.add_argument("--out", required=True, help="output data tree (must be empty or absent)")
    parser.add_argument("--only", action="append", metavar="OWNER/NAME", help="build only these repositories")
    parser.add_argument("--seed", type=int, default=0, help="seed for channels, levels and balancing")
    parser.add_argument("--train-ratio", type=float, default=TRAIN_RATIO,
                        help="in a training repository with both classes, keep at most this many times the smaller "
                             "class's seconds of the larger (held-out repositories are always cut to 1)")
    parser.add_argument("--paired-only", action="store_true",
                        help="leave out training repositories that hold only one class (human-only corpora, "
                             "AI-only sample folders), so every training page gives both classes")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="decoding and writing processes")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        parser.error(f"{out} is not empty: give a new --out")
    try:
        table = read_table(args.table)
    except (OSError, SourceError) as exc:
        parser.error(str(exc))
    if args.only:
        table = [row for row in table if row.repo in set(args.only)]
        if not table:
            parser.error(f"--only: none of {args.only} is in {args.table}")
    if shutil.which("ffmpeg") is None:
        print("warning: ffmpeg is not installed, so files libsndfile cannot read (m4a, aac or opus, also when "
              "named .wav) will be left out and listed under errors in corpus_summary.json; for the full "
              "corpus, apt-get install ffmpeg first", file=sys.stderr)
    builder = CorpusBuilder(out, Path(args.snapshots) if args.snapshots else None, Path(args.clones), args.seed,
                            args.workers, args.train_ratio, args.paired_only)
    builder.build(table)
    if not builder.recordings:
        print("error: nothing was written", file=sys.stderr)
        return 1
    write_manifest(out / "manifest.csv", builder.recordings)
    report = {"summary": summary(builder.recordings), "counts": dict(builder.counts), "errors": builder.errors}
    write_text_atomic(out / "corpus_summary.json", json.dumps(report, indent=1) + "\n")
    for key, value in report["summary"].items():
        print(f"{key}: {value['hours']:.2f} h, {value['recordings']} recordings, {value['repositories']} repos, "
              f"{value['systems']} systems")
    print(f"{len(builder.errors)} files or repositories could not be used (see {out / 'corpus_summary.json'})")
    print(f"manifest: {out / 'manifest.csv'} ({len(builder.recordings)} recordings)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
