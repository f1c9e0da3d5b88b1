"""Speed and memory benchmark: `python -m benchmarks.run` (or `make bench`).

Makes its own test audio (podcast-like mp3: a folder of short files, a one-minute and a
one-hour file), then measures, each in a fresh process: end-to-end inference speed of the
CNN and the ViT (audio seconds per wall second, decoding included), model-only speed at
batch 1 and 64, peak memory on the one-hour and the one-minute file, convert_and_divide
speed and training speed; and where the time of one file goes. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf
import torch

from benchmarks.corpus import write_mp3
from benchmarks.memory import process_tree_pss_mb
from benchmarks.original import ffmpeg_available
from src.cli import HelpFormatter, default_decoders, default_threads, usable_cores
from src.inference import resolve_precision
from src.onnx_engine import cached_onnx

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = {"cnn": ROOT / "pretrained_weights" / "CNN_Ai-SPY.pth", "vit": ROOT / "pretrained_weights" / "ViT_Ai-SPY.pth"}


# What an AVX2-only CPU without native bf16 (most laptops) runs: PyTorch's AVX2 kernels and oneDNN capped at
# AVX2, which also turns --precision auto into fp32. Set for the measured child processes by --simulate-avx2.
AVX2_ONLY = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16")


def cpu_features() -> str:
    """The CPU's vector and bf16 features, and which of them PyTorch uses in this process."""
    flags = set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    present = [flag for flag in CPU_FLAGS if flag in flags] or ["unknown (no /proc/cpuinfo)"]
    bf16 = resolve_precision("auto", torch.device("cpu")) == "bf16"
    return (f"CPU features: {', '.join(present)}; PyTorch kernels: {torch.backends.cpu.get_cpu_capability()}, "
            f"native bf16: {'yes' if bf16 else 'no'}")


def run_child(*args: str | Path) -> tuple[dict, float]:
    """Run `python -m ...args` in a fresh process; returns its last JSON line (if any) and wall seconds."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          env=os.environ)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"python -m {' '.join(map(str, args))} failed:\n{done.stderr[-2000:]}")
    lines = done.stdout.strip().splitlines()
    return (json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}), wall


def measure(task: str, *args: str | Path) -> dict:
    return run_child("benchmarks.measure", task, *args)[0]


def machine(threads: int | None, cpu_line: str) -> str:
    cpu = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    model_threads = f"{default_threads('onnx')} (ONNX Runtime), {default_threads()} (PyTorch)"
    return (f"{usable_cores()} cores ({cpu}), torch {torch.__version__}, Python {platform.python_version()}, "
            f"model threads {threads or model_threads}, "
            f"{default_decoders()} decoding processes. {cpu_line}"
            + (" (simulated with --simulate-avx2)" if os.environ.get("ONEDNN_MAX_CPU_ISA") else "")
            + ". ONNX Runtime picks its kernels from the CPU itself: --simulate-avx2 does not reach it")


def make_audio(folder: Path, long_minutes: float, short_files: int, corpus_minutes: float) -> dict:
    """The test audio: `short_files` files of 20 s and as many of one minute, a one-minute file, a long
    file, and a corpus of 90-s recordings for convert_and_divide."""
    short = [write_mp3(folder / "podcasts" / f"episode_{i:02d}.mp3", 20.0, seed=i) for i in range(short_files)]
    for i in range(short_files):
        write_mp3(folder / "minutes" / f"talk_{i:02d}.mp3", 60.0, seed=500 + i)
    corpus = [write_mp3(folder / "corpus" / f"recording_{i:03d}.mp3", 90.0, seed=1000 + i)
              for i in range(max(2, round(corpus_minutes * 60 / 90)))]
    return {"short": short, "corpus": corpus, "minutes": folder / "minutes",
            "minute": write_mp3(folder / "minute.mp3", 60.0, seed=100),
            "long": write_mp3(folder / "long.mp3", long_minutes * 60.0, seed=200)}


def peak_memory_mb(*args: str | Path) -> float:
    """Peak memory of `python -m ...args`: the PSS of its process tree, sampled every 0.1 s (which slows
    the run, so speed is measured in runs of its own); 0 where /proc is missing."""
    process = subprocess.Popen([sys.executable, "-m", *map(str, args)], cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=os.environ)
    peak = 0.0
    while process.poll() is None:
        peak = max(peak, process_tree_pss_mb(process.pid))
        time.sleep(0.1)
    if process.returncode != 0:
        raise SystemExit(f"python -m {' '.join(map(str, args))} failed (exit code {process.returncode})")
    return peak


def original_rows(audio: dict) -> list[str]:
    """The original Ai-SPY path against this project's commands: same files, same run. The original is
    timed warm (imports, model load and one file excluded); the commands from process start."""
    if not ffmpeg_available():
        return ["(the original Ai-SPY path was not timed: it needs ffmpeg, `apt-get install ffmpeg`)"]
    minutes = sorted(audio["minutes"].glob("*.mp3"))
    folder_audio = sum(sf.info(path).duration for path in minutes)
    long_audio = sf.info(audio["long"]).duration
    baseline = {}
    for name, paths in (("folder", minutes), ("long", [audio["long"]])):
        result = measure("original", *paths, "--weights", WEIGHTS["cnn"])
        baseline[name] = result["audio_s"] / result["wall_s"]
    rows = [f"| original Ai-SPY path (warm) | {baseline['folder']:.0f}x | 1 | {baseline['long']:.0f}x | 1 | |"]
    print(rows[-1], flush=True)
    for module in ("src.inference_CNN", "src.inference_ViT"):
        for engine in ("auto", "torch"):
            with tempfile.TemporaryDirectory(prefix="aispy-bench-out-") as out:
                options = ["--engine", engine, "--format", "csv", "--no-progress", "--output", Path(out) / "o.csv"]
                speed = {"folder": folder_audio / run_child(module, audio["minutes"], *options)[1],
                         "long": long_audio / run_child(module, audio["long"], *options)[1]}
                peak = peak_memory_mb(module, audio["long"], *options)
            flag = "" if engine == "auto" else " --engine torch"
            rows.append(f"| `python -m {module}{flag}` | {speed['folder']:.0f}x "
                        f"| {speed['folder'] / baseline['folder']:.1f}x | {speed['long']:.0f}x "
                        f"| {speed['long'] / baseline['long']:.1f}x | {peak:.0f} MB |")
            print(rows[-1], flush=True)
    return rows


def inference_rows(audio: dict, threads: int | None, precisions: list[str], native_bf16: bool) -> list[str]:
    rows = []
    variants = [("onnx", "fp32")] + [("torch", p) for p in precisions if p != "auto" or native_bf16]
    for arch in ("cnn", "vit"):
        for engine, precision in variants:
            common = ["--arch", arch, "--weights", WEIGHTS[arch], "--precision", precision,
                      "--threads", str(threads or default_threads(engine)), "--engine", engine]
            model = measure("model", *common)
            folder = measure("infer", *audio["short"], *common)
            long = measure("infer", audio["long"], *common)
            long["peak_mb"] = measure("infer", audio["long"], *common, "--memory")["peak_mb"]
            minute = measure("infer", audio["minute"], *common, "--memory")
            rows.append(
                f"| {arch.upper()} | {long['engine']} | {long['precision']} "
                f"| {folder['audio_s'] / folder['engine_s']:.0f}x "
                f"| {long['audio_s'] / long['engine_s']:.0f}x ({long['engine_s']:.1f} s for "
                f"{long['audio_s'] / 60:.0f} min) | {model['batch1']:.0f} | {model['batch64']:.0f} "
                f"| {long['peak_mb']:.0f} MB | {minute['peak_mb']:.0f} MB "
                f"({100 * (long['peak_mb'] / minute['peak_mb'] - 1):+.1f}%) | {long['load_s']:.1f} s |")
            print(rows[-1], flush=True)
    return rows


def convert_speed(audio: dict, tree: Path) -> tuple[float, float]:
    """convert_and_divide over the corpus (half per class), audio seconds per wall second."""
    for i, path in enumerate(audio["corpus"]):
        kind = "human" if i % 2 else "ai"
        (tree / f"{kind}_full").mkdir(parents=True, exist_ok=True)
        shutil.copy(path, tree / f"{kind}_full" / path.name)
    _, wall = run_child("data.convert_and_divide", "--root", tree, "--no-progress")
    seconds = 90.0 * len(audio["corpus"])
    return seconds / wall, seconds


def training_rows(tree: Path, clips: int, precision: str) -> list[str]:
    """Training as `src.train` runs it: torch's default threads (all cores), 0 to 2 loader processes."""
    rows = []
    threads = torch.get_num_threads()
    for arch in ("cnn", "vit"):
        for workers in (0, 1, 2):
            result = measure("train", "--arch", arch, "--weights", WEIGHTS[arch], "--root", tree, "--workers",
                             str(workers), "--precision", precision, "--threads", str(threads), "--clips", str(clips))
            rows.append(f"| {arch.upper()} | {workers} | {result['train_windows_per_s']:.1f} "
                        f"| {result['data_windows_per_s']:.1f} |")
            print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=HelpFormatter)
    parser.add_argument("--long-minutes", type=float, default=60.0, help="length of the long file")
    parser.add_argument("--short-files", type=int, default=30, help="number of 20-s files in the folder test")
    parser.add_argument("--corpus-minutes", type=float, default=30.0, help="audio for the convert_and_divide test")
    parser.add_argument("--threads", type=int, help="model threads (default: as the commands choose for each engine)")
    parser.add_argument("--precision", action="append", choices=["auto", "fp32", "bf16"],
                        help="precisions to measure (repeatable; default: auto and fp32)")
    parser.add_argument("--train-clips", type=int, default=256, help="clips per training-speed measurement")
    parser.add_argument("--output", help="also write the tables to this Markdown file")
    parser.add_argument("--simulate-avx2", action="store_true",
                        help="measure as on a CPU with AVX2 only and no native bf16 (PyTorch and oneDNN capped at "
                             "AVX2), whatever this CPU has")
    args = parser.parse_args(argv)
    if args.simulate_avx2:
        os.environ.update(AVX2_ONLY)  # read by the measured child processes at their start
    precisions = args.precision or ["auto", "fp32"]
    cpu_line = measure("cpu")["cpu"]
    native_bf16 = "native bf16: yes" in cpu_line
    for weights in WEIGHTS.values():
        cached_onnx(weights)  # the first run's ONNX export is not what is timed
    lines = [f"Machine: {machine(args.threads, cpu_line)}", ""]
    print(lines[0], flush=True)
    with tempfile.TemporaryDirectory(prefix="aispy-bench-") as tmp:
        started = time.perf_counter()
        audio = make_audio(Path(tmp), args.long_minutes, args.short_files, args.corpus_minutes)
        print(f"test audio written in {time.perf_counter() - started:.0f} s", flush=True)
        lines += [f"Against the original Ai-SPY path, same files, same run ({args.short_files} one-minute files "
                  f"and one {args.long_minutes:.0f}-minute file, 44.1 kHz stereo 128 kbps mp3; audio seconds per "
                  "wall second, commands timed from process start; peak memory: PSS of the command's processes):",
                  "", "| path | folder | vs original | long file | vs original | peak memory, long file |",
                  "|---|---|---|---|---|---|"]
        lines += original_rows(audio)
        lines += [""]
        lines += ["The engine alone (model loaded, decoding included; peak memory: PSS of the process and its "
                  "decoder processes):", "",
                  "| model | engine | precision | folder of 20-s mp3 | long mp3 | model win/s, batch 1 | batch 64 "
                  "| peak memory, long file | one-minute file | model load |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        lines += inference_rows(audio, args.threads, precisions, native_bf16)
        tree = Path(tmp) / "tree"
        speed, seconds = convert_speed(audio, tree)
        lines += ["", f"convert_and_divide: {speed:.0f}x real time ({seconds / 60:.0f} min of 44.1 kHz stereo mp3, "
                      f"all cores, process start-up included)", ""]
        print(lines[-2], flush=True)
        train_precision = "bf16" if native_bf16 else "fp32"
        lines += [f"| training | DataLoader workers | windows/s (augmented, {train_precision}) "
                  "| data loading alone, windows/s |",
                  "|---|---|---|---|"]
        lines += training_rows(tree, args.train_clips, train_precision)
        stages = measure("profile", audio["long"], "--arch", "cnn", "--weights", WEIGHTS["cnn"])
        stages.pop("peak_mb")
        total = sum(stages.values())
        lines += ["", "Where the CNN's time goes on the long file (one thread, stage after stage): " + ", ".join(
            f"{name} {seconds:.1f} s ({100 * seconds / total:.0f}%)" for name, seconds in stages.items()
            if name != "peak_mb")]
    text = "\n".join(lines)
    print("\n" + text)
    if args.output:
        Path(args.output).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
