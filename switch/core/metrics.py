"""Prometheus metrics of the switch (`GET /metrics`, prometheus-client's text exposition).

Two kinds, so that a call costs a few counter increments and nothing more:

- **Counted as it happens** (each a dict lookup and an add under prometheus-client's lock): calls created by
  direction (`rate()` of it is calls per second), calls ended by direction and terminal status, webhook and TwiML
  request latency and failures by error code, recordings written and their frames (written and dropped), and per
  finished call the RTP its worker counted (`Ended.rtp`, kept on the call as `Call.media_quality`).
- **Read at scrape time** (`_StateCollector`, nothing per call): live calls by direction and status, each
  worker's legs in use, capacity, up, restarts and dropped events, the edge's state and restarts.

Labels are bounded: direction (3), status (9), worker index (at most the pool's most workers), a Twilio error
code or an HTTP status; never a CallSid or a URL.  Every metric lives in the `Metrics` object's own registry, so
two switches in one process (the tests) never share a counter.

Webhook failures carry Twilio's codes for what went wrong with the request: 11217 (HTTP error response code:
the endpoint answered 4xx/5xx, `status` says which) and 11205 (HTTP connection failure: no answer, or none in
time).  TwiML fetch failures carry the code the call's notification gets (11200, 12100, 12300).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from switch.core.events import CallStatusChanged
from switch.core.model import Call, Direction
from switch.core.status import TERMINAL, CallStatus
from switch.core.store import PendingWebhook
from switch.workers.protocol import Event, RecordDone

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # prometheus-client's CONTENT_TYPE_LATEST
HTTP_ERROR_RESPONSE = 11217  # Twilio: "your server responded with a 4xx or 5xx status code"
HTTP_CONNECTION_FAILURE = 11205  # Twilio: a network failure, or no response in time
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0)
LOSS_BUCKETS = (0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
JITTER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5)


class WorkerView(Protocol):
    """What the scrape reads of a worker (`switch.workers.handle.WorkerHandle`)."""

    index: int
    up: bool
    capacity: int
    restarts: int
    dropped_events: int
    legs: set[str]


class EdgeView(Protocol):
    """What the scrape reads of the SIP edge (`switch.workers.edge.Edge`)."""

    restarts: int

    @property
    def up(self) -> bool: ...


def media_quality(rtp: Mapping[str, int]) -> dict[str, Any]:
    """A finished call's RTP (`Ended.rtp` as a dict) in the words of the Call resource's `softswitch_media_quality`
    (Voice Insights' names where it has one: packets_received, packets_lost, packets_loss_percentage, jitter)."""
    received, lost = rtp.get("rx_packets", 0), rtp.get("rx_lost", 0)
    expected = received + lost
    return {
        "streams": rtp.get("streams", 0),
        "packets_received": received,
        "packets_sent": rtp.get("tx_packets", 0),
        "packets_lost": lost,
        "packets_loss_percentage": round(100.0 * lost / expected, 3) if expected else 0.0,
        "packets_discarded": rtp.get("rx_discarded", 0),
        "packets_reordered": rtp.get("rx_reordered", 0),
        "packets_duplicated": rtp.get("rx_duplicates", 0),
        "jitter": {"max": round(rtp.get("rx_jitter_max_us", 0) / 1000.0, 3)},  # milliseconds
        "jitter_buffer": {"frames_lost": rtp.get("jb_lost", 0), "frames_discarded": rtp.get("jb_discarded", 0),
                          "empty_reads": rtp.get("jb_empty", 0)},
    }


class Metrics:
    """Every metric of one switch, in its own registry; the call engine, dispatcher and TwiML fetcher call the
    `on_*` methods (hooked up by the application), and `watch` adds the state read at scrape time."""

    def __init__(self, process: bool = True) -> None:
        # No `_created` series (process-wide: the switch's own process): the text format needs none.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.calls_created = Counter("softswitch_calls_created", "Calls (legs) created, by direction: rate() is "
                                     "calls per second", ["direction"], registry=r)
        self.calls_ended = Counter("softswitch_calls_ended", "Calls (legs) ended, by direction and terminal status",
                                   ["direction", "status"], registry=r)
        self.webhook_seconds = Histogram("softswitch_webhook_request_duration_seconds", "Webhook (status and "
                                         "recording callback) attempts: request to response", registry=r,
                                         buckets=LATENCY_BUCKETS)
        self.webhook_failures = Counter("softswitch_webhook_failures", "Webhook attempts that failed, by Twilio "
                                        "error code (11217: HTTP error response, 11205: connection failure or "
                                        "timeout) and HTTP status (none: no response)", ["code", "status"], registry=r)
        self.twiml_seconds = Histogram("softswitch_twiml_request_duration_seconds", "TwiML document requests: "
                                       "request to document read", registry=r, buckets=LATENCY_BUCKETS)
        self.twiml_failures = Counter("softswitch_twiml_failures", "TwiML requests that failed, by Twilio error "
                                      "code (11200, 12100, 12300)", ["code"], registry=r)
        self.recordings = Counter("softswitch_recordings_written", "Recordings a worker finished writing",
                                  registry=r)
        self.recording_frames = Counter("softswitch_recording_frames", "20 ms frames per channel written to "
                                        "recording files", registry=r)
        self.recording_frames_dropped = Counter("softswitch_recording_frames_dropped", "20 ms frames a recording "
                                                "could not write (write errors)", registry=r)
        self.rtp_packets = Counter("softswitch_call_rtp_packets", "RTP packets of finished calls, by what happened "
                                   "to them (received, sent, lost, discarded)", ["kind"], registry=r)
        self.rtp_loss = Histogram("softswitch_call_rtp_loss_ratio", "Per finished call with audio: received RTP "
                                  "lost (sequence gaps / expected)", registry=r, buckets=LOSS_BUCKETS)
        self.rtp_jitter = Histogram("softswitch_call_rtp_jitter_max_seconds", "Per finished call with audio: the "
                                    "largest interarrival jitter of received RTP", registry=r, buckets=JITTER_BUCKETS)
        # Every series from the start (an exact 0 rather than absent), and looked up once.
        self._ended = {(d.value, s.value): self.calls_ended.labels(d.value, s.value) for d in Direction
                       for s in TERMINAL}
        self._created = {d.value: self.calls_created.labels(d.value) for d in Direction}
        self._packets = {kind: self.rtp_packets.labels(kind) for kind in ("received", "sent", "lost", "discarded")}
        if process:
            ProcessCollector(registry=r)  # the control plane's CPU, memory, open files

    def watch(self, workers: Callable[[], Iterable[WorkerView]], live: Callable[[], Iterable[Call]],
              edge: EdgeView | None) -> None:
        """Read the workers, the live calls and the edge at each scrape."""
        self.registry.register(_StateCollector(workers, live, edge))

    def exposition(self) -> bytes:
        """The text exposition of every metric (what `GET /metrics` answers)."""
        return generate_latest(self.registry)

    # -- the hooks -------------------------------------------------------------------------------
    def on_call_created(self, call: Call) -> None:
        self._created[call.direction.value].inc()

    def on_call_event(self, event: object) -> None:
        """A `switch.core.events` event: a terminal `CallStatusChanged` counts the call and its RTP."""
        if not isinstance(event, CallStatusChanged) or not event.call.status.terminal:
            return
        call = event.call
        self._ended[(call.direction.value, call.status.value)].inc()
        if call.media_quality:
            self.on_call_rtp(call.media_quality)

    def on_call_rtp(self, rtp: Mapping[str, int]) -> None:
        received, lost = rtp.get("rx_packets", 0), rtp.get("rx_lost", 0)
        self._packets["received"].inc(received)
        self._packets["sent"].inc(rtp.get("tx_packets", 0))
        self._packets["lost"].inc(lost)
        self._packets["discarded"].inc(rtp.get("rx_discarded", 0))
        if received + lost:
            self.rtp_loss.observe(lost / (received + lost))
            self.rtp_jitter.observe(rtp.get("rx_jitter_max_us", 0) / 1e6)

    def on_webhook_attempt(self, hook: PendingWebhook, status: int | None, error: str | None,
                           seconds: float) -> None:
        """One delivery attempt of `hook`: `status` the HTTP status (None: no response), `error` None on success."""
        self.webhook_seconds.observe(seconds)
        if error is not None:
            code = HTTP_CONNECTION_FAILURE if status is None else HTTP_ERROR_RESPONSE
            self.webhook_failures.labels(str(code), "none" if status is None else str(status)).inc()

    def on_twiml_fetch(self, seconds: float, code: int | None) -> None:
        """One TwiML request: `code` the Twilio error code it failed with, None when a document came back."""
        self.twiml_seconds.observe(seconds)
        if code is not None:
            self.twiml_failures.labels(str(code)).inc()

    def tap(self, handler: Callable[[int, Event], None]) -> Callable[[int, Event], None]:
        """`handler` of the workers' events (the call manager's), counting the recordings they finished first."""
        def tapped(worker: int, event: Event) -> None:
            if type(event) is RecordDone:
                self.on_recording_done(event.frames, event.lost_frames)
            handler(worker, event)

        return tapped

    def on_recording_done(self, frames: int, lost_frames: int) -> None:
        self.recordings.inc()
        self.recording_frames.inc(frames)
        self.recording_frames_dropped.inc(lost_frames)


class _StateCollector(Collector):
    """Gauges of what is, read at scrape time (nothing is kept per call)."""

    def __init__(self, workers: Callable[[], Iterable[WorkerView]], live: Callable[[], Iterable[Call]],
                 edge: EdgeView | None) -> None:
        self._workers = workers
        self._live = live
        self._edge = edge

    def describe(self) -> Iterable[Metric]:
        return []  # unchecked: the families depend on the pool at scrape time

    def collect(self) -> Iterator[Metric]:
        live = GaugeMetricFamily("softswitch_calls_live", "Live calls (legs), by direction and status",
                                 labels=["direction", "status"])
        counts: dict[tuple[str, str], int] = {(d.value, s.value): 0 for d in Direction for s in CallStatus
                                              if not s.terminal}
        for call in self._live():
            key = (call.direction.value, call.status.value)
            counts[key] = counts.get(key, 0) + 1
        for (direction, status), n in counts.items():
            live.add_metric([direction, status], n)
        yield live
        families = {
            "up": GaugeMetricFamily("softswitch_worker_up", "1 while the worker is up", labels=["worker"]),
            "legs": GaugeMetricFamily("softswitch_worker_legs", "Call legs the worker holds", labels=["worker"]),
            "capacity": GaugeMetricFamily("softswitch_worker_capacity", "Call legs the worker can hold",
                                          labels=["worker"]),
        }
        restarts = CounterMetricFamily("softswitch_worker_restarts", "Times the worker was started again after "
                                       "it died", labels=["worker"])
        dropped = CounterMetricFamily("softswitch_worker_events_dropped", "Events the worker's process dropped "
                                      "(its queue to the control plane overflowed); resets when it restarts",
                                      labels=["worker"])
        for w in self._workers():
            label = [str(w.index)]
            families["up"].add_metric(label, 1 if w.up else 0)
            families["legs"].add_metric(label, len(w.legs))
            families["capacity"].add_metric(label, w.capacity if w.up else 0)
            restarts.add_metric(label, w.restarts)
            dropped.add_metric(label, w.dropped_events)
        yield from families.values()
        yield restarts
        yield dropped
        if self._edge is not None:
            yield GaugeMetricFamily("softswitch_edge_up", "1 while the SIP edge (Kamailio) runs",
                                    value=1 if self._edge.up else 0)
            yield CounterMetricFamily("softswitch_edge_restarts", "Times the SIP edge was started again after it "
                                      "died", value=self._edge.restarts)
