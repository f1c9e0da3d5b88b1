"""Compute the dataset's spectrogram statistics: `python getGlobalStats.py [--root data]`.

Writes <root>/global_stats.txt (`global_mean: ...` / `global_std: ...`), which the
training commands read by themselves.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from src.cli import HelpFormatter
from src.dataset import labelled_clips
from src.features import stats_path, write_stats
from src.stats import compute_stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python getGlobalStats.py",
        description="Exact mean and standard deviation of the dB spectrogram values (relative to each "
        "clip's maximum, 80 dB floor) over every clip in <root>/ai_split and <root>/human_split, "
        "streamed over all values. Written to <root>/global_stats.txt for training to pick up.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--root", default="data", help="root of the data tree")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="loader processes")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    root = Path(args.root)
    items = labelled_clips(root / "ai_split", root / "human_split")
    if not items:
        print(f"error: no clips in {root / 'ai_split'} or {root / 'human_split'}; "
              "run python -m data.convert_and_divide first", file=sys.stderr)
        return 2
    started = time.perf_counter()
    stats = compute_stats(items, workers=args.workers, progress=not args.no_progress)
    write_stats(stats_path(root), stats)
    print(f"Processing time: {time.perf_counter() - started:.1f} seconds ({len(items)} clips)")
    print(f"Global mean: {stats.mean}, Global std: {stats.std}")
    print(f"written to {stats_path(root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
