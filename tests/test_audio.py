"""src.audio: decoding to 16 kHz mono float32, 3-s framing, the 48 kbps mp3 codec and clear errors."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from src.audio import (
    CLIP_SAMPLES,
    SAMPLE_RATE,
    AudioError,
    decode_mp3_bytes,
    encode_mp3,
    fix_length,
    list_audio_files,
    load_audio,
    mp3_normalise,
    window_starts,
)
from tests.helpers import dominant_frequency, sine, write_audio


@pytest.mark.parametrize(
    ("ext", "rate", "channels", "subtype"),
    [
        (".wav", 8000, 1, None),
        (".wav", 44100, 2, "FLOAT"),
        (".flac", 44100, 1, None),
        (".flac", 8000, 2, None),
        (".ogg", 44100, 2, None),
        (".mp3", 44100, 2, None),
        (".mp3", 8000, 1, None),
    ],
)
def test_decodes_to_16k_mono_float32(tmp_path: Path, ext: str, rate: int, channels: int, subtype: str | None):
    seconds, freq, amplitude = 2.0, 440.0, 0.4
    tone = sine(seconds, rate, freq, amplitude)
    # Stereo: the tone on the left channel only, so the mono mix has half its amplitude.
    data = np.stack([tone, np.zeros_like(tone)], axis=1) if channels == 2 else tone
    path = write_audio(tmp_path / f"tone{ext}", data, rate, subtype)

    samples = load_audio(path)

    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(len(samples) - seconds * SAMPLE_RATE) <= 0.001 * seconds * SAMPLE_RATE
    assert dominant_frequency(samples, SAMPLE_RATE) == pytest.approx(freq, abs=2.0)
    expected_rms = amplitude / channels / np.sqrt(2)
    middle = samples[SAMPLE_RATE // 4: -SAMPLE_RATE // 4]
    assert np.sqrt(np.mean(middle**2)) == pytest.approx(expected_rms, rel=0.05)
    assert np.abs(samples).max() <= 1.0


def test_stereo_mix_is_the_channel_mean(tmp_path: Path):
    rng = np.random.default_rng(3)
    stereo = rng.uniform(-0.5, 0.5, size=(16000, 2)).astype(np.float32)
    path = write_audio(tmp_path / "stereo.wav", stereo, SAMPLE_RATE, "FLOAT")
    np.testing.assert_allclose(load_audio(path), stereo.mean(axis=1), atol=1e-7)


def test_resampling_keeps_a_tone_and_removes_content_above_8k(tmp_path: Path):
    rate = 44100
    audible, too_high = sine(1.0, rate, 1000.0, 0.3), sine(1.0, rate, 12000.0, 0.3)
    samples = load_audio(write_audio(tmp_path / "mix.wav", audible + too_high, rate, "FLOAT"))
    spectrum = np.abs(np.fft.rfft(samples))
    freqs = np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE)
    # 12 kHz must not fold back to 4 kHz (16 kHz - 12 kHz) at the new rate.
    alias = spectrum[np.abs(freqs - 4000) < 20].max()
    assert alias < 1e-3 * spectrum[np.abs(freqs - 1000) < 20].max()


@pytest.mark.parametrize(
    ("n_samples", "expected"),
    [
        (CLIP_SAMPLES - 1, []),
        (0, []),
        (CLIP_SAMPLES, [0]),
        (2 * CLIP_SAMPLES, [0, CLIP_SAMPLES]),
        (int(7.5 * SAMPLE_RATE), [0, CLIP_SAMPLES, int(4.5 * SAMPLE_RATE)]),
        (CLIP_SAMPLES + 1, [0, 1]),
    ],
)
def test_window_starts_examples(n_samples: int, expected: list[int]):
    assert window_starts(n_samples) == expected


@pytest.mark.parametrize("n_samples", [48000, 48001, 95999, 96000, 100000, 160000, 1234567])
def test_window_starts_cover_every_sample_back_to_back(n_samples: int):
    starts = window_starts(n_samples)
    covered = np.zeros(n_samples, dtype=bool)
    for start in starts:
        assert 0 <= start and start + CLIP_SAMPLES <= n_samples
        covered[start:start + CLIP_SAMPLES] = True
    assert covered.all()
    # Back to back from 0; only the last window may overlap its neighbour, and it ends at the end.
    assert starts[:-1] == list(range(0, CLIP_SAMPLES * (len(starts) - 1), CLIP_SAMPLES))
    assert starts[-1] + CLIP_SAMPLES == n_samples or n_samples % CLIP_SAMPLES == 0
    assert len(starts) == -(-n_samples // CLIP_SAMPLES)


def test_encode_mp3_is_48kbps_cbr_and_keeps_the_length():
    seconds = 10
    samples = sine(seconds, SAMPLE_RATE, 300.0, 0.3)
    data = encode_mp3(samples)
    # 48 kbps = 6000 bytes per second; a small header is allowed.
    assert len(data) / seconds == pytest.approx(6000, rel=0.03)
    info = sf.info(io.BytesIO(data))
    assert (info.format, info.samplerate, info.channels) == ("MP3", SAMPLE_RATE, 1)
    decoded = decode_mp3_bytes(data)
    assert len(decoded) == len(samples)
    # Lossy, but the same signal.
    assert np.corrcoef(decoded, samples)[0, 1] > 0.99


def test_encode_mp3_constant_bitrate_is_independent_of_content():
    rng = np.random.default_rng(0)
    quiet = sine(6, SAMPLE_RATE, 200.0, 0.01)
    noisy = rng.uniform(-0.9, 0.9, 6 * SAMPLE_RATE).astype(np.float32)
    assert abs(len(encode_mp3(quiet)) - len(encode_mp3(noisy))) <= 432  # two 216-byte frames


def test_mp3_normalise_keeps_the_length():
    samples = sine(3.3, SAMPLE_RATE)
    assert len(mp3_normalise(samples)) == len(samples)


def test_fix_length_pads_and_truncates():
    assert len(fix_length(np.ones(10, np.float32), 48000)) == 48000
    assert fix_length(np.ones(10, np.float32), 48000)[10:].max() == 0
    np.testing.assert_array_equal(fix_length(np.arange(50000, dtype=np.float32)), np.arange(48000))


def test_list_audio_files_is_recursive_sorted_and_audio_only(tmp_path: Path):
    for name in ["b.wav", "a/c.MP3", "a/b/d.flac", "e.ogg", "notes.txt", "a/.hidden.wav", "cover.jpg"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in list_audio_files(tmp_path)]
    assert found == ["a/b/d.flac", "a/c.MP3", "b.wav", "e.ogg"]
    assert list_audio_files(tmp_path / "missing") == []


def test_missing_file(tmp_path: Path):
    with pytest.raises(AudioError, match="no such file"):
        load_audio(tmp_path / "missing.wav")


def test_empty_file(tmp_path: Path):
    (tmp_path / "empty.mp3").write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty file \(0 bytes\)"):
        load_audio(tmp_path / "empty.mp3")


@pytest.mark.parametrize("name", ["random.mp3", "random.wav", "random.flac"])
def test_random_bytes_are_not_audio(tmp_path: Path, name: str):
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(5).bytes(3000))
    with pytest.raises(AudioError, match="not decodable"):
        load_audio(path)


def test_text_file_named_wav(tmp_path: Path):
    path = tmp_path / "notes.wav"
    path.write_text("these are my notes, not audio\n" * 20)
    with pytest.raises(AudioError, match="not decodable"):
        load_audio(path)


def test_directory(tmp_path: Path):
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    with pytest.raises(AudioError, match="is a directory"):
        load_audio(folder)


@pytest.mark.parametrize("bad_value", [np.nan, np.inf])
def test_non_finite_samples(tmp_path: Path, bad_value: float):
    samples = sine(1.0, SAMPLE_RATE)
    samples[100] = bad_value
    path = write_audio(tmp_path / "bad.wav", samples, SAMPLE_RATE, "FLOAT")
    with pytest.raises(AudioError, match="NaN or infinite"):
        load_audio(path)


def test_header_only_wav_has_no_samples(tmp_path: Path):
    path = write_audio(tmp_path / "nothing.wav", np.zeros(0, np.float32), SAMPLE_RATE)
    with pytest.raises(AudioError, match="no audio samples"):
        load_audio(path)


@pytest.mark.skipif(shutil.which("ffmpeg") is not None, reason="ffmpeg is installed here")
def test_m4a_without_ffmpeg_names_the_missing_program(tmp_path: Path):
    path = write_audio(tmp_path / "voice.wav", sine(1.0, SAMPLE_RATE), SAMPLE_RATE)
    m4a = path.rename(tmp_path / "voice.m4a")
    with pytest.raises(AudioError, match=r"\.m4a files need ffmpeg, which is not installed"):
        load_audio(m4a)


def test_silence_decodes_to_zeros(tmp_path: Path):
    # Decoding does not judge content; the detector refuses silence (see test_inference).
    path = write_audio(tmp_path / "silent.wav", np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)
    samples = load_audio(path)
    assert len(samples) == SAMPLE_RATE and not samples.any()
