"""The shipped weights do what `make demo` shows: the human sample is called human, the AI one AI."""

from __future__ import annotations

import json

import pytest

from tests.helpers import REPO, describe, run_module


@pytest.mark.parametrize("command", ["src.inference_CNN", "src.inference_ViT"])
def test_shipped_weights_tell_the_two_assets_apart(command: str):
    assets = REPO / "assets"
    result = run_module(command, assets / "sample_human.mp3", assets / "sample_ai.mp3", "--format", "jsonl",
                        "--no-progress")
    assert result.returncode == 0, describe(result)
    verdicts = {json.loads(line)["name"]: json.loads(line) for line in result.stdout.splitlines() if line}
    human, ai = verdicts[str(assets / "sample_human.mp3")], verdicts[str(assets / "sample_ai.mp3")]
    assert (human["Prediction"], ai["Prediction"]) == ("human", "ai"), (human, ai)
    assert human["mean_ai_probability"] < human["model"]["threshold"] <= ai["mean_ai_probability"]
