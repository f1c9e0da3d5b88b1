"""The public-repository corpus: the shipped source table, the refused list, and
`data.build_public_corpus` end to end on small git repositories made here (real audio files,
real git commits, the real command)."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from data.sources import (
    FIELDS,
    REFUSED_REPOS,
    Source,
    SourceError,
    assign,
    by_repo,
    check_row,
    read_table,
)
from src.dataset import EpochSampler, paired_sources_only, source_folder
from tests.helpers import describe, run_module
from tests.synth import write_recording

GOOD_ROW = {"repo": "someone/some-demo.github.io", "commit": "a" * 40, "pattern": r"audio/gt/.*\.wav",
            "label": "human", "system": "human", "family": "human", "corpus": "LibriTTS", "language": "en",
            "pool": "train", "files": "3"}


def test_shipped_table_pins_commits_and_holds_out_whole_repositories():
    rows = read_table()
    grouped = by_repo(rows)
    assert len(grouped) >= 10
    for repo, repo_rows in grouped.items():
        assert len({r.commit for r in repo_rows}) == 1 and len({r.pool for r in repo_rows}) == 1, repo
    pools = {pool: {repo for repo, rs in grouped.items() if rs[0].pool == pool} for pool in ("validation", "test")}
    for pool, repos in pools.items():
        with_both = [repo for repo in repos if {r.label for r in grouped[repo]} == {"human", "ai"}]
        assert len(with_both) >= 2, f"the {pool} pool needs several repositories with both classes"
    assert not any(r.repo.lower() in {x.lower() for x in REFUSED_REPOS} for r in rows)


@pytest.mark.parametrize("repo", sorted(REFUSED_REPOS) + ["STYLETTS2/styletts2.github.io"])
def test_refused_repositories_are_rejected(repo):
    with pytest.raises(SourceError, match="refused"):
        check_row({**GOOD_ROW, "repo": repo}, 2)


@pytest.mark.parametrize("system", ["StyleTTS2", "Tortoise TTS", "YourTTS", "MaskGCT", "Mobile-Speech"])
def test_evaluation_set_systems_are_rejected_as_baselines_of_other_pages(system):
    with pytest.raises(SourceError, match="evaluation set"):
        check_row({**GOOD_ROW, "label": "ai", "family": "diffusion", "system": system}, 2)


@pytest.mark.parametrize("change, message", [
    ({"commit": "a" * 39}, "40-hex"), ({"commit": "main" + "0" * 36}, "40-hex"), ({"label": "fake"}, "label"),
    ({"pool": "dev"}, "pool"), ({"pattern": "(unclosed"}, "pattern"), ({"files": "many"}, "count"),
    ({"label": "ai"}, "family 'human'"), ({"corpus": ""}, "empty corpus"),
])
def test_malformed_rows_are_rejected_with_the_reason(change, message):
    with pytest.raises(SourceError, match=message):
        check_row({**GOOD_ROW, **change}, 2)


def test_a_repository_cannot_sit_in_two_pools(tmp_path):
    table = tmp_path / "sources.csv"
    rows = [GOOD_ROW, {**GOOD_ROW, "pattern": r"audio/ours/.*\.wav", "label": "ai", "system": "X",
                       "family": "diffusion", "pool": "test"}]
    with open(table, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(SourceError, match="two pools"):
        read_table(table)


def test_each_file_goes_to_one_row_and_counts_are_checked():
    human = check_row(GOOD_ROW, 2)
    ai = Source(**{**GOOD_ROW, "pattern": r"audio/.*/b\.wav", "label": "ai", "system": "X", "family": "diffusion",
                   "files": 1})
    paths = ["audio/gt/a.wav", "audio/gt/c.wav", "audio/gt/d.wav", "audio/ours/b.wav", "index.html"]
    assert [(p, r.label) for p, r in assign([human, ai], paths)] == [
        ("audio/gt/a.wav", "human"), ("audio/gt/c.wav", "human"), ("audio/gt/d.wav", "human"),
        ("audio/ours/b.wav", "ai")]
    with pytest.raises(SourceError, match="two rows"):
        assign([human, ai], paths + ["audio/gt/b.wav"])
    with pytest.raises(SourceError, match="matches 2 files"):
        assign([human, ai], paths[1:])


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def make_repository(path: Path, files: dict[str, tuple[str, float, int]], seed: int) -> str:
    """A git repository of audio files {path: (kind, seconds, sample rate)}; returns its commit."""
    for i, (name, (kind, seconds, rate)) in enumerate(sorted(files.items())):
        write_recording(path / name, kind, seconds, seed * 100 + i, sample_rate=rate)
    (path / "index.html").write_text("<html>demo page</html>")
    git(path, "init", "-q")
    git(path, "add", ".")
    git(path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "demo")
    return git(path, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    """Two demo repositories (train, test) and a human-only one (validation), and the built corpus."""
    base = tmp_path_factory.mktemp("public")
    snapshots = base / "snapshots"
    pages = {
        "lab/tts-demo": ("train", {**{f"wavs/gt/{i}.wav": ("human", 4.0 + i, 22050) for i in range(4)},
                                   **{f"wavs/ours/{i}.wav": ("ai", 5.0, 24000) for i in range(6)},
                                   **{f"wavs/base/{i}.mp3": ("ai", 1.2, 16000) for i in range(8)}}),
        "lab/vc-demo": ("test", {**{f"a/ref_{i}.flac": ("human", 3.5, 16000) for i in range(3)},
                                 **{f"a/conv_{i}.flac": ("ai", 3.5, 16000) for i in range(6)}}),
        "uni/speech-samples": ("validation", {f"s/{i}.wav": ("human", 4.5, 16000) for i in range(3)}),
    }
    commits = {}
    for repo, (_, files) in pages.items():
        commits[repo] = make_repository(snapshots / repo.replace("/", "+"), files, seed=len(commits))
    # the same bytes as a training file, inside the test repository: must stay out of training
    tts, vc = snapshots / "lab+tts-demo", snapshots / "lab+vc-demo"
    (vc / "a" / "ref_dup.wav").write_bytes((tts / "wavs/gt/0.wav").read_bytes())
    git(vc, "add", ".")
    git(vc, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "dup")
    commits["lab/vc-demo"] = git(vc, "rev-parse", "HEAD")
    table_rows = [
        ("lab/tts-demo", r"wavs/gt/.*\.wav", "human", "human", "human", 4),
        ("lab/tts-demo", r"wavs/ours/.*\.wav", "ai", "Ours", "diffusion", 6),
        ("lab/tts-demo", r"wavs/base/.*\.mp3", "ai", "FastSpeech 2", "non-autoregressive", 8),
        ("lab/vc-demo", r"a/ref_.*\.(?:flac|wav)", "human", "human", "human", 4),
        ("lab/vc-demo", r"a/conv_.*\.flac", "ai", "kNN-VC", "voice-conversion", 6),
        ("uni/speech-samples", r"s/.*\.wav", "human", "human", "human", 3),
    ]
    table = base / "sources.csv"
    with open(table, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FIELDS)
        for repo, pattern, label, system, family, files in table_rows:
            writer.writerow([repo, commits[repo], pattern, label, system, family, "LibriTTS", "en",
                             pages[repo][0], files])
    out = base / "corpus"
    result = run_module("data.build_public_corpus", "--table", table, "--snapshots", snapshots, "--out", out,
                        "--workers", "1", "--train-ratio", "1.5", timeout=600)
    assert result.returncode == 0, describe(result)
    rows = list(csv.DictReader(open(out / "manifest.csv", newline="")))
    return {"out": out, "rows": rows, "snapshots": snapshots, "commits": commits, "result": result, "table": table}


def test_manifest_names_each_recordings_repository_commit_paths_and_sha256(corpus):
    for row in corpus["rows"]:
        git_dir = corpus["snapshots"] / row["source"].replace("/", "+")
        assert row["commit"] == corpus["commits"][row["source"]]
        for path, digest in zip(row["source_paths"].split(";"), row["sha256"].split(";"), strict=True):
            blob = subprocess.run(["git", "-C", str(git_dir), "show", f"{row['commit']}:{path}"],
                                  capture_output=True, check=True).stdout
            assert hashlib.sha256(blob).hexdigest() == digest


def test_whole_repositories_go_to_one_pool_and_duplicates_stay_out_of_training(corpus):
    pools = {}
    for row in corpus["rows"]:
        assert pools.setdefault(row["source"], row["split"]) == row["split"]
        base = {"train": "", "validation": "validation_set/", "test": "test_set/"}[row["split"]]
        assert row["path"].startswith(f"{base}{row['label']}_full/")
    assert pools == {"lab/tts-demo": "train", "lab/vc-demo": "test", "uni/speech-samples": "validation"}
    training_hashes = {h for r in corpus["rows"] if r["split"] == "train" for h in r["sha256"].split(";")}
    test_hashes = {h for r in corpus["rows"] if r["split"] == "test" for h in r["sha256"].split(";")}
    assert not training_hashes & test_hashes
    assert "wavs/gt/0.wav" not in {p for r in corpus["rows"] for p in r["source_paths"].split(";")}


def test_both_classes_are_processed_alike_and_balanced_per_repository(corpus):
    seconds = Counter()
    for row in corpus["rows"]:
        info = sf.info(str(corpus["out"] / row["path"]))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert info.duration >= 3.0
        assert abs(info.duration - float(row["duration_s"])) < 0.01
        seconds[(row["source"], row["label"])] += info.duration
    # the training page: 3 human files left (18 s; one moved to the test pool) against 14 AI files (40 s);
    # AI is cut to --train-ratio 1.5 times the human seconds
    human, ai = seconds[("lab/tts-demo", "human")], seconds[("lab/tts-demo", "ai")]
    assert human == pytest.approx(18, abs=0.5)
    assert 1.5 * human * 0.9 <= ai <= 1.5 * human + 8
    # a held-out page (14.5 s human, 21 s AI) is cut to one to one, whatever --train-ratio says
    assert seconds[("lab/vc-demo", "ai")] <= seconds[("lab/vc-demo", "human")] + 3.6
    systems = {r["system"] for r in corpus["rows"] if r["source"] == "lab/tts-demo" and r["label"] == "ai"}
    assert systems == {"Ours", "FastSpeech 2"}  # the cut spreads over the systems
    # the 1.2-s baseline clips were joined into recordings of 6 s or more, not dropped
    joined = [r for r in corpus["rows"] if r["system"] == "FastSpeech 2"]
    assert joined and all(len(r["source_paths"].split(";")) >= 3 for r in joined)
    assert Counter(r["channel"] for r in corpus["rows"]).keys() <= {"wide", "g722", "phone8k", "gsm"}


def test_a_missing_commit_is_reported_and_a_nonempty_output_refused(corpus, tmp_path):
    table = tmp_path / "sources.csv"
    text = corpus["table"].read_text().replace(corpus["commits"]["uni/speech-samples"], "b" * 40)
    table.write_text(text)
    result = run_module("data.build_public_corpus", "--table", table, "--snapshots", corpus["snapshots"],
                        "--out", tmp_path / "out", "--only", "uni/speech-samples", "--clones", tmp_path / "clones",
                        "--workers", "1")
    assert result.returncode == 1 and "does not hold commit" in result.stderr, describe(result)
    again = run_module("data.build_public_corpus", "--table", corpus["table"], "--out", corpus["out"])
    assert again.returncode == 2 and "not empty" in again.stderr


def test_a_build_without_ffmpeg_warns_up_front(corpus, tmp_path):
    bin_dir = tmp_path / "bin"  # a PATH with git (to read the snapshots) but no ffmpeg
    bin_dir.mkdir()
    (bin_dir / "git").symlink_to(shutil.which("git"))
    result = run_module("data.build_public_corpus", "--table", corpus["table"], "--snapshots", corpus["snapshots"],
                        "--out", tmp_path / "out", "--only", "lab/tts-demo", "--workers", "1",
                        env={"PATH": str(bin_dir)})
    assert result.returncode == 0, describe(result)
    assert result.stderr.startswith("warning: ffmpeg is not installed"), describe(result)
    assert (tmp_path / "out" / "manifest.csv").exists()


def test_paired_only_leaves_out_one_class_training_repositories(corpus, tmp_path):
    table = tmp_path / "sources.csv"
    table.write_text(corpus["table"].read_text().replace(",validation,", ",train,"))  # uni: human-only, training
    built = {}
    for flags in ((), ("--paired-only",)):
        out = tmp_path / f"out{len(flags)}"
        result = run_module("data.build_public_corpus", "--table", table, "--snapshots", corpus["snapshots"],
                            "--out", out, "--only", "uni/speech-samples", "--only", "lab/tts-demo",
                            "--workers", "1", *flags)
        assert result.returncode == 0, describe(result)
        built[flags] = {row["source"] for row in csv.DictReader(open(out / "manifest.csv", newline=""))}
    assert built[()] == {"uni/speech-samples", "lab/tts-demo"}
    assert built[("--paired-only",)] == {"lab/tts-demo"}


def test_epoch_sampler_draws_both_classes_evenly_and_afresh_each_epoch():
    items = ([(f"/d/ai_split/big/{i}_chunk_0.mp3", 0) for i in range(900)]
             + [(f"/d/ai_split/small/{i}_chunk_0.mp3", 0) for i in range(100)]
             + [(f"/d/human_split/h/{i}_chunk_0.mp3", 1) for i in range(200)])
    assert source_folder(items[0][0]) == "big" and source_folder("/x/clip.mp3") == ""
    sampler = EpochSampler(items, 300, seed=1)
    first = list(sampler)
    assert len(first) == len(set(first)) == 300 == len(sampler)
    labels = Counter(items[i][1] for i in first)
    assert labels[1] == labels[0] == 150
    small = sum(1 for i in first if "/small/" in items[i][0])
    assert small > 0.15 * labels[0]  # sqrt weighting: about 1/4 of the AI draws, not 1/10
    assert list(EpochSampler(items, 300, seed=1)) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
    ranks = [EpochSampler(items, 300, seed=1, rank=r, world_size=2) for r in range(2)]
    assert sorted(list(ranks[0]) + list(ranks[1])) == sorted(first)
    equal = list(EpochSampler(items, 300, seed=1, weighting="equal"))
    small = sum(1 for i in equal if "/small/" in items[i][0])
    assert 0.4 * 150 < small < 0.6 * 150  # equal weighting: half of the AI draws from each folder


def test_paired_sources_keeps_only_folders_with_both_classes():
    items = [("/d/ai_split/page/a_chunk_0.flac", 0), ("/d/human_split/page/h_chunk_0.flac", 1),
             ("/d/ai_split/ai-only/b_chunk_0.flac", 0), ("/d/human_split/corpus/c_chunk_0.flac", 1),
             ("/flat/ai/x.flac", 0), ("/flat/human/y.flac", 1)]  # no *_split folder: one folder '', both classes
    assert paired_sources_only(items) == [items[0], items[1], items[4], items[5]]


def test_paired_sources_refuses_a_tree_where_no_page_has_both_classes(tmp_path):
    for folder, kind in (("ai_split/ai-page", "ai"), ("human_split/human-corpus", "human")):
        for i in range(2):
            write_recording(tmp_path / folder / f"{kind}{i}_chunk_0.wav", kind, seconds=3.0, seed=i)
    result = run_module("src.train_CNN", "--root", tmp_path, "--paired-sources", "--epochs", "1", "--workers", "0",
                        "--no-progress", "--device", "cpu", "--output", tmp_path / "cnn.pth",
                        "--log-dir", tmp_path / "logs")
    assert result.returncode == 2, describe(result)
    assert "--paired-sources left no source folder" in result.stderr
    assert not (tmp_path / "cnn.pth").exists()


def test_training_on_the_built_corpus_records_its_manifest(corpus, tmp_path):
    out = corpus["out"]
    for command in (("data.convert_and_divide", "--root", out, "--workers", "1"),):
        result = run_module(*command)
        assert result.returncode == 0, describe(result)
    weights = tmp_path / "cnn.pth"
    result = run_module("src.train_CNN", "--root", out, "--epochs", "1", "--clips-per-epoch", "6",
                        "--workers", "0", "--no-progress", "--device", "cpu", "--batch-size", "4",
                        "--output", weights, "--log-dir", tmp_path / "logs", timeout=600)
    assert result.returncode == 0, describe(result)
    trained_on = torch.load(weights, map_location="cpu", weights_only=False)["info"]["trained_on"]
    assert trained_on["manifest_sha256"] == hashlib.sha256((out / "manifest.csv").read_bytes()).hexdigest()
    counts = trained_on["manifest_counts"]
    assert counts["test/ai"]["sources"] == 1 and counts["train/human"]["recordings"] > 0
    assert trained_on["clips_per_epoch"] == 6
    assert np.isfinite(trained_on["manifest_counts"]["train/ai"]["hours"])


def test_source_only_check_sees_a_page_that_is_one_class():
    from data.check_shortcuts import source_only_auc

    labels = np.array([1, 0] * 50 + [1] * 50 + [0] * 50)
    mixed = ["page-a"] * 100 + ["page-b"] * 50 + ["page-c"] * 50  # page-b all AI, page-c all human
    assert source_only_auc(mixed, labels) > 0.7
    balanced = [f"page-{(i // 2) % 10}" for i in range(200)]  # each page: as many of each class
    assert abs(source_only_auc(balanced, np.array([1, 0] * 100)) - 0.5) < 0.1


def test_shortcut_check_runs_on_the_public_corpus_with_the_original_rate(corpus, tmp_path):
    report = tmp_path / "shortcuts.json"
    result = run_module("data.check_shortcuts", "--manifest", corpus["out"] / "manifest.csv", "--workers", "1",
                        "--report", report)
    assert result.returncode == 0, describe(result)
    measured = json.loads(report.read_text())
    assert 0 <= measured["train_source_only_auc"] <= 1
    assert set(measured) == {"train_source_only_auc", "test"}  # the validation pool here is human only
    # the test page's human and AI files were all 16 kHz originals (one human file was a 22.05 kHz copy)
    assert measured["test"]["orig_sample_rate_median_human_ai"] == [16000.0, 16000.0]
    assert 0 <= measured["test"]["all_features_auc"] <= 1
