"""The inference engine's prefetching batch path gives exactly the one-file-at-a-time results."""

from __future__ import annotations

from src.inference import Detector
from tests.conftest import InferenceInputs, TrainingRun


def test_analyse_many_equals_analyse_in_order(cnn_run: TrainingRun, inference_inputs: InferenceInputs):
    detector = Detector(cnn_run.output, "cnn", device="cpu")
    paths = [*inference_inputs.audio, *inference_inputs.bad.values(), inference_inputs.long_ai]
    one_by_one = [detector.analyse(p) for p in paths]
    for prefetch in (0, 1, 3):
        assert list(detector.analyse_many(paths, prefetch=prefetch)) == one_by_one
    assert [r["name"] for r in one_by_one] == [str(p) for p in paths]
    assert sum("error" in r for r in one_by_one) == len(inference_inputs.bad)


def test_threshold_flag_overrides_the_checkpoint(cnn_run: TrainingRun, inference_inputs: InferenceInputs):
    import json

    from tests.helpers import describe, run_module

    for threshold in ("0", "1"):
        result = run_module("src.inference_CNN", "--model", cnn_run.output, "--threshold", threshold,
                            "--no-progress", inference_inputs.long_ai)
        assert result.returncode == 0, describe(result)
        output = json.loads(result.stdout)
        assert output["model"]["threshold"] == float(threshold)
        expected = "ai" if output["mean_ai_probability"] >= float(threshold) else "human"
        assert output["Prediction"] == expected
    bad = run_module("src.inference_CNN", "--model", cnn_run.output, "--threshold", "1.5", inference_inputs.long_ai)
    assert bad.returncode == 2 and "--threshold must be between 0 and 1" in bad.stderr
