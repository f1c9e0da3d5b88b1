"""src.augment: each transform measured on signals whose answer is known, the Augmenter, and its use in ClipDataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from src.audio import CLIP_SAMPLES, SAMPLE_RATE
from src.augment import Augmenter, add_noise, coloured_noise, describe, recode, reverb, spec_augment, telephone
from src.dataset import ClipDataset
from src.features import N_FRAMES, N_FREQ, read_stats, stats_path
from src.metrics import AI, HUMAN
from tests.conftest import DataTree
from tests.helpers import dominant_frequency, sine, write_audio
from tests.synth import ai_like, human_like


def band_db(x: np.ndarray, low: float, high: float) -> float:
    """Energy (dB) of `x` between `low` and `high` Hz."""
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)
    return float(10 * np.log10(spectrum[(freqs >= low) & (freqs < high)].sum() + 1e-20))


def snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean((noisy - clean) ** 2)))


@pytest.fixture
def speechlike() -> np.ndarray:
    return ai_like(3.0, SAMPLE_RATE, np.random.default_rng(5))


def test_probability_zero_returns_the_waveform_and_spectrogram_unchanged(speechlike: np.ndarray):
    augmenter = Augmenter(0.0)
    before = speechlike.copy()
    rng = np.random.default_rng(0)
    for _ in range(20):
        assert np.array_equal(augmenter.waveform(speechlike, rng), before)
    spec = torch.randn(1, N_FREQ, N_FRAMES)
    assert all(torch.equal(augmenter.spectrogram(spec, rng), spec) for _ in range(20))
    assert describe(augmenter) == {"augment_prob": 0.0}
    assert describe(None) == {"augment_prob": 0.0}


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("length", [CLIP_SAMPLES, CLIP_SAMPLES - 1])
def test_probability_one_changes_the_waveform_within_range(seed: int, length: int):
    rng_signal = np.random.default_rng(100 + seed)
    x = (ai_like if seed % 2 else human_like)(4.0, SAMPLE_RATE, rng_signal)[:length]
    before = x.copy()
    out = Augmenter(1.0).waveform(x, np.random.default_rng(seed))
    assert np.array_equal(x, before)  # the input is not modified in place
    assert out.dtype == np.float32
    assert out.shape == (length,)
    assert np.isfinite(out).all()
    assert np.abs(out).max() <= 1.0
    assert not np.allclose(out, x, atol=1e-4)


def test_codec_probability_alone_applies_only_a_codec(speechlike: np.ndarray):
    # --codec-prob 1 --augment-prob 0: every clip goes through a lossy codec and nothing else.
    augmenter = Augmenter(0.0, codec_prob=1.0)
    for seed in range(6):
        out = augmenter.waveform(speechlike, np.random.default_rng(seed))
        assert out.shape == speechlike.shape and out.dtype == np.float32
        assert not np.array_equal(out, speechlike)
        assert np.corrcoef(out, speechlike)[0, 1] > 0.9  # same level and content: no gain, noise or reverb
        assert np.sqrt(np.mean(out**2)) == pytest.approx(np.sqrt(np.mean(speechlike**2)), rel=0.1)
    spec = torch.randn(1, N_FREQ, N_FRAMES)
    assert torch.equal(augmenter.spectrogram(spec, np.random.default_rng(0)), spec)
    assert describe(augmenter)["codec_prob"] == 1.0


def test_same_seed_same_augmentation_other_seed_other(speechlike: np.ndarray):
    augmenter = Augmenter(1.0)
    outputs = [augmenter.waveform(speechlike, np.random.default_rng(seed)) for seed in (1, 1, 2)]
    assert np.array_equal(outputs[0], outputs[1])
    assert not np.array_equal(outputs[0], outputs[2])
    spec = torch.randn(1, N_FREQ, N_FRAMES)
    first = [augmenter.spectrogram(spec, np.random.default_rng(s)) for s in range(6)]
    again = [augmenter.spectrogram(spec, np.random.default_rng(s)) for s in range(6)]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))


@pytest.mark.parametrize("snr", [0.0, 5.0, 12.5, 30.0])
@pytest.mark.parametrize("noise_kind", ["white", "coloured", "tone"])
def test_add_noise_reaches_the_requested_snr(snr: float, noise_kind: str, speechlike: np.ndarray):
    rng = np.random.default_rng(int(snr * 10))
    noise = {
        "white": 3.0 * rng.standard_normal(len(speechlike)),
        "coloured": coloured_noise(len(speechlike), rng),
        "tone": sine(3.0, SAMPLE_RATE, 3000.0, 0.01),
    }[noise_kind]
    noisy = add_noise(speechlike, noise, snr)
    assert noisy.shape == speechlike.shape
    assert snr_db(speechlike, noisy) == pytest.approx(snr, abs=0.5)


def test_reverb_keeps_length_and_peak_and_is_a_convolution(speechlike: np.ndarray):
    rng = np.random.default_rng(3)
    tail = np.exp(-np.arange(8000) / 1200) * rng.standard_normal(8000)
    tail /= np.abs(tail).max()
    impulse = np.r_[np.zeros(300), 1.0, 0.6 * tail]  # a silent pre-delay, then the direct path
    wet = reverb(speechlike, impulse)
    assert wet.shape == speechlike.shape
    assert np.abs(wet).max() == pytest.approx(np.abs(speechlike).max(), rel=1e-6)
    assert not np.allclose(wet, speechlike, atol=1e-3)
    # The direct path is at lag 0 (pre-delay dropped): the convolution with impulse[300:], rescaled.
    direct = np.convolve(speechlike, impulse[300:])[: len(speechlike)]
    assert np.allclose(wet, direct * np.abs(speechlike).max() / np.abs(direct).max(), atol=1e-5)
    # A bare delayed click changes nothing.
    assert np.allclose(reverb(speechlike, np.r_[np.zeros(50), 0.5]), speechlike, atol=1e-6)


@pytest.mark.parametrize("length", [2 * SAMPLE_RATE, 2 * SAMPLE_RATE + 1, 12345])
def test_telephone_removes_the_band_above_4_khz(length: int):
    noise = (0.1 * np.random.default_rng(length).standard_normal(length)).astype(np.float32)
    narrow = telephone(noise)
    assert narrow.dtype == np.float32
    assert narrow.shape == noise.shape
    assert band_db(noise, 4200, 8000) - band_db(narrow, 4200, 8000) > 30
    assert band_db(narrow, 200, 3500) == pytest.approx(band_db(noise, 200, 3500), abs=1.0)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("length", [CLIP_SAMPLES, 20001])
def test_recode_keeps_length_and_content(seed: int, length: int):
    x = sine(length / SAMPLE_RATE, SAMPLE_RATE, 440.0, 0.5)
    y = recode(x, np.random.default_rng(seed))
    assert y.dtype == np.float32
    assert y.shape == x.shape
    assert np.isfinite(y).all()
    assert dominant_frequency(y, SAMPLE_RATE) == pytest.approx(440, abs=10)
    assert np.sqrt(np.mean(y**2)) == pytest.approx(np.sqrt(np.mean(x**2)), rel=0.3)
    assert not np.array_equal(y, x)  # a lossy codec was really applied


@pytest.mark.parametrize("seed", range(10))
def test_spec_augment_masks_whole_bands_and_spans(seed: int):
    spec = torch.rand(1, N_FREQ, N_FRAMES) + 1.0  # no zeros of its own
    before = spec.clone()
    out = spec_augment(spec, np.random.default_rng(seed))
    assert torch.equal(spec, before)  # not in place
    assert out.shape == (1, N_FREQ, N_FRAMES)
    zero = out[0] == 0
    rows, cols = zero.all(dim=1), zero.all(dim=0)
    assert rows.any() or cols.any()
    # Every zero lies in a fully masked row or column; everything else is untouched.
    assert torch.equal(zero, rows[:, None] | cols[None, :])
    assert torch.equal(out[~zero.unsqueeze(0)], spec[~zero.unsqueeze(0)])
    assert int(rows.sum()) <= 2 * int(0.15 * N_FREQ) and int(cols.sum()) <= 2 * int(0.2 * N_FRAMES)


def test_spec_augment_masks_both_axes_over_a_few_draws():
    spec = torch.ones(1, N_FREQ, N_FRAMES)
    outs = [spec_augment(spec, np.random.default_rng(seed))[0] == 0 for seed in range(5)]
    assert sum(bool(o.all(dim=1).any()) for o in outs) >= 4
    assert sum(bool(o.all(dim=0).any()) for o in outs) >= 4


@pytest.fixture
def banks(tmp_path: Path) -> tuple[Path, Path]:
    noise_dir, rir_dir = tmp_path / "noise", tmp_path / "rir"
    rng = np.random.default_rng(8)
    write_audio(noise_dir / "hum.wav", sine(0.5, SAMPLE_RATE, 3250.0, 0.3), SAMPLE_RATE)  # shorter than a clip
    write_audio(noise_dir / "sub" / "babble.flac", np.stack([0.2 * rng.standard_normal(22050)] * 2, axis=1),
                22050)  # stereo, 22.05 kHz
    write_audio(noise_dir / "silent.wav", np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)  # skipped
    (noise_dir / "readme.txt").write_text("not audio\n")
    tail = np.exp(-np.arange(3 * SAMPLE_RATE) / 2000) * rng.standard_normal(3 * SAMPLE_RATE)
    write_audio(rir_dir / "hall.wav", (0.5 * tail).astype(np.float32), SAMPLE_RATE)  # 3 s: cut to 2 s
    write_audio(rir_dir / "room.wav", (0.5 * tail[:4000]).astype(np.float32), SAMPLE_RATE)
    return noise_dir, rir_dir


def test_noise_and_impulse_banks_are_loaded(banks: tuple[Path, Path]):
    noise_dir, rir_dir = banks
    augmenter = Augmenter(1.0, noise_dir=str(noise_dir), rir_dir=str(rir_dir))
    assert sorted(len(n) for n in augmenter.noises) == [SAMPLE_RATE // 2, SAMPLE_RATE]
    assert sorted(len(i) for i in augmenter.impulses) == [4000, 2 * SAMPLE_RATE]
    assert all(a.dtype == np.float32 and a.ndim == 1 and np.any(a) for a in augmenter.noises + augmenter.impulses)
    assert describe(augmenter) == {"augment_prob": 1.0, "codec_prob": 0.0, "noise_files": 2, "impulse_responses": 2,
                                   "clip_samples": CLIP_SAMPLES}
    assert Augmenter(1.0, noise_dir=str(noise_dir / "absent")).noises == []


def test_noise_bank_is_used(banks: tuple[Path, Path]):
    """The 3.25 kHz hum of the bank shows up as a tone in some augmented clips of a 310 Hz tone, never without it."""
    noise_dir, _ = banks

    def tonal_hum(x: np.ndarray) -> bool:
        spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
        freqs = np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)
        peak = spectrum[np.abs(freqs - 3250) < 5].max()
        around = spectrum[(np.abs(freqs - 3250) > 20) & (np.abs(freqs - 3250) < 200)]
        # a tone well above its neighbourhood and not negligible next to the 310 Hz signal
        return bool(peak > 100 * np.median(around) and peak > 1e-3 * spectrum[np.abs(freqs - 310) < 5].max())

    x = sine(3.0, SAMPLE_RATE, 310.0, 0.5)
    with_bank, without = Augmenter(1.0, noise_dir=str(noise_dir)), Augmenter(1.0)
    hits_with = sum(tonal_hum(with_bank.waveform(x, np.random.default_rng(s))) for s in range(30))
    hits_without = sum(tonal_hum(without.waveform(x, np.random.default_rng(s))) for s in range(30))
    assert hits_with >= 2 and hits_without == 0, (hits_with, hits_without)


def test_clip_dataset_augments_the_spectrogram_not_the_label(data_tree: DataTree):
    clips = data_tree.clips("ai")[:1] + data_tree.clips("human")[:1]
    items = [(str(clips[0]), AI), (str(clips[1]), HUMAN)]
    stats = read_stats(stats_path(data_tree.root))
    plain = ClipDataset(items, stats)
    augmented = ClipDataset(items, stats, Augmenter(1.0))
    for index, (_, label) in enumerate(items):
        reference, ref_label, ref_index = plain[index]
        assert (ref_label, ref_index) == (label, index)
        assert torch.equal(plain[index][0], reference)  # no augmenter: the same every time
        torch.manual_seed(index)
        draws = [augmented[index] for _ in range(6)]
        assert all((y, i) == (label, index) for _, y, i in draws)
        assert all(spec.shape == reference.shape == (1, N_FREQ, N_FRAMES) for spec, _, _ in draws)
        assert all(torch.isfinite(spec).all() for spec, _, _ in draws)
        changed = sum(not torch.allclose(spec, reference, atol=1e-3) for spec, _, _ in draws)
        assert changed >= 3
        torch.manual_seed(index)  # the draws follow torch's seed (the DataLoader seeds each worker)
        assert all(torch.equal(augmented[index][0], spec) for spec, _, _ in draws)
