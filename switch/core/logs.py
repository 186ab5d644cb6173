"""The control plane's log: text or JSON lines on stderr, every line about a call carrying its CallSid.

Work for a call runs with `CALL_SID` set (`call_context` around a worker event or a REST request, `bind_call`
in a call's own task; asyncio tasks and loop timers copy it when they are created), and `CallSidFilter` puts it
on each record as `call_sid`.  A record logged outside that context whose first argument is a CallSid (the
`"%s: ..."` lines of the call engine) gets that one.  `setup_logging` installs the handler once, for the
command line.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import IO

CALL_SID: ContextVar[str | None] = ContextVar("call_sid", default=None)
CALL_SID_RE = re.compile(r"^CA[0-9a-f]{32}$")
LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(call)s: %(message)s"


@contextmanager
def call_context(sid: str | None) -> Iterator[None]:
    """Log lines (and tasks and timers created) inside the block carry `sid` as their CallSid."""
    token = CALL_SID.set(sid)
    try:
        yield
    finally:
        CALL_SID.reset(token)


def bind_call(sid: str | None) -> None:
    """From here on, the current task's log lines carry `sid` (a call's own task: its context is its own)."""
    CALL_SID.set(sid)


def record_call_sid(record: logging.LogRecord) -> str | None:
    """The CallSid a record is about: the context's, else the first argument that is a CallSid, else None."""
    sid = CALL_SID.get()
    if sid is None and isinstance(record.args, tuple):
        sid = next((a for a in record.args if isinstance(a, str) and CALL_SID_RE.match(a)), None)
    return sid


class CallSidFilter(logging.Filter):
    """Sets `record.call_sid` (None for a line about no call); keeps every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "call_sid", None) is None:
            record.call_sid = record_call_sid(record)
        return True


class TextFormatter(logging.Formatter):
    """`time LEVEL logger CallSid=CA...: message`; lines about no call leave the CallSid out; a media worker's
    lines start with `workerN`."""

    def __init__(self, prefix: str = "") -> None:
        super().__init__(prefix + TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        sid = getattr(record, "call_sid", None)
        record.call = f" CallSid={sid}" if sid else ""
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, call_sid (if any), exception (if
    any)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        sid = getattr(record, "call_sid", None)
        if sid:
            line["call_sid"] = sid
        worker = getattr(record, "worker", None)
        if worker is not None:
            line["worker"] = worker
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class WorkerFilter(logging.Filter):
    """Sets `record.worker`: the media worker process (its index) a line comes from."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.index
        return True


def setup_logging(level: str = "info", fmt: str = "text", stream: IO[str] | None = None,
                  worker: int | None = None) -> logging.Handler:
    """Replace the root logger's handlers with one to `stream` (stderr) at `level` in `fmt` (text or json);
    `worker`: the lines of media worker `worker` (the control plane passes its level and format on)."""
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    # Neither format shows the source line, the thread or the process: not looking them up for every record
    # saves about a quarter of a log line's cost (the "Optimization" section of the logging HOWTO).
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(CallSidFilter())
    if worker is not None:
        handler.addFilter(WorkerFilter(worker))
    prefix = "" if worker is None else f"worker{worker} "
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter(prefix))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
