"""Detect AI speech with the CNN: `python -m src.inference_CNN FILE_OR_FOLDER... [--help]`."""

import sys

from src.inference_cli import main

DEFAULT_WEIGHTS = "pretrained_weights/CNN_Ai-SPY.pth"

if __name__ == "__main__":
    sys.exit(main("cnn", DEFAULT_WEIGHTS, "CNNLogs"))
