"""Checkpoints that carry everything needed to use them, loaded without running code.

A checkpoint is a plain dict of tensors, numbers and strings saved with `torch.save`
and read back with `torch.load(weights_only=True)`, which refuses pickled code.
An original Ai-SPY CNN state_dict (`CNN_Ai-SPY.pth`) also loads, with the original's
normalisation statistics.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from src.atomic import write_bytes_atomic
from src.audio import CLIP_SECONDS, SAMPLE_RATE
from src.contract import LABELS, N_FRAMES, N_FREQ, CheckpointError, ModelInfo
from src.model import UNUSED_ORIGINAL_CNN_PREFIXES, build_model

FORMAT_VERSION = 1


def save_checkpoint(path: str | os.PathLike, model: nn.Module, info: ModelInfo, **extra) -> None:
    """Atomically save weights, their `ModelInfo` and any extra state (optimizer, epoch...)."""
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    payload = {
        "format_version": FORMAT_VERSION,
        "info": {**asdict(info), "input_shape": list(info.input_shape), "labels": list(info.labels)},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **extra,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_bytes_atomic(path, buffer.getvalue())


CHECKSUM_FILE = "SHA256SUMS"


def recorded_checksums(folder: Path) -> dict[str, str]:
    """File name -> sha256 from a folder's SHA256SUMS (`sha256sum` format), empty when there is none."""
    sums = folder / CHECKSUM_FILE
    if not sums.is_file():
        return {}
    pairs = (line.split(maxsplit=1) for line in sums.read_text().splitlines() if line.strip())
    return {name.strip().lstrip("*"): digest for digest, name in pairs}


def verify_checksum(path: Path) -> None:
    """Check a file against the SHA256SUMS beside it, when that file lists it (shipped weights)."""
    expected = recorded_checksums(path.parent)
    if path.name not in expected:
        return
    sums = path.parent / CHECKSUM_FILE
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    if actual != expected[path.name]:
        raise CheckpointError(f"{path}: checksum mismatch: {sums} records {expected[path.name]}, the file has "
                              f"{actual}; it is corrupt, truncated or was replaced")


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint file safely; pickled code is refused, not run, and shipped weights are checksummed."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    verify_checksum(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        blocked = re.search(r"GLOBAL (\S+)", str(exc))
        if blocked is None:  # not a pickle of anything: garbage or a truncated file
            raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (corrupt or not a checkpoint)") from exc
        raise CheckpointError(
            f"{path}: refused: the file holds pickled objects other than weights ({blocked.group(1)}), "
            "which could run code"
        ) from exc
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({exc or type(exc).__name__})") from exc


def _is_original_cnn(payload: object) -> bool:
    return isinstance(payload, dict) and "conv1.weight" in payload and "fc2.weight" in payload


def _check_contract(info: ModelInfo, path: Path) -> None:
    """Refuse a checkpoint made for another sample rate, clip length, input or label order."""
    expected = {"sample_rate": SAMPLE_RATE, "clip_seconds": CLIP_SECONDS,
                "input_shape": (1, N_FREQ, N_FRAMES), "labels": LABELS}
    for name, want in expected.items():
        got = getattr(info, name)
        if got != want:
            raise CheckpointError(f"{path}: {name} is {got}, this toolkit needs {want}")


def read_model_info(path: str | os.PathLike, architecture: str | None = None) -> ModelInfo:
    """What a checkpoint describes (architecture, input contract, threshold, ...), without building it."""
    return _info_and_weights(Path(path), architecture)[0]


def load_model(path: str | os.PathLike, architecture: str | None = None) -> tuple[nn.Module, ModelInfo]:
    """Build the model a checkpoint describes and load its weights strictly, in eval mode.

    `architecture`, when given, must match the checkpoint's.
    """
    path = Path(path)
    info, state = _info_and_weights(path, architecture)
    try:
        model = build_model(info.architecture, info.config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot build {info.architecture} with {info.config} ({exc})") from exc
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise CheckpointError(f"{path}: weights do not fit the {info.architecture} architecture ({detail})") from exc
    model.eval()
    return model, info


def _info_and_weights(path: Path, architecture: str | None) -> tuple[ModelInfo, dict]:
    payload = read_checkpoint(path)
    if _is_original_cnn(payload):
        info = ModelInfo("cnn", trained_on={"source": "original Ai-SPY CNN state_dict"})
        state = {k: v for k, v in payload.items() if not k.startswith(UNUSED_ORIGINAL_CNN_PREFIXES)}
    elif isinstance(payload, dict) and "state_dict" in payload and "info" in payload:
        raw = dict(payload["info"])
        raw["input_shape"] = tuple(raw.get("input_shape", ()))
        raw["labels"] = tuple(raw.get("labels", ()))
        try:
            info = ModelInfo(**raw)
        except TypeError as exc:
            raise CheckpointError(f"{path}: unrecognised checkpoint metadata ({exc})") from exc
        state = payload["state_dict"]
    else:
        raise CheckpointError(f"{path}: not a checkpoint of this toolkit nor an original Ai-SPY CNN state_dict")
    if architecture is not None and info.architecture != architecture:
        raise CheckpointError(f"{path}: holds a {info.architecture.upper()} model, not a {architecture.upper()}")
    _check_contract(info, path)
    return info, state


def check_threshold_storable(path: str | os.PathLike) -> dict:
    """The checkpoint's payload if it may store a threshold; else CheckpointError says why not."""
    if Path(path).name in recorded_checksums(Path(path).parent):
        raise CheckpointError(f"{path}: shipped weights are checksummed; copy the file elsewhere to change it")
    payload = read_checkpoint(path)
    if _is_original_cnn(payload) or "info" not in payload:
        raise CheckpointError(f"{path}: only this toolkit's checkpoints can store a threshold")
    return payload


def set_threshold(path: str | os.PathLike, threshold: float) -> None:
    """Store a new decision threshold (P(AI) at or above it = AI) in a checkpoint, atomically."""
    payload = check_threshold_storable(path)
    payload["info"]["threshold"] = float(threshold)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_bytes_atomic(path, buffer.getvalue())
