"""Entry point of a media worker process: `python -m switch.worker.main --socket PATH --index I --sip H:P`.

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

from switch.worker.channel import BlockingChannel
from switch.worker.engine import Engine, EngineConfig
from switch.worker.outbox import Outbox
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="softswitch-worker")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--sip", required=True, help="HOST:PORT to bind UDP and TCP")
    parser.add_argument("--pj-log-level", type=int, default=1)
    args = parser.parse_args(argv)
    host, _, port = args.sip.rpartition(":")
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format=f"worker{args.index} %(levelname)s %(name)s: %(message)s"
    )
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(args.socket)
    channel = BlockingChannel(sock)
    outbox = Outbox(channel, args.index)
    outbox.start()
    config = EngineConfig(index=args.index, host=host, port=int(port), log_level=args.pj_log_level)
    engine = Engine(config, outbox.emit)
    try:
        engine.start()
    except Exception as exc:
        outbox.emit(Fatal(message=f"worker {args.index} could not start on {args.sip}: {exc}"))
        log.exception("worker %d: start failed", args.index)
        outbox.close()
        return 1
    outbox.emit(Hello(version=PROTOCOL_VERSION, worker=args.index, capacity=engine.capacity, sip=args.sip,
                      pid=os.getpid()))
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
