"""Detect AI speech with the vision transformer: `python -m src.inference_ViT FILE_OR_FOLDER... [--help]`."""

import sys

from src.inference_cli import main

DEFAULT_WEIGHTS = "pretrained_weights/ViT_Ai-SPY.pth"

if __name__ == "__main__":
    sys.exit(main("vit", DEFAULT_WEIGHTS, "Vit_Logs"))
