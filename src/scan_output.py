"""Streaming scan output: one result per line, flushed as it is scored, resumable.

A scan writes JSON lines or CSV to stdout or to a file, one record per file, in input order,
each line flushed as soon as the file is scored. A run killed at any moment leaves every
finished record plus at most one torn last line; `load_previous` drops that line, keeps the
records whose file is unchanged (same name, size and mtime) and rewrites the output without the
others, so that `--resume` appends only what is missing.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from src.atomic import open_line_stream, write_text_atomic

CSV_FIELDS = ["name", "Percent_AI", "Percent_Human", "Prediction", "mean_ai_probability", "duration_s",
              "n_windows", "error", "size_bytes", "mtime"]
_NUMBERS = {"Percent_AI": float, "Percent_Human": float, "mean_ai_probability": float, "duration_s": float,
            "n_windows": int, "size_bytes": int, "mtime": float}


class OutputError(Exception):
    """An output file that cannot be written or resumed; the message says why."""


def file_stamp(path: str | os.PathLike) -> dict:
    """Size and modification time that tell a resumed scan whether a file changed since it was scored."""
    try:
        stat = os.stat(path)
    except OSError:
        return {"size_bytes": None, "mtime": None}
    return {"size_bytes": stat.st_size, "mtime": stat.st_mtime}


def csv_row(result: dict) -> dict:
    row = {key: result.get(key, "") for key in CSV_FIELDS}
    if "windows" in result:  # a record read back from CSV has its count but no windows
        row["n_windows"] = len(result["windows"])
    for key in ("size_bytes", "mtime"):
        row[key] = "" if row[key] is None else row[key]
    return row


def record(result: dict, fmt: str) -> str:
    """One result as a line of JSON lines or CSV (no header)."""
    if fmt == "jsonl":
        return json.dumps(result) + "\n"
    buffer = io.StringIO()
    csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n").writerow(csv_row(result))
    return buffer.getvalue()


def csv_header() -> str:
    return ",".join(CSV_FIELDS) + "\n"


def render(results: list[dict], fmt: str) -> str:
    """Results as text in one of the output formats (json: one object, or a list for several)."""
    if fmt == "json":
        return json.dumps(results[0] if len(results) == 1 else results, indent=2) + "\n"
    header = csv_header() if fmt == "csv" else ""
    return header + "".join(record(r, fmt) for r in results)


def _from_csv(row: dict) -> dict:
    result = {}
    for key, value in row.items():
        if value in ("", None):
            continue
        result[key] = _NUMBERS[key](value) if key in _NUMBERS else value
    return result


def parse(text: str, fmt: str, source: str = "output") -> tuple[list[dict], int]:
    """Records of a JSON-lines or CSV output, and how many lines could not be read (torn or corrupt)."""
    if fmt == "jsonl":
        results, bad = [], 0
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                results.append(json.loads(line))
            except json.JSONDecodeError:
                bad += 1
        return results, bad
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return [], 0
    if rows[0] != CSV_FIELDS:
        raise OutputError(f"{source}: its CSV header is not this tool's ({','.join(rows[0])[:80]}...)")
    good = [dict(zip(CSV_FIELDS, row, strict=True)) for row in rows[1:] if len(row) == len(CSV_FIELDS)]
    return [_from_csv(row) for row in good], len(rows) - 1 - len(good)


def unchanged(result: dict) -> bool:
    """Whether the file behind a previous result still has the size and mtime it had when scored."""
    stamp = file_stamp(result["name"])
    return stamp["size_bytes"] == result.get("size_bytes") and stamp["mtime"] == result.get("mtime")


def load_previous(path: str | os.PathLike, fmt: str, rewrite: bool = True) -> list[dict]:
    """The still-valid records of an earlier run's output, which is rewritten to hold exactly those.

    Drops a torn last line, unreadable lines, and records of files that changed or vanished since;
    a file is kept as it is when nothing was dropped, or when `rewrite` is false.
    """
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_bytes().decode("utf-8", "surrogateescape")
    torn = bool(text) and not text.endswith("\n")
    if torn:  # killed mid-line: drop the partial record
        text = text[:text.rfind("\n") + 1]
    results, bad = parse(text, fmt, str(path))
    kept = [r for r in results if "name" in r and unchanged(r)]
    if rewrite and (torn or bad or len(kept) != len(results)):
        print(f"note: {path}: keeping {len(kept)} earlier result(s); dropped {bad} unreadable line(s) and "
              f"{len(results) - len(kept)} result(s) of changed or missing files", file=sys.stderr)
        write_text_atomic(path, render(kept, fmt) if kept or fmt == "csv" else "")
    return kept


class ResultStream:
    """Writes results one line at a time, flushed, to a file (new or appended) or to stdout."""

    def __init__(self, path: str | os.PathLike | None, fmt: str, append: bool = False):
        self.fmt = fmt
        self.path = path
        if path is None:
            sys.stdout.reconfigure(errors="surrogateescape")  # a name that is not UTF-8 is printed as its bytes
            self.handle: TextIO = sys.stdout
            needs_header = True
        else:
            needs_header = not (append and Path(path).exists() and Path(path).stat().st_size > 0)
            self.handle = open_line_stream(path, append)
        if fmt == "csv" and needs_header:
            self._write(csv_header())

    def _write(self, text: str) -> None:
        try:
            self.handle.write(text)
            self.handle.flush()
        except OSError as exc:
            raise OutputError(f"cannot write {self.path or 'stdout'}: {exc.strerror or exc}") from exc

    def write(self, result: dict) -> None:
        self._write(record(result, self.fmt))

    def close(self) -> None:
        if self.handle is sys.stdout:
            return
        try:
            self.handle.flush()
            os.fsync(self.handle.fileno())
        except OSError as exc:
            if exc.errno != errno.EINVAL:  # EINVAL: a device or pipe that cannot be synced
                raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        finally:
            try:
                self.handle.close()
            except OSError:
                pass  # the error was reported above; what could not be written is lost either way


def read_output(path: str | os.PathLike, fmt: str) -> Iterator[dict]:
    """Every record of an output file (for merging ranks and building reports)."""
    text = Path(path).read_bytes().decode("utf-8", "surrogateescape")
    yield from parse(text, fmt, str(path))[0]


def rank_path(output: str | os.PathLike, rank: int) -> Path:
    """Where rank r of a torchrun scan writes: scan.jsonl -> scan.rank<r>.jsonl."""
    output = Path(output)
    return output.with_name(f"{output.stem}.rank{rank}{output.suffix}")


def merge(output: str | os.PathLike, parts: list[Path], fmt: str, order: list[str], earlier: list[dict]) -> list[dict]:
    """Join rank outputs (and an earlier run's kept records) into `output`, in input order; remove the parts.

    A file scored twice keeps its newest record. Returns the merged records.
    """
    by_name = {r["name"]: r for r in earlier}
    for part in parts:
        if part.exists():
            by_name.update((r["name"], r) for r in read_output(part, fmt))
    position = {name: i for i, name in enumerate(order)}
    merged = sorted(by_name.values(), key=lambda r: position.get(r["name"], len(position)))
    write_text_atomic(output, render(merged, fmt) if merged or fmt == "csv" else "")
    for part in parts:
        part.unlink(missing_ok=True)
    return merged
