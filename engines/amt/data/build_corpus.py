"""Rebuild the AMT training corpus from the music21 corpus.

    python -m engines.amt.data.build_corpus --out engines/amt/data/ --jobs 1

Step 1 converts every allowed score file (licence check, music21 parse, GM programs per
part) into a per-file JSON cache, so an interrupted run resumes where it stopped. Step 2
(fast) splits the pieces into train/validation by piece, tokenizes them with transposition
and anticipation augmentations and writes ``tokens.npz`` and ``manifest.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from tqdm import tqdm

from engines.amt.data.files import convert_cached, load_cached
from engines.amt.data.sources import ALLOWED_COLLECTIONS, corpus_root, list_files

DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tutti/amt-corpus"


def _convert_one(job: tuple[Path, Path, str]) -> dict[str, Any]:
    root, cache, rel = job
    return convert_cached(root, cache, rel)


def convert_all(
    root: Path, cache: Path, files: list[str], jobs: int, progress: bool = True
) -> Iterator[dict[str, Any]]:
    """Yield the cache record of every file (converting the missing ones), in file order."""
    todo = [rel for rel in files if load_cached(cache, rel) is None]
    bar = tqdm(total=len(files), initial=len(files) - len(todo), unit="file", disable=not progress)
    done: dict[str, dict[str, Any]] = {}
    # convert_cached re-checks the cache per file, so processes sharing it skip each
    # other's finished files
    work = [(root, cache, rel) for rel in todo]
    if jobs > 1 and work:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for record in pool.map(_convert_one, work, chunksize=1):
                done[record["path"]] = record
                bar.set_postfix_str(record["path"][-40:])
                bar.update()
    else:
        for job in work:
            bar.set_postfix_str(job[2][-40:])
            record = _convert_one(job)
            done[record["path"]] = record
            bar.update()
    bar.close()
    for rel in files:
        found = done.get(rel) or load_cached(cache, rel)
        if found is None:  # pragma: no cover - convert_cached always stores
            raise RuntimeError(f"no cache record for {rel}")
        yield found


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("engines/amt/data"))
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="per-file cache")
    parser.add_argument("--jobs", type=int, default=1, help="parallel music21 parsers")
    parser.add_argument(
        "--collections", nargs="*", default=list(ALLOWED_COLLECTIONS), help="subset to use"
    )
    parser.add_argument("--limit", type=int, default=0, help="only the first N files (tests)")
    parser.add_argument("--convert-only", action="store_true", help="fill the cache, stop")
    parser.add_argument(
        "--cached-only",
        action="store_true",
        help="assemble from the files already in the cache, converting nothing (partial)",
    )
    parser.add_argument(
        "--reverse",
        action="store_true",
        help="convert in reverse order: a second process can share the cache with a first",
    )
    parser.add_argument("--max-mb", type=float, default=15.0, help="size budget of tokens.npz")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--card", type=Path, default=Path("docs/data-card.md"), help="data card")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    root = corpus_root()
    files = list_files(root, tuple(args.collections))
    if args.limit:
        files = files[: args.limit]
    order = files[::-1] if args.reverse else files
    if args.cached_only:
        found = (load_cached(args.cache, rel) for rel in files)
        records = [r for r in found if r is not None]
        print(f"assembling from {len(records)} of {len(files)} files (cached only)")
    else:
        records = list(convert_all(root, args.cache, order, args.jobs, not args.no_progress))
    records.sort(key=lambda r: str(r["path"]))
    if args.convert_only:
        pieces = sum(len(r["pieces"]) for r in records)
        print(f"converted {len(records)} files, {pieces} pieces into {args.cache}")
        return 0
    from engines.amt.data.assemble import assemble  # after conversion: numpy/tokenize only

    summary = assemble(
        records, args.out, max_bytes=int(args.max_mb * 1e6), seed=args.seed, card=args.card
    )
    print(summary)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engines.amt.data.build_corpus")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
