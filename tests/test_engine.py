"""The inference engine: decoding processes, batching, precision and ONNX Runtime give the one-file-at-a-time,
PyTorch fp32 results; bad files and crashing decoders cost only themselves."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import src.decoding
from benchmarks.memory import children
from src.inference import Detector, resolve_engine, resolve_precision
from tests.conftest import InferenceInputs, TrainingRun
from tests.helpers import REPO, describe, run_python, write_audio
from tests.synth import ai_like


def test_analyse_many_equals_analyse_in_order(cnn_run: TrainingRun, inference_inputs: InferenceInputs):
    paths = [*inference_inputs.audio, *inference_inputs.bad.values(), inference_inputs.long_ai]
    one_by_one = [Detector(cnn_run.output, "cnn", device="cpu", decoders=0).analyse(p) for p in paths]
    for decoders in (1, 3):  # worker processes; 0 = one thread
        detector = Detector(cnn_run.output, "cnn", device="cpu", decoders=decoders)
        assert list(detector.analyse_many(paths)) == one_by_one
    assert [r["name"] for r in one_by_one] == [str(p) for p in paths]
    assert sum("error" in r for r in one_by_one) == len(inference_inputs.bad)


def test_threshold_flag_overrides_the_checkpoint(cnn_run: TrainingRun, inference_inputs: InferenceInputs):
    from tests.helpers import run_module

    for threshold in ("0", "1"):
        result = run_module("src.inference_CNN", "--model", cnn_run.output, "--threshold", threshold,
                            "--no-progress", inference_inputs.long_ai)
        assert result.returncode == 0, describe(result)
        output = json.loads(result.stdout)
        assert output["model"]["threshold"] == float(threshold)
        expected = "ai" if output["mean_ai_probability"] >= float(threshold) else "human"
        assert output["Prediction"] == expected
    bad = run_module("src.inference_CNN", "--model", cnn_run.output, "--threshold", "1.5", inference_inputs.long_ai)
    assert bad.returncode == 2 and "argument --threshold: must be from 0 to 1, got 1.5" in bad.stderr


def test_short_files_share_a_forward_pass(cnn_run: TrainingRun, inference_inputs: InferenceInputs):
    # Decoders run ahead of the model: when windows of later files arrive before the next result is
    # complete, they wait and share its forward pass. The messages are the real decoders' own, in the
    # order several decoding processes can send them (every file's windows before any file's end), so
    # the test does not depend on how the machine schedules those processes.
    detector = Detector(cnn_run.output, "cnn", device="cpu", batch_size=64, engine="torch")
    paths = inference_inputs.audio
    per_file = [[(kind, i, payload) for kind, payload in src.decoding.file_messages(path, detector.info.mp3_kbps, 64)]
                for i, path in enumerate(paths)]
    messages = [("file", i, path) for i, path in enumerate(paths)]
    messages += [m for file in per_file for m in file if m[0] == "windows"]
    messages += [m for file in per_file for m in file if m[0] == "end"]
    sizes = []
    detector.model.register_forward_pre_hook(lambda module, inputs: sizes.append(inputs[0].shape[0]))
    shared = list(detector.results_from(messages))
    n_windows = sum(len(r["windows"]) for r in shared)
    assert len(paths) >= 3 and sizes == [n_windows]  # one forward pass for all files
    one_by_one = Detector(cnn_run.output, "cnn", device="cpu", engine="torch")
    alone = [one_by_one.analyse(p) for p in paths]
    for together, by_itself in zip(shared, alone, strict=True):  # the same results, to float rounding
        assert [w["start"] for w in together["windows"]] == [w["start"] for w in by_itself["windows"]]
        assert [w["ai_probability"] for w in together["windows"]] == pytest.approx(
            [w["ai_probability"] for w in by_itself["windows"]], abs=1e-5)
        assert (together["name"], together["duration_s"]) == (by_itself["name"], by_itself["duration_s"])


def test_bf16_scores_agree_with_fp32(cnn_run: TrainingRun, vit_run: TrainingRun, inference_inputs: InferenceInputs):
    for run, architecture in ((cnn_run, "cnn"), (vit_run, "vit")):
        results = {}
        for precision in ("fp32", "bf16"):
            detector = Detector(run.output, architecture, device="cpu", precision=precision, engine="torch")
            assert detector.precision == precision
            results[precision] = list(detector.analyse_many(inference_inputs.audio))
        for full, half in zip(results["fp32"], results["bf16"], strict=True):
            p_full = [w["ai_probability"] for w in full["windows"]]
            p_half = [w["ai_probability"] for w in half["windows"]]
            assert p_half == pytest.approx(p_full, abs=0.02)


def test_auto_precision_is_bf16_exactly_where_the_cpu_has_it(cnn_run: TrainingRun):
    detector = Detector(cnn_run.output, "cnn", device="cpu", engine="torch")
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert detector.precision == ("bf16" if native else "fp32")
    with pytest.raises(ValueError, match="precision must be one of"):
        Detector(cnn_run.output, "cnn", device="cpu", precision="fp16")


PEAK_MEMORY = """
import os, resource, sys, threading
from pathlib import Path
from benchmarks.memory import children
from src.inference_cli import main

def decoder_rss_kib():  # resident memory of this process's children (the decoders), from /proc
    for pid in children(os.getpid()):
        try:
            yield int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
        except (OSError, ValueError, IndexError):
            continue

decoder_peak, done = [0], threading.Event()
def sample():
    while not done.wait(0.02):
        decoder_peak[0] = max([decoder_peak[0], *decoder_rss_kib()])
threading.Thread(target=sample, daemon=True).start()
code = main("cnn", sys.argv[1], "CNN_Logs", sys.argv[2:])
done.set()
# the command's own peak (exact) plus its largest decoder's (PSS of the whole tree varies by +-100 MB from
# run to run with how pages are shared between the processes)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss + decoder_peak[0], file=sys.stderr)
sys.exit(code)
"""


def peak_memory_kib(weights: Path, audio: Path, output: Path) -> int:
    result = run_python("-c", PEAK_MEMORY, weights, audio, "--format", "jsonl", "--output", output, "--no-progress")
    assert result.returncode == 0, describe(result)
    return int(result.stderr.strip().splitlines()[-1])


def test_an_hour_is_scored_with_flat_memory(cnn_run: TrainingRun, tmp_path: Path):
    """One hour of audio needs no more than 10% more memory than one minute (issue: flat memory)."""
    rate = 8000
    minute = np.tile(ai_like(6.0, rate, np.random.default_rng(3)), 10)
    write_audio(tmp_path / "minute.wav", minute, rate, "PCM_16")
    with sf.SoundFile(tmp_path / "hour.wav", "w", rate, 1, "PCM_16") as hour:
        for _ in range(60):
            hour.write(minute)
    peaks = {name: peak_memory_kib(cnn_run.output, tmp_path / f"{name}.wav", tmp_path / f"{name}.jsonl")
             for name in ("minute", "hour")}
    (result,) = [json.loads(line) for line in (tmp_path / "hour.jsonl").read_text().splitlines()]
    assert result["duration_s"] == 3600.0 and len(result["windows"]) == 1200
    assert peaks["hour"] <= 1.10 * peaks["minute"], peaks


@pytest.mark.parametrize("decoders", [0, 2])
def test_an_unexpected_decoder_failure_costs_only_that_file(cnn_run: TrainingRun, inference_inputs: InferenceInputs,
                                                           monkeypatch: pytest.MonkeyPatch, decoders: int):
    detector = Detector(cnn_run.output, "cnn", device="cpu", decoders=decoders)
    unlucky = inference_inputs.audio[1]

    def samples(path, mp3_kbps):
        if path == unlucky:
            raise KeyError("a decoder bug")
        return real_samples(path, mp3_kbps)

    real_samples = src.decoding.samples
    monkeypatch.setattr(src.decoding, "samples", samples)  # forked decoders inherit the patch
    results = list(detector.analyse_many(inference_inputs.audio))
    assert [r["name"] for r in results] == [str(p) for p in inference_inputs.audio]
    assert results[1] == {"name": str(unlucky),
                          "error": "unexpected KeyError while decoding: 'a decoder bug' (please report this file)"}
    assert all("Prediction" in r for i, r in enumerate(results) if i != 1)


def test_a_crashing_decoder_costs_only_its_file(cnn_run: TrainingRun, inference_inputs: InferenceInputs,
                                                monkeypatch: pytest.MonkeyPatch):
    """A C decoder crashing on a hostile file kills its worker process: that file gets an error, a new
    worker decodes the rest."""
    expected = list(Detector(cnn_run.output, "cnn", device="cpu", decoders=0).analyse_many(inference_inputs.audio))
    deadly = inference_inputs.audio[0]

    def samples(path, mp3_kbps):
        if path == deadly:
            os.kill(os.getpid(), signal.SIGKILL)  # as the kernel ends a decoder that crashed or ran out of memory
        return real_samples(path, mp3_kbps)

    real_samples = src.decoding.samples
    monkeypatch.setattr(src.decoding, "samples", samples)
    results = list(Detector(cnn_run.output, "cnn", device="cpu", decoders=2).analyse_many(inference_inputs.audio))
    assert results[0] == {"name": str(deadly), "error": f"the decoder crashed on this file (exit code "
                                                        f"{-signal.SIGKILL})"}
    assert results[1:] == expected[1:]


def test_onnx_runtime_gives_the_pytorch_scores(cnn_run: TrainingRun, vit_run: TrainingRun,
                                               inference_inputs: InferenceInputs):
    """--engine onnx (the CPU default) against PyTorch fp32, to the 6 decimals results carry (tolerance 1e-4)."""
    for run, architecture in ((cnn_run, "cnn"), (vit_run, "vit")):
        results = {engine: list(Detector(run.output, architecture, "cpu", precision="fp32", engine=engine)
                                .analyse_many(inference_inputs.audio)) for engine in ("torch", "onnx")}
        for reference, fast in zip(results["torch"], results["onnx"], strict=True):
            p_reference = [w["ai_probability"] for w in reference["windows"]]
            assert [w["ai_probability"] for w in fast["windows"]] == pytest.approx(p_reference, abs=1e-4)
            assert fast["Prediction"] == reference["Prediction"]


def test_engine_choice(cnn_run: TrainingRun):
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert resolve_engine("auto", cpu, "auto") == "onnx"
    assert resolve_engine("auto", cpu, "bf16") == "torch" and resolve_engine("auto", gpu, "auto") == "torch"
    with pytest.raises(ValueError, match="runs on the CPU"):
        resolve_engine("onnx", gpu, "fp32")
    with pytest.raises(ValueError, match="computes in fp32"):
        resolve_engine("onnx", cpu, "bf16")
    detector = Detector(cnn_run.output, "cnn", "cpu")
    assert (detector.engine, detector.precision) == ("onnx", "fp32")


def test_auto_precision_is_fp32_on_a_gpu_and_follows_the_cpu_otherwise():
    assert resolve_precision("auto", "cuda") == resolve_precision("auto", "cuda:1") == "fp32"
    assert resolve_precision("bf16", "cuda") == "bf16" and resolve_precision("fp32", "cpu") == "fp32"
    native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert resolve_precision("auto", "cpu") == ("bf16" if native else "fp32")
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("fp16", "cpu")


def test_the_onnx_export_is_cached_per_checkpoint(cnn_run: TrainingRun, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AISPY_CACHE_DIR", str(tmp_path))
    Detector(cnn_run.output, "cnn", "cpu", engine="onnx")
    (exported,) = (tmp_path / "onnx").iterdir()
    assert exported.name == hashlib.sha256(cnn_run.output.read_bytes()).hexdigest() + ".onnx"
    made = exported.stat().st_mtime_ns
    Detector(cnn_run.output, "cnn", "cpu", engine="onnx")
    assert exported.stat().st_mtime_ns == made and len(list((tmp_path / "onnx").iterdir())) == 1


def running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_decoders_do_not_outlive_a_killed_command(cnn_run: TrainingRun, tmp_path: Path):
    """SIGKILL gives the command no chance to clean up: its decoder processes must notice and exit."""
    rate = 8000
    for i in range(6):
        write_audio(tmp_path / f"long_{i}.wav", np.tile(ai_like(6.0, rate, np.random.default_rng(i)), 60), rate,
                    "PCM_16")
    command = subprocess.Popen([sys.executable, "-m", "src.inference_CNN", "--model", str(cnn_run.output),
                                "--decoders", "2", "--no-progress", str(tmp_path)], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(decoders := children(command.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(decoders) >= 2, "the decoder processes never started"
    command.kill()
    command.wait()
    deadline = time.monotonic() + 10
    while any(map(running, decoders)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in decoders if running(pid)], "decoders outlived their parent"


def test_cpu_scan_runs_without_pytorch_once_exported(tmp_path: Path, inference_inputs: InferenceInputs):
    # A `torch` that cannot be imported stands first on the path: the ONNX engine must not need the real one
    # once the checkpoint's export is cached (the first run makes it, with PyTorch).
    blocker = tmp_path / "blocker"
    (blocker / "torch").mkdir(parents=True)
    (blocker / "torch" / "__init__.py").write_text("raise ImportError('PyTorch was imported')\n")
    weights = REPO / "pretrained_weights" / "CNN_Ai-SPY.pth"
    command = ["-m", "src.inference_CNN", inference_inputs.folder, "--model", weights, "--format", "jsonl",
               "--no-progress"]
    first = run_python(*command)
    assert first.returncode == 0, describe(first)
    blocked = run_python(*command, env={"PYTHONPATH": str(blocker)})
    assert blocked.returncode == 0, describe(blocked)
    assert blocked.stdout == first.stdout
    assert len(blocked.stdout.splitlines()) == len(inference_inputs.audio)
    torch_engine = run_python(*command, "--engine", "torch", env={"PYTHONPATH": str(blocker)})
    assert torch_engine.returncode != 0 and "PyTorch was imported" in torch_engine.stderr  # the blocker works
