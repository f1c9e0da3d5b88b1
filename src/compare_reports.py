"""Is one detector really better than another? `python -m src.compare_reports A.json B.json`.

Reads two reports written by `python -m src.evaluate` on the same recordings (matched by their
path relative to the manifest's folder, so the same pool built in two places still matches) and
prints both EERs, B minus A, and a 95 % interval from a paired bootstrap over recordings. When
the interval contains 0, this set cannot tell the two detectors apart.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from src.cli import HelpFormatter, positive_int
from src.metrics import AI, HUMAN, paired_bootstrap_eer


class ReportError(ValueError):
    """The reports cannot be compared (unreadable, or not on the same recordings)."""


def load_scores(path: Path) -> dict[str, tuple[str, float]]:
    """Map each recording of an evaluate report to (label, P(AI)), keyed by its path below the manifest."""
    try:
        report = json.loads(path.read_text())
        rows = report["scores"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ReportError(f"{path}: not a report of python -m src.evaluate ({exc})") from exc
    root = Path(report["data"]).parent if isinstance(report.get("data"), str) else None
    scores = {}
    for row in rows:
        recording = Path(row["path"])
        if root is not None and recording.is_relative_to(root):
            recording = recording.relative_to(root)
        scores[recording.as_posix()] = (row["label"], float(row["p_ai"]))
    return scores


def paired_scores(a: dict, b: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels and both P(AI) arrays over the recordings the two reports share; refuses any mismatch."""
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if only_a or only_b:
        example = (only_a or only_b)[0]
        raise ReportError(f"the reports cover different recordings: {len(only_a)} only in the first, "
                          f"{len(only_b)} only in the second (e.g. {example})")
    keys = sorted(a)
    disagree = [k for k in keys if a[k][0] != b[k][0]]
    if disagree:
        raise ReportError(f"{len(disagree)} recordings have different labels in the two reports (e.g. {disagree[0]})")
    labels = np.array([AI if a[k][0] == "ai" else HUMAN for k in keys])
    return labels, np.array([a[k][1] for k in keys]), np.array([b[k][1] for k in keys])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m src.compare_reports", description=__doc__.split("\n\n")[1],
                                     formatter_class=HelpFormatter)
    parser.add_argument("first", type=Path, help="report A (e.g. the shipped model's)")
    parser.add_argument("second", type=Path, help="report B (e.g. a candidate's), on the same recordings")
    parser.add_argument("--resamples", type=positive_int, default=2000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the resampling")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        labels, p_a, p_b = paired_scores(load_scores(args.first), load_scores(args.second))
        result = paired_bootstrap_eer(labels, p_a, p_b, args.resamples, args.seed)
    except (ReportError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"first": str(args.first), "second": str(args.second), **result}))
        return 0
    verdict = "cannot tell them apart" if result["low"] <= 0 <= result["high"] else (
        "the second is better" if result["high"] < 0 else "the first is better")
    print(f"{result['n_human']} human and {result['n_ai']} AI recordings in both reports")
    print(f"EER {100 * result['eer_a']:.1f} % ({args.first}) -> {100 * result['eer_b']:.1f} % ({args.second})")
    print(f"difference {100 * result['difference']:+.1f} points, 95 % interval {100 * result['low']:+.1f} to "
          f"{100 * result['high']:+.1f} ({result['resamples']} paired resamples): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
