"""Detection metrics: the original's per-epoch metrics plus the equal error rate (EER).

Conventions, as in the original: label 0 = AI, 1 = human; precision, recall and ROC AUC
treat human as the positive class; the logged F1 is the weighted F1. The EER follows the
ASVspoof convention: human speech is bona fide, the score is P(human).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import (
    confusion_matrix,
    f1_score,
    matthews_corrcoef,
    precision_recall_fscore_support,
    roc_auc_score,
)

AI, HUMAN = 0, 1


def equal_error_rate(bonafide_scores: np.ndarray, spoof_scores: np.ndarray) -> tuple[float, float]:
    """EER and its threshold, computed like the ASVspoof evaluation package (compute_det_curve).

    Higher scores mean more bona fide. Returns (nan, nan) unless both sets are non-empty.
    """
    bonafide = np.asarray(bonafide_scores, dtype=np.float64)
    spoof = np.asarray(spoof_scores, dtype=np.float64)
    if bonafide.size == 0 or spoof.size == 0:
        return math.nan, math.nan
    scores = np.concatenate([bonafide, spoof])
    labels = np.concatenate([np.ones(bonafide.size), np.zeros(spoof.size)])
    order = np.argsort(scores, kind="mergesort")
    labels = labels[order]
    tar_below = np.cumsum(labels)
    nontarget_above = spoof.size - (np.arange(1, scores.size + 1) - tar_below)
    frr = np.concatenate([[0.0], tar_below / bonafide.size])
    far = np.concatenate([[1.0], nontarget_above / spoof.size])
    thresholds = np.concatenate([[scores[order[0]] - 0.001], scores[order]])
    i = int(np.argmin(np.abs(frr - far)))
    return float((frr[i] + far[i]) / 2), float(thresholds[i])


@dataclass
class Report:
    """Metrics of one evaluation pass over labelled clips or files."""

    loss: float
    correct: int
    total: int
    mcc: float
    f1: float
    confusion: np.ndarray
    precision: float
    recall: float
    roc_auc: float
    eer: float

    @property
    def accuracy(self) -> float:
        return 100.0 * self.correct / self.total if self.total else 0.0

    def as_dict(self) -> dict:
        return {
            "loss": self.loss, "correct": self.correct, "total": self.total, "accuracy": self.accuracy,
            "mcc": self.mcc, "f1_weighted": self.f1, "precision_human": self.precision,
            "recall_human": self.recall, "roc_auc": self.roc_auc, "eer": self.eer,
            "confusion_matrix": self.confusion.tolist(),
        }


def evaluate(labels: np.ndarray, p_ai: np.ndarray, threshold: float = 0.5, loss: float = math.nan) -> Report:
    """Score predictions: `labels` in {0 = AI, 1 = human}, `p_ai` the AI probabilities."""
    labels = np.asarray(labels, dtype=np.int64)
    p_ai = np.asarray(p_ai, dtype=np.float64)
    predicted = np.where(p_ai >= threshold, AI, HUMAN)
    both = len(np.unique(labels)) == 2
    precision, recall, _, _ = precision_recall_fscore_support(
        labels, predicted, average="binary", pos_label=HUMAN, zero_division=0
    )
    p_human = 1.0 - p_ai
    eer, _ = equal_error_rate(p_human[labels == HUMAN], p_human[labels == AI])
    return Report(
        loss=loss,
        correct=int((predicted == labels).sum()),
        total=int(labels.size),
        mcc=float(matthews_corrcoef(labels, predicted)) if labels.size else 0.0,
        f1=float(f1_score(labels, predicted, average="weighted", zero_division=0)) if labels.size else 0.0,
        confusion=confusion_matrix(labels, predicted, labels=[AI, HUMAN]),
        precision=float(precision),
        recall=float(recall),
        roc_auc=float(roc_auc_score(labels, p_human)) if both else math.nan,
        eer=eer,
    )


def _head(report: Report) -> str:
    return (
        f"Average loss: {report.loss:.4f}, Accuracy: {report.correct}/{report.total} "
        f"({report.accuracy:.0f}%), MCC: {report.mcc}, F1: {report.f1}, "
        f"Average Log Loss: {report.loss}, Confusion Matrix: {report.confusion}"
    )


def format_test_line(report: Report) -> str:
    """The original's per-epoch test-set log entry, with EER appended."""
    return (
        f"\nTest set: {_head(report)}, Precision:{report.precision}, Recall: {report.recall}, "
        f"ROC AUC: {report.roc_auc}, EER: {report.eer}"
    )


def format_validation_line(epoch: int, report: Report) -> str:
    """The original's per-epoch hold-out validation log entry, with EER appended."""
    return f"\nValidation {epoch}: {_head(report)}, EER: {report.eer}"


def eer_of_p_ai(is_ai: np.ndarray, p_ai: np.ndarray) -> tuple[float, float]:
    """EER and its bona fide threshold from P(AI), scored as -P(AI) (see `detection_metrics`)."""
    return equal_error_rate(-p_ai[~is_ai], -p_ai[is_ai])


def detection_metrics(labels: np.ndarray, p_ai: np.ndarray, threshold: float) -> dict:
    """Detector-level metrics with AI as the positive class (what the evaluate command reports).

    `eer_threshold_ai` is the P(AI) threshold at the EER point: call AI when P(AI) >= it.
    The EER is computed on -P(AI) as the bona fide score (same ranking as P(human)): negation is
    exact in floating point, so the threshold maps back to P(AI) exactly, while 1 - (1 - p) can
    land one ulp above p and flip the file at the threshold.
    """
    labels = np.asarray(labels, dtype=np.int64)
    p_ai = np.asarray(p_ai, dtype=np.float64)
    is_ai = labels == AI
    predicted_ai = p_ai >= threshold
    eer, eer_threshold_bonafide = eer_of_p_ai(is_ai, p_ai)
    tp = int((predicted_ai & is_ai).sum())
    fp = int((predicted_ai & ~is_ai).sum())
    fn = int((~predicted_ai & is_ai).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    both = bool(is_ai.any() and (~is_ai).any())
    return {
        "n_human": int((~is_ai).sum()),
        "n_ai": int(is_ai.sum()),
        "eer": eer,
        "eer_threshold_ai": -eer_threshold_bonafide if both else math.nan,
        "roc_auc": float(roc_auc_score(is_ai, p_ai)) if both else math.nan,
        "threshold": threshold,
        "accuracy": float((predicted_ai == is_ai).mean()) if labels.size else math.nan,
        "precision_ai": precision,
        "recall_ai": recall,
        "f1_ai": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "mcc": float(matthews_corrcoef(is_ai, predicted_ai)) if labels.size else math.nan,
        "false_alarm_rate": fp / max(1, int((~is_ai).sum())),
        "miss_rate": fn / max(1, int(is_ai.sum())),
    }


def paired_bootstrap_eer(labels: np.ndarray, p_ai_a: np.ndarray, p_ai_b: np.ndarray, resamples: int = 2000,
                         seed: int = 0) -> dict:
    """EER of detector B minus detector A on the same recordings, with a 95 % bootstrap interval.

    Each resample draws the human and the AI recordings with replacement, separately (so both
    classes keep their size), and scores both detectors on the same draw. Recordings of one source
    are correlated, so the interval is a lower bound on the real uncertainty.
    """
    labels = np.asarray(labels, dtype=np.int64)
    scores = np.stack([np.asarray(p_ai_a, dtype=np.float64), np.asarray(p_ai_b, dtype=np.float64)])
    human, ai = np.flatnonzero(labels == HUMAN), np.flatnonzero(labels == AI)
    if human.size == 0 or ai.size == 0 or resamples < 1:
        raise ValueError("need recordings of both classes and at least one resample")

    def eers(rows: np.ndarray) -> np.ndarray:
        is_ai = labels[rows] == AI
        return np.array([eer_of_p_ai(is_ai, s[rows])[0] for s in scores])

    eer_a, eer_b = eers(np.arange(labels.size))
    rng = np.random.default_rng(seed)
    differences = np.empty(resamples)
    for i in range(resamples):
        rows = np.concatenate([rng.choice(human, human.size), rng.choice(ai, ai.size)])
        a, b = eers(rows)
        differences[i] = b - a
    low, high = np.percentile(differences, [2.5, 97.5])
    return {"n_human": int(human.size), "n_ai": int(ai.size), "eer_a": float(eer_a), "eer_b": float(eer_b),
            "difference": float(eer_b - eer_a), "low": float(low), "high": float(high), "resamples": resamples}
