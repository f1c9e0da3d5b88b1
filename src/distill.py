"""Knowledge distillation: a trained model's verdicts as a second training target.

A student (e.g. the ViT) learns from the labels and from a teacher's softened probabilities on the
same, augmented windows (soft targets, as in Hinton et al. 2015; DeiT showed a convolutional teacher
helps a transformer that has little data). The teacher sees the windows in its own normalisation.
"""

from __future__ import annotations

import os

import torch
from torch.nn import functional as F

from src.checkpoint import CheckpointError, load_model
from src.features import Stats


class Teacher:
    """A frozen checkpoint that scores windows normalised with the student's statistics.

    `mp3_kbps` is the codec the training windows went through (0: lossless clips); the teacher must
    have been trained on windows coded the same way."""

    def __init__(self, path: str | os.PathLike, student_stats: Stats, mp3_kbps: int, device: torch.device):
        model, info = load_model(path)
        if info.mp3_kbps != mp3_kbps:
            raise CheckpointError(f"{path}: expects inputs through {describe_codec(info.mp3_kbps)}, "
                                  f"the training windows pass through {describe_codec(mp3_kbps)}")
        self.model = model.to(device).eval().requires_grad_(False)
        # student-normalised x -> dB -> teacher-normalised: x * s_std / t_std + (s_mean - t_mean) / t_std
        self.scale = student_stats.std / info.stats_std
        self.shift = (student_stats.mean - info.stats_mean) / info.stats_std

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The teacher's logits (AI, human) for a batch of student-normalised windows."""
        return self.model(x * self.scale + self.shift).float()


def describe_codec(mp3_kbps: int) -> str:
    return f"a {mp3_kbps} kbps mp3 round trip" if mp3_kbps else "no mp3 round trip (lossless clips)"


def distillation_loss(logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor | None,
                      weight: float, temperature: float = 1.0) -> torch.Tensor:
    """(1 - weight) * cross-entropy with the labels + weight * T^2 * cross-entropy with the teacher's
    probabilities, both models' logits divided by the temperature T (Hinton et al.: a T above 1 softens a
    confident teacher, so the student also learns how sure it is; T^2 keeps the gradients' scale)."""
    hard = F.cross_entropy(logits, labels)
    if teacher_logits is None or weight == 0:
        return hard
    soft_targets = torch.softmax(teacher_logits / temperature, dim=1)
    soft = F.cross_entropy(logits / temperature, soft_targets) * temperature**2
    return (1 - weight) * hard + weight * soft
