"""The one training loop behind `src.train_CNN` and `src.train_vision_transformer`.

Reads clips from <root>/{ai,human}_split, holds out a test split by source recording,
evaluates on <root>/validation_set/{ai,human}_split each epoch, steps a
ReduceLROnPlateau scheduler on the validation loss (or follows a cosine schedule),
optionally keeps an exponential moving average of the weights, keeps the best and the
last checkpoint, and writes the original's per-epoch log files. Runs on several processes
or GPUs under `torchrun` (DistributedDataParallel; gloo on CPU, NCCL on CUDA).
"""

from __future__ import annotations

import argparse
import copy
import csv
import datetime
import hashlib
import math
import os
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from src.atomic import append_text_atomic, remove_stale_partials_of, write_bytes_atomic
from src.augment import Augmenter, describe
from src.checkpoint import CheckpointError, ModelInfo, load_model, read_checkpoint, save_checkpoint
from src.cli import HelpFormatter, probability
from src.dataset import (
    SOURCE_WEIGHTING,
    ClipDataset,
    EpochSampler,
    Item,
    clips_mp3_kbps,
    labelled_clips,
    paired_sources_only,
    source_of,
    split_by_source,
)
from src.distill import Teacher, distillation_loss
from src.distributed import Distributed
from src.features import read_stats, stats_path, write_stats
from src.metrics import Report, evaluate, format_test_line, format_validation_line
from src.model import build_model
from src.stats import compute_stats


@dataclass
class ArchSpec:
    """What differs between the two train commands: model, defaults and log names."""

    architecture: str
    description: str
    lr: float
    epochs: int
    output: str
    log_dir: str
    log_name: str
    val_log_name: str
    incorrect_log_name: str
    validation_epoch_base: int  # the original numbers CNN validation epochs from 0, ViT from 1
    model_options: dict = field(default_factory=dict)  # flag -> add_argument keywords (type or choices, default, help)

    @property
    def log_names(self) -> tuple[str, str, str]:
        return self.log_name, self.val_log_name, self.incorrect_log_name


def build_parser(spec: ArchSpec) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m src.train_{'CNN' if spec.architecture == 'cnn' else 'vision_transformer'}",
        description=spec.description,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--root", default="data", help="data tree made by data.generate_dirs / convert_and_divide")
    parser.add_argument("--epochs", type=int, default=spec.epochs, help="number of training epochs")
    parser.add_argument("--batch-size", type=int, default=16, help="clips per batch (per process under torchrun)")
    parser.add_argument("--lr", type=float, default=spec.lr, help="Adam learning rate")
    parser.add_argument("--clips-per-epoch", type=int, metavar="N",
                        help="train on N clips per epoch, drawn afresh each epoch, half from each class, each "
                             "source folder weighted as --source-weighting says (for large corpora); "
                             "default: every training clip once per epoch")
    parser.add_argument("--source-weighting", choices=sorted(SOURCE_WEIGHTING), default="sqrt",
                        help="with --clips-per-epoch, within a class: sqrt = a source folder (one repository) "
                             "draws as the square root of its clip count; equal = every source folder draws "
                             "the same, so a big human-only corpus weighs no more than one demo page")
    parser.add_argument("--paired-sources", action="store_true",
                        help="train only on source folders that hold both human and AI clips, so the page a "
                             "clip comes from says nothing about its label (the test split is unchanged)")
    parser.add_argument("--test-fraction", type=float, default=0.2,
                        help="share of training recordings held out as the test split")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--seed", type=int, default=42, help="seed for weights, split and shuffling")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="DataLoader worker processes (0 = load in the main process)")
    parser.add_argument("--output", default=spec.output,
                        help="best checkpoint path; the last epoch goes to <output stem>_last<suffix>")
    parser.add_argument("--log-dir", default=spec.log_dir, help="folder for the per-epoch log files")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the last checkpoint next to --output (model, optimizer, scheduler)")
    parser.add_argument("--bf16", action="store_true",
                        help="train under bfloat16 autocast (faster on CPUs with AVX512-BF16 or AMX)")
    parser.add_argument("--schedule", choices=("plateau", "cosine"), default="plateau",
                        help="plateau: divide the LR by 10 after 10 epochs without a better selection loss "
                             "(the original); cosine: decay it to 0 over --epochs, whatever the losses")
    parser.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                        help="evaluate and save an exponential moving average of the weights, updated after "
                             "every step with this decay (e.g. 0.998); 0 = off")
    parser.add_argument("--select", choices=("validation", "test", "last"), default="validation",
                        help="which epoch --output keeps: lowest validation_set loss (the original), lowest "
                             "loss on the held-out test split, or simply the last (no choice made on the data "
                             "you will report on)")
    parser.add_argument("--augment-prob", type=probability, default=0.5,
                        help="share of training clips augmented (noise, reverb, codecs, band-limiting, masks); 0 = off")
    parser.add_argument("--codec-prob", type=probability, default=0.0, metavar="P",
                        help="share of training clips sent through a random mp3 or ogg round trip on top of "
                             "--augment-prob; for lossless trees (convert_and_divide --codec flac), whose models "
                             "then skip the mp3 round trip at inference")
    parser.add_argument("--noise-dir", help="folder of background noise recordings mixed under training clips")
    parser.add_argument("--rir-dir", help="folder of room impulse responses for reverberation")
    parser.add_argument("--init-weights",
                        help="start from this checkpoint's weights (fine-tuning, e.g. the shipped ones on your data)")
    parser.add_argument("--teacher", metavar="WEIGHTS",
                        help="distil from this trained checkpoint (any architecture, e.g. the shipped CNN): the "
                             "model also learns the teacher's probabilities on the same augmented windows")
    parser.add_argument("--distill-weight", type=probability, default=0.5, metavar="W",
                        help="with --teacher: loss = (1 - W) * label loss + W * teacher loss")
    parser.add_argument("--distill-temperature", type=float, default=1.0, metavar="T",
                        help="with --teacher: both models' logits are divided by T in the teacher loss (and it is "
                             "multiplied by T^2); above 1, the student also learns how sure the teacher is")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    for flag, option in spec.model_options.items():  # the default is applied in model_config, not here
        keywords = {key: value for key, value in option.items() if key not in ("default", "help")}
        parser.add_argument(flag, **keywords,
                            help=f"{option['help']} (default: {option['default']}; with --init-weights, that model's)")
    return parser


def model_config(spec: ArchSpec, args: argparse.Namespace | None, start_config: dict) -> dict:
    """Model settings: those given on the command line, else the --init-weights checkpoint's, else the defaults.

    With args None: a checkpoint's settings completed with the defaults of those it predates."""
    config = {}
    for flag, option in spec.model_options.items():
        key = flag.lstrip("-").replace("-", "_")
        given = getattr(args, key, None)
        config[key] = given if given is not None else start_config.get(key, option["default"])
    return config


def last_checkpoint_path(output: str | os.PathLike) -> Path:
    output = Path(output)
    return output.with_name(f"{output.stem}_last{output.suffix}")


def distillation_settings(args: argparse.Namespace) -> dict:
    """The teacher and its loss settings as recorded in a checkpoint (all None without --teacher)."""
    return {"teacher": args.teacher, "distill_weight": args.distill_weight if args.teacher else None,
            "distill_temperature": args.distill_temperature if args.teacher else None}


def manifest_facts(root: Path) -> dict:
    """The data tree's manifest (as the corpus recipes write it): its sha256, and recordings, hours and
    source repositories per split and class; {} when the tree has none."""
    path = root / "manifest.csv"
    if not path.exists():
        return {}
    rows = list(csv.DictReader(open(path, newline="")))
    counts: dict[str, dict] = {}
    for row in rows:
        entry = counts.setdefault(f"{row.get('split', '')}/{row.get('label', '')}",
                                  {"recordings": 0, "hours": 0.0, "sources": set()})
        entry["recordings"] += 1
        entry["hours"] += float(row.get("duration_s") or 0) / 3600
        entry["sources"].add(row.get("source", ""))
    return {"manifest_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "manifest_counts": {key: {"recordings": e["recordings"], "hours": round(e["hours"], 3),
                                      "sources": len(e["sources"])} for key, e in sorted(counts.items())}}


def resume_mismatch(state: dict, args: argparse.Namespace) -> str | None:
    """Why a `_last` checkpoint cannot continue under these flags, or None."""
    trained_on = state.get("info", {}).get("trained_on", {})
    wanted = distillation_settings(args)
    recorded = {key: trained_on.get(key) for key in wanted}
    if recorded != wanted:
        return f"was trained with distillation settings {recorded}, not {wanted}"
    if trained_on.get("clips_per_epoch") != args.clips_per_epoch:
        return f"was trained with --clips-per-epoch {trained_on.get('clips_per_epoch')}"
    if trained_on.get("paired_sources", False) != args.paired_sources:
        return f"was trained {'without' if args.paired_sources else 'with'} --paired-sources"
    if trained_on.get("source_weighting", "sqrt") != args.source_weighting:
        return f"was trained with --source-weighting {trained_on.get('source_weighting', 'sqrt')}"
    if ("train_state_dict" in state) != (args.ema > 0):
        return f"was trained {'without' if args.ema > 0 else 'with'} --ema"
    cosine = "T_max" in state["scheduler"]
    if cosine != (args.schedule == "cosine"):
        return f"was trained with --schedule {'cosine' if cosine else 'plateau'}"
    if cosine and state["scheduler"]["T_max"] != args.epochs:
        return f"follows a cosine schedule over {state['scheduler']['T_max']} epochs, not --epochs {args.epochs}"
    return None


def log_state(log_dir: Path, names: tuple[str, ...]) -> dict[str, dict]:
    """Length and sha256 of each log file, saved with the last checkpoint so a resume can rewind to them."""
    state = {}
    for name in names:
        data = (log_dir / name).read_bytes() if (log_dir / name).is_file() else b""
        state[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return state


def rewind_logs(log_dir: Path, state: dict[str, dict]) -> list[str]:
    """Cut each log back to what it held when the checkpoint was saved; returns the names cut.

    A run killed after logging an epoch but before checkpointing it redoes that epoch on resume, so its
    entries would appear twice. A log that does not begin with the recorded content is left alone.
    """
    rewound = []
    for name, recorded in state.items():
        path, size = log_dir / name, recorded["bytes"]
        data = path.read_bytes() if path.is_file() else b""
        if len(data) > size and hashlib.sha256(data[:size]).hexdigest() == recorded["sha256"]:
            write_bytes_atomic(path, data[:size])
            rewound.append(name)
    return rewound


class WeightAverage:
    """An exponential moving average of a model's weights and batchnorm statistics.

    The decay ramps up as min(decay, (1 + n) / (10 + n)) over the first updates, so the random
    initial weights are forgotten quickly even in short runs.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(getattr(model, "module", model)).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        live = getattr(model, "module", model).state_dict()
        for name, average in self.model.state_dict().items():
            if average.is_floating_point():
                average.lerp_(live[name], 1.0 - decay)
            else:  # counters such as num_batches_tracked
                average.copy_(live[name])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_or_compute_stats(root: Path, items: list[Item], workers: int, ddp: Distributed, progress: bool):
    """The dataset's global stats from <root>/global_stats.txt, computed first if missing."""
    path = stats_path(root)
    if ddp.is_main and not path.exists():
        print(f"{path} not found: computing the global statistics of the training clips first")
        write_stats(path, compute_stats(items, workers=workers, progress=progress))
    ddp.barrier()
    return read_stats(path)


@torch.inference_mode()
def predict(model: nn.Module, loader: DataLoader, device: torch.device, progress: bool, desc: str):
    """AI probabilities, labels, dataset indices and mean cross-entropy over a loader."""
    model.eval()
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    probs, labels, indices, total_loss = [], [], [], 0.0
    for x, y, idx in tqdm(loader, desc=desc, unit="batch", leave=False, disable=not progress):
        logits = model(x.to(device))
        total_loss += loss_fn(logits, y.to(device)).item()
        probs.append(torch.softmax(logits, dim=1)[:, 0].cpu())
        labels.append(y)
        indices.append(idx)
    if not probs:
        return np.array([]), np.array([], dtype=np.int64), np.array([], dtype=np.int64), math.nan
    n = sum(len(y) for y in labels)
    return torch.cat(probs).numpy(), torch.cat(labels).numpy(), torch.cat(indices).numpy(), total_loss / n


def evaluate_split(model, loader, device, threshold, progress, desc) -> tuple[Report, list[str]]:
    """Metrics on one split and the paths of the clips it got wrong."""
    p_ai, labels, indices, loss = predict(model, loader, device, progress, desc)
    report = evaluate(labels, p_ai, threshold, loss)
    wrong = (p_ai >= threshold) != (labels == 0)
    items = loader.dataset.items
    return report, [items[i][0] for i in indices[wrong]]


def train_one_epoch(model, loader, optimizer, device, epoch, epochs, progress, bf16: bool = False,
                    average: WeightAverage | None = None, teacher: Teacher | None = None,
                    distill_weight: float = 0.0, temperature: float = 1.0) -> float:
    model.train()
    total, seen, correct = 0.0, 0, 0
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", unit="batch", disable=not progress)
    for x, y, _ in bar:
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            teacher_logits = teacher.logits(x) if teacher is not None else None
            logits = model(x)
            loss = distillation_loss(logits.float(), y, teacher_logits, distill_weight, temperature)
        loss.backward()
        optimizer.step()
        if average is not None:
            average.update(model)
        total += loss.item() * len(y)
        seen += len(y)
        correct += (logits.argmax(1) == y).sum().item()
        bar.set_postfix(loss=f"{total / seen:.4f}", acc=f"{100 * correct / seen:.1f}%")
    return total / max(seen, 1)


def describe_data(train: list[Item], test: list[Item], validation: list[Item], root: Path) -> dict:
    def count(items):
        return {"clips": len(items), "recordings": len({source_of(p) for p, _ in items}),
                "ai_clips": sum(1 for _, y in items if y == 0), "human_clips": sum(1 for _, y in items if y == 1)}

    return {"data_root": str(root.resolve()), "train": count(train), "test": count(test),
            "validation": count(validation),
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}


def run(spec: ArchSpec, argv: list[str] | None = None) -> int:
    """Parse arguments and train; returns the exit status."""
    args = build_parser(spec).parse_args(argv)
    ddp = Distributed(args.device)
    progress = ddp.is_main and not args.no_progress
    try:
        return _train(spec, args, ddp, progress)
    finally:
        ddp.close()


def _train(spec: ArchSpec, args: argparse.Namespace, ddp: Distributed, progress: bool) -> int:
    root = Path(args.root)
    items = labelled_clips(root / "ai_split", root / "human_split")
    if not any(y == 0 for _, y in items) or not any(y == 1 for _, y in items):
        print(f"error: training needs clips in both {root / 'ai_split'} and {root / 'human_split'}; "
              "put recordings in *_full and run `python -m data.convert_and_divide` first", file=sys.stderr)
        return 2
    train_items, test_items = split_by_source(items, args.test_fraction, args.seed)
    if args.paired_sources:
        train_items = paired_sources_only(train_items)
        if len({y for _, y in train_items}) < 2:
            print(f"error: --paired-sources left no source folder under {root / 'ai_split'} and "
                  f"{root / 'human_split'} with both classes; put a page's human and AI clips in folders of "
                  "the same name", file=sys.stderr)
            return 2
    val_items = labelled_clips(root / "validation_set" / "ai_split", root / "validation_set" / "human_split")
    try:
        mp3_kbps = clips_mp3_kbps(items + val_items)
    except ValueError as exc:
        print(f"error: {root}: {exc}", file=sys.stderr)
        return 2
    stats = load_or_compute_stats(root, items, args.workers, ddp, progress)
    if args.clips_per_epoch is not None and args.clips_per_epoch < 1:
        print(f"error: --clips-per-epoch must be at least 1, got {args.clips_per_epoch}", file=sys.stderr)
        return 2
    if not args.distill_temperature > 0:
        print(f"error: --distill-temperature must be positive, got {args.distill_temperature}", file=sys.stderr)
        return 2
    teacher = None
    if args.teacher:
        try:
            teacher = Teacher(args.teacher, stats, mp3_kbps, ddp.device)
        except CheckpointError as exc:
            print(f"error: --teacher: {exc}", file=sys.stderr)
            return 2

    start = start_info = None
    if args.init_weights:
        try:
            start, start_info = load_model(args.init_weights, spec.architecture)
        except CheckpointError as exc:
            print(f"error: --init-weights: {exc}", file=sys.stderr)
            return 2
    config = model_config(spec, args, start_info.config if start_info else {})
    if start_info is not None and model_config(spec, None, start_info.config) != config:
        print(f"error: --init-weights: {args.init_weights} has settings {start_info.config}, "
              f"this run asks for {config}", file=sys.stderr)
        return 2
    seed_everything(args.seed)
    model = build_model(spec.architecture, config)
    if start is not None:
        model.load_state_dict(start.state_dict())
    model = model.to(ddp.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    if args.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    else:
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, "min", patience=10, factor=0.1)
    average = WeightAverage(model, args.ema) if args.ema > 0 else None
    augmenter = (Augmenter(args.augment_prob, args.noise_dir, args.rir_dir, args.codec_prob)
                 if args.augment_prob > 0 or args.codec_prob > 0 else None)
    trained_on = {**describe_data(train_items, test_items, val_items, root), "augmentation": describe(augmenter),
                  "epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size, "seed": args.seed,
                  "bf16": args.bf16, "init_weights": args.init_weights, "schedule": args.schedule,
                  "ema": args.ema, "select": args.select, "clips_per_epoch": args.clips_per_epoch,
                  "source_weighting": args.source_weighting, "paired_sources": args.paired_sources,
                  **manifest_facts(root), **distillation_settings(args)}
    info = ModelInfo(spec.architecture, config, stats.mean, stats.std, mp3_kbps=mp3_kbps, trained_on=trained_on)

    start_epoch, best_loss = 0, math.inf
    last_path = last_checkpoint_path(args.output)
    log_dir = Path(args.log_dir)
    if ddp.is_main:  # temporary files of a killed run
        remove_stale_partials_of([Path(args.output), last_path, *(log_dir / n for n in spec.log_names)])
    if args.resume:
        if not last_path.exists():
            print(f"error: --resume: no checkpoint at {last_path}", file=sys.stderr)
            return 2
        state = read_checkpoint(last_path)
        problem = resume_mismatch(state, args)
        if problem:
            print(f"error: --resume: {last_path} {problem}; resume with the flags of the interrupted run",
                  file=sys.stderr)
            return 2
        model.load_state_dict(state.get("train_state_dict", state["state_dict"]))
        if average is not None:
            average.model.load_state_dict(state["state_dict"])
            average.updates = int(state["average_updates"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, best_loss = int(state["epoch"]) + 1, float(state["best_loss"])
        print(f"resuming from {last_path} after epoch {start_epoch}")
        if ddp.is_main and rewind_logs(log_dir, state.get("logs", {})):
            print(f"logs in {log_dir}: removed the entries written after that checkpoint (an interrupted epoch)")

    if ddp.enabled:
        device_ids = [ddp.device] if ddp.device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    train_set = ClipDataset(train_items, stats, augmenter)
    if args.clips_per_epoch:
        sampler = EpochSampler(train_items, args.clips_per_epoch, args.seed, ddp.rank, ddp.world_size,
                               args.source_weighting)
    else:
        sampler = DistributedSampler(train_set, seed=args.seed) if ddp.enabled else None
    generator = torch.Generator().manual_seed(args.seed)
    # Workers are started afresh every epoch from `generator`, re-seeded per epoch, so the shuffle and the
    # workers' augmentation draws depend on (seed, epoch) only and a resumed run repeats them exactly.
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=sampler is None, sampler=sampler,
                              num_workers=args.workers, generator=generator)
    test_loader = DataLoader(ClipDataset(test_items, stats), batch_size=args.batch_size, num_workers=args.workers)
    val_loader = DataLoader(ClipDataset(val_items, stats), batch_size=args.batch_size, num_workers=args.workers)

    log_dir.mkdir(parents=True, exist_ok=True)
    if ddp.is_main:
        print(f"{spec.architecture.upper()}: {len(train_items)} train / {len(test_items)} test / "
              f"{len(val_items)} validation clips, device {ddp.device}, {ddp.world_size} process(es)")
        if not val_items and args.select == "validation":
            print("no validation_set clips: the best epoch is chosen on the test split")

    for epoch in range(start_epoch, args.epochs):
        seed_everything(args.seed + epoch)
        if sampler is not None:
            sampler.set_epoch(epoch)
        generator.manual_seed(args.seed + epoch)
        train_one_epoch(model, train_loader, optimizer, ddp.device, epoch, args.epochs, progress, args.bf16,
                        average, teacher, args.distill_weight, args.distill_temperature)
        evaluated = model if average is None else average.model  # the weights that get saved
        losses = {"test": math.nan, "validation": math.nan}
        if ddp.is_main:
            losses = _evaluate_and_log(spec, evaluated, test_loader, val_loader, ddp.device, epoch, log_dir,
                                       info.threshold, progress)
        monitored = losses["validation"] if val_items else losses["test"]
        selection = monitored if args.select == "validation" else losses["test"]
        monitored, selection_loss = ddp.broadcast_float(monitored), ddp.broadcast_float(selection)
        if args.schedule == "cosine":
            scheduler.step()
        else:
            scheduler.step(monitored)
        if ddp.is_main:
            improved = args.select == "last" or selection_loss < best_loss
            best_loss = selection_loss if args.select == "last" else min(best_loss, selection_loss)
            if improved:
                save_checkpoint(args.output, evaluated, info, epoch=epoch, selection_loss=selection_loss)
            live = getattr(model, "module", model)
            resume_state = {} if average is None else {  # the averaged weights are saved; training goes on from these
                "train_state_dict": {k: v.detach().cpu() for k, v in live.state_dict().items()},
                "average_updates": average.updates}
            save_checkpoint(last_path, evaluated, info, epoch=epoch, best_loss=best_loss,
                            optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                            logs=log_state(log_dir, spec.log_names), **resume_state)
            note = " (best so far)" if improved and args.select != "last" else ""
            print(f"epoch {epoch + 1}/{args.epochs}: selection loss {selection_loss:.4f}, "
                  f"lr {optimizer.param_groups[0]['lr']:.2e}{note}")
        ddp.barrier()
    if ddp.is_main:
        print(f"best checkpoint: {args.output}\nlast checkpoint: {last_path}\nlogs: {log_dir}")
    return 0


def _evaluate_and_log(spec, model, test_loader, val_loader, device, epoch, log_dir, threshold,
                      progress) -> dict[str, float]:
    """Write the epoch's test, validation and misclassified-file logs; returns the losses of both splits."""
    net = getattr(model, "module", model)
    test_report, _ = evaluate_split(net, test_loader, device, threshold, progress, "test")
    append_text_atomic(log_dir / spec.log_name, format_test_line(test_report))
    if not len(val_loader.dataset):
        return {"test": test_report.loss, "validation": math.nan}
    val_report, wrong = evaluate_split(net, val_loader, device, threshold, progress, "validation")
    append_text_atomic(log_dir / spec.val_log_name,
                       format_validation_line(epoch + spec.validation_epoch_base, val_report))
    append_text_atomic(log_dir / spec.incorrect_log_name, "".join(f"{p}\n" for p in wrong))
    return {"test": test_report.loss, "validation": val_report.loss}
