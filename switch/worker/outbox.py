"""The worker's outgoing events: written at once by the pjsua thread when that needs no waiting, else a bounded
queue drained by one writer thread.

Whoever emits an event -- the pjsua thread in a callback, the media clock thread with a tap level, the reader
thread -- never waits: a control plane that stops reading (busy, stopped in a debugger, its socket buffer full)
must not stall SIP and media handling.  The thread that `own`s the outbox (the pjsua thread, which emits nearly
every event) writes its event to the socket itself when the socket takes it at once and no event of its is still
queued (one syscall, no hand-off to the writer thread, no wait for the GIL to pass to it: about 8 % of a worker's
CPU per call and a few hundred microseconds of post-dial delay).  Other threads' events, and the owner's when the
socket is busy or full, go in the queue.  If the queue is full the event is dropped and counted; the writer
reports the running total to the control plane (`EventsDropped`) as soon as it can, and the worker logs it when
it stops.
"""

from __future__ import annotations

import logging
import queue
import threading

from switch.worker.channel import BlockingChannel
from switch.workers.protocol import Event, EventsDropped, ProtocolError, encode

log = logging.getLogger("switch.worker.outbox")

QUEUE_SIZE = 10_000  # ~ a minute of events of a busy worker; the control plane normally reads within ms
BATCH = 64  # events in one write at most
_STOP = object()
_FLUSH = object()  # wakes the writer to finish a frame the owner began (`BlockingChannel.try_send`)


class Outbox:
    """`emit` from any thread; `run` (the writer thread) sends; `close` flushes what is queued and stops."""

    def __init__(self, channel: BlockingChannel, worker: int, size: int = QUEUE_SIZE) -> None:
        self._channel = channel
        self._worker = worker
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()  # bounded by `emit` (a C queue: cheap)
        self._size = size
        self._lock = threading.Lock()
        self.dropped = 0
        self._sent_queued = 0  # by the writer thread
        self._sent_direct = 0  # by the owner
        self._reported = 0
        self._thread: threading.Thread | None = None
        self._owner: int | None = None  # the thread whose events may skip the queue (`own`)
        # An event of the owner's is queued: the owner's next ones queue too (they must not overtake it) until the
        # writer has emptied the queue.  Read and changed under `_order`, which also covers the owner's queueing.
        self._backlog = False
        self._order = threading.Lock()

    @property
    def sent(self) -> int:
        """Events handed to the socket so far."""
        return self._sent_queued + self._sent_direct

    def own(self) -> None:
        """From now on the calling thread's events are written at once when the socket takes them (module doc)."""
        self._owner = threading.get_ident()

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, daemon=True, name="ipc-writer")
        self._thread.start()

    def emit(self, event: Event) -> None:
        """Write or queue `event` without ever blocking; a full queue drops it (counted, logged)."""
        if self._owner is not None and threading.get_ident() == self._owner:
            self._emit_owned(event)
            return
        self._enqueue(event)

    def _emit_owned(self, event: Event) -> None:
        try:
            frame = encode(event)
        except ProtocolError as exc:  # cannot be encoded: a bug, never a reason to stop the worker
            log.error("worker %d: cannot send %s: %s", self._worker, type(event).__name__, exc)
            return
        with self._order:
            if not self._backlog:
                try:
                    written = self._channel.try_send(frame)
                except OSError:  # the channel broke: the writer finds out too, and says so
                    written = False
                if written:
                    self._sent_direct += 1
                    if self._channel.unwritten:  # the socket took part of it: the writer sends the rest
                        self._queue.put(_FLUSH)
                    return
            self._backlog = True
            self._enqueue(frame, type(event).__name__)  # encoded already: the writer sends it as it is

    def _enqueue(self, item: Event | bytes, name: str = "") -> None:
        if self._queue.qsize() < self._size:
            self._queue.put(item)
        else:
            with self._lock:
                self.dropped += 1
                dropped = self.dropped
            if dropped == 1 or dropped % 1000 == 0:
                log.warning("worker %d: event queue full: %s dropped (%d so far)", self._worker,
                            name or type(item).__name__, dropped)

    def run(self) -> None:
        """The writer thread: send until `close`, or until the channel breaks.  The events queued by the time
        it wakes go in one write (a callback often emits two or three at once: one syscall, one wake-up of the
        control plane)."""
        while True:
            batch = [self._queue.get()]
            while len(batch) < BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = _STOP in batch
            frames = self._encode(batch[:batch.index(_STOP)] if stop else batch)
            events = len(frames)
            if self.dropped != self._reported:
                self._reported = self.dropped
                frames.append(encode(EventsDropped(total=self._reported)))
            try:
                if frames or self._channel.unwritten:
                    self._channel.send_frames(frames)
                    self._sent_queued += events
            except OSError as exc:
                log.error("worker %d: control channel closed (%s); events are no longer sent", self._worker, exc)
                return
            with self._order:
                if self._queue.empty():
                    self._backlog = False  # the owner's queued events are all out: it may write again
            if stop:
                return

    def _encode(self, events: list[object]) -> list[bytes]:
        frames = []
        for event in events:
            if event is _FLUSH:
                continue
            if isinstance(event, bytes):  # the owner's, encoded when it tried to write it
                frames.append(event)
                continue
            assert isinstance(event, Event)
            try:
                frames.append(encode(event))
            except ProtocolError as exc:  # cannot be encoded: a bug, never a reason to stop the worker
                log.error("worker %d: cannot send %s: %s", self._worker, type(event).__name__, exc)
        return frames

    def close(self, timeout: float = 2.0) -> None:
        """Send what is queued (for up to `timeout` s), stop the writer, and log the totals."""
        thread = self._thread
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(timeout)
            if thread.is_alive():
                log.error("worker %d: events still queued at exit (%d)", self._worker, self._queue.qsize())
        level = logging.WARNING if self.dropped else logging.INFO
        log.log(level, "worker %d: %d events sent, %d dropped", self._worker, self.sent, self.dropped)
