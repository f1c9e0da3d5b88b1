"""Atomic file writes: write to a temporary name beside the target, then rename.

A reader never sees a half-written file, and a run killed mid-write leaves only a
temporary file named `.<name>.<pid>.partial`, which `remove_stale_partials` cleans up.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_PARTIAL = re.compile(r"^\..+\.(\d+)\.partial$")


def partial_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.partial")


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` so that the file appears whole or not at all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path)
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def append_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Append by rewriting the whole file atomically (log files stay small)."""
    path = Path(path)
    old = path.read_bytes() if path.exists() else b""
    write_bytes_atomic(path, old + text.encode("utf-8"))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_partials(folder: str | os.PathLike) -> int:
    """Delete temporary files left under `folder` by processes that no longer run."""
    removed = 0
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            match = _PARTIAL.match(name)
            if match and not _pid_alive(int(match.group(1))):
                Path(dirpath, name).unlink(missing_ok=True)
                removed += 1
    return removed
