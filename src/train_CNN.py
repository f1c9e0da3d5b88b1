"""Train the CNN detector: `python -m src.train_CNN --help`."""

import sys

from src.train import ArchSpec, run

CNN_SPEC = ArchSpec(
    architecture="cnn",
    description="Train the Ai-SPY CNN on <root>/{ai,human}_split, validating on <root>/validation_set.",
    lr=8e-5,
    epochs=50,
    output="models/Your_CNN_Model.pth",
    log_dir="CNNLogs",
    log_name="regularlog1.txt",
    val_log_name="regular_validation1.txt",
    incorrect_log_name="regular_incorrect_validation1.txt",
    validation_epoch_base=0,
)

if __name__ == "__main__":
    sys.exit(run(CNN_SPEC))
