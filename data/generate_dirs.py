"""Create the data tree: `python -m data.generate_dirs [--root data]`. Safe to run again."""

from __future__ import annotations

import argparse
import sys

from data.layout import all_dirs
from src.cli import HelpFormatter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m data.generate_dirs",
        description="Create <root>/{ai,human}_{full,converted,split} and the same six folders under "
        "<root>/validation_set. Existing folders and files are left untouched.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--root", default="data", help="root of the data tree")
    args = parser.parse_args(argv)
    created = 0
    for folder in all_dirs(args.root):
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            created += 1
    print(f"{created} folder(s) created, {len(all_dirs(args.root)) - created} already there, under {args.root}")
    print(f"put AI recordings in {args.root}/ai_full and human ones in {args.root}/human_full "
          f"(hold-out sets in {args.root}/validation_set/*_full), then run python -m data.convert_and_divide")
    return 0


if __name__ == "__main__":
    sys.exit(main())
