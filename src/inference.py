"""The one inference engine behind `src.inference_CNN` and `src.inference_ViT`.

A file is decoded once, block by block (memory stays flat for any length), brought to
16 kHz mono, passed through the 48 kbps mp3 codec the training clips went through, cut
into 3-s windows (the last one aligned to the end, see `src.audio.window_starts`) and
scored in batches. A background thread decodes the next blocks and files while the model
scores, and windows of several short files share a batch. A file that cannot be analysed
gets an `error` with the reason, never a verdict.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from src.audio import (
    CLIP_SAMPLES,
    CLIP_SECONDS,
    SAMPLE_RATE,
    AudioError,
    list_audio_files,
    mp3_normalise_blocks,
    stream_audio,
    stream_windows,
)
from src.checkpoint import CheckpointError, load_model
from src.features import features
from src.model import for_inference

PRECISIONS = ("auto", "fp32", "bf16")


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' means bf16 where the hardware computes it natively (CPUs with AVX512-BF16 or AMX, recent GPUs)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        native = False
    return "bf16" if native else "fp32"


@dataclass
class _File:
    """What the decoding thread has sent about one file so far."""

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
                 batch_size: int = DEFAULT_BATCH_SIZE, precision: str = "auto"):
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.weights = str(weights)
        model, self.info = load_model(weights, architecture)
        if self.info.mp3_kbps not in (0, 48):
            raise CheckpointError(f"{weights}: mp3_kbps {self.info.mp3_kbps} unsupported (0 or 48)")
        self.model = for_inference(model).to(self.device)
        self.precision = resolve_precision(precision, self.device)
        self.batch_size = batch_size

    @property
    def description(self) -> dict:
        return {"architecture": self.info.architecture, "weights": self.weights, "threshold": self.info.threshold}

    @torch.inference_mode()
    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        """P(AI) of each 3-s window in [N, 48000], computed in batches."""
        scores = []
        for i in range(0, len(windows), self.batch_size):
            x = features(torch.from_numpy(windows[i:i + self.batch_size]).to(self.device), self.info.stats)
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
                logits = self.model(x)
            scores.append(torch.softmax(logits.float(), dim=1)[:, 0].cpu().numpy())
        return np.concatenate(scores) if scores else np.zeros(0, np.float32)

    def samples(self, path: str | os.PathLike) -> Iterator[np.ndarray]:
        """The file's 16 kHz samples in blocks, normalised exactly as training clips were."""
        blocks = stream_audio(path)
        return mp3_normalise_blocks(blocks) if self.info.mp3_kbps else blocks

    def analyse(self, path: str | os.PathLike) -> dict:
        """Result for one file: the original's fields, the timeline and the model, or an error."""
        return next(self.analyse_many([path]))

    def analyse_many(self, paths: Iterable[str | os.PathLike], prefetch: int = 2) -> Iterator[dict]:
        """Results in input order, while a background thread decodes up to `prefetch` batches ahead."""
        messages: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
        stop = threading.Event()
        thread = threading.Thread(target=self._decode_all, args=(paths, messages, stop), daemon=True)
        thread.start()
        files: list[_File | None] = []
        pending: list[tuple[_File, np.ndarray]] = []  # windows decoded but not scored yet
        next_result = 0
        try:
            while True:
                message = messages.get()
                if isinstance(message, BaseException):
                    raise message
                if message is not None:
                    self._receive(message, files, pending)
                if message is None or sum(len(w) for _, w in pending) >= self.batch_size or messages.empty():
                    self._score(pending)
                    pending.clear()
                    while next_result < len(files) and files[next_result].n_samples is not None:
                        yield self._result(files[next_result])
                        files[next_result] = None  # free its windows' scores
                        next_result += 1
                if message is None:
                    return
        finally:
            stop.set()

    @staticmethod
    def _receive(message: tuple, files: list[_File], pending: list) -> None:
        kind, payload = message
        if kind == "file":
            files.append(_File(payload))
        elif kind == "windows":
            starts, windows = payload
            files[-1].starts.extend(starts)
            pending.append((files[-1], windows))
        else:  # "end": the sample count, or the AudioError that ended the file
            files[-1].error = payload if isinstance(payload, AudioError) else None
            files[-1].n_samples = payload if isinstance(payload, int) else 0

    def _score(self, pending: list[tuple[_File, np.ndarray]]) -> None:
        if not pending:
            return
        scores = self.probabilities(np.concatenate([w for _, w in pending]))
        offset = 0
        for file, windows in pending:
            file.probabilities.append(scores[offset:offset + len(windows)])
            offset += len(windows)

    def _decode_all(self, paths: Iterable, messages: queue.Queue, stop: threading.Event) -> None:
        """Decoding thread: sends ('file', path), ('windows', (starts, array)) ..., ('end', n | AudioError)."""

        def send(message) -> None:
            while not stop.is_set():
                try:
                    messages.put(message, timeout=0.1)
                    return
                except queue.Full:
                    continue
            raise SystemExit  # the consumer has gone away

        try:
            for path in paths:
                send(("file", path))
                try:
                    send(("end", self._decode_one(path, send)))
                except AudioError as exc:
                    send(("end", exc))
                except Exception as exc:  # a decoder bug on one odd file must not end the whole batch
                    send(("end", AudioError(f"unexpected {type(exc).__name__} while decoding: {exc} "
                                            "(please report this file)")))
            send(None)
        except SystemExit:
            return
        except BaseException as exc:  # e.g. KeyboardInterrupt, or a failing path iterator: the consumer raises it
            send(exc)

    def _decode_one(self, path: str | os.PathLike, send) -> int:
        n_samples, audible = 0, False

        def counted(blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
            nonlocal n_samples, audible
            for block in blocks:
                n_samples += len(block)
                audible = audible or bool(np.any(block))
                yield block

        starts, windows = [], []
        for start, window in stream_windows(counted(self.samples(path))):
            starts.append(start)
            windows.append(window)
            if len(windows) == self.batch_size:
                send(("windows", (starts, np.stack(windows))))
                starts, windows = [], []
        if windows:
            send(("windows", (starts, np.stack(windows))))
        if n_samples < CLIP_SAMPLES:
            raise AudioError(f"too short: {n_samples / SAMPLE_RATE:.2f} s of audio, at least {CLIP_SECONDS} s needed")
        if not audible:
            raise AudioError("digital silence: every sample is zero, nothing to analyse")
        return n_samples

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
