"""Audio decoding, resampling, framing and the 48 kbps mp3 normalisation.

Everything the toolkit reads goes through `load_audio`, so training, statistics and
inference see exactly the same signal: mono float32 at 16 kHz.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

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

# Extensions scanned in folders. soundfile decodes the first group in-process;
# the second needs ffmpeg through pydub.
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


def _decode_with_soundfile(path: Path) -> tuple[np.ndarray, int]:
    data, sr = sf.read(os.fsencode(path), dtype="float32", always_2d=True)  # bytes: names need not be UTF-8
    return data, sr


def _decode_with_ffmpeg(path: Path) -> tuple[np.ndarray, int]:
    if shutil.which("ffmpeg") is None:
        raise AudioError(
            f"{path.suffix or 'this'} files need ffmpeg, which is not installed "
            "(apt-get install ffmpeg); mp3, wav, flac and ogg decode without it"
        )
    from pydub import AudioSegment  # imported here: pydub is only the ffmpeg fallback

    try:
        segment = AudioSegment.from_file(str(path))
        samples = np.array(segment.get_array_of_samples(), dtype=np.float32)
    except Exception as exc:  # pydub raises bare exceptions with ffmpeg's stderr, or on a ragged last sample
        raise AudioError(f"ffmpeg could not decode it: {str(exc).strip()[-200:]}") from exc
    samples /= float(1 << (8 * segment.sample_width - 1))
    return samples.reshape(-1, segment.channels), segment.frame_rate


def decode(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Decode a file to float32 samples shaped (frames, channels) and its sample rate."""
    path = Path(path)
    if not path.exists():
        raise AudioError("broken symbolic link or symbolic link loop" if path.is_symlink() else "no such file")
    if path.is_dir():
        raise AudioError("is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError("empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise AudioError("permission denied: the file is not readable")
    if path.suffix.lower() in FFMPEG_EXTENSIONS:
        return _decode_with_ffmpeg(path)
    try:
        return _decode_with_soundfile(path)
    except sf.LibsndfileError as exc:
        if shutil.which("ffmpeg") is not None:
            return _decode_with_ffmpeg(path)
        raise AudioError(f"not decodable: not audio, or a corrupt or unsupported file ({exc.error_string})") from exc
    except (RuntimeError, ValueError, OSError) as exc:
        raise AudioError(f"not decodable audio ({exc})") from exc


def to_mono_16k(data: np.ndarray, sample_rate: int) -> np.ndarray:
    """Average the channels and resample to 16 kHz; rejects NaN or infinite samples."""
    if data.size == 0:
        raise AudioError("no audio samples")
    if not np.isfinite(data).all():
        raise AudioError("contains NaN or infinite samples")
    if sample_rate < MIN_SAMPLE_RATE:
        raise AudioError(f"sample rate {sample_rate} Hz is below {MIN_SAMPLE_RATE} Hz: a corrupt header, not speech")
    mono = data.mean(axis=1) if data.ndim == 2 else data
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    if sample_rate != SAMPLE_RATE:
        mono = soxr.resample(mono, sample_rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    return np.clip(mono, -1.0, 1.0)


def encode_mp3(samples: np.ndarray) -> bytes:
    """Encode 16 kHz mono samples as a 48 kbps constant-bitrate mp3."""
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


def decode_mp3_bytes(data: bytes) -> np.ndarray:
    """Decode mp3 bytes written by `encode_mp3` back to 16 kHz mono samples."""
    samples, _ = sf.read(io.BytesIO(data), dtype="float32")
    return samples


def mp3_normalise(samples: np.ndarray) -> np.ndarray:
    """Pass samples through the 48 kbps mp3 codec, as the training clips were."""
    return decode_mp3_bytes(encode_mp3(samples))[: len(samples)]


def load_audio(path: str | os.PathLike) -> np.ndarray:
    """Decode any supported file to mono float32 samples at 16 kHz."""
    data, sample_rate = decode(path)
    return to_mono_16k(data, sample_rate)


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


def fix_length(samples: np.ndarray, length: int = CLIP_SAMPLES) -> np.ndarray:
    """Truncate or zero-pad to exactly `length` samples (guards codec rounding)."""
    if len(samples) >= length:
        return samples[:length]
    return np.pad(samples, (0, length - len(samples)))
