"""Peak memory of a process together with its child processes (the inference command's decoders).

Measured as PSS (proportional set size: pages shared between the processes, such as the libraries
a forked decoder shares with its parent, are split between them, not counted twice), read from
/proc; where there is no /proc (not Linux) the functions return 0.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


def parents() -> dict[int, int]:
    """pid -> parent pid of every process on the machine, from /proc (empty without /proc)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            found[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # the process ended while being read
    return found


def children(pid: int) -> set[int]:
    """The direct child processes of `pid`."""
    return {child for child, parent in parents().items() if parent == pid}


def process_tree_pss_mb(pid: int) -> float:
    """Proportional set size of a process and its descendants (shared pages split between them), in MB."""
    everyone, tree, total = parents(), {pid}, 0.0
    while grown := {child for child, parent in everyone.items() if parent in tree} - tree:
        tree |= grown
    for member in tree:
        try:
            for line in Path(f"/proc/{member}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            continue
    return total


class PeakMemory:
    """`with PeakMemory() as peak: ...` samples this process's tree every `interval` s; then `peak.mb`.
    Reading PSS walks the page tables of each process, so a sampled run is slower than an unsampled one."""

    def __init__(self, interval: float = 0.1, enabled: bool = True):
        self.interval, self.mb, self.enabled = interval, 0.0, enabled
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.mb = max(self.mb, process_tree_pss_mb(os.getpid()))
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self._stop.set()
            self._thread.join()
            self.mb = max(self.mb, process_tree_pss_mb(os.getpid()))
