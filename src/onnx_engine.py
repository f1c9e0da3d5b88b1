"""The ONNX Runtime engine (`--engine onnx`): the same model, run by ONNX Runtime on the CPU.

A checkpoint is exported once (`src.export`, a few seconds) into a cache keyed by its sha256,
`~/.cache/ai-spy/onnx/` or `$AISPY_CACHE_DIR/onnx/`, and loaded from there afterwards, with its
`ModelInfo` read from the export's metadata: once exported, scoring needs no PyTorch at all. ONNX
Runtime runs the CNN 2.7-6x and the ViT about 2x faster than PyTorch's fp32 kernels (model alone,
batch 1, `make bench` and `make bench-avx2`), and computes the same P(AI) to within 1e-4 (tests/test_export.py).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from src.contract import CheckpointError, ModelInfo

INPUT_NAME, OUTPUT_NAME = "log_power_db", "p_ai"


def cache_dir() -> Path:
    """Where exported models are kept: $AISPY_CACHE_DIR, else ~/.cache/ai-spy."""
    return Path(os.environ.get("AISPY_CACHE_DIR") or Path.home() / ".cache" / "ai-spy")


def cached_onnx(weights: str | os.PathLike) -> Path:
    """The ONNX export of `weights`, made on first use."""
    if not Path(weights).is_file():
        raise CheckpointError(f"weights file not found: {weights}")
    try:
        digest = hashlib.sha256(Path(weights).read_bytes()).hexdigest()
    except OSError as exc:
        raise CheckpointError(f"{weights}: cannot be read ({exc.strerror or exc})") from exc
    path = cache_dir() / "onnx" / f"{digest}.onnx"
    if not path.exists():
        from src.export import export_onnx  # PyTorch, only for the first use of a checkpoint

        export_onnx(weights, path)
    return path


def info_from_metadata(meta: dict[str, str]) -> ModelInfo:
    """The `ModelInfo` an export's metadata carries (see `src.export.metadata`)."""
    contract = json.loads(meta["input_contract"])
    try:
        trained_on = json.loads(meta.get("trained_on", "{}"))
    except ValueError:  # cut at 20,000 characters by the export
        trained_on = {}
    return ModelInfo(meta["architecture"], stats_mean=float(meta["stats_mean"]), stats_std=float(meta["stats_std"]),
                     sample_rate=int(contract["sample_rate"]), clip_seconds=int(contract["window_seconds"]),
                     labels=tuple(json.loads(meta["labels"])), threshold=float(meta["threshold"]),
                     mp3_kbps=int(contract["mp3_round_trip_kbps"]), trained_on=trained_on)


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
        self.info = info_from_metadata(self.session.get_modelmeta().custom_metadata_map)

    def __call__(self, log_power_db: np.ndarray) -> np.ndarray:
        return self.session.run(None, {INPUT_NAME: np.ascontiguousarray(log_power_db, np.float32)})[0]
