"""src.features and src.stats: the spectrogram against librosa, the stats file, exact streamed moments."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pytest
import torch

from src.audio import load_audio
from src.contract import log_power_db
from src.features import (
    ORIGINAL_MEAN,
    ORIGINAL_STD,
    Stats,
    features,
    log_power_spectrogram,
    read_stats,
    write_stats,
)
from src.stats import RunningMoments
from tests.synth import ai_like, human_like

ASSET = Path(__file__).resolve().parent.parent / "assets" / "sample_human.mp3"


def librosa_reference(y: np.ndarray) -> np.ndarray:
    """The original's transform, written with librosa at its defaults (n_fft 2048, hop 512)."""
    return librosa.power_to_db(np.abs(librosa.stft(y)) ** 2 + 1e-10, ref=np.max)


def clip(kind: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "ai":
        return ai_like(3.0, 16000, rng)
    if kind == "human":
        return human_like(3.0, 16000, rng)
    if kind == "noise":
        return (0.1 * rng.standard_normal(48000)).astype(np.float32)
    return np.zeros(48000, np.float32)


@pytest.mark.parametrize("kind", ["ai", "human", "noise", "silence"])
def test_matches_librosa(kind: str):
    y = clip(kind, seed=1)
    expected = librosa_reference(y)
    got = log_power_spectrogram(torch.from_numpy(y)).numpy()
    assert got.shape == expected.shape == (1025, 94)
    np.testing.assert_allclose(got, expected, atol=0.02)
    assert np.abs(got - expected).mean() < 1e-3


@pytest.mark.parametrize("kind", ["ai", "human", "noise", "silence"])
def test_numpy_spectrogram_of_the_onnx_engine_matches_pytorch_and_librosa(kind: str):
    batch = np.stack([clip(kind, seed=5), 0.01 * clip(kind, seed=6), load_audio(ASSET)[:48000]])
    got = log_power_db(batch)
    assert got.dtype == np.float32 and got.shape == (3, 1025, 94) and got.flags.c_contiguous
    np.testing.assert_allclose(got, log_power_spectrogram(torch.from_numpy(batch)).numpy(), atol=0.01)
    for one, y in zip(got, batch, strict=True):
        np.testing.assert_allclose(one, librosa_reference(y), atol=0.02)


def test_range_is_0_to_minus_80_db():
    db = log_power_spectrogram(torch.from_numpy(clip("human", 2)))
    assert db.max().item() == pytest.approx(0.0, abs=1e-6)
    assert db.min().item() >= -80.0 - 1e-4
    assert (db <= -80.0 + 1e-4).any()  # this clip has gaps deeper than 80 dB: the floor applies


def test_batch_items_are_referenced_to_their_own_maximum():
    a, b = clip("ai", 3), 0.01 * clip("human", 4)
    out = log_power_spectrogram(torch.from_numpy(np.stack([a, b])))
    assert out.shape == (2, 1025, 94)
    # Each map peaks at 0 dB: referenced to its own clip's maximum, not to the loudest clip in the batch.
    assert out.amax(dim=(1, 2)).tolist() == pytest.approx([0.0, 0.0], abs=1e-6)
    np.testing.assert_allclose(out[0].numpy(), librosa_reference(a), atol=0.02)
    np.testing.assert_allclose(out[1].numpy(), librosa_reference(b), atol=0.02)


def test_features_normalise_with_the_given_stats():
    y = torch.from_numpy(np.stack([clip("ai", 5), clip("noise", 6)]))
    stats = Stats(-50.0, 12.5)
    x = features(y, stats)
    assert x.shape == (2, 1, 1025, 94) and x.dtype == torch.float32
    torch.testing.assert_close(x[:, 0] * 12.5 - 50.0, log_power_spectrogram(y), atol=1e-4, rtol=0)


def test_stats_file_round_trip(tmp_path: Path):
    path = tmp_path / "global_stats.txt"
    write_stats(path, Stats(ORIGINAL_MEAN, ORIGINAL_STD))
    assert path.read_text() == "global_mean: -58.18715250929163\nglobal_std: 15.877255962380845\n"
    assert read_stats(path) == Stats(ORIGINAL_MEAN, ORIGINAL_STD)


def test_reads_the_original_format_with_spacing(tmp_path: Path):
    path = tmp_path / "global_stats.txt"
    path.write_text("global_std:   2.5\n\nglobal_mean: -1e1\n")
    assert read_stats(path) == Stats(-10.0, 2.5)


@pytest.mark.parametrize(
    "text",
    [
        "global_mean: -58.1\n",
        "global_mean: -58.1\nglobal_std: abc\n",
        "mean -58.1\nstd 15.8\n",
        "",
        "global_mean: -58.1\nglobal_std: 0\n",
        "global_mean: -58.1\nglobal_std: -3\n",
        "global_mean: nan\nglobal_std: nan\n",
    ],
)
def test_malformed_stats_file_is_a_clear_value_error(tmp_path: Path, text: str):
    path = tmp_path / "global_stats.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"global_stats\.txt: .*global_(mean|std)"):
        read_stats(path)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_running_moments_equal_numpy_over_all_values(seed: int):
    rng = np.random.default_rng(seed)
    sizes = [1, 7, 1000, 3, 0, 250, 4096]
    batches = [rng.normal(-58.0 + i, 15.0 + 3 * i, size=n) for i, n in enumerate(sizes)]
    moments = RunningMoments()
    for batch in batches:
        moments.update(torch.from_numpy(batch.reshape(-1, 1) if batch.size else batch).float())
    everything = np.concatenate([b.astype(np.float32).astype(np.float64) for b in batches])
    assert moments.count == everything.size
    assert moments.mean == pytest.approx(everything.mean(), rel=1e-12)
    assert moments.std == pytest.approx(everything.std(), rel=1e-10)


def test_running_moments_are_not_a_mean_of_means():
    moments = RunningMoments()
    moments.update(torch.zeros(10))
    moments.update(torch.full((30,), 4.0))
    # Pooled: mean 3, variance 3; a size-weighted mean of per-batch stds would give 0.
    assert moments.mean == pytest.approx(3.0)
    assert moments.std == pytest.approx(np.sqrt(3.0))
