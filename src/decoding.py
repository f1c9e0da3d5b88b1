"""Decoding on every core: files in, their 3-s windows out, in batches, from worker processes.

Each worker decodes one file at a time (decode, 16 kHz mono, the mp3 round trip, windows; see
`src.audio`) and sends its windows in batches; the model scores them as they come, so memory
stays flat for any file length while several files decode at once. Decoding was the slow half of
inference (make bench: 9 of the CNN's 13 CPU-seconds per hour of audio), and its libraries hold
Python's GIL part of the time, so threads could not use a second core for it; processes can.

Messages, all tagged with the file's index in the input: ("file", i, path), ("windows", i,
(starts, array)), ("end", i, sample count or AudioError), until every file is done; an exception
from the input itself is raised after the files before it. Workers are forked (Linux, macOS);
where fork is not available, or with `workers=0`, one thread decodes instead.
"""

from __future__ import annotations

import gc
import itertools
import multiprocessing
import os
import queue
import threading
from collections.abc import Iterable, Iterator
from multiprocessing.connection import wait

import numpy as np

from src.audio import (
    CLIP_SAMPLES,
    CLIP_SECONDS,
    SAMPLE_RATE,
    AudioError,
    mp3_normalise_blocks,
    stream_audio,
    stream_windows,
)

POLL_SECONDS = 0.2  # how often a blocked worker checks that its parent is still there


def samples(path: str | os.PathLike, mp3_kbps: int) -> Iterator[np.ndarray]:
    """The file's 16 kHz samples in blocks, normalised exactly as training clips were."""
    blocks = stream_audio(path)
    return mp3_normalise_blocks(blocks) if mp3_kbps else blocks


def file_messages(path: str | os.PathLike, mp3_kbps: int, batch_size: int) -> Iterator[tuple]:
    """("windows", (starts, array)) for each batch of the file's windows, then ("end", n_samples | AudioError)."""
    n_samples, audible = 0, False

    def counted(blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        nonlocal n_samples, audible
        for block in blocks:
            n_samples += len(block)
            audible = audible or bool(np.any(block))
            yield block

    starts, windows = [], []
    try:
        for start, window in stream_windows(counted(samples(path, mp3_kbps))):
            starts.append(start)
            windows.append(window)
            if len(windows) == batch_size:
                yield "windows", (starts, np.stack(windows))
                starts, windows = [], []
        if windows:
            yield "windows", (starts, np.stack(windows))
        if n_samples < CLIP_SAMPLES:
            raise AudioError(f"too short: {n_samples / SAMPLE_RATE:.2f} s of audio, at least {CLIP_SECONDS} s needed")
        if not audible:
            raise AudioError("digital silence: every sample is zero, nothing to analyse")
        yield "end", n_samples
    except AudioError as exc:
        yield "end", exc
    except Exception as exc:  # a decoder bug on one odd file must not end the whole batch
        yield "end", AudioError(f"unexpected {type(exc).__name__} while decoding: {exc} (please report this file)")


def _worker(tasks, send, mp3_kbps: int, batch_size: int, alive) -> None:
    """Decode (index, path) tasks until None; `send` each message, then ("done", -1, None)."""
    try:
        while (task := _get(tasks, alive)) is not None:
            index, path = task
            send(("file", index, path))  # before decoding starts, so a crash is blamed on the right file
            for kind, payload in file_messages(path, mp3_kbps, batch_size):
                send((kind, index, payload))
        send(("done", -1, None))
    except (SystemExit, BrokenPipeError):  # the reader has gone away
        return


def _get(source, alive):
    while True:
        try:
            return source.get(timeout=POLL_SECONDS)
        except queue.Empty:
            if not alive():
                raise SystemExit from None


def _put(target, item, alive) -> None:
    while True:
        try:
            return target.put(item, timeout=POLL_SECONDS)
        except queue.Full:
            if not alive():
                raise SystemExit from None


def _process_worker(tasks, writer, readers, *args) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    for reader in readers:  # inherited read ends: only the parent may hold them, so that a send blocked
        reader.close()  # on a full pipe fails once the parent is gone
    parent = os.getppid()
    _worker(tasks, writer.send, *args, lambda: os.getppid() == parent)


class Decoders:
    """`workers` decoding processes (or one thread) over `paths`; iterate for the messages.

    Each process sends on its own pipe, synchronously: at most one batch ahead, and nothing it
    sent is lost if it crashes."""

    def __init__(self, paths: Iterable[str | os.PathLike], mp3_kbps: int, batch_size: int, workers: int):
        self.processes = workers > 0 and "fork" in multiprocessing.get_all_start_methods()
        self.args = (mp3_kbps, batch_size)
        self.stop = threading.Event()
        self.failure: BaseException | None = None  # what ended the input early
        if self.processes:
            gc.freeze()  # the decoders' garbage collector then leaves the parent's objects (and their pages) alone
            self.context = multiprocessing.get_context("fork")
            self.tasks = self.context.Queue(workers)
            self.workers: dict = {}  # reader end of a worker's pipe -> its process
            for _ in range(workers):
                self._start_process()
        else:
            self.tasks, self.results = queue.Queue(1), queue.Queue(4)
            alive = lambda: not self.stop.is_set()  # noqa: E731
            send = lambda message: _put(self.results, message, alive)  # noqa: E731
            self.thread = threading.Thread(target=_worker, args=(self.tasks, send, *self.args, alive), daemon=True)
            self.thread.start()
        self.count = workers if self.processes else 1
        threading.Thread(target=self._feed, args=(paths,), daemon=True).start()

    def _start_process(self) -> None:
        reader, writer = self.context.Pipe(duplex=False)
        process = self.context.Process(target=_process_worker, daemon=True,
                                       args=(self.tasks, writer, [*self.workers, reader], *self.args))
        process.start()
        writer.close()  # the worker's copy is the only one: its pipe ends when the worker does
        self.workers[reader] = process

    def _feed(self, paths: Iterable) -> None:
        alive = lambda: not self.stop.is_set()  # noqa: E731
        tasks = zip(itertools.count(), paths)
        try:
            while True:
                try:
                    task = next(tasks)
                except StopIteration:
                    break
                except BaseException as exc:  # a failing path iterator: raised after the files before it
                    self.failure = exc
                    break
                _put(self.tasks, task, alive)
            for _ in range(self.count):
                _put(self.tasks, None, alive)
        except (SystemExit, ValueError, OSError):  # the reader has gone away (and closed the queue)
            return

    def __iter__(self) -> Iterator[tuple]:
        """("file" | "windows" | "end", index, payload) until every file is done; raises what ended the input."""
        try:
            yield from self._from_processes() if self.processes else self._from_thread()
            if self.failure is not None:
                raise self.failure
        finally:
            self.close()

    def _from_thread(self) -> Iterator[tuple]:
        while not self.stop.is_set():
            try:
                message = self.results.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
            if message[0] == "done":
                return
            yield message

    def _from_processes(self) -> Iterator[tuple]:
        decoding: dict = {}  # reader -> index of the file its worker is decoding
        finished = 0
        while finished < self.count and not self.stop.is_set():
            for reader in wait(list(self.workers), timeout=POLL_SECONDS):
                try:
                    kind, index, payload = reader.recv()
                except EOFError:  # the worker died: a crash in a C decoder on a hostile file
                    process = self.workers.pop(reader)
                    process.join()
                    reader.close()
                    if reader in decoding:
                        yield "end", decoding.pop(reader), AudioError(
                            f"the decoder crashed on this file (exit code {process.exitcode})")
                    self._start_process()
                    continue
                if kind == "done":
                    self.workers.pop(reader).join()
                    reader.close()
                    finished += 1
                    continue
                decoding[reader] = index
                if kind == "end":
                    del decoding[reader]
                yield kind, index, payload

    def close(self) -> None:
        self.stop.set()
        if not self.processes:
            self.thread.join(timeout=5)
            return
        for reader, process in self.workers.items():
            if process.is_alive():
                process.terminate()
            process.join(timeout=5)
            reader.close()
        self.workers.clear()
        gc.unfreeze()
        self.tasks.cancel_join_thread()
        self.tasks.close()
