"""Train the vision transformer detector: `python -m src.train_vision_transformer --help`."""

import sys

from src.train import ArchSpec, run

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
        "--patch-size": dict(type=int, default=32, help="square patch side; the input is padded to a multiple of it"),
        "--embed-dim": dict(type=int, default=256, help="token width"),
        "--depth": dict(type=int, default=6, help="transformer layers"),
        "--num-heads": dict(type=int, default=8, help="attention heads"),
        "--stem": dict(choices=("patch", "conv"), default="patch",
                       help="patch: square patches of the padded input; conv: a 4-layer convolutional stem makes "
                            "17 x 12 tokens (learns from far less data)"),
        "--pool": dict(choices=("cls", "avg"), default="cls",
                       help="cls: a class token makes the verdict; avg: the mean of all tokens does"),
    },
)

if __name__ == "__main__":
    sys.exit(run(VIT_SPEC))
