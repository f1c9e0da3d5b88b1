"""Atomic file writes: write to a temporary name beside the target, then rename.

A reader never sees a half-written file, and a run killed mid-write leaves only a
temporary file named `.<name>.<pid>.partial`, which `remove_stale_partials` cleans up.
The one exception is `open_line_stream`, for scan results written and flushed line by line.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

_PARTIAL = re.compile(r"^\..+\.(\d+)\.partial$")


def partial_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.partial")


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` so that the file appears whole or not at all."""
    write_chunks_atomic(path, [data])


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """UTF-8; file names that are not UTF-8 (surrogate escapes) are written back as their original bytes."""
    write_bytes_atomic(path, text.encode("utf-8", "surrogateescape"))


def append_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Append by rewriting the whole file atomically (log files stay small)."""
    path = Path(path)
    old = path.read_bytes() if path.exists() else b""
    write_bytes_atomic(path, old + text.encode("utf-8", "surrogateescape"))


def write_chunks_atomic(path: str | os.PathLike, chunks: Iterable[bytes | str]) -> None:
    """Write the chunks (bytes, or text as in `write_text_atomic`) to `path` so that the file appears whole
    or not at all; the chunks are streamed to the temporary file, so the whole text is never held at once."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path)
    try:
        with open(tmp, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk.encode("utf-8", "surrogateescape") if isinstance(chunk, str) else chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def open_line_stream(path: str | os.PathLike, append: bool = False) -> TextIO:
    """A text file written one whole line at a time, each flushed by the caller: the one writer that is not
    atomic, for scan results that must survive a kill. A kill leaves whole lines and at most a torn last one,
    which the reader drops (`src.scan_output.load_previous`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "a" if append else "w", encoding="utf-8", errors="surrogateescape")


def _pid_alive(pid: int) -> bool:
    """Whether process `pid` still runs; a killed process not yet reaped (a zombie) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # Linux: the state letter follows the parenthesised command name
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def _remove_if_stale(path: Path) -> bool:
    """Delete `path` when it is a temporary file of a process that no longer runs."""
    match = _PARTIAL.match(path.name)
    if match is None or _pid_alive(int(match.group(1))):
        return False
    path.unlink(missing_ok=True)
    return True


def remove_stale_partials(folder: str | os.PathLike) -> int:
    """Delete temporary files left under `folder` by processes that no longer run."""
    return sum(_remove_if_stale(Path(d, n)) for d, _, names in os.walk(folder) for n in names)


def remove_stale_partials_of(targets: Iterable[str | os.PathLike]) -> int:
    """Delete the temporary files that dead processes left while writing these files."""
    return sum(_remove_if_stale(tmp) for target in map(Path, targets)
               for tmp in target.parent.glob(f".{glob.escape(target.name)}.*.partial"))
