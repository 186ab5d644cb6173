"""Entry point of a media worker process: `python -m switch.worker.main --socket PATH --index I --sip H:P`.

The worker connects to the control plane's unix socket, starts its Endpoint, says hello with its real
capacity, then runs the pjsua loop on the main thread while a reader thread feeds commands in.  When the
control plane goes away (EOF) the worker hangs up its calls and exits.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import threading

from switch.worker.engine import Engine, EngineConfig
from switch.workers.protocol import PROTOCOL_VERSION, BlockingChannel, ProtocolError

log = logging.getLogger("switch.worker")


def _reader(channel: BlockingChannel, engine: Engine) -> None:
    try:
        while True:
            message = channel.receive()
            if message is None:
                break
            engine.submit(message)
    except (OSError, ProtocolError) as exc:
        log.error("worker %d: control channel failed: %s", engine.config.index, exc)
    engine.submit({"op": "shutdown"})


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
    config = EngineConfig(index=args.index, host=host, port=int(port), log_level=args.pj_log_level)

    def emit(event: dict[str, object]) -> None:
        try:
            channel.send(event)
        except OSError as exc:
            log.error("worker %d: cannot send %s: %s", args.index, event.get("ev"), exc)

    engine = Engine(config, emit)
    try:
        engine.start()
    except Exception as exc:
        emit({"ev": "fatal", "message": f"worker {args.index} could not start on {args.sip}: {exc}"})
        log.exception("worker %d: start failed", args.index)
        return 1
    emit(
        {"ev": "hello", "version": PROTOCOL_VERSION, "worker": args.index, "capacity": engine.capacity,
         "sip": args.sip, "pid": os.getpid()}
    )
    threading.Thread(target=_reader, args=(channel, engine), daemon=True, name="ipc-reader").start()
    try:
        engine.run()
    finally:
        engine.stop()
        channel.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
