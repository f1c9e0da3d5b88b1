"""Peak memory of a long scan: `python -m benchmarks.scan_memory` (or `make bench-scan`).

Scans a folder of 2,000 and then 20,000 short recordings (hard links to a few distinct
3.5-s wav files, so the folder costs almost no disk) with the CNN command as a user runs it,
streaming JSON lines to --output and writing an HTML --report, each scan in a fresh process,
and prints each one's peak resident memory (from the kernel's accounting of the finished
child). Memory is flat when the 20,000-file scan peaks less than 10 % above the 2,000-file one.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from src.cli import HelpFormatter

ROOT = Path(__file__).resolve().parent.parent


def make_folder(folder: Path, count: int, distinct: int = 8) -> None:
    """`count` wav files of 3.5 s: hard links to `distinct` different noisy tones."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    sources = []
    for i in range(distinct):
        t = np.arange(int(3.5 * 16000)) / 16000
        tone = 0.3 * np.sin(2 * np.pi * (180 + 40 * i) * t) + 0.05 * rng.standard_normal(len(t))
        path = folder.parent / f"source_{i}.wav"
        sf.write(path, tone.astype(np.float32), 16000)
        sources.append(path)
    for n in range(count):
        os.link(sources[n % distinct], folder / f"clip_{n:05d}.wav")


def peak_scan(folder: Path, work: Path, extra: list[str]) -> tuple[float, float]:
    """Peak RSS (MiB) and wall seconds of one scan of `folder` in a fresh process."""
    command = [sys.executable, "-m", "src.inference_CNN", str(folder), "--output", str(work / "scan.jsonl"),
               "--report", str(work / "scan.html"), "--no-progress", *extra]
    started = time.perf_counter()
    with open(work / "stderr.txt", "wb") as stderr:
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"scan failed: {(work / 'stderr.txt').read_text()[-2000:]}")
    lines = sum(1 for _ in open(work / "scan.jsonl"))
    if lines != len(os.listdir(folder)):
        raise SystemExit(f"scan wrote {lines} results for {len(os.listdir(folder))} files")
    return usage.ru_maxrss / 1024, wall  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    parser.add_argument("--counts", type=int, nargs=2, default=[2000, 20000], help="the two folder sizes")
    parser.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16"])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for count in args.counts:
            work = Path(tmp) / str(count)
            make_folder(work / "inbox", count)
            peak, wall = peak_scan(work / "inbox", work, ["--precision", args.precision])
            rows.append((count, peak, wall))
            print(f"{count:,} files: peak {peak:.0f} MiB, {wall:.0f} s", file=sys.stderr)
    (small, small_peak, _), (large, large_peak, _) = rows
    growth = 100.0 * (large_peak - small_peak) / small_peak
    print("| files scanned (3.5 s each) | peak memory | wall time |\n|---|---|---|")
    for count, peak, wall in rows:
        print(f"| {count:,} | {peak:.0f} MiB | {wall:.0f} s |")
    print(f"\n{large:,} files vs {small:,}: peak memory {growth:+.1f} % "
          f"({'flat: under 10 %' if growth < 10 else 'NOT flat: 10 % or more'})")


if __name__ == "__main__":
    main()
