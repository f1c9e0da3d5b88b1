"""Every command answers --help with its flags and the original's defaults."""

from __future__ import annotations

import pytest

from tests.helpers import describe, run_python

COMMANDS = {
    "generate_dirs": (["-m", "data.generate_dirs"], ["--root"]),
    "convert_and_divide": (["-m", "data.convert_and_divide"], ["--root", "--workers"]),
    "getGlobalStats": (["getGlobalStats.py"], ["--root"]),
    "train_CNN": (["-m", "src.train_CNN"],
                  ["--root", "--epochs", "--batch-size", "--lr", "--device", "--seed", "--workers", "--output",
                   "--resume", "--log-dir", "(default: 8e-05)", "(default: 16)", "(default: 50)"]),
    "train_vision_transformer": (["-m", "src.train_vision_transformer"],
                                 ["--root", "--epochs", "--lr", "--resume", "--patch-size", "(default: 1e-05)",
                                  "(default: 1000)"]),
    "inference_CNN": (["-m", "src.inference_CNN"],
                      ["PATH", "--model", "--format", "--output", "--batch-size", "--human-dir", "--ai-dir",
                       "CNN_Ai-SPY.pth"]),
    "inference_ViT": (["-m", "src.inference_ViT"], ["PATH", "--model", "--human-dir", "ViT_Ai-SPY.pth"]),
    "compare_reports": (["-m", "src.compare_reports"], ["first", "second", "--resamples", "(default: 2000)",
                                                        "--json"]),
    "score_bands": (["-m", "src.score_bands"], ["reports", "--fit", "--max-error", "(default: 0.1)", "--min-count"]),
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help(name: str):
    command, expected = COMMANDS[name]
    result = run_python(*command, "--help", timeout=120, env={"COLUMNS": "250"})  # no wrapped words
    assert result.returncode == 0, describe(result)
    text = " ".join(result.stdout.split())
    assert text.startswith("usage: python ")
    for flag in expected:
        assert flag in text, (flag, result.stdout)
