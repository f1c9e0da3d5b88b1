"""How often are the confident verdicts right? `python -m src.score_bands --fit VALIDATION.json REPORT.json...`

Fits two cut-offs on the scores of one report of `python -m src.evaluate` (the validation pool):
from `high` up, at most --max-error of the recordings are human; below `low`, at most --max-error
are AI. Then prints, for every report given, how many recordings fall in each band and how many of
them belong to the other class. On the fitting report the error rates hold by construction; on a
report that chose nothing (the test pool) they are what a user should expect of a confident verdict.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from src.cli import HelpFormatter, positive_int, probability
from src.compare_reports import ReportError, load_scores
from src.metrics import AI, HUMAN


@dataclass
class Bands:
    low: float  # P(AI) below this: the human band (0 = empty)
    high: float  # P(AI) from this up: the AI band (inf = empty)


def labels_and_scores(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Labels (AI / HUMAN) and P(AI) of every recording of an evaluate report."""
    scores = load_scores(path)
    if not scores:
        raise ReportError(f"{path}: the report holds no scores")
    labels = np.array([AI if label == "ai" else HUMAN for label, _ in scores.values()])
    return labels, np.array([p for _, p in scores.values()])


def fit_bands(labels: np.ndarray, p_ai: np.ndarray, max_error: float, min_count: int) -> Bands:
    """The widest end bands (each of at least `min_count` recordings) whose share of the other class is at
    most `max_error`: the lowest `high` and the highest `low` that qualify."""
    high, low = math.inf, 0.0
    for cut in np.unique(p_ai):
        upper, lower = p_ai >= cut, p_ai < cut
        if upper.sum() >= min_count and np.mean(labels[upper] == HUMAN) <= max_error:
            high = min(high, float(cut))
        if lower.sum() >= min_count and np.mean(labels[lower] == AI) <= max_error:
            low = max(low, float(cut))
    if low > high:  # overlapping ends (only with a lenient --max-error): split at their middle
        low = high = (low + high) / 2
    return Bands(low, high)


def band_counts(labels: np.ndarray, p_ai: np.ndarray, bands: Bands) -> dict:
    """Recordings in each band, and how many of them belong to the other class."""
    ai_band, human_band = p_ai >= bands.high, p_ai < bands.low
    return {"recordings": len(labels),
            "ai_band": int(ai_band.sum()), "ai_band_human": int(np.sum(labels[ai_band] == HUMAN)),
            "human_band": int(human_band.sum()), "human_band_ai": int(np.sum(labels[human_band] == AI)),
            "between": int(np.sum(~ai_band & ~human_band))}


def describe_counts(name: str, counts: dict) -> str:
    def share(part: int, whole: int) -> str:
        return f"{100 * part / whole:.1f} %" if whole else "-"
    n = counts["recordings"]
    return (f"{name}: AI band {counts['ai_band']} recordings ({share(counts['ai_band'], n)}), "
            f"{share(counts['ai_band_human'], counts['ai_band'])} of them human; "
            f"human band {counts['human_band']} ({share(counts['human_band'], n)}), "
            f"{share(counts['human_band_ai'], counts['human_band'])} of them AI; "
            f"between {counts['between']} ({share(counts['between'], n)})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m src.score_bands", description=__doc__.split("\n\n")[1],
                                     formatter_class=HelpFormatter)
    parser.add_argument("reports", type=Path, nargs="+", help="reports to measure the bands on (e.g. the test pool's)")
    parser.add_argument("--fit", type=Path, required=True, metavar="REPORT",
                        help="report whose scores choose the cut-offs (the validation pool's)")
    parser.add_argument("--max-error", type=probability, default=0.1,
                        help="largest share of the other class allowed in each end band of the fitting report")
    parser.add_argument("--min-count", type=positive_int, default=20,
                        help="fewest recordings an end band of the fitting report may hold")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        bands = fit_bands(*labels_and_scores(args.fit), args.max_error, args.min_count)
        counts = {str(path): band_counts(*labels_and_scores(path), bands) for path in [args.fit, *args.reports]}
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        fitted = {key: (value if math.isfinite(value) else None) for key, value in asdict(bands).items()}
        print(json.dumps({"fit": str(args.fit), "max_error": args.max_error, **fitted, "reports": counts}))
        return 0
    low = f"P(AI) < {bands.low:.3f}" if bands.low > 0 else "empty"
    high = f"P(AI) >= {bands.high:.3f}" if math.isfinite(bands.high) else "empty"
    print(f"cut-offs fitted on {args.fit} (at most {100 * args.max_error:g} % of the other class in each end "
          f"band): human band {low}, AI band {high}")
    for name, result in counts.items():
        print(describe_counts(name, result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
