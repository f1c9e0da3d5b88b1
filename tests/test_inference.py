"""Inference commands end to end with the checkpoints trained by the session fixtures."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections import OrderedDict
from pathlib import Path

import librosa
import numpy as np
import pytest
import torch

from src.audio import CLIP_SAMPLES, SAMPLE_RATE, load_audio, mp3_normalise
from src.checkpoint import load_model
from src.features import ORIGINAL_MEAN, ORIGINAL_STD, Stats
from src.inference import Detector
from src.metrics import equal_error_rate
from src.model import CNN
from src.scan_output import CSV_FIELDS
from tests.conftest import DataTree, InferenceInputs, TrainingRun
from tests.helpers import describe, run_module

RESULT_KEYS = {"name", "Percent_AI", "Percent_Human", "Prediction", "mean_ai_probability", "duration_s", "windows",
               "model", "size_bytes", "mtime"}
ERROR_KEYS = {"name", "error", "size_bytes", "mtime"}  # a file that cannot be analysed


def infer(architecture: str, *args) -> tuple[int, str, str]:
    module = "src.inference_CNN" if architecture == "cnn" else "src.inference_ViT"
    result = run_module(module, *args, "--no-progress", "--precision", "fp32")
    return result.returncode, result.stdout, result.stderr


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def reference_probabilities(weights: Path, path: Path) -> tuple[list[float], np.ndarray]:
    """Window starts (s) and P(AI) recomputed here: librosa features, the checkpoint's stats, softmax index 0."""
    model, info = load_model(weights)
    samples = mp3_normalise(load_audio(path))
    n_windows = -(-len(samples) // CLIP_SAMPLES)
    starts = [i * CLIP_SAMPLES for i in range(n_windows)]
    starts[-1] = len(samples) - CLIP_SAMPLES
    maps = [librosa.power_to_db(np.abs(librosa.stft(samples[s:s + CLIP_SAMPLES])) ** 2 + 1e-10, ref=np.max)
            for s in starts]
    x = (torch.from_numpy(np.stack(maps)).float().unsqueeze(1) - info.stats_mean) / info.stats_std
    with torch.no_grad():
        p_ai = torch.softmax(model(x), dim=1)[:, 0].numpy()
    return [s / SAMPLE_RATE for s in starts], p_ai


def check_result(result: dict, weights: Path, architecture: str) -> None:
    """A verdict is consistent with its own windows and with the model run here."""
    assert set(result) == RESULT_KEYS
    path = Path(result["name"])
    windows = result["windows"]
    starts, p_ai = reference_probabilities(weights, path)
    assert [w["start"] for w in windows] == pytest.approx(starts, abs=1e-3)
    assert [w["end"] - w["start"] for w in windows] == pytest.approx([3.0] * len(windows), abs=1e-3)
    assert [w["ai_probability"] for w in windows] == pytest.approx(p_ai.tolist(), abs=2e-3)
    threshold = result["model"]["threshold"]
    probabilities = np.array([w["ai_probability"] for w in windows])
    assert result["Percent_AI"] == pytest.approx(100 * np.mean(probabilities >= threshold), abs=0.01)
    assert result["Percent_AI"] + result["Percent_Human"] == pytest.approx(100, abs=1e-9)
    assert result["mean_ai_probability"] == pytest.approx(probabilities.mean(), abs=2e-6)
    assert result["Prediction"] == ("ai" if result["mean_ai_probability"] >= threshold else "human")
    assert result["duration_s"] == pytest.approx(len(load_audio(path)) / SAMPLE_RATE, abs=1e-3)
    assert result["model"] == {"architecture": architecture, "weights": str(weights), "threshold": threshold}


def test_single_file_gives_pretty_json(cnn_run: TrainingRun, inference_inputs: InferenceInputs):
    code, out, err = infer("cnn", inference_inputs.long_ai, "--model", cnn_run.output)
    assert code == 0, err
    assert out.startswith('{\n  "name": ')  # indented JSON, one object
    result = json.loads(out)
    assert result["name"] == str(inference_inputs.long_ai)
    assert result["duration_s"] == 7.5
    assert [(w["start"], w["end"]) for w in result["windows"]] == [(0.0, 3.0), (3.0, 6.0), (4.5, 7.5)]
    check_result(result, cnn_run.output, "cnn")


def test_windows_are_scored_in_batches(cnn_run: TrainingRun, inference_inputs: InferenceInputs):
    detector = Detector(cnn_run.output, "cnn", "cpu", batch_size=2, engine="torch")
    sizes = []
    detector.model.register_forward_hook(lambda module, inputs, output: sizes.append(inputs[0].shape[0]))
    result = detector.analyse(inference_inputs.long_ai)
    assert sizes == [2, 1] and len(result["windows"]) == 3


@pytest.fixture(scope="module")
def folder_results(cnn_run: TrainingRun, inference_inputs: InferenceInputs, tmp_path_factory) -> dict:
    """The folder scored as JSON lines on stdout, as CSV, and to a file with one window per batch."""
    out_file = tmp_path_factory.mktemp("out") / "results.jsonl"
    runs = {
        "jsonl": infer("cnn", inference_inputs.folder, "--model", cnn_run.output),
        "csv": infer("cnn", inference_inputs.folder, "--model", cnn_run.output, "--format", "csv"),
        "batch1": infer("cnn", inference_inputs.folder, "--model", cnn_run.output, "--batch-size", "1",
                        "--output", out_file),
    }
    for code, _, err in runs.values():
        assert code == 0, err
    return {**runs, "out_file": out_file}


def test_folder_gives_one_json_line_per_audio_file(folder_results: dict, cnn_run: TrainingRun,
                                                   inference_inputs: InferenceInputs):
    results = json_lines(folder_results["jsonl"][1])
    assert sorted(r["name"] for r in results) == sorted(str(p) for p in inference_inputs.audio)
    for result in results:
        check_result(result, cnn_run.output, "cnn")


def test_csv_output(folder_results: dict):
    rows = list(csv.DictReader(io.StringIO(folder_results["csv"][1])))
    assert list(rows[0]) == CSV_FIELDS
    by_name = {r["name"]: r for r in json_lines(folder_results["jsonl"][1])}
    assert sorted(r["name"] for r in rows) == sorted(by_name)
    for row in rows:
        result = by_name[row["name"]]
        assert float(row["Percent_AI"]) == result["Percent_AI"] and row["Prediction"] == result["Prediction"]
        assert float(row["mean_ai_probability"]) == result["mean_ai_probability"]
        assert int(row["n_windows"]) == len(result["windows"]) and row["error"] == ""


def test_output_file_and_batch_size_do_not_change_the_scores(folder_results: dict):
    code, out, _ = folder_results["batch1"]
    assert out == ""  # results went to the file
    batch1 = {r["name"]: r for r in json_lines(folder_results["out_file"].read_text())}
    batch64 = {r["name"]: r for r in json_lines(folder_results["jsonl"][1])}
    assert batch1.keys() == batch64.keys()
    for name, result in batch64.items():
        other = batch1[name]
        assert (other["Prediction"], other["Percent_AI"]) == (result["Prediction"], result["Percent_AI"])
        # Identical up to the printed precision (6 decimals).
        assert [w["ai_probability"] for w in other["windows"]] == pytest.approx(
            [w["ai_probability"] for w in result["windows"]], abs=1e-6)


def test_bad_inputs_get_an_error_and_the_batch_goes_on(cnn_run: TrainingRun, inference_inputs: InferenceInputs):
    bad = inference_inputs.bad
    folder = bad["empty"].parent
    code, out, err = infer("cnn", folder, bad["no such file"], inference_inputs.long_ai, "--model", cnn_run.output)
    assert code == 1
    results = {r["name"]: r for r in json_lines(out)}
    assert len(results) == len(bad) + 1
    for reason, path in bad.items():
        result = results[str(path)]
        assert set(result) == ERROR_KEYS, result
        assert reason in result["error"]
        assert f"error: {path}: " in err
    assert results[str(inference_inputs.long_ai)]["Prediction"] in ("ai", "human")
    assert f"{len(bad)} file(s) could not be analysed" in err


@pytest.mark.parametrize("reason", ["empty", "not decodable", "too short", "digital silence", "no such file"])
def test_a_single_bad_file(reason: str, cnn_run: TrainingRun, inference_inputs: InferenceInputs):
    path = inference_inputs.bad[reason]
    code, out, err = infer("cnn", path, "--model", cnn_run.output, "--format", "csv")
    assert code == 1
    (row,) = csv.DictReader(io.StringIO(out))
    assert row["name"] == str(path) and reason in row["error"]
    assert row["Prediction"] == row["Percent_AI"] == ""


def test_folder_without_audio(cnn_run: TrainingRun, tmp_path: Path):
    (tmp_path / "readme.txt").write_text("nothing here")
    code, out, err = infer("cnn", tmp_path, "--model", cnn_run.output)
    assert code == 1 and out == ""
    assert "no audio files found" in err


def test_labelled_evaluation(cnn_run: TrainingRun, data_tree: DataTree, tmp_path: Path):
    human_dir = tmp_path / "human"
    shutil.copytree(data_tree.root / "validation_set" / "human_full", human_dir)
    (human_dir / "broken.wav").write_bytes(b"")
    ai_dir = data_tree.root / "validation_set" / "ai_full"
    log_dir = tmp_path / "logs"
    code, out, err = infer("cnn", "--human-dir", human_dir, "--ai-dir", ai_dir, "--model", cnn_run.output,
                           "--log-dir", log_dir)
    assert code == 1, err  # one file failed
    metrics = json.loads(out)
    assert {"eer", "roc_auc", "accuracy", "mcc", "confusion_matrix", "files_failed"} <= metrics.keys()
    assert metrics["files_failed"] == 1

    assert sorted(p.name for p in log_dir.iterdir()) == [
        "final_results_model.txt", "results_ai_model.txt", "results_human_model.txt"]
    human = json_lines((log_dir / "results_human_model.txt").read_text())
    ai = json_lines((log_dir / "results_ai_model.txt").read_text())
    assert len(human) == len(data_tree.sources["validation_set/human"]) + 1
    assert len(ai) == len(data_tree.sources["validation_set/ai"])
    assert [(r["name"], r["error"]) for r in human if "error" in r] == [(str(human_dir / "broken.wav"),
                                                                         "empty file (0 bytes)")]
    scored_human = [r for r in human if "error" not in r]
    assert metrics["total"] == len(scored_human) + len(ai)
    p_human_h = np.array([1 - r["mean_ai_probability"] for r in scored_human])
    p_human_a = np.array([1 - r["mean_ai_probability"] for r in ai])
    assert metrics["eer"] == pytest.approx(equal_error_rate(p_human_h, p_human_a)[0])
    correct_h = sum(r["Prediction"] == "human" for r in scored_human)
    correct_a = sum(r["Prediction"] == "ai" for r in ai)
    assert metrics["confusion_matrix"] == [[correct_a, len(ai) - correct_a],
                                           [len(scored_human) - correct_h, correct_h]]

    summary = (log_dir / "final_results_model.txt").read_text()
    assert f"MODEL: {cnn_run.output}" in summary
    assert f"RESULTS FOR HUMAN Model ({human_dir})\nTotal Predictions Correct: {correct_h} / {len(scored_human)}" \
        in summary
    assert f"RESULTS FOR AI Model ({ai_dir})\nTotal Predictions Correct: {correct_a} / {len(ai)}" in summary
    assert json.loads(summary.split("METRICS: ", 1)[1]) == metrics


def test_vit_inference(vit_run: TrainingRun, inference_inputs: InferenceInputs):
    code, out, err = infer("vit", inference_inputs.long_ai, "--model", vit_run.output)
    assert code == 0, err
    check_result(json.loads(out), vit_run.output, "vit")


def test_cnn_checkpoint_given_to_the_vit_command(cnn_run: TrainingRun, inference_inputs: InferenceInputs):
    code, out, err = infer("vit", inference_inputs.long_ai, "--model", cnn_run.output)
    assert code == 2 and out == ""
    assert f"error: {cnn_run.output}: holds a CNN model, not a VIT" in err
    assert "Traceback" not in err


def test_missing_weights_file(inference_inputs: InferenceInputs, tmp_path: Path):
    code, out, err = infer("cnn", inference_inputs.long_ai, "--model", tmp_path / "none.pth")
    assert code == 2 and out == "" and "weights file not found" in err


def test_original_state_dict_works_end_to_end(inference_inputs: InferenceInputs, tmp_path: Path):
    torch.manual_seed(0)
    state = OrderedDict(CNN().state_dict())
    for conv, bn, c_in, c_out in (("conv6", "bn6", 256, 512), ("conv7", "bn7", 512, 1024)):
        state[f"{conv}.weight"], state[f"{conv}.bias"] = torch.randn(c_out, c_in, 2, 2), torch.randn(c_out)
        for suffix in ("weight", "bias", "running_mean", "running_var"):
            state[f"{bn}.{suffix}"] = torch.rand(c_out)
        state[f"{bn}.num_batches_tracked"] = torch.tensor(0)
    weights = tmp_path / "CNN_Ai-SPY.pth"
    torch.save(state, weights)
    code, out, err = infer("cnn", inference_inputs.long_ai, "--model", weights)
    assert code == 0, err
    result = json.loads(out)
    check_result(result, weights, "cnn")
    assert load_model(weights)[1].stats == Stats(ORIGINAL_MEAN, ORIGINAL_STD)


@pytest.mark.parametrize(
    "args", [[], ["--human-dir", "."]], ids=["no-paths", "human-dir-only"])
def test_usage_errors(args: list[str]):
    result = run_module("src.inference_CNN", *args)
    assert result.returncode == 2, describe(result)
    assert "usage:" in result.stderr


def test_shards_together_score_every_file_once(tmp_path: Path):
    assets = Path(__file__).resolve().parent.parent / "assets"
    for i in range(8):
        shutil.copy(assets / ("sample_ai.mp3" if i % 2 else "sample_human.mp3"), tmp_path / f"recording_{i}.mp3")
    code, out, err = infer("cnn", tmp_path, "--format", "jsonl")
    assert code == 0, err
    full = {r["name"]: r for r in json_lines(out)}
    assert len(full) == 8
    shards: dict[str, dict] = {}
    for k in (1, 2, 3):
        code, out, err = infer("cnn", tmp_path, "--format", "jsonl", "--shard", f"{k}/3")
        assert code == 0, err
        part = {r["name"]: r for r in json_lines(out)}
        assert len(part) < 8 and not part.keys() & shards.keys()
        shards.update(part)
    assert shards.keys() == full.keys()
    for name, result in shards.items():
        assert result["Prediction"] == full[name]["Prediction"]
        assert result["mean_ai_probability"] == pytest.approx(full[name]["mean_ai_probability"], abs=1e-4)
    code, out, err = infer("cnn", tmp_path, "--shard", "4/3")
    assert code == 2 and "K must be between 1 and N" in err
