"""Check that trivial properties do not tell the classes apart: `python -m data.check_shortcuts --help`.

For every recording of a manifest (as made by data.build_training_set or
data.build_public_corpus) it measures properties a detector could cheat with: duration,
level, peak, bandwidth (99% energy roll-off), silence share and digital-zero share, after
the same 48 kbps mp3 normalisation the models see, and the source file's sample rate
before resampling where the manifest records it. A classifier trained on those alone
(gradient-boosted trees, fitted on the training split, scored on a held-out split) should
be near chance: ROC AUC near 0.5. Each property is also scored alone. "Which source" is
checked too: within the training split, scoring each recording by the AI share of its
source repository should also be near chance (AUC 0.5 when every source is balanced), or
the model could learn "which page is this".
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections import defaultdict
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from src.atomic import write_text_atomic
from src.audio import SAMPLE_RATE, load_audio, mp3_normalise
from src.cli import HelpFormatter

FEATURES = ["duration_s", "rms_db", "peak_db", "rolloff99_hz", "silence_share", "zero_share"]


def measure(path: str) -> list[float]:
    """The shortcut features of one recording."""
    x = mp3_normalise(load_audio(path))
    frames = x[: len(x) // 400 * 400].reshape(-1, 400)
    frame_db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    power = np.abs(np.fft.rfft(frames * np.hanning(400), axis=1)) ** 2
    cumulative = np.cumsum(power.sum(axis=0))
    rolloff_bin = int(np.searchsorted(cumulative, 0.99 * cumulative[-1]))
    return [len(x) / SAMPLE_RATE, float(10 * np.log10(np.mean(x**2) + 1e-12)),
            float(20 * np.log10(np.abs(x).max() + 1e-12)), rolloff_bin * SAMPLE_RATE / 400,
            float(np.mean(frame_db < frame_db.max() - 40)), float(np.mean(np.abs(x) < 1 / 32768))]


def orig_rate(row: dict) -> float:
    """The sample rate of a recording's (first) source file, or NaN where the manifest has none."""
    value = (row.get("orig_sample_rate") or "").split(";")[0]
    return float(value) if value and float(value) > 0 else math.nan


def source_only_auc(sources: list[str], labels: np.ndarray) -> float:
    """AUC of scoring each recording by its source's AI share: 0.5 when every source is balanced."""
    share: dict[str, list[int]] = defaultdict(list)
    for source, label in zip(sources, labels, strict=True):
        share[source].append(int(label))
    return float(roc_auc_score(labels, [np.mean(share[s]) for s in sources]))


def auc_of(x_fit: np.ndarray, y_fit: np.ndarray, x_held: np.ndarray, y_held: np.ndarray, iterations: int) -> float:
    model = HistGradientBoostingClassifier(max_iter=iterations, random_state=0).fit(x_fit, y_fit)
    return float(roc_auc_score(y_held, model.predict_proba(x_held)[:, 1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data.check_shortcuts", description=__doc__.split("\n\n")[1],
                                     formatter_class=HelpFormatter)
    parser.add_argument("--manifest", default="data/manifest.csv", help="manifest written by the recipe")
    parser.add_argument("--split", action="append",
                        help="held-out split(s) to score on (repeatable; default: every split but train)")
    parser.add_argument("--workers", type=int, default=2, help="parallel processes")
    parser.add_argument("--report", help="also write the results as JSON here")
    args = parser.parse_args(argv)
    manifest = Path(args.manifest)
    rows = list(csv.DictReader(open(manifest, newline="")))
    with Pool(args.workers) as pool:
        values = list(tqdm(pool.imap(measure, [str(manifest.parent / r["path"]) for r in rows], chunksize=8),
                           total=len(rows), desc="measuring", unit="file"))
    names = FEATURES + (["orig_sample_rate"] if any("orig_sample_rate" in r for r in rows) else [])
    x = np.array([v + ([orig_rate(r)] if len(names) > len(FEATURES) else []) for v, r in zip(values, rows,
                                                                                               strict=True)])
    y = np.array([r["label"] == "ai" for r in rows])
    train = np.array([r["split"] == "train" for r in rows])
    result: dict = {}
    if "source" in rows[0]:
        result["train_source_only_auc"] = source_only_auc([r["source"] for r in rows if r["split"] == "train"],
                                                          y[train])
    for split in args.split or sorted({r["split"] for r in rows} - {"train"}):
        held = np.array([r["split"] == split for r in rows])
        if len(set(y[held])) < 2:
            continue
        entry = {"all_features_auc": auc_of(x[train], y[train], x[held], y[held], 200)}
        for i, name in enumerate(names):
            entry[f"{name}_auc"] = auc_of(x[train][:, [i]], y[train], x[held][:, [i]], y[held], 100)
            entry[f"{name}_median_human_ai"] = [float(np.nanmedian(x[held & ~y][:, i])),
                                                float(np.nanmedian(x[held & y][:, i]))]
        result[split] = entry
    print(json.dumps(result, indent=1))
    if args.report:
        write_text_atomic(args.report, json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
