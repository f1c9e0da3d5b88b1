"""The one inference engine behind `src.inference_CNN` and `src.inference_ViT`.

A file is decoded once, brought to 16 kHz mono, passed through the 48 kbps mp3 codec
the training clips went through, cut into 3-s windows (the last one aligned to the end,
see `src.audio.window_starts`) and scored in batches. A file that cannot be analysed
gets an `error` with the reason, never a verdict.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from src.audio import (
    CLIP_SAMPLES,
    CLIP_SECONDS,
    SAMPLE_RATE,
    AudioError,
    list_audio_files,
    load_audio,
    mp3_normalise,
    window_starts,
)
from src.checkpoint import CheckpointError, load_model
from src.features import features


class Detector:
    """A loaded model with its input contract and decision threshold."""

    def __init__(self, weights: str | os.PathLike, architecture: str | None = None, device: str = "auto",
                 batch_size: int = 64):
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.weights = str(weights)
        self.model, self.info = load_model(weights, architecture)
        if self.info.mp3_kbps not in (0, 48):
            raise CheckpointError(f"{weights}: mp3_kbps {self.info.mp3_kbps} unsupported (0 or 48)")
        self.model.to(self.device)
        self.batch_size = batch_size

    @property
    def description(self) -> dict:
        return {"architecture": self.info.architecture, "weights": self.weights, "threshold": self.info.threshold}

    @torch.inference_mode()
    def window_probabilities(self, samples: np.ndarray) -> tuple[list[int], np.ndarray]:
        """Start samples of the windows covering `samples` and each window's P(AI)."""
        starts = window_starts(len(samples))
        probabilities = []
        for i in range(0, len(starts), self.batch_size):
            batch = np.stack([samples[s:s + CLIP_SAMPLES] for s in starts[i:i + self.batch_size]])
            x = features(torch.from_numpy(batch).to(self.device), self.info.stats)
            probabilities.append(torch.softmax(self.model(x), dim=1)[:, 0].float().cpu().numpy())
        return starts, np.concatenate(probabilities) if probabilities else np.array([])

    def prepare(self, path: str | os.PathLike) -> np.ndarray:
        """Decode and normalise a file exactly as training clips were; raises AudioError."""
        samples = load_audio(path)
        seconds = len(samples) / SAMPLE_RATE
        if len(samples) < CLIP_SAMPLES:
            raise AudioError(f"too short: {seconds:.2f} s of audio, at least {CLIP_SECONDS} s needed")
        if not np.any(samples):
            raise AudioError("digital silence: every sample is zero, nothing to analyse")
        return mp3_normalise(samples) if self.info.mp3_kbps else samples

    def _prepare_or_error(self, path: str | os.PathLike) -> np.ndarray | AudioError:
        try:
            return self.prepare(path)
        except AudioError as exc:
            return exc

    def analyse(self, path: str | os.PathLike) -> dict:
        """Result for one file: the original's fields, the timeline and the model, or an error."""
        return self._result(path, self._prepare_or_error(path))

    def analyse_many(self, paths: Iterable[str | os.PathLike], prefetch: int = 2) -> Iterator[dict]:
        """Results in order; the next files are decoded in a background thread while one is scored."""
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending: deque = deque()
            for path in paths:
                pending.append((path, pool.submit(self._prepare_or_error, path)))
                if len(pending) > prefetch:
                    done, future = pending.popleft()
                    yield self._result(done, future.result())
            while pending:
                done, future = pending.popleft()
                yield self._result(done, future.result())

    def _result(self, path: str | os.PathLike, samples: np.ndarray | AudioError) -> dict:
        name = str(path)
        if isinstance(samples, AudioError):
            return {"name": name, "error": str(samples)}
        starts, p_ai = self.window_probabilities(samples)
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
            "duration_s": round(len(samples) / SAMPLE_RATE, 3),
            "windows": [
                {"start": round(s / SAMPLE_RATE, 3), "end": round((s + CLIP_SAMPLES) / SAMPLE_RATE, 3),
                 "ai_probability": p}
                for s, p in zip(starts, window_ai, strict=True)
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
