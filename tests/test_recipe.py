"""The pure helpers of the training-set recipe (data.build_training_set), data.check_shortcuts.measure
and the classical generators of data.generators.

The recipe as a whole needs TTS programs and the shared corpora, so main() is not run here.
Generator tests run only where the program is installed and are skipped, with the reason, elsewhere.
"""

from __future__ import annotations

import math
import random
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data import generators
from data.build_training_set import (
    ESPEAK_VOICES,
    FLITE_VOICES,
    JOIN_SECONDS,
    VALIDATION_FILE_SHARE,
    VALIDATION_REPOS,
    VALIDATION_SPEAKER_SHARE,
    AIWriter,
    Recording,
    build_human,
    channel,
    channel_plan,
    concatenate,
    human_channel,
    human_split,
    join_groups,
    pick_channel,
    with_prepared_audio,
    write_flac,
)
from data.check_shortcuts import FEATURES, measure
from src.audio import SAMPLE_RATE
from tests.helpers import sine, write_audio
from tests.synth import human_like


def band_db(x: np.ndarray, low: float, high: float) -> float:
    """Energy (dB) of `x` (16 kHz) between `low` and `high` Hz."""
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)
    return float(10 * np.log10(spectrum[(freqs >= low) & (freqs < high)].sum() + 1e-20))


def longest_zero_run(x: np.ndarray) -> int:
    best = current = 0
    for is_zero in x == 0:
        current = current + 1 if is_zero else 0
        best = max(best, current)
    return best


# --- join_groups / concatenate ---------------------------------------------------------------

@pytest.mark.parametrize("seed", range(6))
def test_join_groups_reach_the_target_length(seed: int):
    rng = np.random.default_rng(seed)
    durations = rng.uniform(0.3, 4.0, 120)
    durations[rng.integers(0, 120, 3)] = 17.0  # a few files longer than any target
    rows = [{"path": f"spk/{i:03d}.wav", "duration_s": f"{d:.3f}"} for i, d in enumerate(durations)]  # as read from CSV
    groups = join_groups(rows, random.Random(seed))
    assert [r for g in groups for r in g] == rows  # every row once, order kept
    low, high = JOIN_SECONDS
    for group in groups[:-1]:
        total = sum(float(r["duration_s"]) for r in group)
        assert total >= low
        # the group stops at the first row that reaches its target (at most `high`)
        assert total - float(group[-1]["duration_s"]) < high
    assert join_groups(rows, random.Random(seed)) == groups
    # a row longer than any target closes its group
    assert all(r is g[-1] for g in groups for r in g if float(r["duration_s"]) >= high)


def test_join_groups_edge_cases():
    assert join_groups([], random.Random(0)) == []
    short = [{"duration_s": 1.0}, {"duration_s": 2.0}]
    assert join_groups(short, random.Random(0)) == [short]  # never reaches 6 s: one (last) group
    long = [{"duration_s": 20.0}, {"duration_s": 30.0}]
    assert join_groups(long, random.Random(0)) == [[long[0]], [long[1]]]


def test_join_groups_see_durations_measured_after_edge_trimming(tmp_path: Path):
    # 1 s of speech-like sound inside 2 s of digital silence: the manifest says 3 s, the recording gets 1 s
    samples = np.concatenate([np.zeros(SAMPLE_RATE), sine(1.0, SAMPLE_RATE), np.zeros(SAMPLE_RATE)])
    write_audio(tmp_path / "a.wav", samples.astype(np.float32), SAMPLE_RATE)
    [row] = with_prepared_audio([{"path": "a.wav", "duration_s": "3.0"}], tmp_path)
    assert row["duration_s"] == len(row["samples"]) / SAMPLE_RATE
    assert 0.9 < row["duration_s"] < 1.2
    # six such files never reach the 6-s minimum, so they stay one recording instead of several short ones
    assert len(join_groups([row] * 6, random.Random(0))) == 1


def test_concatenate_keeps_the_length_and_fades_each_boundary():
    pieces = [np.ones(2000, np.float32), np.full(300, 0.5, np.float32), np.ones(5000, np.float32)]
    copies = [p.copy() for p in pieces]
    out = concatenate(pieces)
    assert len(out) == sum(len(p) for p in pieces)
    assert all(np.array_equal(p, c) for p, c in zip(pieces, copies, strict=True))  # inputs untouched
    assert out[0] == pytest.approx(0, abs=1e-7) and out[-1] == pytest.approx(0, abs=1e-7)
    assert np.allclose(out[:480], np.linspace(0, 1, 480))  # 30 ms fade in
    assert np.allclose(out[1520:2000], np.linspace(1, 0, 480))  # 30 ms fade out before the boundary
    assert out[1999] == pytest.approx(0, abs=1e-7) and out[2000] == pytest.approx(0, abs=1e-7)
    assert np.all(out[480:1520] == 1)  # the middle is untouched
    # a piece shorter than two fades gets half its length faded on each side
    middle = out[2000:2300]
    assert middle[0] == 0 and middle[-1] == 0 and middle.max() <= 0.5 and middle[149] == pytest.approx(0.5 * 149 / 479)
    assert np.all(np.abs(np.diff(out)) < 0.01)  # no click anywhere


# --- channels ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def white() -> np.ndarray:
    return (0.1 * np.random.default_rng(0).standard_normal(40000)).astype(np.float32)


@pytest.mark.parametrize(("kind", "cutoff"), [("phone8k", 4200), ("gsm", 4200), ("g722", 7200)])
def test_channel_band_limits_and_keeps_the_length(white: np.ndarray, kind: str, cutoff: float):
    out = channel(white, kind)
    assert out.dtype == np.float32 and out.shape == white.shape
    assert np.isfinite(out).all()
    assert band_db(white, cutoff, 8000) - band_db(out, cutoff, 8000) > 30
    # the pass band keeps its energy (GSM is a lossy speech codec: looser)
    assert band_db(out, 300, 3400) == pytest.approx(band_db(white, 300, 3400), abs=1.0 if kind != "gsm" else 6.0)
    for length in (len(white) - 1, 32001, 12345, 8001):
        assert len(channel(white[:length], kind)) == length


def test_wide_channel_is_unchanged(white: np.ndarray):
    assert np.array_equal(channel(white, "wide"), white)


def test_gsm_channel_has_no_codec_padding_at_the_end():
    """A tone that stops before the end stays silent to the end: no decoded codec padding is appended."""
    x = np.r_[sine(1.0, SAMPLE_RATE, 500.0, 0.5), np.zeros(SAMPLE_RATE // 2, np.float32)]
    out = channel(x, "gsm")
    assert len(out) == len(x)
    assert np.abs(out[-SAMPLE_RATE // 4:]).max() < 0.01
    assert np.abs(out[: SAMPLE_RATE // 2]).max() > 0.2


def recording(split: str, chan: str, seconds: float, label: str = "human") -> Recording:
    return Recording(f"{split}/{chan}.flac", label, split, "human", "", "c", "", "s", seconds, chan)


def test_channel_plan_shares_follow_the_human_hours():
    human = [recording("train", "wide", 10), recording("train", "phone8k", 3), recording("train", "gsm", 5),
             recording("train", "phone8k", 2), recording("validation", "g722", 3), recording("validation", "wide", 1)]
    plan = channel_plan(human)
    assert set(plan) == {"train", "validation"}
    assert plan["train"] == pytest.approx({"wide": 0.5, "phone8k": 0.25, "gsm": 0.25})
    assert plan["validation"] == pytest.approx({"g722": 0.75, "wide": 0.25})
    assert all(math.isclose(sum(shares.values()), 1.0) for shares in plan.values())
    rng = np.random.default_rng(2)
    draws = Counter(pick_channel(plan["train"], rng) for _ in range(4000))
    assert {k: v / 4000 for k, v in draws.items()} == pytest.approx(plan["train"], abs=0.03)


def test_human_channel_from_the_source_manifest():
    assert human_channel({"path": "a/x.wav", "condition": "GSM 06.10"}) == "gsm"
    assert human_channel({"path": "a/x.wav", "orig_sample_rate": "8000"}) == "phone8k"
    assert human_channel({"path": "a/x.wav", "condition": "G.722 wideband"}) == "g722"
    assert human_channel({"path": "asterisk/x.wav"}) == "g722"
    assert human_channel({"path": "a/x.wav", "orig_sample_rate": "44100.0", "condition": ""}) == "wide"


# --- splits -----------------------------------------------------------------------------------

def test_human_split_holds_out_whole_speakers_and_half_the_files_of_held_out_demo_repos():
    for repo in VALIDATION_REPOS:
        # no speaker ids there: each file lands on one side, the same one every time
        files = [{"source_repo": repo, "speaker": f"{repo}:x", "path": f"human/r/{i}.flac"} for i in range(400)]
        sides = [human_split(row, seed=0) for row in files]
        assert sides == [human_split(row, seed=0) for row in files]
        assert sum(s == "validation" for s in sides) / len(sides) == pytest.approx(VALIDATION_FILE_SHARE, abs=0.07)
    assert human_split({"source_repo": "someone/other-demo", "speaker": "z"}, seed=0) == "train"

    speakers = [f"corpus/speaker{i:04d}" for i in range(600)]
    first = {s: human_split({"speaker": s, "path": f"{s}/a.wav", "source_repo": ""}, seed=0) for s in speakers}
    # the same speaker always lands on the same side, whatever the file
    assert all(human_split({"speaker": s, "path": f"{s}/b.wav"}, seed=0) == first[s] for s in speakers)
    assert set(first.values()) == {"train", "validation"}
    share = sum(v == "validation" for v in first.values()) / len(speakers)
    assert share == pytest.approx(VALIDATION_SPEAKER_SHARE, abs=0.06)
    other_seed = {s: human_split({"speaker": s}, seed=1) for s in speakers}
    assert other_seed != first  # the seed changes which speakers are held out


# --- writing ----------------------------------------------------------------------------------

def write_human_sources(sources: Path, files: list[tuple[str, str, float, int]]) -> None:
    """A shared-data folder holding only human recordings: (name, speaker, seconds, sample rate) each."""
    lines = ["path,source,speaker,condition,orig_sample_rate,duration_s"]
    for i, (name, speaker, seconds, rate) in enumerate(files):
        write_audio(sources / "human" / "words" / f"{name}.wav", sine(seconds, rate, freq=300 + 50 * i), rate)
        lines.append(f"words/{name}.wav,words corpus,{speaker},,{rate},{seconds}")
    (sources / "human" / "manifest.csv").write_text("\n".join(lines) + "\n")
    (sources / "demo-pool").mkdir()
    (sources / "demo-pool" / "manifest.csv").write_text("path,label,system,corpus,source_repo,source_path,"
                                                        "orig_sample_rate,duration_s\n")


def test_build_human_writes_every_recording_of_a_speaker_with_two_channels(tmp_path: Path):
    # one speaker, recorded at 8 kHz and at 16 kHz (as some KTuberling folders are): two channels
    sources, out = tmp_path / "sources", tmp_path / "out"
    rates = [8000, 8000, 16000, 16000]
    write_human_sources(sources, [(f"w{i}", "words-sp1", 4.0, rate) for i, rate in enumerate(rates)])
    recordings, signals = build_human(sources, out, seed=0)
    assert sorted(r.channel for r in recordings) == ["phone8k", "wide"]
    assert len({r.path for r in recordings}) == len(recordings) == len(signals)  # no file written twice
    for r in recordings:  # each file holds what the manifest says
        assert sf.info(str(out / r.path)).duration == pytest.approx(r.duration_s, abs=1e-3)
        assert r.duration_s == pytest.approx(8.0, abs=0.1)


def test_speakers_and_ai_recordings_under_one_window_are_left_out(tmp_path: Path):
    # A recording shorter than a 3-s window can be neither trained on nor scored: the recipe writes none.
    sources, out = tmp_path / "sources", tmp_path / "out"
    write_human_sources(sources, [("a0", "sp-long", 2.0, 16000), ("a1", "sp-long", 2.0, 16000),
                                  ("b0", "sp-short", 1.0, 16000)])
    recordings, signals = build_human(sources, out, seed=0)
    assert [r.speaker for r in recordings] == ["sp-long"] and len(signals) == 1
    assert recordings[0].duration_s == pytest.approx(4.0, abs=0.1)
    assert len(list(out.rglob("*.flac"))) == 1

    writer = AIWriter(out, {"train": {"wide": 1.0}}, seed=0)
    assert writer.add(sine(2.9, 16000), 16000, "train", "espeak", "en-us") == 0.0
    assert writer.too_short == 1 and writer.recordings == []
    assert writer.add(sine(3.5, 16000), 16000, "train", "espeak", "en-us") == pytest.approx(3.5, abs=0.05)
    assert len(writer.recordings) == 1 and len(list((out / "ai_full").rglob("*.flac"))) == 1


def test_write_flac_dithers_digital_silence(tmp_path: Path):
    path = tmp_path / "out" / "silent.flac"
    seconds = write_flac(path, np.zeros(SAMPLE_RATE, np.float32), np.random.default_rng(0))
    assert seconds == 1.0
    info = sf.info(str(path))
    assert (info.format, info.subtype, info.samplerate, info.channels, info.frames) == ("FLAC", "PCM_16", 16000, 1,
                                                                                      16000)
    samples, _ = sf.read(str(path), dtype="int16")
    assert np.abs(samples.astype(int)).max() <= 2  # dither only: about one LSB
    assert np.mean(samples != 0) > 0.1
    assert longest_zero_run(samples) < SAMPLE_RATE // 100  # no 10 ms of digital silence


def test_write_flac_normalises_the_peak(tmp_path: Path):
    x = human_like(2.5, SAMPLE_RATE, np.random.default_rng(4)) * 3.0  # peak above full scale
    for seed in range(4):
        path = tmp_path / f"speech{seed}.flac"
        assert write_flac(path, x, np.random.default_rng(seed)) == 2.5
        y, rate = sf.read(str(path), dtype="float32")
        assert rate == SAMPLE_RATE and len(y) == len(x)
        peak_db = 20 * np.log10(np.abs(y).max())
        assert -12.01 <= peak_db <= -0.99
        assert np.corrcoef(x, y)[0, 1] > 0.999


def test_measure_gives_the_six_shortcut_features(tmp_path: Path):
    tone = np.r_[sine(2.0, 22050, 1000.0, 0.5), np.zeros(2 * 22050, np.float32)]  # 4 s, half digital silence
    path = write_audio(tmp_path / "tone.wav", tone, 22050)
    values = dict(zip(FEATURES, measure(str(path)), strict=True))
    assert len(values) == 6 and all(math.isfinite(v) for v in values.values())
    assert values["duration_s"] == pytest.approx(4.0, abs=1e-3)
    assert values["peak_db"] == pytest.approx(20 * math.log10(0.5), abs=1.0)
    assert values["rms_db"] == pytest.approx(10 * math.log10(0.125 / 2), abs=1.0)
    assert 900 <= values["rolloff99_hz"] <= 1500
    assert values["silence_share"] == pytest.approx(0.5, abs=0.05)
    assert 0.45 <= values["zero_share"] <= 1.0

    hiss = (0.1 * np.random.default_rng(1).standard_normal(int(3.3 * SAMPLE_RATE))).astype(np.float32)
    noisy = write_audio(tmp_path / "noise.flac", hiss, SAMPLE_RATE)
    noise_values = dict(zip(FEATURES, measure(str(noisy)), strict=True))
    assert noise_values["duration_s"] == pytest.approx(3.3, abs=1e-3)
    assert noise_values["rolloff99_hz"] > values["rolloff99_hz"]
    assert noise_values["zero_share"] < 0.01 and noise_values["silence_share"] < 0.05


# --- generators -------------------------------------------------------------------------------

def needs(program: str):
    return pytest.mark.skipif(shutil.which(program) is None, reason=f"{program} is not installed")


def check_speech(samples: np.ndarray, rate: int) -> None:
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert rate >= 8000
    assert 0.3 < len(samples) / rate < 10  # "hello world" is about a second
    assert np.isfinite(samples).all() and np.abs(samples).max() > 0.01


@needs("espeak-ng")
@pytest.mark.parametrize("voice", ESPEAK_VOICES)
def test_every_espeak_voice_of_the_recipe_exists(voice: str):
    check_speech(*generators.espeak("hello world", voice, 150, 40))


@needs("flite")
@pytest.mark.parametrize("voice", FLITE_VOICES)
def test_every_flite_voice_of_the_recipe_works(voice: str):
    samples, rate = generators.flite("hello world", voice)
    check_speech(samples, rate)
    # flite silently falls back to its default voice for a name it does not know: the recipe's voice
    # must not sound like that fallback, or its recordings would be labelled with the wrong system
    fallback, fallback_rate = generators.flite("hello world", "no-such-voice")
    assert (rate, len(samples)) != (fallback_rate, len(fallback)) or not np.array_equal(samples, fallback)


@pytest.mark.parametrize(("make", "program"), [(lambda: generators.espeak("hi", "en-us"), "espeak-ng"),
                                               (lambda: generators.flite("hi", "slt"), "flite"),
                                               (lambda: generators.festival("hi", "kal_diphone"), "text2wave")])
def test_a_missing_program_is_a_clear_error(make, program: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no program can be found
    with pytest.raises(generators.GeneratorUnavailableError, match=f"{program} is not installed"):
        make()


def test_a_short_remainder_joins_the_previous_recording():
    import random

    from data.build_training_set import JOIN_SECONDS, join_groups

    for seed in range(20):
        rows = [{"duration_s": 0.7, "i": i} for i in range(40)]
        groups = join_groups(rows, random.Random(seed))
        assert [r["i"] for g in groups for r in g] == list(range(40))  # order kept, nothing lost
        if len(groups) > 1:
            assert all(sum(r["duration_s"] for r in g) >= JOIN_SECONDS[0] for g in groups)


def test_lpc_vocoder_copies_the_envelope_of_real_speech():
    import librosa

    from src.audio import load_audio

    speech = load_audio("assets/sample_human.mp3")[: 4 * SAMPLE_RATE]
    copy = generators.lpc(speech, SAMPLE_RATE)
    assert copy.dtype == np.float32 and len(copy) == len(speech) and np.isfinite(copy).all()
    assert np.array_equal(copy, generators.lpc(speech, SAMPLE_RATE))  # seeded: the recipe is reproducible

    def log_mel(x: np.ndarray) -> np.ndarray:
        return librosa.power_to_db(librosa.feature.melspectrogram(y=x, sr=SAMPLE_RATE, n_mels=40))

    original, vocoded = log_mel(speech), log_mel(copy)
    assert np.corrcoef(original.ravel(), vocoded.ravel())[0, 1] > 0.8  # same words, same speaker's envelope
    assert not np.allclose(copy, speech / np.abs(speech).max() * 0.9, atol=0.05)  # yet a new waveform
