"""Command line shared by `src.inference_CNN` and `src.inference_ViT`.

Scores files and folders (JSON, JSON lines or CSV, to stdout or --output), or runs the
original's labelled evaluation with --human-dir / --ai-dir.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from src.atomic import append_text_atomic, write_text_atomic
from src.checkpoint import CheckpointError
from src.cli import HelpFormatter, add_engine_arguments, positive_int, use_threads
from src.inference import DEFAULT_BATCH_SIZE, Detector, find_inputs
from src.metrics import AI, HUMAN, evaluate

CSV_FIELDS = ["name", "Percent_AI", "Percent_Human", "Prediction", "mean_ai_probability", "duration_s",
              "n_windows", "error"]


def build_parser(architecture: str, default_weights: str, default_log_dir: str) -> argparse.ArgumentParser:
    module = "src.inference_CNN" if architecture == "cnn" else "src.inference_ViT"
    parser = argparse.ArgumentParser(
        prog=f"python -m {module}",
        description=(
            f"Tell whether speech is human or AI-generated with the {architecture.upper()} detector. "
            "Each file gets Percent_AI / Percent_Human (share of 3-s windows judged AI / human), "
            "Prediction (ai when the mean window AI probability reaches the model's threshold), "
            "mean_ai_probability, a per-window timeline and the model used; a file that cannot be "
            "analysed gets an 'error' instead. Exit status 1 when any file failed."
        ),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="audio files and/or folders (scanned recursively)")
    parser.add_argument("--model", "--weights", dest="weights", default=default_weights, help="checkpoint to use")
    parser.add_argument("--format", choices=["json", "jsonl", "csv"], default=None,
                        help="output format (default: pretty JSON for one file, JSON lines otherwise)")
    parser.add_argument("--output", "-o", help="write results to this file instead of stdout")
    add_engine_arguments(parser)
    parser.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE,
                        help="windows scored per forward pass (memory grows with it)")
    parser.add_argument("--threshold", type=float,
                        help="call a window or file AI when its P(AI) reaches this (default: the checkpoint's)")
    parser.add_argument("--human-dir", help="labelled evaluation: folder of human recordings")
    parser.add_argument("--ai-dir", help="labelled evaluation: folder of AI recordings")
    parser.add_argument("--log-dir", default=default_log_dir, help="where the labelled evaluation writes its logs")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--shard", type=shard_spec, metavar="K/N",
                        help="score only the K-th of N deterministic shares of the input files (by a hash of "
                             "each path), so N jobs (a Slurm array, GNU parallel) together score every file once")
    return parser


def shard_spec(text: str) -> tuple[int, int]:
    """argparse type for --shard: 'K/N' with 1 <= K <= N."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K/N such as 2/8, got {text!r}") from None
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"K must be between 1 and N, got {text!r}")
    return k, n


def in_shard(path: Path, shard: tuple[int, int]) -> bool:
    """Whether `path` belongs to shard (K, N): the same answer for the same path on any machine."""
    k, n = shard
    digest = hashlib.sha256(os.fsencode(path)).digest()
    return int.from_bytes(digest[:8], "big") % n == k - 1


def csv_row(result: dict) -> dict:
    row = {key: result.get(key, "") for key in CSV_FIELDS}
    row["n_windows"] = len(result.get("windows", [])) if "error" not in result else ""
    return row


def render(results: list[dict], fmt: str) -> str:
    """Results as text in one of the output formats."""
    if fmt == "json":
        return json.dumps(results[0] if len(results) == 1 else results, indent=2) + "\n"
    if fmt == "jsonl":
        return "".join(json.dumps(r) + "\n" for r in results)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_row(r) for r in results)
    return buffer.getvalue()


def analyse_all(detector: Detector, files: list[Path], progress: bool) -> list[dict]:
    results = []
    bar = tqdm(total=len(files), desc="analysing", unit="file", disable=not progress or len(files) < 2,
               file=sys.stderr)
    for path, result in zip(files, detector.analyse_many(files), strict=True):
        if "error" in result:
            tqdm.write(f"error: {path}: {result['error']}", file=sys.stderr)
        results.append(result)
        bar.update()
    bar.close()
    return results


def labelled_evaluation(detector: Detector, human_dir: str, ai_dir: str, log_dir: Path, progress: bool) -> dict:
    """Score two labelled folders; write per-folder JSON lines and append a summary to final_results_model.txt."""
    log_dir.mkdir(parents=True, exist_ok=True)
    labels, scores, failed = [], [], 0
    summary = [f"\n\nMODEL: {detector.weights}\n"]
    for folder, label, short in ((human_dir, HUMAN, "human"), (ai_dir, AI, "ai")):
        files, _ = find_inputs([folder])
        results = analyse_all(detector, files, progress)
        write_text_atomic(log_dir / f"results_{short}_model.txt", render(results, "jsonl"))
        scored = [r for r in results if "error" not in r]
        failed += len(results) - len(scored)
        correct = sum(r["Prediction"] == short for r in scored)
        percent = 100.0 * correct / len(scored) if scored else 0.0
        summary.append(f"\n\nRESULTS FOR {short.upper()} Model ({folder})\n"
                       f"Total Predictions Correct: {correct} / {len(scored)}\nPercent Correct: {percent:.2f}%\n")
        labels += [label] * len(scored)
        scores += [r["mean_ai_probability"] for r in scored]
    report = evaluate(np.array(labels), np.array(scores), detector.info.threshold)
    metrics = {**report.as_dict(), "files_failed": failed, "level": "file", "score": "mean_ai_probability",
               "model": detector.description}
    metrics.pop("loss")
    summary.append(f"\nMETRICS: {json.dumps(metrics)}\n")
    append_text_atomic(log_dir / "final_results_model.txt", "".join(summary))
    return metrics


def main(architecture: str, default_weights: str, default_log_dir: str, argv: list[str] | None = None) -> int:
    parser = build_parser(architecture, default_weights, default_log_dir)
    args = parser.parse_args(argv)
    labelled = args.human_dir or args.ai_dir
    if labelled and not (args.human_dir and args.ai_dir):
        parser.error("the labelled evaluation needs both --human-dir and --ai-dir")
    if not labelled and not args.paths:
        parser.error("give at least one audio file or folder (or --human-dir and --ai-dir)")
    for folder in filter(None, (args.human_dir, args.ai_dir)):
        if not Path(folder).is_dir():
            parser.error(f"not a folder: {folder}")
    use_threads(args.threads)
    try:
        detector = Detector(args.weights, architecture, args.device, args.batch_size, args.precision)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.threshold is not None:
        if not 0.0 <= args.threshold <= 1.0:
            parser.error("--threshold must be between 0 and 1")
        detector.info.threshold = args.threshold
    progress = not args.no_progress

    if labelled:
        metrics = labelled_evaluation(detector, args.human_dir, args.ai_dir, Path(args.log_dir), progress)
        text = json.dumps(metrics, indent=2) + "\n"
        failed = metrics["files_failed"]
    else:
        files, notes = find_inputs(args.paths)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        found = bool(files)
        if args.shard:
            files = [path for path in files if in_shard(path, args.shard)]
        results = analyse_all(detector, files, progress)
        single = len(args.paths) == 1 and Path(args.paths[0]).is_file()
        text = render(results, args.format or ("json" if single else "jsonl"))
        failed = sum("error" in r for r in results)
        if not found:
            failed = 1
    if args.output:
        write_text_atomic(args.output, text)
    else:
        sys.stdout.reconfigure(errors="surrogateescape")  # a file name that is not UTF-8 is printed as its bytes
        sys.stdout.write(text)
    if failed:
        print(f"{failed} file(s) could not be analysed", file=sys.stderr)
    return 1 if failed else 0
