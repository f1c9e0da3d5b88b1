"""The table of public repositories the training corpus is built from (`data/sources.csv`).

Each row names a repository at a pinned commit, a regular expression over file paths in it
(`re.fullmatch`), and what the matched files are: label, system, family, corpus, language,
and the pool the whole repository belongs to (train, validation or test). Files are read
from a local snapshot when one is given, else from a clone made at the pinned commit.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

TABLE = Path(__file__).with_name("sources.csv")
FIELDS = ["repo", "commit", "pattern", "label", "system", "family", "corpus", "language", "pool", "files"]
LABELS = ("human", "ai")
POOLS = ("train", "validation", "test")
FAMILIES = ("human", "codec-lm", "diffusion", "flow-matching", "autoregressive-mel", "non-autoregressive",
            "gan-vocoder", "codec-resynthesis", "voice-conversion", "commercial", "other")

# The outside evaluation set: never read, and never trained on, not even as other pages' baselines.
REFUSED_REPOS = frozenset({
    "styletts2/styletts2.github.io", "neonbjb/tortoise-tts", "ttsds/ttsdb", "MobileSpeech/MobileSpeech.github.io",
    "maskgct/maskgct.github.io", "resemble-ai/Resemblyzer", "Edresson/YourTTS",
})
REFUSED_SYSTEMS = re.compile(r"style-?tts|tortoise|your-?tts|mask-?gct|mobile-?speech", re.IGNORECASE)

_COMMIT = re.compile(r"[0-9a-f]{40}")
_REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")


class SourceError(Exception):
    """A source table or repository that cannot be used; the message says why."""


@dataclass(frozen=True)
class Source:
    """One row of the source table."""

    repo: str
    commit: str
    pattern: str
    label: str
    system: str
    family: str
    corpus: str
    language: str
    pool: str
    files: int

    def matches(self, path: str) -> bool:
        return re.fullmatch(self.pattern, path) is not None


def is_refused(repo: str) -> bool:
    """True for the evaluation set's repositories (case-insensitive, as GitHub names are)."""
    return repo.lower() in {r.lower() for r in REFUSED_REPOS}


def check_row(row: dict, line: int) -> Source:
    """A validated row; SourceError names the line and the problem."""
    where = f"source table line {line}"
    missing = [f for f in FIELDS if not (row.get(f) or "").strip()]
    if missing:
        raise SourceError(f"{where}: empty {', '.join(missing)}")
    values = {f: row[f].strip() for f in FIELDS}
    if not _REPO.fullmatch(values["repo"]):
        raise SourceError(f"{where}: repo {values['repo']!r} is not owner/name")
    if is_refused(values["repo"]):
        raise SourceError(f"{where}: {values['repo']} is on the refused list (the outside evaluation set)")
    if not _COMMIT.fullmatch(values["commit"]):
        raise SourceError(f"{where}: commit {values['commit']!r} is not a full 40-hex commit id")
    if values["label"] not in LABELS or values["pool"] not in POOLS or values["family"] not in FAMILIES:
        raise SourceError(f"{where}: label must be one of {LABELS}, pool one of {POOLS}, family one of "
                          f"{FAMILIES}; got {values['label']!r}, {values['pool']!r}, {values['family']!r}")
    if (values["label"] == "human") != (values["family"] == "human"):
        raise SourceError(f"{where}: family 'human' goes with label 'human' and only with it")
    if REFUSED_SYSTEMS.search(values["system"]):
        raise SourceError(f"{where}: system {values['system']!r} is one of the evaluation set's systems")
    try:
        re.compile(values["pattern"])
    except re.error as exc:
        raise SourceError(f"{where}: pattern {values['pattern']!r}: {exc}") from exc
    if not values["files"].isdigit():
        raise SourceError(f"{where}: files must be a count, got {values['files']!r}")
    return Source(**{**values, "files": int(values["files"])})


def read_table(path: str | os.PathLike = TABLE) -> list[Source]:
    """All rows, checked one by one and together: one commit and one pool per repository."""
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if set(FIELDS) - set(reader.fieldnames or []):
            raise SourceError(f"{path}: columns must include {', '.join(FIELDS)}")
        rows = [check_row(row, line) for line, row in enumerate(reader, start=2)]
    for attribute in ("commit", "pool"):
        seen: dict[str, str] = {}
        for row in rows:
            value = seen.setdefault(row.repo, getattr(row, attribute))
            if value != getattr(row, attribute):
                raise SourceError(f"{path}: {row.repo} has two {attribute}s ({value}, {getattr(row, attribute)})")
    return rows


def by_repo(rows: list[Source]) -> dict[str, list[Source]]:
    grouped: dict[str, list[Source]] = {}
    for row in rows:
        grouped.setdefault(row.repo, []).append(row)
    return grouped


def assign(rows: list[Source], paths: list[str]) -> list[tuple[str, Source]]:
    """(path, row) for every path one row matches; a path matched by two rows is an error.

    Each row must match exactly its `files` count, so a table pinned to a commit notices when
    the files it names are not the ones there."""
    matched, counts = [], dict.fromkeys(rows, 0)
    for path in paths:
        hits = [row for row in rows if row.matches(path)]
        if len(hits) > 1:
            raise SourceError(f"{path} is matched by two rows: {hits[0].pattern!r} and {hits[1].pattern!r}")
        if hits:
            matched.append((path, hits[0]))
            counts[hits[0]] += 1
    for row, count in counts.items():
        if count != row.files:
            raise SourceError(f"{row.repo}: pattern {row.pattern!r} matches {count} files at {row.commit[:12]}, "
                              f"the table says {row.files}")
    return matched


class Repository:
    """Read-only access to one repository's files at a commit, through git."""

    def __init__(self, git_dir: Path, commit: str):
        self.git_dir, self.commit = git_dir, commit
        if self._git("cat-file", "-t", commit, check=False).strip() != "commit":
            raise SourceError(f"{git_dir} does not hold commit {commit}")

    def _git(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(["git", f"--git-dir={self.git_dir}", *args], capture_output=True, text=True)
        if check and done.returncode:
            raise SourceError(f"git {' '.join(args)} in {self.git_dir}: {done.stderr.strip()}")
        return done.stdout

    def paths(self) -> list[str]:
        """Every file path at the commit, sorted."""
        return sorted(self._git("ls-tree", "-r", "-z", "--name-only", self.commit).split("\0")[:-1])

    def read(self, path: str) -> bytes:
        done = subprocess.run(["git", f"--git-dir={self.git_dir}", "cat-file", "blob", f"{self.commit}:{path}"],
                              capture_output=True)
        if done.returncode:
            raise SourceError(f"{path}: {done.stderr.decode(errors='replace').strip()}")
        return done.stdout


def snapshot_dir(snapshots: Path, repo: str) -> Path | None:
    """A local git directory of `repo` under `snapshots`: `owner+name/repo` (the fetch tool's layout),
    `owner+name`, `owner/name` or `name`, bare or with a `.git` inside."""
    owner, name = repo.split("/")
    for candidate in (snapshots / f"{owner}+{name}" / "repo", snapshots / f"{owner}+{name}",
                      snapshots / owner / name, snapshots / name):
        for git_dir in (candidate / ".git", candidate):
            if (git_dir / "objects").is_dir() and (git_dir / "HEAD").exists():
                return git_dir
    return None


def clone(repo: str, commit: str, into: Path) -> Path:
    """A blob-less clone of `repo` holding `commit`, made under `into` (reused when already there)."""
    git_dir = into / repo.replace("/", "+") / ".git"
    if not git_dir.exists():
        subprocess.run(["git", "clone", "--quiet", "--bare", "--filter=blob:none", f"https://github.com/{repo}",
                        str(git_dir)], check=True)
    probe = subprocess.run(["git", f"--git-dir={git_dir}", "cat-file", "-t", commit], capture_output=True, text=True)
    if probe.stdout.strip() != "commit":
        subprocess.run(["git", f"--git-dir={git_dir}", "fetch", "--quiet", "origin", commit], check=True)
    return git_dir


def open_repository(repo: str, commit: str, snapshots: Path | None, clones: Path) -> Repository:
    """The repository from a local snapshot when there is one, else from a clone at the pinned commit."""
    local = snapshot_dir(snapshots, repo) if snapshots else None
    if local is None:
        try:
            local = clone(repo, commit, clones)
        except subprocess.CalledProcessError as exc:
            raise SourceError(f"{repo}: no snapshot under {snapshots} and cloning failed ({exc})") from exc
    return Repository(local, commit)
