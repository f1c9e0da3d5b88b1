"""Train the vision transformer detector: `python -m src.train_vision_transformer --help`."""

import argparse
import sys

from src.train import ArchSpec, run


def choice(flag: str, *allowed: str):
    """An argparse type that accepts only the given words."""
    def check(value: str) -> str:
        if value not in allowed:
            raise argparse.ArgumentTypeError(f"{flag} must be {' or '.join(map(repr, allowed))}, not {value!r}")
        return value
    return check


VIT_SPEC = ArchSpec(
    architecture="vit",
    description="Train the ViT detector on <root>/{ai,human}_split, validating on <root>/validation_set.",
    lr=1e-5,
    epochs=1000,
    output="models/Your_ViT_Model.pth",
    log_dir="Vit_Logs",
    log_name="vision_transformer_log.txt",
    val_log_name="vision_transformer_val_log.txt",
    incorrect_log_name="vision_transformer_incorrect.txt",
    validation_epoch_base=1,
    model_options={
        "--patch-size": (int, 32, "square patch side; the input is padded to a multiple of it"),
        "--embed-dim": (int, 256, "token width"),
        "--depth": (int, 6, "transformer layers"),
        "--num-heads": (int, 8, "attention heads"),
        "--stem": (choice("--stem", "patch", "conv"), "patch",
                   "patch: square patches of the padded input; conv: a 4-layer convolutional stem makes 17 x 12 "
                   "tokens (learns from far less data)"),
        "--pool": (choice("--pool", "cls", "avg"), "cls", "cls: a class token makes the verdict; avg: the mean of "
                                                        "all tokens does"),
    },
)

if __name__ == "__main__":
    sys.exit(run(VIT_SPEC))
