"""The `tutti` command line."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hub import __version__

if TYPE_CHECKING:
    from hub.errors import HubError

SCHEMA_PATH = Path("plugins/schema/protocol.schema.json")


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from hub.app import create_app
    from hub.config import load_config
    from hub.errors import HubError
    from hub.wsframes import TuttiWebSocketProtocol

    overrides = {
        "host": args.host,
        "port": args.port,
        "data": args.data,
        "token": args.token,
        "log_level": args.log_level,
        "amt_model": args.amt_model,
        "engines": args.engine or None,
        "disabled_engines": args.disable_engine or None,
    }
    try:
        config = load_config(args.config, overrides)
        config.check()
    except HubError as err:
        _print_config_problems("tutti", err)
        return 2
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        # bound here, so the URL printed below has the real port (--port 0 picks one)
        sock = _listen(config.host, config.port, config.limits.socket_send_buffer)
    except OSError as exc:
        print(f"tutti: cannot listen on {config.url}: {exc.strerror or exc}", file=sys.stderr)
        print("  hint: another program (or hub) uses that port; try --port 0", file=sys.stderr)
        return 2
    config = config.model_copy(update={"port": sock.getsockname()[1]})
    app = create_app(config)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            log_level=config.log_level,
            # Frames a little over the limit reach the hub, which answers payload_too_large
            # and keeps the socket; only far larger ones are cut by uvicorn with 1009.
            ws_max_size=4 * config.limits.max_frame_bytes,
            ws_ping_interval=None,  # the hub runs its own heartbeats (documented timings)
            # uvicorn's websockets-sansio protocol plus pre-framed direct writes (hub/wsframes.py)
            ws=TuttiWebSocketProtocol,
            lifespan="on",
        )
    )
    print(f"Tutti {__version__} listening on {config.url}  (data: {config.data.resolve()})", flush=True)
    # uvicorn shuts down gracefully on SIGINT/SIGTERM and then re-raises the signal with the
    # handlers it found installed; these turn that into a plain, successful exit.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _exit_quietly)
    with contextlib.suppress(SystemExit):
        server.run(sockets=[sock])
    print("Tutti stopped.", flush=True)
    return 0


def _print_config_problems(prefix: str, err: HubError) -> None:
    print(f"{prefix}: {err.message}", file=sys.stderr)
    for problem in err.details.get("errors", []):
        where = ".".join(str(part) for part in problem.get("loc", ())) or "config"
        print(f"  {where}: {problem.get('msg', problem)}", file=sys.stderr)
    for s in err.suggestions:
        print(f"  hint: {s}", file=sys.stderr)


def _config(args: argparse.Namespace) -> int:
    from hub.config import load_config
    from hub.docs import config_toml
    from hub.errors import HubError

    if args.file is None:
        print("# Tutti hub configuration: every option at its default (docs/config.md explains each).")
        print(config_toml(), end="")
        return 0
    try:
        config = load_config(args.file, {})
        config.check()
    except HubError as err:
        _print_config_problems("tutti config", err)
        return 2
    print(f"# {args.file} is valid; the hub would run with these settings:")
    print(config_toml(config), end="")
    return 0


def _listen(host: str, port: int, send_buffer: int | None = None) -> socket.socket:
    """A TCP socket bound to ``host:port`` (IPv6 when the host is an IPv6 address).

    ``send_buffer`` fixes SO_SNDBUF on the listening socket; accepted connections inherit it.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if send_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _exit_quietly(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def _schema(args: argparse.Namespace) -> int:
    from hub.protocol import json_schema

    text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    if args.stdout:
        sys.stdout.write(text)
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


def _tokens(args: argparse.Namespace) -> int:
    from engines.amt.cli import tokens_main

    return tokens_main(args.file)


def _detokenize(args: argparse.Namespace) -> int:
    from engines.amt.cli import detokenize_main

    return detokenize_main(args.tokens, args.out)


def _analyze(args: argparse.Namespace) -> int:
    from engines.analysis import ANALYSES, analyze
    from engines.errors import EngineError

    unknown = [name for name in args.analyses if name not in ANALYSES]
    if unknown:
        print(f"tutti analyze: unknown analysis {unknown[0]!r} (choose from {', '.join(ANALYSES)})",
              file=sys.stderr)
        return 2
    try:
        report = analyze(args.file.read_bytes(), args.analyses)
    except (OSError, EngineError) as err:
        print(f"tutti analyze: {err}", file=sys.stderr)
        return 1
    print(report.model_dump_json(indent=2))
    return 0


def _docs(args: argparse.Namespace) -> int:
    from hub.docs import config_markdown, errors_markdown
    from plugins.docs import write_protocol_guide

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "errors.md").write_text(errors_markdown(), encoding="utf-8")
    (args.out / "config.md").write_text(config_markdown(), encoding="utf-8")
    write_protocol_guide(args.out / "protocol.md")
    print(f"wrote {args.out / 'errors.md'}, {args.out / 'config.md'} and {args.out / 'protocol.md'}")
    return 0


def _gc(args: argparse.Namespace) -> int:
    from hub.errors import HubError
    from hub.gc import gc_data_dir

    try:
        report = gc_data_dir(args.data, args.dry_run)
    except HubError as err:
        print(f"tutti gc: {err.message}", file=sys.stderr)
        return 1
    print(json.dumps(report.to_dict(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tutti",
        description="Tutti: a composition hub for AI music.",
        epilog="Start with `tutti serve` and open the URL it prints; `tutti COMMAND --help` says more.",
    )
    p.add_argument("--version", action="version", version=f"tutti {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        """A subcommand whose own --help opens with the line the command list shows."""
        return sub.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".")

    s = command("serve", "start the hub (prints its URL)")
    s.add_argument("--host", default=None, help="address to bind (default 127.0.0.1; others need --token)")
    s.add_argument("--port", type=int, default=None, help="port (default 8765; 0 picks a free one)")
    s.add_argument("--data", type=Path, default=None, help="data folder (default ./tutti-data)")
    s.add_argument("--token", default=None, help="shared secret clients must send in hello")
    s.add_argument("--log-level", default=None, choices=["debug", "info", "warning", "error"],
                   help="log detail (default info)")
    s.add_argument("--config", type=Path, default=None, help="TOML file with a [tutti] table (every option: docs/config.md)")
    s.add_argument("--amt-model", default=None, help="AMT weights: hub id, local folder (default: bundled)")
    s.add_argument("--engine", action="append", metavar="NAME=MODULE:CLASS", help="register an extra engine")
    s.add_argument("--disable-engine", action="append", metavar="NAME",
                   help="do not start this built-in engine (e.g. amt); repeatable")
    s.set_defaults(func=_serve)

    sc = command("schema", "write the protocol JSON Schema for plugin authors")
    sc.add_argument("--out", type=Path, default=SCHEMA_PATH, help=f"file to write (default {SCHEMA_PATH})")
    sc.add_argument("--stdout", action="store_true", help="print instead of writing the file")
    sc.set_defaults(func=_schema)

    g = command("gc", "delete CAS objects no artifact references (hub stopped)")
    g.add_argument("--data", type=Path, default=Path("tutti-data"), help="data folder (default ./tutti-data)")
    g.add_argument("--dry-run", action="store_true", help="only report what would be deleted")
    g.set_defaults(func=_gc)

    cf = command("config", "print every hub option at its default, or check a config file")
    cf.add_argument("file", nargs="?", type=Path, metavar="FILE",
                    help="TOML file to check; prints the settings the hub would use (exit 2 if invalid)")
    cf.set_defaults(func=_config)

    dc = command("docs", "regenerate docs/errors.md, docs/config.md and docs/protocol.md from the code")
    dc.add_argument("--out", type=Path, default=Path("docs"), help="docs folder (default ./docs)")
    dc.set_defaults(func=_docs)

    from plugins.bridge import add_arguments as plugin_arguments
    from plugins.bridge import run as plugin_run

    pl = command("plugin", "headless DAW bridge: mirror a session's MIDI files, drive transport")
    plugin_arguments(pl)
    pl.set_defaults(func=plugin_run)

    from engines.amt import generate_cli

    gen = command("generate", "run an AMT task without a server (progress bar; writes MIDI)")
    generate_cli.add_arguments(gen)
    gen.set_defaults(func=generate_cli.run)

    from engines.amt.train import cli as train_cli

    tr = command("train", "train the small AMT model on the committed corpus (resumable)")
    train_cli.add_arguments(tr)
    tr.set_defaults(func=train_cli.run)

    from engines.amt.evaluate import cli as eval_cli

    ev = command("eval", "AMT model quality: NLL vs n-gram baselines, statistics of generated pieces")
    eval_cli.add_arguments(ev)
    ev.set_defaults(func=eval_cli.run)

    t = command("tokens", "print a MIDI file's AMT arrival-time events as JSON")
    t.add_argument("file", type=Path, help="a MIDI file")
    t.set_defaults(func=_tokens)

    d = command("detokenize", "write AMT events (JSON list) as a reference-format MIDI file")
    d.add_argument("tokens", type=Path, help="JSON file with the events (what tutti tokens prints)")
    d.add_argument("out", type=Path, help="MIDI file to write")
    d.set_defaults(func=_detokenize)

    a = command("analyze", "print a MIDI file's musical metadata and analyses as JSON")
    a.add_argument("file", type=Path, help="a MIDI file")
    # no argparse ``choices``: with nargs="*" Python 3.11 rejects an empty list against them
    a.add_argument("analyses", nargs="*", metavar="ANALYSIS",
                   help="analyses to add to the metadata: structure, motifs, harmony, rhythm"
                   " (default: none)")
    a.set_defaults(func=_analyze)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 0
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
