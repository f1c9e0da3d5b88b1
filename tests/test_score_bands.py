"""src.score_bands: cut-offs fitted on one report's scores, band counts measured on others."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from src.metrics import AI, HUMAN
from src.score_bands import band_counts, fit_bands, labels_and_scores, main

REPORTS = Path(__file__).resolve().parent.parent / "reports"
VALIDATION, TEST = REPORTS / "CNN_Ai-SPY_validation.json", REPORTS / "CNN_Ai-SPY_test.json"


def test_separable_scores_put_every_recording_in_a_band_without_error():
    labels = np.array([HUMAN] * 30 + [AI] * 30)
    p_ai = np.concatenate([np.linspace(0.0, 0.3, 30), np.linspace(0.7, 1.0, 30)])
    bands = fit_bands(labels, p_ai, max_error=0.0, min_count=5)
    assert bands.high == pytest.approx(0.7) and bands.low == pytest.approx(0.7)
    counts = band_counts(labels, p_ai, bands)
    assert counts == {"recordings": 60, "ai_band": 30, "ai_band_human": 0, "human_band": 30, "human_band_ai": 0,
                      "between": 0}


def test_scores_that_carry_no_information_leave_both_bands_empty():
    rng = np.random.default_rng(0)
    labels = np.array([AI, HUMAN] * 200)
    bands = fit_bands(labels, rng.random(400), max_error=0.1, min_count=20)
    assert bands.low == 0.0 and math.isinf(bands.high)
    assert band_counts(labels, rng.random(400), bands)["between"] == 400


def test_bands_fitted_on_the_shipped_validation_report_keep_their_promise_there():
    labels, p_ai = labels_and_scores(VALIDATION)
    bands = fit_bands(labels, p_ai, max_error=0.1, min_count=20)
    assert 0.0 < bands.low < bands.high < 1.0
    counts = band_counts(labels, p_ai, bands)
    assert counts["ai_band"] >= 20 and counts["ai_band_human"] <= 0.1 * counts["ai_band"]
    assert counts["human_band"] >= 20 and counts["human_band_ai"] <= 0.1 * counts["human_band"]
    assert counts["ai_band"] + counts["human_band"] + counts["between"] == len(labels) == 870
    # the widest such bands: one more recording at either end breaks the promise or the minimum
    below_high = p_ai[p_ai < bands.high].max()
    wider = p_ai >= below_high
    assert np.mean(labels[wider] == HUMAN) > 0.1


def test_command_prints_both_reports_and_json(capsys: pytest.CaptureFixture):
    assert main(["--fit", str(VALIDATION), str(TEST)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"cut-offs fitted on {VALIDATION}") and "human band P(AI) < 0." in lines[0]
    assert lines[1].startswith(f"{VALIDATION}: AI band ") and lines[2].startswith(f"{TEST}: AI band ")
    assert main(["--fit", str(VALIDATION), str(TEST), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["reports"]) == {str(VALIDATION), str(TEST)}
    assert result["reports"][str(TEST)]["recordings"] == 1113


def test_a_file_that_is_not_a_report_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture):
    bad = tmp_path / "notes.json"
    bad.write_text("[1, 2]")
    assert main(["--fit", str(bad), str(TEST)]) == 2
    assert f"error: {bad}: not a report of python -m src.evaluate" in capsys.readouterr().err
