"""``tutti generate``: run one AMT task without a server, with a progress bar.

The lead wires it as a subcommand: ``add_arguments(subparser)`` then
``subparser.set_defaults(func=run)``. Input MIDI files are put in a throw-away CAS and
passed the way the hub passes artifacts; outputs are copied to ``--out`` (variation k of
several goes to ``NAME-0k.mid``). Exit status 0 on success, 1 on a failed job, 2 on bad
arguments or an unavailable model.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from cas.store import CasStore
from engines.amt.engine import AmtEngine
from engines.amt.tasks import TASKS
from engines.errors import EngineError
from engines.protocol import EngineRequest, Failed, Finished, MusicalContext, Output, Progress

INPUT_FLAGS = {
    "prompt": "prompt_artifact",
    "a": "a_artifact",
    "b": "b_artifact",
    "melody": "melody_artifact",
    "input": "artifact",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default="generate", choices=TASKS.names())
    parser.add_argument("--length", type=float, default=None, help="length in seconds")
    parser.add_argument(
        "--bars", type=int, default=None, help="length in bars (wins over --length)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variations", type=int, default=1, help="1-8; variation k uses seed + k")
    parser.add_argument("--model", default=None, help="hub id or folder (default: bundled)")
    parser.add_argument("--tempo", type=float, default=120.0, help="bpm of the written file")
    parser.add_argument("--meter", default="4/4", help="time signature of the written file")
    parser.add_argument("--key", default=None, help="section key, e.g. 'D minor' (for key_lock)")
    parser.add_argument("--out", type=Path, default=Path("out.mid"), help="output file")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="any task parameter, e.g. --param top_p=0.9 --param key_lock=true",
    )
    for flag, name in INPUT_FLAGS.items():
        parser.add_argument(f"--{flag}", type=Path, default=None, help=f"MIDI file for {name}")


def _params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if args.task != "embed":
        if args.bars is not None:
            params["length_bars" if args.task != "loop" else "bars"] = args.bars
        elif args.length is not None and args.task not in ("loop", "infill"):
            params["length_seconds"] = args.length
    for item in args.param:
        name, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"--param must look like NAME=JSON, got {item!r}")
        try:
            params[name] = json.loads(text)
        except json.JSONDecodeError:
            params[name] = text  # a bare string such as a key name
    return params


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    try:
        numerator, denominator = (int(x) for x in args.meter.split("/"))
        params = _params(args)
    except ValueError as exc:
        print(f"tutti generate: {exc}", file=sys.stderr)
        return 2
    engine = AmtEngine(model=args.model)
    try:
        engine.setup()
    except EngineError as exc:
        print(f"tutti generate: {exc.message}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="tutti-generate-") as tmp:
        cas = CasStore(Path(tmp) / "cas")
        inputs: dict[str, str] = {}
        for flag, name in INPUT_FLAGS.items():
            path: Path | None = getattr(args, flag)
            if path is not None:
                inputs[name] = cas.put(path.read_bytes(), mime="audio/midi").digest
                params.setdefault(name, path.name)
        request = EngineRequest(
            "cli",
            args.task,
            params,
            num_variations=args.variations,
            seed=args.seed,
            inputs=inputs,
            context=MusicalContext(args.tempo, numerator, denominator, args.key),
        )
        try:
            job = engine.start(request, cas)
        except EngineError as exc:
            print(f"tutti generate: {exc.message}", file=sys.stderr)
            return 2
        written: list[Path] = []
        with tqdm(total=100.0, unit="%", bar_format="{l_bar}{bar}| {n:.0f}% [{elapsed}]") as bar:
            while not job.done:
                for event in engine.step_many([job]).get("cli", []):
                    if isinstance(event, Progress):
                        bar.update(event.percent - bar.n)
                    elif isinstance(event, Output):
                        written.append(_save(args.out, event, cas, args.variations))
                    elif isinstance(event, Failed):
                        print(f"tutti generate: {event.message}", file=sys.stderr)
                        return 1
                    elif isinstance(event, Finished) and args.task == "embed":
                        summary = {k: v for k, v in event.result.items() if k != "vector"}
                        print(json.dumps(summary))
        for path in written:
            print(f"wrote {path}")
    return 0


def _save(out: Path, output: Output, cas: CasStore, variations: int) -> Path:
    path = out
    if output.kind == "embedding":
        path = out.with_suffix(".json" if output.mime == "application/json" else ".npy")
    elif variations > 1 and output.variation_index is not None:
        path = out.with_name(f"{out.stem}-{output.variation_index + 1:02d}{out.suffix}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cas.get(output.digest))
    return path
