"""src.metrics: EER against a brute-force sweep, the original's metrics, and its exact log line formats."""

from __future__ import annotations

import math

import numpy as np
import pytest

from src.metrics import AI, HUMAN, equal_error_rate, evaluate, format_test_line, format_validation_line
from tests.helpers import TEST_ENTRY, VALIDATION_ENTRY, matrix


def brute_force_eers(bonafide: np.ndarray, spoof: np.ndarray) -> set[float]:
    """Every EER value a threshold sweep can give: accept (call bona fide) when score > t.

    For each threshold, FRR = share of bona fide rejected and FAR = share of spoof accepted;
    the EER is (FRR + FAR) / 2 where |FRR - FAR| is smallest. Ties give a set of candidates.
    """
    values = np.unique(np.concatenate([bonafide, spoof]))
    thresholds = np.concatenate([[values[0] - 1.0], values, [values[-1] + 1.0]])
    frr = np.array([(bonafide <= t).mean() for t in thresholds])
    far = np.array([(spoof > t).mean() for t in thresholds])
    gap = np.abs(frr - far)
    best = np.isclose(gap, gap.min(), rtol=0, atol=1e-12)
    return {round(float(v), 12) for v in (frr[best] + far[best]) / 2}


@pytest.mark.parametrize(("seed", "n_bonafide", "n_spoof", "shift"),
                         [(0, 50, 50, 1.0), (1, 37, 91, 0.5), (2, 200, 13, 2.0), (3, 5, 8, 0.0), (4, 120, 80, -0.7)])
def test_eer_equals_a_brute_force_sweep(seed: int, n_bonafide: int, n_spoof: int, shift: float):
    rng = np.random.default_rng(seed)
    bonafide = rng.normal(shift, 1.0, n_bonafide)
    spoof = rng.normal(0.0, 1.0, n_spoof)
    eer, threshold = equal_error_rate(bonafide, spoof)
    assert round(eer, 12) in brute_force_eers(bonafide, spoof)
    # The threshold it reports gives error rates whose mean is that EER (same acceptance rule).
    frr, far = (bonafide <= threshold).mean(), (spoof > threshold).mean()
    assert (frr + far) / 2 == pytest.approx(eer)


def test_eer_extremes():
    assert equal_error_rate(np.array([0.9, 0.8, 0.95]), np.array([0.1, 0.2]))[0] == 0.0
    assert equal_error_rate(np.array([0.1, 0.2]), np.array([0.9, 0.8, 0.95]))[0] == 1.0
    rng = np.random.default_rng(9)
    same = equal_error_rate(rng.uniform(size=4000), rng.uniform(size=4000))[0]
    assert same == pytest.approx(0.5, abs=0.03)
    assert all(math.isnan(v) for v in equal_error_rate(np.array([]), np.array([0.3])))


def test_evaluate_against_hand_counts():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, 300)
    p_ai = np.clip(np.where(labels == AI, 0.65, 0.35) + rng.normal(0, 0.25, 300), 0, 1)
    report = evaluate(labels, p_ai, threshold=0.5, loss=0.123)

    predicted = np.where(p_ai >= 0.5, AI, HUMAN)
    tp = int(((predicted == HUMAN) & (labels == HUMAN)).sum())
    fp = int(((predicted == HUMAN) & (labels == AI)).sum())
    fn = int(((predicted == AI) & (labels == HUMAN)).sum())
    tn = int(((predicted == AI) & (labels == AI)).sum())
    # Rows: true [AI, human]; columns: predicted [AI, human], as in the original.
    assert report.confusion.tolist() == [[tn, fp], [fn, tp]]
    assert report.correct == tn + tp and report.total == 300
    assert report.accuracy == pytest.approx(100 * (tn + tp) / 300)
    assert report.precision == pytest.approx(tp / (tp + fp))
    assert report.recall == pytest.approx(tp / (tp + fn))
    mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert report.mcc == pytest.approx(mcc)
    # ROC AUC on P(human) = probability that a human clip scores above an AI clip.
    p_human = 1 - p_ai
    pairs = p_human[labels == HUMAN][:, None] - p_human[labels == AI][None, :]
    assert report.roc_auc == pytest.approx(((pairs > 0) + 0.5 * (pairs == 0)).mean())
    assert report.eer == pytest.approx(equal_error_rate(p_human[labels == HUMAN], p_human[labels == AI])[0])
    # Weighted F1: per-class F1 weighted by the class's support.
    f1_human = 2 * tp / (2 * tp + fp + fn)
    f1_ai = 2 * tn / (2 * tn + fn + fp)
    n_ai, n_human = (labels == AI).sum(), (labels == HUMAN).sum()
    assert report.f1 == pytest.approx((f1_ai * n_ai + f1_human * n_human) / 300)


def test_evaluate_threshold_decides_ai():
    report = evaluate(np.array([AI, HUMAN]), np.array([0.7, 0.69]), threshold=0.7)
    assert report.confusion.tolist() == [[1, 0], [0, 1]]


def test_one_class_only_gives_nan_auc_and_eer():
    report = evaluate(np.array([AI, AI, AI]), np.array([0.9, 0.2, 0.6]))
    assert math.isnan(report.roc_auc) and math.isnan(report.eer)
    assert report.correct == 2


def sample_report():
    labels = np.array([AI] * 30 + [HUMAN] * 25)
    p_ai = np.concatenate([np.linspace(0.2, 0.99, 30), np.linspace(0.01, 0.7, 25)])
    return evaluate(labels, p_ai, loss=0.0123456)


def test_test_line_format():
    report = sample_report()
    line = format_test_line(report)
    match = TEST_ENTRY.fullmatch(line)
    assert match, line
    assert (match["loss"], int(match["correct"]), int(match["total"])) == ("0.0123", report.correct, 55)
    assert int(match["percent"]) == round(100 * report.correct / 55)
    assert float(match["mcc"]) == report.mcc and float(match["f1"]) == report.f1
    assert float(match["log_loss"]) == 0.0123456
    assert matrix(match) == report.confusion.ravel().tolist()
    assert float(match["precision"]) == report.precision and float(match["recall"]) == report.recall
    assert float(match["auc"]) == report.roc_auc and float(match["eer"]) == report.eer
    assert line.startswith("\nTest set: Average loss: ") and ", Precision:0." in line
    assert "Confusion Matrix: [[" in line and "]\n [" in line  # numpy's two-line matrix, as the original


def test_validation_line_format():
    report = sample_report()
    line = format_validation_line(7, report)
    match = VALIDATION_ENTRY.fullmatch(line)
    assert match, line
    assert match["epoch"] == "7" and int(match["correct"]) == report.correct
    assert matrix(match) == report.confusion.ravel().tolist()
    assert float(match["eer"]) == report.eer
    assert "Precision" not in line and "ROC AUC" not in line


def test_wide_confusion_matrix_still_matches():
    labels = np.array([AI] * 3349 + [HUMAN] * 3060)
    p_ai = np.concatenate([np.r_[np.full(3030, 0.9), np.full(319, 0.1)], np.r_[np.full(124, 0.9), np.full(2936, 0.1)]])
    line = format_test_line(evaluate(labels, p_ai, loss=0.0049))
    assert "Confusion Matrix: [[3030  319]\n [ 124 2936]]" in line
    assert TEST_ENTRY.fullmatch(line)
