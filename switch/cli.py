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
from switch.core.config_env import apply_environment
from switch.core.errors import ConfigError
from switch.core.logs import FORMATS, LEVELS, setup_logging
from switch.preflight import StartupError


def _config_from_args(args: argparse.Namespace) -> Config:
    cfg = apply_environment(load_config(Path(args.config) if args.config else None))  # file, env, flags
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
    from switch.preflight import preflight
    from switch.workers.edge import EdgeError

    config = _config_from_args(args)
    if args.pj_log_level is not None:
        config.pj_log_level = args.pj_log_level
    # the flags win over [server] log_level / log_format (the workers are told the outcome)
    config.log_level, config.log_format = args.log_level or config.log_level, args.log_format or config.log_format
    setup_logging(config.log_level, config.log_format)
    preflight(config)
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(serve(config))
    except (OSError, EdgeError) as exc:  # a port taken since the preflight, kamailio refusing to start
        logging.getLogger("asyncio").disabled = True  # half-started objects' complaints as the loop goes
        raise StartupError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
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
                            concurrent_rate=args.concurrent_rate, observability_calls=args.observability_calls,
                            streams_calls=args.streams_calls, conference_participants=args.conference_participants,
                            browser_calls=args.browser_calls)
    return status


def _cmd_demo(args: argparse.Namespace) -> int:
    try:
        from switch.tools.demo.main import run_demo
    except ModuleNotFoundError as exc:
        if exc.name not in ("twilio", "matplotlib"):
            raise
        print(f"softswitch demo needs {exc.name}: pip install 'softswitch[demo]' (make demo installs it)",
              file=sys.stderr)
        return 2

    return run_demo()


def _log_options(parser: argparse.ArgumentParser, default: object) -> None:
    """--log-level (-v, -q) and --log-format, before or after the subcommand (`default`: SUPPRESS on the
    subcommands, so that theirs do not undo the main parser's)."""
    group = parser.add_argument_group("logging")
    group.add_argument("--log-level", choices=LEVELS, default=default,
                       help="the least severe lines logged (default info, or [server] log_level)")
    group.add_argument("-v", "--verbose", dest="log_level", action="store_const", const="debug", default=default,
                       help="--log-level debug")
    group.add_argument("-q", "--quiet", dest="log_level", action="store_const", const="warning", default=default,
                       help="--log-level warning")
    group.add_argument("--log-format", choices=FORMATS, default=default,
                       help="text (the default, or [server] log_format) or json: one JSON object a line")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="softswitch", description="Self-hosted SIP voice platform.")
    _log_options(parser, None)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the switch")
    _log_options(serve, argparse.SUPPRESS)
    serve.add_argument("--pj-log-level", type=int, choices=range(7), metavar="0-6",
                       help="pjsip's own log in the workers, 0 (none) to 6 (everything); default 1, or "
                            "[server] pj_log_level")
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
    bench.add_argument("--observability-calls", type=int, default=200,
                       help="calls per run of the metrics/call-events cost phase, four runs (default 200; 0 skips)")
    bench.add_argument("--streams-calls", type=int, default=20,
                       help="calls on <Connect><Stream> to the bench's bot at once (default 20; 0 skips)")
    bench.add_argument("--conference-participants", type=int, default=20,
                       help="callers in one <Dial><Conference> room for the mixing CPU figures; the phase also "
                            "finds the largest clean room and times <Dial><Queue> (default 20; 0 skips)")
    bench.add_argument("--browser-calls", type=int, default=20,
                       help="browser calls (aiortc on the client WebSocket) held at once for the CPU per browser "
                            "call-second figures; the phase also times mouth-to-ear latency and finds the most "
                            "concurrent clean browser calls (default 20; 0 skips)")
    bench.set_defaults(func=_cmd_bench)
    _log_options(bench, argparse.SUPPRESS)
    sub.add_parser("phone", help="the lab phone: a scriptable headless SIP phone (see `softswitch phone --help`)")
    demo = sub.add_parser("demo", help="one whole call on embedded defaults, shown as a timeline")
    demo.set_defaults(func=_cmd_demo)
    _log_options(demo, argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["phone"]:
        # The lab phone is its own pjsua2 process; only it (and the workers) may load pjsua2.
        from switch.worker.labphone import phone_main

        logs = argparse.ArgumentParser(add_help=False)
        _log_options(logs, None)
        known, rest = logs.parse_known_args(argv[1:])
        setup_logging(known.log_level or "info", known.log_format or "text")
        return phone_main(rest)
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level or "info", args.log_format or "text")
    # Exit status 2 for a user's mistake (bad flags: argparse; a bad config file; a port in use, an unusable
    # data dir, a missing package), one line on stderr; 1 (with a traceback) only for the switch's own bugs.
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"softswitch: configuration error: {exc}", file=sys.stderr)
        return 2
    except StartupError as exc:
        print(f"softswitch: cannot start: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
