"""Command line shared by `src.inference_CNN` and `src.inference_ViT`.

Scores files and folders (JSON, JSON lines or CSV, to stdout or --output), or runs the
original's labelled evaluation with --human-dir / --ai-dir.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import itertools
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from src.atomic import append_text_atomic, write_text_atomic
from src.cli import HelpFormatter, add_engine_arguments, positive_int, probability
from src.contract import CheckpointError
from src.distributed import Distributed
from src.inference import DEFAULT_BATCH_SIZE, Detector, find_inputs
from src.report import ReportWriter
from src.scan_output import OutputError, ResultStream, file_stamp, load_previous, merge, rank_path, render
from src.timeline import plot_timeline


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
                        help="output format (default: pretty JSON for one file; otherwise CSV when --output ends "
                             "in .csv, else JSON lines). JSON lines and CSV are written one file at a time, "
                             "flushed, in input order")
    parser.add_argument("--output", "-o", help="write results to this file instead of stdout")
    parser.add_argument("--resume", action="store_true",
                        help="with --output: keep the results already there (same path, size and mtime), repair "
                             "a torn last line, and score only the rest")
    parser.add_argument("--report", metavar="HTML",
                        help="also write a self-contained HTML report: summary, sortable table, per-file timelines")
    parser.add_argument("--plot", metavar="PNG", help="for one file: draw its P(AI) timeline as a PNG")
    add_engine_arguments(parser)
    parser.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE,
                        help="windows scored per forward pass (memory grows with it)")
    parser.add_argument("--threshold", type=probability,
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


def scored(detector: Detector, files: list[Path], progress: bool) -> Iterator[dict]:
    """Results in input order, each with the file's size and mtime; progress (files, audio hours, speed) on stderr."""
    bar = tqdm(total=len(files), desc="scanning", unit="file", disable=not progress or len(files) < 2,
               file=sys.stderr, dynamic_ncols=True)
    audio_s, started = 0.0, time.monotonic()
    for path, result in zip(files, detector.analyse_many(files), strict=True):
        result.update(file_stamp(path))
        if "error" in result:
            bar.write(f"error: {path}: {result['error']}", file=sys.stderr)
        else:
            audio_s += result["duration_s"]
        elapsed = max(time.monotonic() - started, 1e-9)
        bar.set_postfix_str(f"{audio_s / 3600:.2f} h audio, {audio_s / elapsed:.0f}x real time", refresh=False)
        bar.update()
        yield result
    bar.close()


def analyse_all(detector: Detector, files: list[Path], progress: bool) -> list[dict]:
    return list(scored(detector, files, progress))


def labelled_evaluation(detector: Detector, human_dir: str, ai_dir: str, log_dir: Path, progress: bool) -> dict:
    """Score two labelled folders; write per-folder JSON lines and append a summary to final_results_model.txt."""
    from src.metrics import AI, HUMAN, evaluate  # scikit-learn adds 0.75 s to every start; only this mode needs it

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


def streamed(detector: Detector, files: list[Path], target: str | os.PathLike | None, fmt: str, append: bool,
             progress: bool) -> Iterator[dict]:
    """Score files, writing each result to `target` (stdout when None) as soon as it is scored."""
    stream = ResultStream(target, fmt, append)
    try:
        for result in scored(detector, files, progress):
            stream.write(result)
            yield result
    finally:
        stream.close()


def emit(text: str, output: str | None) -> None:
    """Write a whole result text to `output` (atomically) or to stdout."""
    if output:
        write_text_atomic(output, text)
    else:
        sys.stdout.reconfigure(errors="surrogateescape")  # a file name that is not UTF-8 is printed as its bytes
        sys.stdout.write(text)


def output_format(args: argparse.Namespace) -> str:
    """--format, else pretty JSON for one file, else CSV for an --output ending in .csv, else JSON lines."""
    if args.format:
        return args.format
    if len(args.paths) == 1 and Path(args.paths[0]).is_file() and not args.resume:
        return "json"
    return "csv" if args.output and args.output.lower().endswith(".csv") else "jsonl"


def check_scan_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace, fmt: str, ranks: int) -> None:
    if args.resume and not args.output:
        parser.error("--resume needs --output (the file whose results it keeps)")
    if fmt == "json" and (args.resume or ranks > 1):
        parser.error("--resume and torchrun scans write one line per file: use --format jsonl or csv")
    if ranks > 1:
        if not args.output:
            parser.error("a torchrun scan needs --output (each rank writes <output stem>.rank<r><suffix>)")
        if args.shard:
            parser.error("under torchrun each rank takes its shard from torch.distributed: leave out --shard")
        if args.plot:
            parser.error("--plot draws one file: run it without torchrun")


def scan(detector: Detector, args: argparse.Namespace, fmt: str, ddp: Distributed,
         parser: argparse.ArgumentParser) -> int:
    """Score files and folders, streaming results; under torchrun, rank 0 merges the ranks' outputs."""
    everything, notes = find_inputs(args.paths)
    for note in notes if ddp.is_main else []:
        print(f"note: {note}", file=sys.stderr)
    shard = args.shard or ((ddp.rank + 1, ddp.world_size) if ddp.enabled else None)
    files = [path for path in everything if in_shard(path, shard)] if shard else everything
    if args.plot and len(files) != 1:
        parser.error(f"--plot draws one file's timeline, and {len(files)} were given (use --report for several)")
    target = rank_path(args.output, ddp.rank) if ddp.enabled else args.output
    merged_before = load_previous(args.output, fmt, rewrite=False) if args.resume and ddp.enabled else []
    earlier = load_previous(target, fmt) if args.resume else []
    done = {r["name"] for r in merged_before + earlier}
    todo = [path for path in files if str(path) not in done]
    if args.resume and ddp.is_main:
        print(f"resuming: {len(files) - len(todo)} file(s) already scored, {len(todo)} to go", file=sys.stderr)
    # Under torchrun, rank 0 writes the report from the merged results at the end.
    report = ReportWriter(args.report, detector.info.threshold, detector.description) \
        if args.report and not ddp.enabled else None
    failed, last = 0, None
    try:
        if fmt == "json":
            results = analyse_all(detector, todo, not args.no_progress)
            emit(render(results, "json"), args.output)
        else:
            results = streamed(detector, todo, target, fmt, args.resume, not args.no_progress)
        for result in itertools.chain(earlier, results):
            failed += "error" in result
            last = result
            if report:
                report.add(result)
    except OutputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if ddp.enabled:
        ddp.barrier()
        if ddp.is_main:
            parts = [rank_path(args.output, rank) for rank in range(ddp.world_size)]
            merged = merge(args.output, parts, fmt, [str(path) for path in everything], merged_before)
            failed = sum("error" in r for r in merged)
            if args.report:
                report = ReportWriter(args.report, detector.info.threshold, detector.description)
                for result in merged:
                    report.add(result)
        ddp.barrier()
    if report:
        report.close()
    if args.plot and last is not None:
        if "error" in last:
            print(f"error: no timeline to plot: {last['error']}", file=sys.stderr)
        else:
            plot_timeline(last, detector.info.threshold, args.plot)
    if not everything:
        failed = max(failed, 1)
    if failed and ddp.is_main:
        print(f"{failed} file(s) could not be analysed", file=sys.stderr)
    return 1 if failed else 0


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
    fmt = output_format(args)
    if not labelled:
        check_scan_arguments(parser, args, fmt, int(os.environ.get("WORLD_SIZE", "1")))
    ddp = Distributed(args.device, timeout=datetime.timedelta(days=7))  # ranks wait for the slowest at the end
    try:
        detector = Detector(args.weights, architecture, ddp.device_name, args.batch_size, args.precision,
                            args.engine, args.decoders, args.threads)
    except (CheckpointError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.threshold is not None:
        detector.info.threshold = args.threshold
    try:
        if not labelled:
            return scan(detector, args, fmt, ddp, parser)
        metrics = labelled_evaluation(detector, args.human_dir, args.ai_dir, Path(args.log_dir),
                                      not args.no_progress)
    finally:
        ddp.close()
    emit(json.dumps(metrics, indent=2) + "\n", args.output)
    if metrics["files_failed"]:
        print(f"{metrics['files_failed']} file(s) could not be analysed", file=sys.stderr)
    return 1 if metrics["files_failed"] else 0
