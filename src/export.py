"""Export a checkpoint to ONNX: `python -m src.export --weights W --format onnx -o model.onnx`.

The ONNX model takes the dB spectrograms of 3-s windows, [N, 1025, 94] float32 (what
`src.features.log_power_spectrogram` returns: STFT n_fft 2048, hop 512, periodic Hann, centred
with zero padding, power in dB relative to the window's maximum, 80 dB floor), folds in the
checkpoint's normalisation (x - mean) / std, and returns P(AI) per window, [N] float32. The
checkpoint's threshold, statistics, labels and the whole input contract (16 kHz mono, the 48 kbps
mp3 round trip, 3-s windows) are written into the model's metadata.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from src.atomic import write_bytes_atomic
from src.checkpoint import CheckpointError, ModelInfo, load_model
from src.cli import HelpFormatter
from src.features import HOP_LENGTH, N_FFT, N_FRAMES, N_FREQ, TOP_DB
from src.onnx_engine import INPUT_NAME, OUTPUT_NAME


class ProbabilityOfAI(nn.Module):
    """dB spectrograms [N, 1025, 94] -> P(AI) [N], with the checkpoint's normalisation inside."""

    def __init__(self, model: nn.Module, info: ModelInfo):
        super().__init__()
        self.model = model
        self.mean, self.std = float(info.stats_mean), float(info.stats_std)
        self.ai_index = list(info.labels).index("ai") if "ai" in info.labels else 0

    def forward(self, log_power_db: torch.Tensor) -> torch.Tensor:
        x = ((log_power_db - self.mean) / self.std).unsqueeze(1)
        return torch.softmax(self.model(x), dim=1)[:, self.ai_index]


def metadata(info: ModelInfo, weights: Path) -> dict[str, str]:
    """What a user of the ONNX file needs to reproduce this toolkit's verdicts."""
    return {
        "architecture": info.architecture,
        "threshold": repr(float(info.threshold)),
        "stats_mean": repr(float(info.stats_mean)),
        "stats_std": repr(float(info.stats_std)),
        "labels": json.dumps(list(info.labels)),
        "output": "P(AI) of each window; a window or file (mean over windows) is AI when it reaches threshold",
        "input_contract": json.dumps({
            "sample_rate": info.sample_rate, "channels": 1, "window_seconds": info.clip_seconds,
            "mp3_round_trip_kbps": info.mp3_kbps, "n_fft": N_FFT, "hop_length": HOP_LENGTH,
            "window": "periodic hann", "center": "zero padding", "power_db": "10*log10(|X|^2 + 1e-10)",
            "reference": "per-window maximum", "top_db": TOP_DB, "shape": [N_FREQ, N_FRAMES],
            "normalisation": "folded into the model"}),
        "source_weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "trained_on": json.dumps(asdict(info)["trained_on"], default=str)[:20000],
    }


def export_onnx(weights: str | Path, output: str | Path, opset: int = 18) -> dict[str, str]:
    """Write the ONNX model (whole or not at all); returns the metadata it carries."""
    import onnx

    weights, output = Path(weights), Path(output)
    model, info = load_model(weights)
    wrapped = ProbabilityOfAI(model.float().eval(), info).eval()
    example = torch.zeros(2, N_FREQ, N_FRAMES)
    with tempfile.TemporaryDirectory(prefix="aispy-export-") as tmp:
        exported = Path(tmp) / "model.onnx"
        torch.onnx.export(wrapped, (example,), str(exported), input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME], dynamic_shapes=({0: torch.export.Dim("windows", min=1)},),
                          opset_version=opset, external_data=False, verbose=False)
        proto = onnx.load(str(exported))
    meta = metadata(info, weights)
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = __doc__.split("\n\n")[1].replace("\n", " ")
    onnx.checker.check_model(proto)
    write_bytes_atomic(output, proto.SerializeToString())
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m src.export", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1], formatter_class=HelpFormatter)
    parser.add_argument("--weights", "--model", required=True, help="checkpoint to export")
    parser.add_argument("--format", choices=["onnx"], default="onnx", help="export format")
    parser.add_argument("--output", "-o", required=True, help="file to write, e.g. model.onnx")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset version")
    args = parser.parse_args(argv)
    try:
        meta = export_onnx(args.weights, args.output, args.opset)
    except (CheckpointError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}: {meta['architecture'].upper()}, input {INPUT_NAME} [N, {N_FREQ}, {N_FRAMES}] "
          f"dB, output {OUTPUT_NAME} [N], threshold {float(meta['threshold']):g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
