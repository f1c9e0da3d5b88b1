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
