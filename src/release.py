"""Make a training checkpoint into shipped weights: `python -m src.release --weights W --chosen-by WHY -o OUT`.

Keeps the weights, their metadata (threshold, statistics, what they were trained on), the epoch
and its selection loss; drops what only a resumed run needs (optimizer, scheduler, the live
weights behind an average, log positions). Records why this checkpoint was chosen under
`trained_on.chosen_by`, writes OUT atomically, updates the sha256 line of OUT in the folder's
SHA256SUMS when there is one, and prints the sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
from pathlib import Path

import torch

from src.atomic import write_bytes_atomic, write_text_atomic
from src.checkpoint import CHECKSUM_FILE, CheckpointError, load_model, read_checkpoint
from src.cli import HelpFormatter

KEPT = ("format_version", "info", "state_dict", "epoch", "selection_loss")


def release(weights: str | Path, output: str | Path, chosen_by: str) -> str:
    """Write the shipped form of `weights` to `output`; returns its sha256."""
    payload = read_checkpoint(weights)
    if not isinstance(payload, dict) or "info" not in payload:
        raise CheckpointError(f"{weights}: not a checkpoint of this toolkit")
    shipped = {key: payload[key] for key in KEPT if key in payload}
    shipped["info"] = {**shipped["info"], "trained_on": {**shipped["info"].get("trained_on", {}),
                                                         "chosen_by": chosen_by}}
    buffer = io.BytesIO()
    torch.save(shipped, buffer)
    data = buffer.getvalue()
    output = Path(output)
    digest = hashlib.sha256(data).hexdigest()
    sums = output.parent / CHECKSUM_FILE
    if sums.is_file():
        lines = [line for line in sums.read_text().splitlines() if not line.endswith(f"  {output.name}")]
        write_text_atomic(sums, "\n".join(sorted([*lines, f"{digest}  {output.name}"])) + "\n")
    write_bytes_atomic(output, data)
    load_model(output)  # it must load (and pass its checksum) as it will for users
    return digest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m src.release", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1], formatter_class=HelpFormatter)
    parser.add_argument("--weights", required=True, help="training checkpoint (e.g. models/CNN_public_last.pth)")
    parser.add_argument("--chosen-by", required=True, help="why this epoch was chosen (recorded in the weights)")
    parser.add_argument("--output", "-o", required=True, help="where to write the shipped weights")
    args = parser.parse_args(argv)
    try:
        digest = release(args.weights, args.output, args.chosen_by)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{digest}  {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
