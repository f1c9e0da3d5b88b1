"""One measurement per process, so each starts cold and its peak memory is its own.

`python -m benchmarks.measure TASK ...` prints one JSON object; `benchmarks.run` calls it.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from benchmarks.memory import PeakMemory
from src.audio import mp3_normalise_blocks, stream_audio, stream_windows
from src.augment import Augmenter
from src.checkpoint import load_model
from src.dataset import ClipDataset, labelled_clips
from src.features import N_FRAMES, N_FREQ, Stats, features
from src.inference import DEFAULT_BATCH_SIZE, Detector
from src.model import build_model
from src.train import train_one_epoch


def infer(args: argparse.Namespace) -> dict:
    """End to end: decode, normalise, window, features, model, results."""
    started = time.perf_counter()
    detector = Detector(args.weights, args.arch, "cpu", args.batch_size, args.precision, args.engine,
                        threads=args.threads)
    loaded = time.perf_counter()
    with PeakMemory(enabled=args.memory) as peak:  # sampling slows the run: speed is measured without it
        results = list(detector.analyse_many(args.paths))
    finished = time.perf_counter()
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        raise SystemExit(f"benchmark audio failed to decode: {errors[0]}")
    audio = sum(r["duration_s"] for r in results)
    return {"audio_s": audio, "engine_s": finished - loaded, "load_s": loaded - started,
            "precision": detector.precision, "engine": detector.engine,
            "tree_peak_mb": peak.mb if args.memory else None}


def model_speed(args: argparse.Namespace) -> dict:
    """Windows per second through the model alone (the engine the commands would use), on ready-made
    spectrograms."""
    detector = Detector(args.weights, args.arch, "cpu", precision=args.precision, engine=args.engine,
                        threads=args.threads)
    speeds = {}
    for batch in (1, 64):
        db = torch.rand(batch, N_FREQ, N_FRAMES) * -80.0
        inputs = db.numpy() if detector.engine == "onnx" else \
            detector.info.stats.normalise(db).unsqueeze(1).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16,
                                                    enabled=detector.precision == "bf16"):
            detector.model(inputs)
            count, started = 0, time.perf_counter()
            while time.perf_counter() - started < args.seconds:
                detector.model(inputs)
                count += batch
        speeds[f"batch{batch}"] = count / (time.perf_counter() - started)
    return speeds


def train_speed(args: argparse.Namespace) -> dict:
    """Training windows per second (augmented, as `src.train` runs), and the data loader's rate alone."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    root = Path(args.root)
    items = labelled_clips(root / "ai_split", root / "human_split")[: args.clips]
    dataset = ClipDataset(items, Stats(-50.0, 15.0), Augmenter(0.5))
    loader = DataLoader(dataset, batch_size=32, shuffle=True, num_workers=args.workers)
    started = time.perf_counter()
    for _ in loader:
        pass
    data_rate = len(items) / (time.perf_counter() - started)
    _, info = load_model(args.weights, args.arch)
    model = build_model(args.arch, info.config)  # untrained, shaped like the shipped model
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    started = time.perf_counter()
    train_one_epoch(model, loader, optimizer, torch.device("cpu"), 0, 1, False, bf16=args.precision == "bf16")
    return {"train_windows_per_s": len(items) / (time.perf_counter() - started), "data_windows_per_s": data_rate}


def profile(args: argparse.Namespace) -> dict:
    """Seconds per stage for one file, run one after the other on one thread."""
    torch.set_num_threads(1)
    detector = Detector(args.weights, args.arch, "cpu", args.batch_size, args.precision, threads=1)
    times = {}

    def timed(name, work):
        started = time.perf_counter()
        result = work()
        times[name] = time.perf_counter() - started
        return result

    blocks = timed("decode + resample", lambda: list(stream_audio(args.paths[0])))
    if detector.info.mp3_kbps:  # models trained on lossless clips skip it
        blocks = timed("mp3 normalise", lambda: list(mp3_normalise_blocks(blocks)))
    windows = timed("framing", lambda: np.stack([w for _, w in stream_windows(blocks)]))
    step = detector.batch_size
    timed("spectrogram", lambda: [features(torch.from_numpy(windows[i:i + step]), detector.info.stats)
                                  for i in range(0, len(windows), step)])
    timed("features + model", lambda: detector.probabilities(windows))
    times["model"] = times.pop("features + model") - times["spectrogram"]
    return times


def original(args: argparse.Namespace) -> dict:
    """The original Ai-SPY path over the files, warm: imports, model load and a first file not counted."""
    from benchmarks.original import p_ai_like_original

    model = load_model(args.weights, "cnn")[0].eval()  # as the original: not fused, all cores
    p_ai_like_original(args.paths[0], model)
    started = time.perf_counter()
    windows = sum(len(p_ai_like_original(path, model)) for path in args.paths)
    return {"audio_s": sum(sf.info(path).duration for path in args.paths), "wall_s": time.perf_counter() - started,
            "windows": windows}


def cpu(args: argparse.Namespace) -> dict:
    """What this process's PyTorch uses (the parent may have set AVX2-only limits for its children)."""
    from benchmarks.run import cpu_features

    return {"cpu": cpu_features()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("task", choices=["infer", "model", "train", "profile", "cpu", "original"])
    parser.add_argument("paths", nargs="*")
    parser.add_argument("--arch", default="cnn")
    parser.add_argument("--weights")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--root")
    parser.add_argument("--clips", type=int, default=128)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--memory", action="store_true", help="infer: sample the peak memory of the process tree")
    args = parser.parse_args()
    task = {"infer": infer, "model": model_speed, "train": train_speed, "profile": profile, "cpu": cpu,
            "original": original}[args.task]
    result = task(args)
    result["peak_mb"] = result.pop("tree_peak_mb", None) or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


if __name__ == "__main__":
    main()
