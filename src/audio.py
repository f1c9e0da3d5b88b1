"""Audio decoding, resampling, framing and the 48 kbps mp3 normalisation.

Everything the toolkit reads goes through `load_audio`, so training, statistics and
inference see exactly the same signal: mono float32 at 16 kHz.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import lameenc
import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 16000
CLIP_SECONDS = 3
CLIP_SAMPLES = SAMPLE_RATE * CLIP_SECONDS
MP3_BITRATE_KBPS = 48
# Below this a "sample rate" is a corrupt header, not audio: 3 s at 1 Hz would resample to 13 hours.
MIN_SAMPLE_RATE = 4000

# libsndfile maps compression_level 0..1 onto the MPEG-2 layer III bitrate table
# (8..160 kbps at 16 kHz); 0.75 selects 48 kbps constant bitrate.
_MP3_COMPRESSION_48K = 0.75

# In-memory normalisation: LAME quality 7. MP3_CODEC_DELAY: the samples LAME's encoder + decoder
# delay adds (576 + 529) at 16 kHz where no gapless header removes them (lameenc writes none;
# libsndfile none under 40 kbps).
_LAME_FAST_QUALITY = 7
MP3_CODEC_DELAY = 1105

# Decoding reads this many seconds at a time, so memory does not grow with file length.
BLOCK_SECONDS = 10
_SHORT_READ_SECONDS = 2

# Extensions scanned in folders. soundfile decodes the first group in-process;
# the second is streamed through an ffmpeg process.
SOUNDFILE_EXTENSIONS = {".mp3", ".wav", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".au"}
FFMPEG_EXTENSIONS = {".m4a", ".aac", ".opus", ".wma", ".mp4", ".webm", ".mkv", ".mov", ".amr"}
AUDIO_EXTENSIONS = SOUNDFILE_EXTENSIONS | FFMPEG_EXTENSIONS


class AudioError(Exception):
    """A file that cannot be turned into analysable audio; the message says why."""


def is_audio_path(path: str | os.PathLike) -> bool:
    """True when the file name has an extension the toolkit decodes."""
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


def list_audio_files(folder: str | os.PathLike) -> list[Path]:
    """Audio files under `folder`, recursively, in a stable (sorted) order."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [Path(d, n) for d, _, names in os.walk(folder) for n in names if is_audio_path(n)]
    return sorted(p for p in found if not p.name.startswith("."))


def _checked(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise AudioError("broken symbolic link or symbolic link loop" if path.is_symlink() else "no such file")
    if path.is_dir():
        raise AudioError("is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError("empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise AudioError("permission denied: the file is not readable")
    return path


class _MonoResampler:
    """Averages channels, checks the samples and resamples to 16 kHz, block after block."""

    def __init__(self, sample_rate: int):
        self.stream = None if sample_rate == SAMPLE_RATE else soxr.ResampleStream(
            sample_rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")

    def __call__(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        if not np.isfinite(block).all():
            raise AudioError("contains NaN or infinite samples")
        if block.ndim == 2:  # a matrix-vector product averages channels ~15x faster than mean(axis=1)
            block = block @ np.full(block.shape[1], 1.0 / block.shape[1], dtype=np.float32)
        mono = np.ascontiguousarray(block, dtype=np.float32)
        if self.stream is not None:
            mono = self.stream.resample_chunk(mono, last=last)
        return np.clip(mono, -1.0, 1.0)


def _stream_with_soundfile(file: sf.SoundFile, block_seconds: float) -> Iterator[np.ndarray]:
    try:
        yield from _in_blocks(_decoded_pieces(file, block_seconds), int(block_seconds * SAMPLE_RATE))
    except sf.LibsndfileError as exc:
        reason = _libsndfile_reason(exc)
        raise AudioError(f"not decodable: not audio, or a corrupt or unsupported file ({reason})") from exc
    except (RuntimeError, ValueError, OSError) as exc:
        raise AudioError(f"not decodable audio ({exc})") from exc


def _decoded_pieces(file: sf.SoundFile, block_seconds: float) -> Iterator[np.ndarray]:
    """Mono 16 kHz pieces of an open file.

    Reads are short (2 s) where that is safe: soundfile holds the GIL while it decodes, and short
    reads let the scoring thread run in between (about 25% faster end to end). libsndfile's MPEG-2
    decoder (mp3 under 32 kHz) prints spurious bit-reservoir errors at read boundaries, so those
    files are read a block at a time. Not SoundFile.blocks: it trusts the header's length and, where
    a file holds less (a truncated mp3), leaves the rest of its buffer uninitialised.
    """
    resample = _MonoResampler(file.samplerate)
    seconds = min(block_seconds, _SHORT_READ_SECONDS if file.samplerate >= 32000 else block_seconds)
    frames = max(1, int(seconds * file.samplerate))
    while len(block := file.read(frames, dtype="float32", always_2d=True)):
        yield resample(block)
    yield resample(np.zeros((0, file.channels), np.float32), last=True)


def _in_blocks(pieces: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Join consecutive pieces into blocks of at least `size` samples (the last may be shorter)."""
    held: list[np.ndarray] = []
    count = 0
    for piece in pieces:
        held.append(piece)
        count += len(piece)
        if count >= size:
            yield np.concatenate(held)
            held, count = [], 0
    if count:
        yield np.concatenate(held)


def _stream_with_ffmpeg(path: Path, block_seconds: float, failure: str = "ffmpeg could not decode it"
                        ) -> Iterator[np.ndarray]:
    """ffmpeg decodes, downmixes and resamples; we read its float output in blocks."""
    if shutil.which("ffmpeg") is None:
        raise AudioError(f"{path.suffix or 'this'} files need ffmpeg, which is not installed "
                         "(apt-get install ffmpeg); mp3, wav, flac and ogg decode without it")
    command = ["ffmpeg", "-nostdin", "-v", "error", "-i", os.fsencode(path), "-f", "f32le", "-ac", "1",
               "-ar", str(SAMPLE_RATE), "-"]
    block_bytes = 4 * max(1, int(block_seconds * SAMPLE_RATE))
    with tempfile.TemporaryFile() as errors, subprocess.Popen(command, stdout=subprocess.PIPE,
                                                             stderr=errors) as process:
        resample = _MonoResampler(SAMPLE_RATE)
        while chunk := process.stdout.read(block_bytes):
            yield resample(np.frombuffer(chunk[: len(chunk) // 4 * 4], dtype="<f4"))
        if process.wait() != 0:
            errors.seek(0)
            message = re.sub(r" @ 0x[0-9a-f]+", "", errors.read().decode(errors="replace")).strip()[-200:]
            raise AudioError(f"{failure}: {message}")


def _libsndfile_reason(exc: Exception) -> str:
    reason = str(getattr(exc, "error_string", exc))
    # libsndfile says this of any file whose format it does not recognise; the file exists (checked).
    return "format not recognised" if reason.startswith("File does not exist") else reason


def stream_audio(path: str | os.PathLike, block_seconds: float = BLOCK_SECONDS) -> Iterator[np.ndarray]:
    """Decode a file block by block to mono float32 at 16 kHz; memory stays flat for any length.

    Raises AudioError (possibly after some blocks, for a file corrupt halfway) with the reason.
    """
    path = _checked(path)
    if path.suffix.lower() in FFMPEG_EXTENSIONS:
        yield from _stream_with_ffmpeg(path, block_seconds)
        return
    try:
        file = sf.SoundFile(os.fsencode(path))  # bytes: names need not be UTF-8
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        reason = f"not decodable: not audio, or a corrupt or unsupported file ({_libsndfile_reason(exc)})"
        if shutil.which("ffmpeg") is None:
            raise AudioError(reason) from exc
        yield from _stream_with_ffmpeg(path, block_seconds, failure=f"{reason}; ffmpeg failed too")
        return
    with file:
        if file.channels <= 0:
            raise AudioError(f"not decodable: the header claims {file.channels} channels")
        if file.samplerate < MIN_SAMPLE_RATE:
            raise AudioError(f"sample rate {file.samplerate} Hz is below {MIN_SAMPLE_RATE} Hz: "
                             "a corrupt header, not speech")
        yield from _stream_with_soundfile(file, block_seconds)


def load_audio(path: str | os.PathLike) -> np.ndarray:
    """Decode any supported file to mono float32 samples at 16 kHz."""
    samples = np.concatenate([np.zeros(0, np.float32), *stream_audio(path)])
    if samples.size == 0:
        raise AudioError("no audio samples")
    return samples


def encode_mp3(samples: np.ndarray) -> bytes:
    """Encode 16 kHz mono samples as a 48 kbps constant-bitrate mp3 file (with gapless header)."""
    buffer = io.BytesIO()
    sf.write(
        buffer,
        samples,
        SAMPLE_RATE,
        format="MP3",
        subtype="MPEG_LAYER_III",
        compression_level=_MP3_COMPRESSION_48K,
        bitrate_mode="CONSTANT",
    )
    return buffer.getvalue()


def encode_flac(samples: np.ndarray) -> bytes:
    """Encode 16 kHz mono samples as a 16-bit FLAC file (lossless but for the 16-bit rounding)."""
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(samples, -1.0, 1.0), SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def decode_mp3_bytes(data: bytes) -> np.ndarray:
    """Decode mp3 bytes back to mono float32 samples."""
    samples, _ = sf.read(io.BytesIO(data), dtype="float32")
    return samples


def mp3_normalise(samples: np.ndarray) -> np.ndarray:
    """Pass samples through the 48 kbps mp3 codec, as the training clips were.

    In memory with LAME's fast mode (quality 7, 6x faster than libsndfile's quality 2);
    the decoder output is shifted back by the codec delay, so sample i stays sample i.
    """
    if samples.size == 0:
        return samples.astype(np.float32)
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(MP3_BITRATE_KBPS)
    encoder.set_in_sample_rate(SAMPLE_RATE)
    encoder.set_channels(1)
    encoder.set_quality(_LAME_FAST_QUALITY)
    pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    decoded = decode_mp3_bytes(encoder.encode(pcm) + encoder.flush())
    return fix_length(decoded[MP3_CODEC_DELAY:].astype(np.float32), len(samples))


def mp3_normalise_blocks(blocks: Iterable[np.ndarray], margin: int = SAMPLE_RATE // 4) -> Iterator[np.ndarray]:
    """`mp3_normalise` over a stream of blocks: each block is coded with `margin` samples of its
    neighbours on both sides, which are dropped again, so block edges leave no codec artefacts."""
    before = np.zeros(0, np.float32)
    current = None
    for following in blocks:
        if current is not None:
            yield _normalise_between(before, current, following[:margin])
            before = np.concatenate([before, current])[-margin:]
        current = following
    if current is not None:
        yield _normalise_between(before, current, np.zeros(0, np.float32))


def _normalise_between(before: np.ndarray, block: np.ndarray, after: np.ndarray) -> np.ndarray:
    coded = mp3_normalise(np.concatenate([before, block, after]))
    return coded[len(before): len(before) + len(block)]


def window_starts(n_samples: int, window: int = CLIP_SAMPLES) -> list[int]:
    """Start offsets of the 3-s windows that cover a recording.

    Windows are back to back from the start; when a tail shorter than a window is
    left, one more window is aligned to the end of the recording (it overlaps the
    previous one), so every sample is analysed and no window is zero-padded.
    A recording shorter than one window gives no windows.
    """
    if n_samples < window:
        return []
    starts = list(range(0, n_samples - window + 1, window))
    if starts[-1] + window < n_samples:
        starts.append(n_samples - window)
    return starts


def stream_windows(blocks: Iterable[np.ndarray], window: int = CLIP_SAMPLES) -> Iterator[tuple[int, np.ndarray]]:
    """(start, samples) of the windows over a stream of blocks, placed exactly as `window_starts` places them."""
    pending = np.zeros(0, np.float32)  # samples after the last window given out
    position = 0  # where `pending` starts in the recording
    last = None
    for block in blocks:
        pending = np.concatenate([pending, block])
        while len(pending) >= window:
            last = pending[:window]
            yield position, last
            pending = pending[window:]
            position += window
    if len(pending) and last is not None:
        yield position + len(pending) - window, np.concatenate([last, pending])[-window:]


def fix_length(samples: np.ndarray, length: int = CLIP_SAMPLES) -> np.ndarray:
    """Truncate or zero-pad to exactly `length` samples (guards codec rounding)."""
    if len(samples) >= length:
        return samples[:length]
    return np.pad(samples, (0, length - len(samples)))
