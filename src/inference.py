"""The one inference engine behind `src.inference_CNN` and `src.inference_ViT`.

A file is decoded once, block by block (memory stays flat for any length), brought to
16 kHz mono, passed through the 48 kbps mp3 codec where the training clips went through it
(the checkpoint's `mp3_kbps`; models trained on lossless clips skip it), cut
into 3-s windows (the last one aligned to the end, see `src.audio.window_starts`) and
scored in batches. Worker processes decode the next blocks and files on every core while the
model scores (`src.decoding`), and windows of several short files share a batch. On a CPU,
ONNX Runtime runs the model (`src.onnx_engine`) unless PyTorch is asked for. A file that cannot be analysed
gets an `error` with the reason, never a verdict.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from src.audio import (
    CLIP_SAMPLES,
    SAMPLE_RATE,
    AudioError,
    list_audio_files,
)
from src.cli import default_decoders, default_threads
from src.contract import CheckpointError, log_power_db
from src.decoding import Decoders
from src.distributed import resolve_device
from src.onnx_engine import OnnxModel

PRECISIONS = ("auto", "fp32", "bf16")
ENGINES = ("auto", "torch", "onnx")


def resolve_precision(precision: str, device: str) -> str:
    """'auto' means bf16 on CPUs that compute it natively (AVX512-BF16 or AMX), else fp32. On a GPU it means
    fp32: these models are too small for bf16 to pay there (benchmarks/latest-gpu.md: no faster on an H200,
    the ViT slower at batch 8), and fp32 keeps the scores closest to the CPU's."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    if str(device).startswith("cuda"):
        return "fp32"
    import torch

    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        native = False
    return "bf16" if native else "fp32"


def resolve_engine(engine: str, device: str, precision: str) -> str:
    """'auto' means ONNX Runtime on the CPU (fp32, faster than PyTorch's fp32 kernels) unless bf16 is asked
    for or onnxruntime is not installed; PyTorch on a GPU."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    on_cpu = str(device) == "cpu"
    if engine == "onnx" and not on_cpu:
        raise ValueError(f"the onnx engine runs on the CPU, not {device}; use --engine torch for a GPU")
    if engine == "onnx" and precision == "bf16":
        raise ValueError("the onnx engine computes in fp32; use --engine torch for --precision bf16")
    if engine != "auto":
        return engine
    usable = on_cpu and precision != "bf16" and importlib.util.find_spec("onnxruntime") is not None
    return "onnx" if usable else "torch"


@dataclass
class _File:
    """What the decoders have sent about one file so far."""

    path: str | os.PathLike
    starts: list[int] = field(default_factory=list)
    probabilities: list[np.ndarray] = field(default_factory=list)
    n_samples: int | None = None
    error: AudioError | None = None


# Windows per forward pass. Small batches cost nothing on a CPU (per-window speed is as good or better
# than at 64) and keep the conv-stem ViT's large fp32 activations from fragmenting the heap, which
# made peak memory grow with file length at 16 (benchmarks/run.py measures both).
DEFAULT_BATCH_SIZE = 8


class Detector:
    """A loaded model with its input contract and decision threshold."""

    def __init__(self, weights: str | os.PathLike, architecture: str | None = None, device: str = "auto",
                 batch_size: int = DEFAULT_BATCH_SIZE, precision: str = "auto", engine: str = "auto",
                 decoders: int | None = None, threads: int | None = None):
        self.device = resolve_device(str(device))
        self.weights = str(weights)
        self.engine = resolve_engine(engine, self.device, precision)
        self.threads = default_threads(self.engine) if threads is None else threads
        if self.engine == "onnx":  # no PyTorch once the export is cached
            self.model = OnnxModel(weights, self.threads)
            self.info = self.model.info
            if architecture is not None and self.info.architecture != architecture:
                raise CheckpointError(f"{weights}: holds a {self.info.architecture.upper()} model, "
                                      f"not a {architecture.upper()}")
            self.precision = "fp32"
        else:
            import torch

            from src.checkpoint import load_model
            from src.model import for_inference

            torch.set_num_threads(self.threads)
            model, self.info = load_model(weights, architecture)
            self.model = for_inference(model).to(self.device)
            self.precision = resolve_precision(precision, self.device)
        if self.info.mp3_kbps not in (0, 48):
            raise CheckpointError(f"{weights}: mp3_kbps {self.info.mp3_kbps} unsupported (0 or 48)")
        self.batch_size = batch_size
        self.decoders = default_decoders() if decoders is None else decoders  # processes; 0 = one thread

    @property
    def description(self) -> dict:
        return {"architecture": self.info.architecture, "weights": self.weights, "threshold": self.info.threshold}

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        """P(AI) of each 3-s window in [N, 48000], computed in batches."""
        scores = [self._score_batch(windows[i:i + self.batch_size]) for i in range(0, len(windows), self.batch_size)]
        return np.concatenate(scores) if scores else np.zeros(0, np.float32)

    def _score_batch(self, windows: np.ndarray) -> np.ndarray:
        if self.engine == "onnx":  # dB spectrograms in, P(AI) out: the normalisation is inside the model
            return self.model(log_power_db(windows))
        import torch

        from src.features import features

        with torch.inference_mode():
            x = features(torch.from_numpy(windows).to(self.device), self.info.stats)
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(self.device.split(":")[0], dtype=torch.bfloat16, enabled=self.precision == "bf16"):
                logits = self.model(x)
            return torch.softmax(logits.float(), dim=1)[:, 0].cpu().numpy()

    def analyse(self, path: str | os.PathLike) -> dict:
        """Result for one file: the original's fields, the timeline and the model, or an error."""
        return next(self.analyse_many([path]))

    def analyse_many(self, paths: Iterable[str | os.PathLike]) -> Iterator[dict]:
        """Results in input order, while `self.decoders` worker processes decode the next files
        (`src.decoding`) and windows of several short files share a batch."""
        decoders = Decoders(paths, self.info.mp3_kbps, self.batch_size, self.decoders)
        try:
            yield from self.results_from(decoders)
        finally:
            decoders.close()

    def results_from(self, messages: Iterable[tuple]) -> Iterator[dict]:
        """Results in input order from `src.decoding` messages. Windows are scored once the next result
        is complete or a batch is full, so windows of files that arrived meanwhile share a forward pass."""
        files: dict[int, _File] = {}
        pending: list[tuple[_File, np.ndarray]] = []  # windows decoded but not scored yet
        next_result = 0
        for kind, index, payload in messages:
            if kind == "file":
                files[index] = _File(payload)
            elif kind == "windows":
                files[index].starts.extend(payload[0])
                pending.append((files[index], payload[1]))
            else:  # "end": the sample count, or the AudioError that ended the file
                files[index].error = payload if isinstance(payload, AudioError) else None
                files[index].n_samples = payload if isinstance(payload, int) else 0
            next_done = next_result in files and files[next_result].n_samples is not None
            if next_done or sum(len(windows) for _, windows in pending) >= self.batch_size:
                self._score(pending)
                pending.clear()
            while next_result in files and files[next_result].n_samples is not None:
                yield self._result(files.pop(next_result))  # its windows' scores are freed
                next_result += 1
        self._score(pending)  # left only where a crashed decoder lost a file before announcing it
        for index in sorted(files):
            yield self._result(files[index])

    def _score(self, pending: list[tuple[_File, np.ndarray]]) -> None:
        if not pending:
            return
        scores = self.probabilities(np.concatenate([w for _, w in pending]))
        offset = 0
        for file, windows in pending:
            file.probabilities.append(scores[offset:offset + len(windows)])
            offset += len(windows)

    def _result(self, file: _File) -> dict:
        name = str(file.path)
        if file.error is not None:
            return {"name": name, "error": str(file.error)}
        p_ai = np.concatenate(file.probabilities)
        # Verdicts follow the reported (rounded) probabilities, so that a threshold fitted on reported
        # scores (src.evaluate --fit-threshold) gives the same verdicts here.
        window_ai = [round(float(p), 6) for p in p_ai]
        mean_ai = round(float(p_ai.mean()), 6)
        is_ai = np.array(window_ai) >= self.info.threshold
        percent_ai = round(100.0 * float(is_ai.mean()), 2)
        return {
            "name": name,
            "Percent_AI": percent_ai,
            "Percent_Human": round(100.0 - percent_ai, 2),
            "Prediction": "ai" if mean_ai >= self.info.threshold else "human",
            "mean_ai_probability": mean_ai,
            "duration_s": round(file.n_samples / SAMPLE_RATE, 3),
            "windows": [
                {"start": round(s / SAMPLE_RATE, 3), "end": round((s + CLIP_SAMPLES) / SAMPLE_RATE, 3),
                 "ai_probability": p}
                for s, p in zip(file.starts, window_ai, strict=True)
            ],
            "model": self.description,
        }


def find_inputs(paths: list[str]) -> tuple[list[Path], list[str]]:
    """Files to analyse from file and folder arguments (folders recursively, audio only).

    Returns (files, notes); a path that does not exist is kept so it gets an error result.
    """
    files, notes = [], []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = list_audio_files(path)
            if not found:
                notes.append(f"{raw}: no audio files found in this folder")
            files.extend(found)
        else:
            files.append(path)
    return files, notes
