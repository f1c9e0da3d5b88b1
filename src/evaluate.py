"""Measure a detector on labelled recordings: `python -m src.evaluate --help`.

Each recording is scored as the inference commands score it (mean AI probability of its
3-s windows). Reports EER (ASVspoof convention: human = bona fide), ROC AUC and, at the
checkpoint's threshold, accuracy / precision / recall / F1 / MCC with AI as the positive
class; a table per group (e.g. per TTS system: that group's files against all files of
the other class); a JSON report and a ROC/DET plot. `--fit-threshold` stores the EER
threshold of this set in the checkpoint, and the inference commands then use it.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from src.atomic import write_bytes_atomic, write_text_atomic
from src.audio import list_audio_files
from src.checkpoint import CheckpointError, check_threshold_storable, set_threshold
from src.cli import HelpFormatter, add_engine_arguments
from src.inference import Detector
from src.metrics import AI, HUMAN, detection_metrics

LABEL_NAMES = {"ai": AI, "human": HUMAN, "0": AI, "1": HUMAN, "fake": AI, "spoof": AI, "bonafide": HUMAN,
               "real": HUMAN}


def rows_from_manifest(path: Path, split: str | None) -> list[dict]:
    """Rows with `path` (resolved against the manifest's folder) and `label`; other columns kept."""
    rows = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            if split and row.get("split") != split:
                continue
            label = LABEL_NAMES.get(row.get("label", "").strip().lower())
            if label is None:
                raise ValueError(f"{path}: label {row.get('label')!r} is not ai/human")
            rows.append({**row, "path": str(path.parent / row["path"]), "label": label})
    return rows


def rows_from_dirs(human_dir: str, ai_dir: str) -> list[dict]:
    return ([{"path": str(p), "label": HUMAN, "folder": "human"} for p in list_audio_files(human_dir)]
            + [{"path": str(p), "label": AI, "folder": "ai"} for p in list_audio_files(ai_dir)])


def score_rows(detector: Detector, rows: list[dict], progress: bool) -> tuple[list[dict], list[dict]]:
    """Add `p_ai` to each row that could be analysed; return (scored, failed)."""
    scored, failed = [], []
    results = detector.analyse_many(row["path"] for row in rows)
    for row, result in tqdm(zip(rows, results, strict=True), total=len(rows), desc="scoring", unit="file",
                            disable=not progress):
        if "error" in result:
            failed.append({**row, "error": result["error"]})
        else:
            scored.append({**row, "p_ai": result["mean_ai_probability"]})
    return scored, failed


def group_table(scored: list[dict], column: str, threshold: float) -> list[dict]:
    """Per value of `column`: the group's files against all files of the other class (per-attack EER)."""
    groups = defaultdict(list)
    for row in scored:
        groups[row.get(column) or "(none)"].append(row)
    table = []
    for name, members in sorted(groups.items()):
        labels = {r["label"] for r in members}
        others = [] if len(labels) == 2 else [r for r in scored if r["label"] not in labels]
        pool = members + others
        metrics = detection_metrics(np.array([r["label"] for r in pool]), np.array([r["p_ai"] for r in pool]),
                                    threshold)
        own_correct = np.mean([(r["p_ai"] >= threshold) == (r["label"] == AI) for r in members])
        table.append({"group": name, "class": "/".join(sorted("ai" if x == AI else "human" for x in labels)),
                      "files": len(members), "eer": metrics["eer"], "roc_auc": metrics["roc_auc"],
                      "accuracy_in_group": float(own_correct),
                      "mean_p_ai": float(np.mean([r["p_ai"] for r in members]))})
    return table


def format_table(table: list[dict], column: str) -> str:
    width = max([len(column)] + [len(str(r["group"])) for r in table])
    lines = [f"{column:<{width}}  class        files    EER     AUC  acc(own)  mean P(AI)"]
    for r in table:
        eer = "   n/a" if math.isnan(r["eer"]) else f"{100 * r['eer']:5.1f}%"
        auc = "  n/a" if math.isnan(r["roc_auc"]) else f"{r['roc_auc']:.3f}"
        lines.append(f"{str(r['group']):<{width}}  {r['class']:<11} {r['files']:>6} {eer} {auc:>7}"
                     f"  {100 * r['accuracy_in_group']:6.1f}%  {r['mean_p_ai']:10.3f}")
    return "\n".join(lines)


def plot_roc_det(labels: np.ndarray, p_ai: np.ndarray, path: Path, title: str) -> None:
    """ROC and DET curves (AI = positive) side by side, as PNG."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import norm
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels == AI, p_ai)
    fig, (roc_ax, det_ax) = plt.subplots(1, 2, figsize=(10, 4.5))
    roc_ax.plot(fpr, tpr)
    roc_ax.plot([0, 1], [0, 1], "k:", linewidth=0.8)
    roc_ax.set(xlabel="false alarm rate (human called AI)", ylabel="detection rate (AI called AI)", title="ROC")
    det_ax.plot(norm.ppf(np.clip(fpr, 1e-4, 1 - 1e-4)), norm.ppf(np.clip(1 - tpr, 1e-4, 1 - 1e-4)))
    ticks = [0.001, 0.01, 0.05, 0.1, 0.2, 0.4]
    det_ax.set_xticks(norm.ppf(ticks), [f"{100 * t:g}%" for t in ticks])
    det_ax.set_yticks(norm.ppf(ticks), [f"{100 * t:g}%" for t in ticks])
    det_ax.set(xlabel="false alarm rate", ylabel="miss rate (AI called human)", title="DET")
    det_ax.set_xlim(norm.ppf(0.0005), norm.ppf(0.6))
    det_ax.set_ylim(norm.ppf(0.0005), norm.ppf(0.6))
    det_ax.grid(True, linewidth=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m src.evaluate", description=__doc__.split("\n\n")[1],
                                     formatter_class=HelpFormatter)
    parser.add_argument("--weights", required=True, help="checkpoint to evaluate")
    parser.add_argument("--manifest", help="CSV with columns path (relative to the CSV) and label (ai/human)")
    parser.add_argument("--split", help="only manifest rows whose 'split' column has this value")
    parser.add_argument("--human-dir", help="folder of human recordings (instead of --manifest)")
    parser.add_argument("--ai-dir", help="folder of AI recordings (instead of --manifest)")
    parser.add_argument("--group-by", action="append", default=[],
                        help="manifest column for a per-group table (repeatable), e.g. system, corpus, source")
    parser.add_argument("--report", help="JSON report path (default: reports/<weights stem>.json)")
    parser.add_argument("--plot", help="ROC/DET PNG path (default: the report path with .png)")
    parser.add_argument("--fit-threshold", action="store_true",
                        help="store this set's EER threshold in the checkpoint (use a validation set)")
    add_engine_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if bool(args.manifest) == bool(args.human_dir or args.ai_dir):
        parser.error("give either --manifest or both --human-dir and --ai-dir")
    if not args.manifest and not (args.human_dir and args.ai_dir):
        parser.error("--human-dir and --ai-dir go together")
    if args.fit_threshold:  # refuse before scoring, not after minutes of it
        try:
            check_threshold_storable(args.weights)
        except (CheckpointError, OSError) as exc:
            print(f"error: --fit-threshold: {exc}", file=sys.stderr)
            return 2
    try:
        detector = Detector(args.weights, device=args.device, precision=args.precision, engine=args.engine,
                            decoders=args.decoders, threads=args.threads)
        rows = rows_from_manifest(Path(args.manifest), args.split) if args.manifest else rows_from_dirs(
            args.human_dir, args.ai_dir)
    except (CheckpointError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    scored, failed = score_rows(detector, rows, not args.no_progress)
    for row in failed:
        print(f"error: {row['path']}: {row['error']}", file=sys.stderr)
    if not {r["label"] for r in scored} >= {AI, HUMAN}:
        print("error: need scored recordings of both classes", file=sys.stderr)
        return 2
    labels = np.array([r["label"] for r in scored])
    p_ai = np.array([r["p_ai"] for r in scored])
    overall = detection_metrics(labels, p_ai, detector.info.threshold)
    groups = {column: group_table(scored, column, detector.info.threshold) for column in args.group_by}

    print(f"{len(scored)} recordings scored ({overall['n_human']} human, {overall['n_ai']} AI), "
          f"{len(failed)} failed")
    print(f"EER {100 * overall['eer']:.2f}%  ROC AUC {overall['roc_auc']:.4f}  at threshold "
          f"{overall['threshold']:.3f}: accuracy {100 * overall['accuracy']:.2f}%, precision(AI) "
          f"{overall['precision_ai']:.3f}, recall(AI) {overall['recall_ai']:.3f}, F1(AI) {overall['f1_ai']:.3f}, "
          f"MCC {overall['mcc']:.3f}")
    for column, table in groups.items():
        print("\n" + format_table(table, column))

    report_path = Path(args.report or Path("reports") / f"{Path(args.weights).stem}.json")
    plot_path = Path(args.plot or report_path.with_suffix(".png"))
    model = {**detector.description, "engine": detector.engine, "precision": detector.precision}
    data = args.manifest or {"human_dir": args.human_dir, "ai_dir": args.ai_dir}
    report = {"weights": args.weights, "model": model, "data": data, "split": args.split, "overall": overall,
              "groups": groups, "failed": failed,
              "scores": [{"path": r["path"], "label": "ai" if r["label"] == AI else "human", "p_ai": r["p_ai"]}
                         for r in scored]}
    write_text_atomic(report_path, json.dumps(report, indent=1) + "\n")
    plot_roc_det(labels, p_ai, plot_path, f"{Path(args.weights).name}: EER {100 * overall['eer']:.1f}%")
    print(f"\nreport: {report_path}\nplot: {plot_path}")
    if args.fit_threshold:
        set_threshold(args.weights, overall["eer_threshold_ai"])
        print(f"threshold {overall['eer_threshold_ai']:.4f} (EER point) stored in {args.weights}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
