"""The two detectors: the original Ai-SPY CNN and a ViT that sees the whole clip.

Both take normalised spectrograms [B, 1, 1025, 94] and return logits [B, 2] with
class index 0 = AI and 1 = human, as in the original.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from src.contract import N_FRAMES, N_FREQ

# Keys of layers the original CNN defines but never runs; dropped when loading its weights.
UNUSED_ORIGINAL_CNN_PREFIXES = ("conv6.", "bn6.", "conv7.", "bn7.")


class CNN(nn.Module):
    """Five conv blocks (conv -> batchnorm -> leaky ReLU -> max-pool) and two linear layers.

    Layer names and shapes are the original `CNNTest`'s, so its state_dict loads.
    """

    def __init__(self, dropout: float = 0.1):
        super().__init__()
        blocks = [  # (in, out, kernel, padding, pool)
            (1, 16, (8, 4), (4, 2), 4),
            (16, 32, (6, 3), (3, 2), 3),
            (32, 64, (4, 2), (2, 1), 2),
            (64, 128, (4, 2), (2, 1), 2),
            (128, 256, (4, 2), (2, 1), 2),
        ]
        self.pools = []
        for i, (c_in, c_out, kernel, padding, pool) in enumerate(blocks, start=1):
            setattr(self, f"conv{i}", nn.Conv2d(c_in, c_out, kernel, padding=padding))
            setattr(self, f"bn{i}", nn.BatchNorm2d(c_out))
            self.pools.append(pool)
        self.fc1 = nn.Linear(256 * 11 * 1, 100)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(100, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, pool in enumerate(self.pools, start=1):
            x = getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x))
            # leaky ReLU is increasing, so pooling first gives the same values on up to 16x fewer elements
            x = F.leaky_relu(F.max_pool2d(x, pool))
        x = torch.flatten(x, 1)
        x = F.leaky_relu(self.dropout(self.fc1(x)))
        return self.fc2(x)


class ConvStem(nn.Sequential):
    """Four 3x3 conv -> batchnorm -> ReLU layers that turn the spectrogram into a 17 x 12 grid of features.

    Strides shrink frequency 64x and time 8x: each token then covers ~1 kHz x 0.25 s, fine enough
    for vocoder artefacts, where a 32 x 32 patch spans a whole second.
    """

    STRIDES = ((2, 2), (2, 2), (4, 2), (4, 1))

    def __init__(self, channels: int):
        widths = (1, 32, 64, 128, channels)
        layers = []
        for c_in, c_out, stride in zip(widths, widths[1:], self.STRIDES, strict=False):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
                       nn.ReLU(inplace=True)]
        super().__init__(*layers)

    @staticmethod
    def grid(height: int, width: int) -> tuple[int, int]:
        for stride_h, stride_w in ConvStem.STRIDES:
            height, width = (height - 1) // stride_h + 1, (width - 1) // stride_w + 1
        return height, width


class ViT(nn.Module):
    """timm's VisionTransformer on the single-channel spectrogram.

    stem="patch": square patches of the input, zero-padded (0 = the dataset mean) up to a multiple of the
    patch size so they cover all 1025 bins and all 94 frames (the original's 32 x 32 patching dropped
    the last second of every clip). stem="conv": a small convolutional stem makes the tokens
    (Xiao et al. 2021, "Early convolutions help transformers see better"); it learns from hours of
    audio where plain patches need far more.
    pool="cls": a class token makes the verdict (the original); pool="avg": the mean of all tokens does, so
    evidence anywhere in the clip counts alike (as the CNN's pooling does).
    """

    def __init__(self, patch_size: int = 32, embed_dim: int = 256, depth: int = 6, num_heads: int = 8,
                 dropout: float = 0.1, stem: str = "patch", pool: str = "cls"):
        super().__init__()
        from timm.models.vision_transformer import VisionTransformer

        if stem not in ("patch", "conv"):
            raise ValueError(f"stem must be 'patch' or 'conv', got {stem!r}")
        if pool not in ("cls", "avg"):
            raise ValueError(f"pool must be 'cls' or 'avg', got {pool!r}")
        if stem == "conv":
            self.stem, self.pad_freq, self.pad_time = ConvStem(embed_dim), 0, 0
            img_size, patch_size, in_chans = ConvStem.grid(N_FREQ, N_FRAMES), 1, embed_dim
        else:
            self.stem, self.pad_freq, self.pad_time = nn.Identity(), -N_FREQ % patch_size, -N_FRAMES % patch_size
            img_size, in_chans = (N_FREQ + self.pad_freq, N_FRAMES + self.pad_time), 1
        self.vit = VisionTransformer(
            img_size=img_size,
            patch_size=patch_size,
            in_chans=in_chans,
            num_classes=2,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            drop_rate=dropout,
            global_pool="token" if pool == "cls" else "avg",
            class_token=pool == "cls",
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vit(self.stem(F.pad(x, (0, self.pad_time, 0, self.pad_freq))))


ARCHITECTURES = {"cnn": CNN, "vit": ViT}


def for_inference(model: nn.Module) -> nn.Module:
    """The model in eval mode, made faster without changing what it computes.

    For the CNN each batchnorm is folded into its convolution and the weights are stored
    channels-last, which oneDNN runs faster on CPUs (a quick check here, fp32, batch 64:
    29 -> 76 windows/s for channels-last, 104 -> 152 with the folding).
    """
    model = model.eval()
    if isinstance(model, CNN):
        for i in range(1, len(model.pools) + 1):
            conv, norm = getattr(model, f"conv{i}"), getattr(model, f"bn{i}")
            setattr(model, f"conv{i}", fuse_conv_bn_eval(conv, norm))
            setattr(model, f"bn{i}", nn.Identity())
        model = model.to(memory_format=torch.channels_last)
    return model


def build_model(architecture: str, config: dict | None = None) -> nn.Module:
    """Instantiate an architecture by name with its settings."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; expected one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[architecture](**(config or {}))
