"""GPU check: the CUDA paths that CI (CPU only) never runs, with their speed.

`python -m benchmarks.gpu [--output FILE]` on a machine with an NVIDIA GPU (about 5 minutes on an H200):

1. parity: each shipped model's window probabilities on the GPU (fp32 and bf16) against the CPU's
   PyTorch fp32 on the same files, and whether the verdicts agree;
2. inference speed: a folder of 20-s mp3 files and one long mp3, end to end (decoding included),
   and windows/s through `Detector.probabilities` (spectrogram and model on the GPU);
3. training: a small tree made by the real commands, trained for one epoch with `--device cuda --bf16`,
   resumed for a second, its checkpoint then scored on the CPU; and training windows/s in-process.

`--device cpu` runs the same steps on the CPU with small sizes, to try the script without a GPU.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from benchmarks.corpus import write_mp3
from benchmarks.run import ROOT, WEIGHTS
from src.audio import load_audio
from src.augment import Augmenter
from src.checkpoint import load_model
from src.dataset import ClipDataset, labelled_clips
from src.features import read_stats, stats_path
from src.inference import Detector
from src.model import build_model
from src.train import train_one_epoch

WINDOW = 48000


def command(*args: str | Path) -> None:
    """Run `python -m ...args` in the project root; stop with its output if it fails."""
    result = subprocess.run([sys.executable, "-m", *map(str, args)], cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"python -m {' '.join(map(str, args))} failed ({result.returncode}):\n"
                         f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}")


def synchronise(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def window_probabilities(detector: Detector, paths: list[Path]) -> list[np.ndarray]:
    results = list(detector.analyse_many(paths))
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        raise SystemExit(f"test audio failed to decode: {errors[0]}")
    return [np.array([w["ai_probability"] for w in r["windows"]]) for r in results]


def parity_rows(paths: list[Path], device: str) -> list[str]:
    """Largest |P(AI) difference| per window against the CPU's fp32, and verdicts that differ."""
    rows = []
    for arch, weights in WEIGHTS.items():
        reference = Detector(weights, arch, "cpu", precision="fp32", engine="torch")
        expected = window_probabilities(reference, paths)
        threshold = reference.info.threshold
        for precision in ("fp32", "bf16"):
            detector = Detector(weights, arch, device, batch_size=64, precision=precision, engine="torch")
            got = window_probabilities(detector, paths)
            largest = max(float(np.abs(a - b).max()) for a, b in zip(got, expected, strict=True))
            flips = sum(int(((a >= threshold) != (b >= threshold)).sum()) for a, b in zip(got, expected, strict=True))
            windows = sum(len(a) for a in expected)
            rows.append(f"| {arch.upper()} | {precision} | {largest:.2e} | {flips} of {windows} |")
            print(rows[-1], flush=True)
    return rows


def speed_rows(folder: list[Path], long_file: Path, device: str, seconds: float) -> list[str]:
    """Audio seconds per wall second end to end, and windows/s through the spectrogram and model."""
    rows = []
    windows = load_audio(long_file)
    windows = windows[: len(windows) // WINDOW * WINDOW].reshape(-1, WINDOW).astype(np.float32)
    for arch, weights in WEIGHTS.items():
        for precision in ("fp32", "bf16"):
            for batch in (8, 256):
                detector = Detector(weights, arch, device, batch_size=batch, precision=precision, engine="torch")
                detector.probabilities(windows[:batch])  # warm-up: kernels chosen, memory reserved
                synchronise(device)
                started, count = time.perf_counter(), 0
                while time.perf_counter() - started < seconds:
                    detector.probabilities(windows)
                    count += len(windows)
                synchronise(device)
                model_rate = count / (time.perf_counter() - started)
                rates = []
                for paths in (folder, [long_file]):
                    started = time.perf_counter()
                    audio = sum(r.get("duration_s", 0.0) for r in detector.analyse_many(paths))
                    rates.append(audio / (time.perf_counter() - started))
                rows.append(f"| {arch.upper()} | {precision} | {batch} | {model_rate:,.0f} | {rates[0]:.0f}x "
                            f"| {rates[1]:.0f}x |")
                print(rows[-1], flush=True)
    return rows


def make_tree(root: Path, recordings: int, seconds: float) -> None:
    """A data tree made by the real commands from mp3 test speech (classes by seed: speed, not learning)."""
    command("data.generate_dirs", "--root", root)
    folders = (("ai_full", recordings), ("human_full", recordings), ("validation_set/ai_full", 2),
               ("validation_set/human_full", 2))
    for k, (folder, count) in enumerate(folders):
        for i in range(count):
            write_mp3(root / folder / f"rec_{i:03d}.mp3", seconds, seed=1000 * k + i)
    command("data.convert_and_divide", "--root", root, "--codec", "flac")
    command("getGlobalStats", "--root", root)


def training_rows(root: Path, device: str, workers: int) -> list[str]:
    """Both training commands on the GPU (one epoch, then --resume to a second), each checkpoint scored on
    the CPU; then training windows/s in-process."""
    rows = []
    probe = sorted((root / "validation_set" / "human_split").rglob("*.flac"))[:1]
    for arch, module in (("cnn", "src.train_CNN"), ("vit", "src.train_vision_transformer")):
        output = root / f"{arch}.pth"
        flags = ("--root", root, "--device", device, "--bf16", "--batch-size", "32", "--workers", str(workers),
                 "--no-progress", "--output", output, "--log-dir", root / f"{arch}_logs")
        started = time.perf_counter()
        command(module, *flags, "--epochs", "1")
        command(module, *flags, "--epochs", "2", "--resume")
        took = time.perf_counter() - started
        state = torch.load(root / f"{arch}_last.pth", map_location="cpu", weights_only=False)
        on_cpu = window_probabilities(Detector(output, arch, "cpu", precision="fp32", engine="torch"), probe)
        rows.append(f"| {arch.upper()} | two epochs + resume, {took:.0f} s | last epoch {state['epoch'] + 1} "
                    f"| checkpoint scores on the CPU: {len(on_cpu[0])} windows, P(AI) {on_cpu[0].mean():.3f} |")
        print(rows[-1], flush=True)
    items = labelled_clips(root / "ai_split", root / "human_split")
    stats = read_stats(stats_path(root))
    for arch in ("cnn", "vit"):
        for precision in ("fp32", "bf16"):
            _, info = load_model(WEIGHTS[arch], arch)
            model = build_model(arch, info.config).to(device)
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
            loader = DataLoader(ClipDataset(items, stats, Augmenter(0.5)), batch_size=64, shuffle=True,
                                num_workers=workers, pin_memory=device.startswith("cuda"))
            started = time.perf_counter()
            train_one_epoch(model, loader, optimizer, torch.device(device), 0, 1, False, bf16=precision == "bf16")
            synchronise(device)
            rows.append(f"| {arch.upper()} | {precision}, {workers} loader processes | "
                        f"{len(items) / (time.perf_counter() - started):.0f} windows/s | {len(items)} clips |")
            print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu to try the script without a GPU")
    parser.add_argument("--files", type=int, default=20, help="20-s files in the folder test")
    parser.add_argument("--long-minutes", type=float, default=10.0, help="length of the long file")
    parser.add_argument("--recordings", type=int, default=40, help="60-s recordings per class in the training tree")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per model-speed measurement")
    parser.add_argument("--workers", type=int, default=8, help="DataLoader processes for training")
    parser.add_argument("--output", help="also write the tables to this Markdown file")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: no CUDA device here; use --device cpu to try the script on the CPU", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "CPU"
    lines = [f"Device: {name}, torch {torch.__version__}, Python {sys.version.split()[0]}", ""]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = [write_mp3(tmp / "folder" / f"file_{i:02d}.mp3", 20.0, seed=i) for i in range(args.files)]
        long_file = write_mp3(tmp / "long.mp3", args.long_minutes * 60.0, seed=99)
        lines += ["Parity against the CPU's PyTorch fp32 (shipped weights, the folder's windows):", "",
                  "| model | GPU precision | largest P(AI) difference | verdicts that differ |", "|---|---|---|---|",
                  *parity_rows(folder, args.device), ""]
        lines += [f"Inference ({args.files} files of 20 s; one {args.long_minutes:g}-minute file; 128 kbps stereo mp3; "
                  "audio seconds per wall second, decoding included):", "",
                  "| model | precision | batch | windows/s (spectrogram + model) | folder | long file |",
                  "|---|---|---|---|---|---|", *speed_rows(folder, long_file, args.device, args.seconds), ""]
        make_tree(tmp / "tree", args.recordings, 60.0)
        lines += ["Training:", "", "| model | run | result | notes |", "|---|---|---|---|",
                  *training_rows(tmp / "tree", args.device, args.workers)]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        Path(args.output).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
