"""Check that trivial properties do not tell the classes apart: `python -m data.check_shortcuts --help`.

For every recording of a manifest (as made by data.build_training_set) it measures
properties a detector could cheat with: duration, level, peak, bandwidth (99% energy
roll-off), silence share and digital-zero share, after the same 48 kbps mp3
normalisation the models see. A classifier trained on those alone (gradient-boosted
trees, fitted on the training split, scored on the validation split) should be near
chance: ROC AUC near 0.5. Each property is also scored alone.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data.check_shortcuts", description=__doc__.split("\n\n")[1],
                                     formatter_class=HelpFormatter)
    parser.add_argument("--manifest", default="data/manifest.csv", help="manifest written by build_training_set")
    parser.add_argument("--workers", type=int, default=2, help="parallel processes")
    parser.add_argument("--report", help="also write the results as JSON here")
    args = parser.parse_args(argv)
    manifest = Path(args.manifest)
    rows = list(csv.DictReader(open(manifest, newline="")))
    with Pool(args.workers) as pool:
        values = list(tqdm(pool.imap(measure, [str(manifest.parent / r["path"]) for r in rows], chunksize=8),
                           total=len(rows), desc="measuring", unit="file"))
    x = np.array(values)
    y = np.array([r["label"] == "ai" for r in rows])
    train = np.array([r["split"] == "train" for r in rows])
    model = HistGradientBoostingClassifier(max_iter=200, random_state=0).fit(x[train], y[train])
    result = {"all_features_auc": float(roc_auc_score(y[~train], model.predict_proba(x[~train])[:, 1]))}
    for i, name in enumerate(FEATURES):
        single = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(x[train][:, [i]], y[train])
        result[f"{name}_auc"] = float(roc_auc_score(y[~train], single.predict_proba(x[~train][:, [i]])[:, 1]))
        result[f"{name}_median_human_ai"] = [float(np.median(x[~y][:, i])), float(np.median(x[y][:, i]))]
    print(json.dumps(result, indent=1))
    if args.report:
        write_text_atomic(args.report, json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
