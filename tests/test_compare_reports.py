"""`python -m src.compare_reports`: paired bootstrap of two evaluate reports on the same recordings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from src.compare_reports import main

REPORTS = Path(__file__).resolve().parent.parent / "reports"


def write_report(path: Path, manifest: str, rows: list[tuple[str, str, float]]) -> Path:
    """A report as `python -m src.evaluate` writes it (only the fields the comparison reads)."""
    scores = [{"path": str(Path(manifest).parent / name), "label": label, "p_ai": p} for name, label, p in rows]
    path.write_text(json.dumps({"data": manifest, "scores": scores}))
    return path


def recordings(p_ai_of, n: int = 60) -> list[tuple[str, str, float]]:
    rng = np.random.default_rng(1)
    return [(f"{label}/{i}.flac", label, p_ai_of(label, rng)) for label in ("human", "ai") for i in range(n)]


def test_the_shipped_reports_compare_when_one_pool_was_built_in_another_folder(tmp_path, capsys):
    """Recordings are matched below their manifest's folder, so a corpus rebuilt elsewhere still pairs up."""
    cnn, vit = (json.loads((REPORTS / f"{m}_Ai-SPY_test.json").read_text()) for m in ("CNN", "ViT"))
    folder = str(Path(vit["data"]).parent)
    moved = {**vit, "data": "/elsewhere/corpus/manifest.csv",
             "scores": [{**row, "path": row["path"].replace(folder, "/elsewhere/corpus", 1)} for row in vit["scores"]]}
    assert all(row["path"].startswith("/elsewhere/corpus/") for row in moved["scores"])
    (tmp_path / "vit.json").write_text(json.dumps(moved))
    assert main([str(REPORTS / "CNN_Ai-SPY_test.json"), str(tmp_path / "vit.json"), "--json",
                 "--resamples", "200"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["n_human"], result["n_ai"]) == (cnn["overall"]["n_human"], cnn["overall"]["n_ai"])
    assert result["eer_a"] == pytest.approx(cnn["overall"]["eer"])
    assert result["eer_b"] == pytest.approx(vit["overall"]["eer"])
    assert result["low"] < result["difference"] < result["high"]


def test_a_report_against_itself_differs_by_nothing(capsys):
    report = str(REPORTS / "ViT_Ai-SPY_validation.json")
    assert main([report, report, "--resamples", "100"]) == 0
    out = capsys.readouterr().out
    assert "difference +0.0 points, 95 % interval +0.0 to +0.0" in out
    assert "cannot tell them apart" in out


def test_a_clearly_better_detector_gets_an_interval_below_zero(tmp_path, capsys):
    chance = write_report(tmp_path / "a.json", "/data/v1/manifest.csv", recordings(lambda label, rng: rng.random()))
    sharp = write_report(tmp_path / "b.json", "/data/v2/manifest.csv", recordings(
        lambda label, rng: rng.uniform(0.6, 1.0) if label == "ai" else rng.uniform(0.0, 0.4)))
    assert main([str(chance), str(sharp), "--json", "--resamples", "300"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["eer_b"] == 0.0 and result["eer_a"] > 0.3
    assert result["high"] < 0
    assert main([str(chance), str(sharp), "--resamples", "300"]) == 0
    assert "the second is better" in capsys.readouterr().out


def test_reports_on_different_recordings_are_refused(tmp_path, capsys):
    rows = recordings(lambda label, rng: 0.5)
    a = write_report(tmp_path / "a.json", "/data/manifest.csv", rows)
    b = write_report(tmp_path / "b.json", "/data/manifest.csv", rows[:-1])
    assert main([str(a), str(b)]) == 2
    assert "1 only in the first, 0 only in the second" in capsys.readouterr().err
    relabelled = write_report(tmp_path / "c.json", "/data/manifest.csv",
                              [(name, "ai" if name == rows[0][0] else label, p) for name, label, p in rows])
    assert main([str(a), str(relabelled)]) == 2
    assert "1 recordings have different labels" in capsys.readouterr().err


def test_a_file_that_is_not_a_report_gets_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "notes.json"
    bad.write_text("[1, 2, 3]")
    report = str(REPORTS / "ViT_Ai-SPY_test.json")
    assert main([report, str(bad)]) == 2
    assert "not a report of python -m src.evaluate" in capsys.readouterr().err
    assert main([report, str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err
