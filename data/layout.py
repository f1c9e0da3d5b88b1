"""The data tree: a training set at <root> and a hold-out set at <root>/validation_set,
each with ai_* and human_* folders for the full recordings, converted copies and 3-s clips."""

from __future__ import annotations

import os
from pathlib import Path

CLASSES = ("ai", "human")
STAGES = ("full", "converted", "split")


def set_roots(root: str | os.PathLike) -> list[Path]:
    """The training set's folder and the validation set's folder."""
    return [Path(root), Path(root) / "validation_set"]


def all_dirs(root: str | os.PathLike) -> list[Path]:
    """Every folder of the tree, training set first."""
    return [base / f"{cls}_{stage}" for base in set_roots(root) for cls in CLASSES for stage in STAGES]
