"""Entry point of a media worker process: `python -m switch.worker.main --socket PATH --index I --sip H:P`,
and where its RTP binds: `--media-address A` (default: the SIP host), `--external-address E` (what SDP and
Contact carry behind NAT), `--rtp-ports FIRST-LAST`.

The worker connects to the control plane's unix socket, starts its Endpoint, says hello with its real
capacity, then runs the pjsua loop on the main thread while a reader thread feeds commands in and a writer
thread sends the events out of a bounded queue (`switch.worker.outbox`): the pjsua thread never waits for the
control plane.  When the control plane goes away (EOF) the worker hangs up its calls and exits.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import threading

from switch.core.logs import FORMATS, LEVELS, setup_logging
from switch.worker.channel import BlockingChannel
from switch.worker.engine import Engine, EngineConfig
from switch.worker.outbox import Outbox
from switch.worker.pjengine import ENGINE
from switch.worker.pjmedia import MediaAddress, configure_media
from switch.workers.protocol import (
    PROTOCOL_VERSION,
    Fatal,
    Hello,
    Log,
    ProtocolError,
    Shutdown,
    decode_command,
)

log = logging.getLogger("switch.worker")


def _reader(channel: BlockingChannel, engine: Engine, outbox: Outbox) -> None:
    """The reader thread: hand each command to the pjsua thread; a broken channel shuts the worker down."""
    index = engine.config.index
    try:
        while (body := channel.receive_frame()) is not None:
            try:
                command = decode_command(body)
            except ProtocolError as exc:  # framing is intact: skip this one, loudly
                log.error("worker %d: bad command skipped: %s", index, exc)
                outbox.emit(Log(level="warning", message=f"worker {index}: bad command skipped: {exc}"))
                continue
            engine.submit(command)
    except (OSError, ProtocolError) as exc:
        log.error("worker %d: control channel failed: %s", index, exc)
    engine.submit(Shutdown())


def _port_range(value: str) -> tuple[int, int]:
    first, sep, last = value.partition("-")
    if not sep or not first.isdigit() or not last.isdigit() or not 0 < int(first) < int(last) < 65536:
        raise argparse.ArgumentTypeError(f"expected FIRST-LAST, got {value!r}")
    return int(first), int(last)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="softswitch-worker")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--sip", required=True, help="HOST:PORT to bind UDP and TCP")
    parser.add_argument("--pj-log-level", type=int, default=1)
    parser.add_argument("--media-address", help="RTP bind address and SDP c= (default: the SIP host)")
    parser.add_argument("--external-address", help="what SDP c= and Contact carry instead (behind NAT)")
    parser.add_argument("--outbound-proxy", help="a SIP URI (;lr) every new request goes through: the edge")
    parser.add_argument("--rtp-ports", type=_port_range, default=(10000, 20000), help="FIRST-LAST")
    parser.add_argument("--sip-trace", action="store_true", help="report every SIP message of the legs")
    parser.add_argument("--log-level", choices=LEVELS, default="info", help="as the control plane's")
    parser.add_argument("--log-format", choices=FORMATS, default="text", help="as the control plane's")
    args = parser.parse_args(argv)
    host, _, port = args.sip.rpartition(":")
    first, last = args.rtp_ports
    configure_media(MediaAddress(args.media_address or host, args.external_address, first, last))
    setup_logging(args.log_level, args.log_format, sys.stderr, worker=args.index)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(args.socket)
    channel = BlockingChannel(sock)
    outbox = Outbox(channel, args.index)
    outbox.start()
    outbox.own()  # this thread runs pjsua (`engine.run`): its events are written at once when they can be
    config = EngineConfig(index=args.index, host=host, port=int(port), log_level=args.pj_log_level,
                          outbound_proxy=args.outbound_proxy, sip_trace=args.sip_trace)
    engine = Engine(config, outbox.emit)
    try:
        engine.start()
    except Exception as exc:
        outbox.emit(Fatal(message=f"worker {args.index} could not start on {args.sip}: {exc}"))
        log.exception("worker %d: start failed", args.index)
        outbox.close()
        return 1
    outbox.emit(Hello(version=PROTOCOL_VERSION, worker=args.index, capacity=engine.capacity, sip=args.sip,
                      pid=os.getpid(), engine=ENGINE))
    threading.Thread(target=_reader, args=(channel, engine, outbox), daemon=True, name="ipc-reader").start()
    try:
        engine.run()
    finally:
        engine.stop()
        outbox.close()
        channel.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
