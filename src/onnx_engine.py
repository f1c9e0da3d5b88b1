"""The ONNX Runtime engine (`--engine onnx`): the same model, run by ONNX Runtime on the CPU.

A checkpoint is exported once (`src.export`, a few seconds) into a cache keyed by its sha256,
`~/.cache/ai-spy/onnx/` or `$AISPY_CACHE_DIR/onnx/`, and loaded from there afterwards. ONNX
Runtime runs the CNN 2.7-6x and the ViT about 2x faster than PyTorch's fp32 kernels (model alone,
batch 1, `make bench` and `make bench-avx2`), and computes the same P(AI) to within 1e-4 (tests/test_export.py).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from src.export import INPUT_NAME, export_onnx


def cache_dir() -> Path:
    """Where exported models are kept: $AISPY_CACHE_DIR, else ~/.cache/ai-spy."""
    return Path(os.environ.get("AISPY_CACHE_DIR") or Path.home() / ".cache" / "ai-spy")


def cached_onnx(weights: str | os.PathLike) -> Path:
    """The ONNX export of `weights`, made on first use."""
    path = cache_dir() / "onnx" / f"{hashlib.sha256(Path(weights).read_bytes()).hexdigest()}.onnx"
    if not path.exists():
        export_onnx(weights, path)
    return path


class OnnxModel:
    """P(AI) of dB spectrograms [N, 1025, 94] (as `src.features.log_power_spectrogram` makes them)."""

    def __init__(self, weights: str | os.PathLike, threads: int):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # leave idle cores to decoding
        self.session = onnxruntime.InferenceSession(str(cached_onnx(weights)), options,
                                                    providers=["CPUExecutionProvider"])

    def __call__(self, log_power_db: np.ndarray) -> np.ndarray:
        return self.session.run(None, {INPUT_NAME: np.ascontiguousarray(log_power_db, np.float32)})[0]
