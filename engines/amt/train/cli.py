"""``tutti train --config CONFIG.toml``: train (or resume) the AMT model, export the best.

Wiring (hub CLI): ``sub = subparsers.add_parser("train"); cli.add_arguments(sub)`` and
dispatch to ``cli.run(args)``. Also runnable as ``python -m engines.amt.train``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from engines.amt.train.config import DEFAULT_CONFIG, load_config
from engines.amt.train.memory import keep_freed_memory


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="TOML config")
    parser.add_argument("--run-dir", type=Path, help="checkpoint folder (overrides run.run_dir)")
    parser.add_argument("--tokens", type=Path, help="tokens.npz (overrides data.tokens)")
    parser.add_argument("--device", help="auto, cpu or cuda (overrides run.device)")
    parser.add_argument("--threads", type=int, help="CPU threads (overrides run.threads)")
    parser.add_argument(
        "--max-minutes", type=float, default=0.0, help="stop (checkpointed) after this long"
    )
    parser.add_argument("--max-steps", type=int, help="schedule length (overrides optim)")
    parser.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    parser.add_argument(
        "--init-from", type=Path, default=None, metavar="WEIGHTS_DIR",
        help="new run starting from exported weights (e.g. a checkpoint from another machine); "
        "continues the schedule at its recorded step",
    )
    parser.add_argument("--export", type=Path, help="export the best checkpoint here (fp16)")
    parser.add_argument(
        "--export-only", action="store_true", help="only export RUN/best.pt to --export"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import torch  # here, so `tutti --help` and the hub never pay for importing torch

    from engines.amt.data.arrays import DATA_DIR, TOKENS_FILE, load_tokens
    from engines.amt.train.checkpoint import BEST, export_best
    from engines.amt.train.trainer import Trainer

    cfg = load_config(args.config)
    if args.run_dir:
        cfg.run.run_dir = str(args.run_dir)
    if args.tokens:
        cfg.data.tokens = str(args.tokens)
    if args.device:
        cfg.run.device = args.device
    if args.threads is not None:
        cfg.run.threads = args.threads
    if args.max_steps:
        cfg.optim.max_steps = args.max_steps
    export_dir = args.export or (Path(cfg.run.export_dir) if cfg.run.export_dir else None)
    if cfg.run.threads > 0:
        torch.set_num_threads(cfg.run.threads)
    keep_freed_memory()  # ~1.5x on CPU: no mmap/munmap of the big logits every step
    run_dir = Path(cfg.run.run_dir)
    if args.export_only:
        if export_dir is None or not (run_dir / BEST).is_file():
            print(f"nothing to export: need --export DIR and {run_dir / BEST}")
            return 2
        export_best(run_dir, cfg.model, export_dir, {})
        print(f"exported {run_dir / BEST} -> {export_dir}")
        return 0
    train, valid = load_tokens(Path(cfg.data.tokens) if cfg.data.tokens else DATA_DIR / TOKENS_FILE)
    trainer = Trainer(cfg, train, valid)
    resumed = False if args.fresh else trainer.resume()
    if args.init_from is not None and not resumed:
        trainer.init_from(args.init_from)
    start = "new run" if trainer.state.step == 0 else f"at step {trainer.state.step}"
    print(
        f"{'resuming at step ' + str(trainer.state.step) if resumed else start} in {run_dir}; "
        f"{len(train)} train / {len(valid)} valid sequences, {trainer.total_steps} steps, "
        f"device {trainer.device}"
    )
    state = trainer.fit(args.max_minutes, progress=not args.no_progress)
    done = trainer.finished
    print(
        f"step {state.step}/{trainer.total_steps}; best validation NLL/event "
        f"{state.best_val:.4f} at step {state.best_step}"
        + (" (stopped: no improvement)" if state.stopped_early else "")
        + ("" if done else "; run the same command again to continue")
    )
    if done and export_dir is not None and (run_dir / BEST).is_file():
        export_best(run_dir, cfg.model, export_dir, trainer.card_info())
        print(f"exported best checkpoint to {export_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tutti train")
    add_arguments(parser)
    return run(parser.parse_args(argv))
