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


EXAMPLES = """examples:
  tutti generate --length 20 --out idea.mid
  tutti generate --variations 4 --seed 7 --param key_lock=true --key "D minor" --out v.mid
  tutti generate --task continue --prompt sketch.mid --bars 8 --tempo 96 --out more.mid
  tutti generate --task bridge --a verse.mid --b chorus.mid --length 6 --out bridge.mid
  tutti generate --task accompany --melody tune.mid --param instruments=[0,32] --out band.mid
  tutti generate --task continue --list-params
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    tasks = "\n".join(f"  {info.name:<10} {info.description}" for info in TASKS.infos())
    parser.description = (
        "Run one AMT task on this machine, without a server, and write MIDI\n"
        "(default model: the bundled one, on the GPU if there is one).\n\ntasks:\n" + tasks
    )
    parser.epilog = EXAMPLES
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--task", default="generate", choices=TASKS.names(), help="what to do (default: generate)"
    )
    parser.add_argument(
        "--list-params",
        action="store_true",
        help="print the task's parameters (for --param) with defaults and ranges, then exit",
    )
    parser.add_argument(
        "--length", type=float, default=None,
        help="length in seconds (default 10; generate and continue up to 600, chaining contexts)",
    )
    parser.add_argument(
        "--bars", type=int, default=None, help="length in bars (wins over --length)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--variations", type=int, default=1, help="1-8 (default 1); variation k uses seed + k")
    parser.add_argument("--model", default=None, help="hub id or folder (default: bundled)")
    parser.add_argument("--tempo", type=float, default=120.0, help="bpm of the written file (default 120)")
    parser.add_argument("--meter", default="4/4", help="time signature of the written file (default 4/4)")
    parser.add_argument("--key", default=None, help="section key, e.g. 'D minor' (for key_lock)")
    parser.add_argument("--out", type=Path, default=Path("out.mid"), help="output file (default out.mid; variations: out-01.mid ...)")
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


def task_parameters(task: str) -> str:
    """The task's parameters as aligned text: name, default or "required", description and
    range, from the same schema the hub validates against."""
    info = TASKS.get(task).info()
    schema = info.params_schema
    required = set(schema.get("required", []))
    lines = [f"{task}: {schema.get('description', info.description)}", ""]
    for name, prop in schema.get("properties", {}).items():
        default = "required" if name in required else f"default {json.dumps(prop.get('default'))}"
        bounds = _bounds(prop)
        text = prop.get("description", "")
        lines.append(f"  {name:<20} {default:<18} {text}{f' ({bounds})' if bounds else ''}")
    inputs = [name for name in schema.get("properties", {}) if name in INPUT_FLAGS.values()]
    if inputs:
        flags = ", ".join(f"--{f} FILE.mid" for f, n in INPUT_FLAGS.items() if n in inputs)
        lines += ["", f"  input files: {flags}"]
    return "\n".join(lines)


def _meter(text: str) -> tuple[int, int]:
    top, sep, bottom = text.partition("/")
    if not (sep and top.strip().isdigit() and bottom.strip().isdigit()):
        raise ValueError(f"--meter must look like 3/4, got {text!r}")
    return int(top), int(bottom)


def _missing_inputs(args: argparse.Namespace, params: dict[str, Any]) -> list[str]:
    """The input-file flags the task requires and the command line lacks."""
    info = TASKS.get(args.task).info()
    required = set(info.params_schema.get("required", []))
    return [
        f"--{flag} FILE.mid"
        for flag, name in INPUT_FLAGS.items()
        if name in required and getattr(args, flag) is None and name not in params
    ]


def _bounds(prop: dict[str, Any]) -> str:
    options = [prop, *prop.get("anyOf", [])]
    for option in options:
        if "enum" in option:
            return "one of " + ", ".join(str(v) for v in option["enum"])
        low = option.get("minimum", option.get("exclusiveMinimum"))
        high = option.get("maximum")
        if low is not None and high is not None:
            return f"{low}..{high}"
    return ""


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    if args.list_params:
        print(task_parameters(args.task))
        return 0

    try:
        numerator, denominator = _meter(args.meter)
        params = _params(args)
    except ValueError as exc:
        print(f"tutti generate: {exc}", file=sys.stderr)
        return 2
    missing = _missing_inputs(args, params)
    if missing:
        print(f"tutti generate: task {args.task!r} needs {' and '.join(missing)}", file=sys.stderr)
        return 2
    for flag in INPUT_FLAGS:
        path: Path | None = getattr(args, flag)
        if path is not None and not path.is_file():
            print(f"tutti generate: --{flag}: no such file: {path}", file=sys.stderr)
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
            path = getattr(args, flag)
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
