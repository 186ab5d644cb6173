"""The `softswitch` command line: serve, bench, demo."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from switch.core.config import Config, load_config, load_workers, parse_hostport, parse_workers
from switch.core.errors import ConfigError


def _config_from_args(args: argparse.Namespace) -> Config:
    cfg = load_config(Path(args.config) if args.config else None)
    if args.data_dir:
        cfg.data_dir = Path(args.data_dir)
    if args.http:
        cfg.http_host, cfg.http_port = parse_hostport(args.http, "--http")
    if args.sip:
        cfg.sip_host, cfg.sip_port = parse_hostport(args.sip, "--sip")
    if args.workers is not None:
        workers = parse_workers(int(args.workers) if args.workers.isdigit() else args.workers, "--workers")
        if isinstance(workers, int):
            cfg.workers = workers
        elif isinstance(cfg.workers, int):  # auto over a fixed file; over an auto file, its [workers] stays
            cfg.workers = load_workers("auto", {})
    return cfg


def _cmd_serve(args: argparse.Namespace) -> int:
    from switch.app import serve

    config = _config_from_args(args)
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(serve(config))
    return 0


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop for the control plane (a third less CPU per call than asyncio's own, measured by
    `softswitch bench`); SOFTSWITCH_LOOP=asyncio keeps asyncio's."""
    if os.environ.get("SOFTSWITCH_LOOP", "uvloop") == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a dependency; an installation without it still serves
        return None
    return uvloop.new_event_loop


def _cmd_bench(args: argparse.Namespace) -> int:
    from switch.tools.bench.main import run_bench

    status: int = run_bench(Path(args.output), calls=args.calls, rate=args.rate, workers=args.workers or 2,
                            recording_seconds=args.recording_seconds, concurrent_calls=args.concurrent_calls,
                            concurrent_rate=args.concurrent_rate)
    return status


def _cmd_demo(args: argparse.Namespace) -> int:
    from switch.tools.demo.main import run_demo

    return run_demo()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="softswitch", description="Self-hosted SIP voice platform.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the switch")
    serve.add_argument("--config", help="TOML config file (default: none)")
    serve.add_argument("--data-dir", help="where the database and recordings live (default ./var)")
    serve.add_argument("--http", help="HTTP HOST:PORT (default 127.0.0.1:8080)")
    serve.add_argument("--sip", help="SIP HOST:PORT for UDP and TCP (default 127.0.0.1:5060)")
    serve.add_argument("--workers", metavar="auto|N",
                       help='media worker processes: "auto" (the default: an elastic pool, see [workers]) or N')
    serve.set_defaults(func=_cmd_serve)
    bench = sub.add_parser("bench", help="measure the switch under sipp load on 127.0.0.1")
    bench.add_argument("--output", default="bench-results.json")
    bench.add_argument("--calls", type=int, default=200, help="calls per measured run")
    bench.add_argument("--rate", type=float, default=20.0, help="offered calls per second")
    bench.add_argument("--workers", type=int, default=None)
    bench.add_argument("--recording-seconds", type=float, default=600.0,
                       help="length of the dual-recording measurement (default 600: the 10-minute target; 0 skips)")
    bench.add_argument("--concurrent-calls", type=int, default=500,
                       help="bridged calls held up together with RTP both ways, through the edge (default 500; 0 "
                            "skips)")
    bench.add_argument("--concurrent-rate", type=float, default=25.0,
                       help="calls per second while the concurrent calls are set up (default 25)")
    bench.set_defaults(func=_cmd_bench)
    sub.add_parser("phone", help="the lab phone: a scriptable headless SIP phone (see `softswitch phone --help`)")
    demo = sub.add_parser("demo", help="one whole call on embedded defaults, shown as a timeline")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["phone"]:
        # The lab phone is its own pjsua2 process; only it (and the workers) may load pjsua2.
        from switch.worker.labphone import phone_main

        return phone_main(argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"softswitch: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
