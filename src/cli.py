"""Shared command-line helpers."""

from __future__ import annotations

import argparse
import os


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows `(default: x)` only where there is a meaningful default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False, [], argparse.SUPPRESS):
            return action.help or ""
        return super()._get_help_string(action)


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """--device, --engine, --precision, --threads and --decoders, shared by every command that scores audio."""
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--engine", choices=["auto", "torch", "onnx"], default="auto",
                        help="what runs the model; auto = ONNX Runtime on a CPU (fp32; the model alone 2.7-6x "
                             "faster than PyTorch fp32 for the CNN, 2x for the ViT, same scores within 1e-4; the "
                             "first run exports the model into ~/.cache/ai-spy or $AISPY_CACHE_DIR), PyTorch on a "
                             "GPU or for bf16")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                        help="model arithmetic; auto = bf16 where the CPU computes it natively, else fp32, and fp32 on "
                             "a GPU (make bench on an AVX512-BF16 CPU: 1.3x faster end to end; validation P(AI) "
                             "within 0.021 of fp32, median 0.001)")
    parser.add_argument("--threads", type=positive_int,
                        help="CPU threads for the model; default: every core with ONNX Runtime (its threads sleep "
                             "when idle, so decoding gets the cores it needs), all but one with PyTorch")
    parser.add_argument("--decoders", type=non_negative_int, default=default_decoders(),
                        help="processes that decode the next files while the model scores (one per core, shared "
                             "between torchrun processes on one machine); 0 = one decoding thread in this process")


def usable_cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_threads(engine: str = "torch") -> int:
    """Model threads: every usable core for ONNX Runtime (idle threads sleep: on 2 cores 4-26 % faster than
    one thread, decoders busy), all but one for PyTorch (its threads spin); shared between the torchrun
    processes of one machine, like the decoders."""
    cores = max(1, usable_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return cores if engine == "onnx" else max(1, cores - 1)


def default_decoders() -> int:
    """One decoding process per core, the cores shared between the torchrun processes of one machine."""
    return max(1, usable_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    return _whole_number(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: an integer of at least 0."""
    return _whole_number(text, 0)


def probability(text: str) -> float:
    """argparse type: a number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1, got {value}")
    return value


def _whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
    return value
