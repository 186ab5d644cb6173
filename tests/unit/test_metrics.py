"""Unit tests of the metrics (`switch.core.metrics`): each hook moves exactly its series, the scrape-time state
reads the pool, the live calls and the edge, and the exposition parses."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from prometheus_client.parser import text_string_to_metric_families

from switch.core.events import CallStatusChanged, RecordingStarted
from switch.core.http_client import HttpTransport
from switch.core.metrics import Metrics, media_quality
from switch.core.model import Call, Direction
from switch.core.status import CallStatus
from switch.core.store import PendingWebhook
from switch.session.voice import TimedFetcher
from switch.workers.protocol import PlayDone, RecordDone

pytestmark = pytest.mark.unit

T0 = dt.datetime(2024, 3, 10, 12, 0, tzinfo=dt.UTC)
HOOK = PendingWebhook(1, "CA" + "1" * 32, "http://127.0.0.1:9/cb", "POST", [], 0)
Key = tuple[str, tuple[tuple[str, str], ...]]


def samples(metrics: Metrics) -> dict[Key, float]:
    text = metrics.exposition().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name.startswith("softswitch_")}


def changed(before: dict[Key, float], after: dict[Key, float]) -> dict[Key, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}


def call(status: CallStatus = CallStatus.RINGING, direction: Direction = Direction.INBOUND, **kw: object) -> Call:
    return Call(sid="CA" + "2" * 32, account_sid="AC" + "3" * 32, to="+15550100", from_="+15550199",
                direction=direction, status=status, **kw)  # type: ignore[arg-type]


def test_every_call_series_starts_at_zero() -> None:
    got = samples(Metrics(process=False))
    assert got[("softswitch_calls_created_total", (("direction", "outbound-dial"),))] == 0
    assert got[("softswitch_calls_ended_total", (("direction", "inbound"), ("status", "no-answer")))] == 0
    assert len([k for k in got if k[0] == "softswitch_calls_ended_total"]) == 3 * 5


def test_a_call_counts_once_created_and_once_at_its_terminal_status() -> None:
    m = Metrics(process=False)
    before = samples(m)
    c = call()
    m.on_call_created(c)
    m.on_call_event(CallStatusChanged(dataclasses.replace(c, status=CallStatus.IN_PROGRESS), CallStatus.RINGING, T0))
    m.on_call_event(RecordingStarted.__new__(RecordingStarted))  # other events: ignored
    m.on_call_event(CallStatusChanged(dataclasses.replace(c, status=CallStatus.COMPLETED), CallStatus.IN_PROGRESS,
                                      T0))
    assert changed(before, samples(m)) == {
        ("softswitch_calls_created_total", (("direction", "inbound"),)): 1,
        ("softswitch_calls_ended_total", (("direction", "inbound"), ("status", "completed"))): 1,
    }


def test_a_finished_call_with_rtp_is_observed_once() -> None:
    m = Metrics(process=False)
    before = samples(m)
    rtp = {"streams": 1, "rx_packets": 990, "rx_lost": 10, "rx_discarded": 2, "rx_jitter_max_us": 4000,
           "tx_packets": 1000}
    ended = call(CallStatus.COMPLETED, Direction.OUTBOUND_API, media_quality=rtp)
    m.on_call_event(CallStatusChanged(ended, CallStatus.IN_PROGRESS, T0))
    got = changed(before, samples(m))
    assert got[("softswitch_call_rtp_packets_total", (("kind", "received"),))] == 990
    assert got[("softswitch_call_rtp_packets_total", (("kind", "lost"),))] == 10
    assert got[("softswitch_call_rtp_packets_total", (("kind", "sent"),))] == 1000
    assert got[("softswitch_call_rtp_packets_total", (("kind", "discarded"),))] == 2
    assert got[("softswitch_call_rtp_loss_ratio_count", ())] == 1
    assert got[("softswitch_call_rtp_loss_ratio_sum", ())] == pytest.approx(0.01)
    assert ("softswitch_call_rtp_loss_ratio_bucket", (("le", "0.005"),)) not in got  # 1 % is above 0.5 %
    assert got[("softswitch_call_rtp_loss_ratio_bucket", (("le", "0.01"),))] == 1
    assert got[("softswitch_call_rtp_jitter_max_seconds_bucket", (("le", "0.005"),))] == 1
    assert ("softswitch_call_rtp_jitter_max_seconds_bucket", (("le", "0.0025"),)) not in got


def test_a_call_without_audio_observes_no_rtp() -> None:
    m = Metrics(process=False)
    before = samples(m)
    m.on_call_event(CallStatusChanged(call(CallStatus.BUSY, Direction.OUTBOUND_DIAL), CallStatus.RINGING, T0))
    assert changed(before, samples(m)) == {
        ("softswitch_calls_ended_total", (("direction", "outbound-dial"), ("status", "busy"))): 1}


def test_webhook_attempts_are_timed_and_failures_counted_by_code() -> None:
    m = Metrics(process=False)
    before = samples(m)
    m.on_webhook_attempt(HOOK, 204, None, 0.02)
    m.on_webhook_attempt(HOOK, 503, "HTTP 503", 0.3)
    m.on_webhook_attempt(HOOK, None, "TimeoutError: ", 3.0)
    got = changed(before, samples(m))
    assert got[("softswitch_webhook_request_duration_seconds_count", ())] == 3
    assert got[("softswitch_webhook_request_duration_seconds_bucket", (("le", "0.025"),))] == 1
    assert got[("softswitch_webhook_request_duration_seconds_bucket", (("le", "0.5"),))] == 2
    assert {k: v for k, v in got.items() if k[0] == "softswitch_webhook_failures_total"} == {
        ("softswitch_webhook_failures_total", (("code", "11217"), ("status", "503"))): 1,
        ("softswitch_webhook_failures_total", (("code", "11205"), ("status", "none"))): 1,
    }


def test_twiml_requests_and_recordings() -> None:
    m = Metrics(process=False)
    before = samples(m)
    m.on_twiml_fetch(0.01, None)
    m.on_twiml_fetch(0.5, 12300)
    seen: list[object] = []
    tapped = m.tap(lambda worker, event: seen.append((worker, event)))
    done = RecordDone(id="RE1", frames=500, reason="hangup", lost_frames=3)
    tapped(0, done)
    tapped(1, PlayDone(id="PL1", leg="L1", reason="eof"))
    got = changed(before, samples(m))
    assert got == {
        ("softswitch_twiml_request_duration_seconds_count", ()): 2,
        ("softswitch_twiml_request_duration_seconds_sum", ()): pytest.approx(0.51),
        ("softswitch_twiml_request_duration_seconds_bucket", (("le", "0.01"),)): 1,
        **{("softswitch_twiml_request_duration_seconds_bucket", (("le", le),)): 1 if le != "0.5" else 2
           for le in ("0.025", "0.05", "0.1", "0.25")},
        **{("softswitch_twiml_request_duration_seconds_bucket", (("le", le),)): 2
           for le in ("0.5", "1.0", "2.5", "5.0", "10.0", "15.0", "+Inf")},
        ("softswitch_twiml_failures_total", (("code", "12300"),)): 1,
        ("softswitch_recordings_written_total", ()): 1,
        ("softswitch_recording_frames_total", ()): 500,
        ("softswitch_recording_frames_dropped_total", ()): 3,
    }
    assert [w for w, _ in seen] == [0, 1]  # every event still reaches the handler


@dataclasses.dataclass
class FakeWorker:
    index: int
    up: bool
    capacity: int
    restarts: int = 0
    dropped_events: int = 0
    legs: set[str] = dataclasses.field(default_factory=set)


@dataclasses.dataclass
class FakeEdge:
    up: bool
    restarts: int


def test_state_is_read_at_scrape_time() -> None:
    m = Metrics(process=False)
    workers = [FakeWorker(0, True, 4, legs={"a", "b"}), FakeWorker(1, False, 4, restarts=2, dropped_events=7)]
    live = [call(CallStatus.IN_PROGRESS), call(CallStatus.IN_PROGRESS),
            call(CallStatus.RINGING, Direction.OUTBOUND_API)]
    edge = FakeEdge(True, 1)
    m.watch(lambda: workers, lambda: live, edge)
    got = samples(m)
    assert got[("softswitch_worker_legs", (("worker", "0"),))] == 2
    assert got[("softswitch_worker_capacity", (("worker", "0"),))] == 4
    assert got[("softswitch_worker_capacity", (("worker", "1"),))] == 0  # down: no capacity
    assert got[("softswitch_worker_up", (("worker", "1"),))] == 0
    assert got[("softswitch_worker_restarts_total", (("worker", "1"),))] == 2
    assert got[("softswitch_worker_events_dropped_total", (("worker", "1"),))] == 7
    assert got[("softswitch_calls_live", (("direction", "inbound"), ("status", "in-progress")))] == 2
    assert got[("softswitch_calls_live", (("direction", "outbound-api"), ("status", "ringing")))] == 1
    assert got[("softswitch_calls_live", (("direction", "outbound-dial"), ("status", "queued")))] == 0
    assert got[("softswitch_edge_up", ())] == 1 and got[("softswitch_edge_restarts_total", ())] == 1
    live.clear()
    edge.up = False
    again = samples(m)
    assert again[("softswitch_calls_live", (("direction", "inbound"), ("status", "in-progress")))] == 0
    assert again[("softswitch_edge_up", ())] == 0


def test_two_switches_count_apart() -> None:
    a, b = Metrics(process=False), Metrics(process=False)
    a.on_call_created(call())
    assert samples(a)[("softswitch_calls_created_total", (("direction", "inbound"),))] == 1
    assert samples(b)[("softswitch_calls_created_total", (("direction", "inbound"),))] == 0


def test_media_quality_in_the_call_resource_words() -> None:
    assert media_quality({"streams": 2, "rx_packets": 396, "rx_lost": 4, "rx_discarded": 1, "rx_reordered": 3,
                          "rx_duplicates": 0, "rx_jitter_max_us": 12345, "tx_packets": 400, "jb_lost": 5,
                          "jb_discarded": 6, "jb_empty": 7}) == {
        "streams": 2, "packets_received": 396, "packets_sent": 400, "packets_lost": 4,
        "packets_loss_percentage": 1.0, "packets_discarded": 1, "packets_reordered": 3, "packets_duplicated": 0,
        "jitter": {"max": 12.345}, "jitter_buffer": {"frames_lost": 5, "frames_discarded": 6, "empty_reads": 7}}
    assert media_quality({})["packets_loss_percentage"] == 0.0


async def test_the_timed_fetcher_reports_time_and_code() -> None:
    seen: list[tuple[float, int | None]] = []
    transport = HttpTransport(1.0, "t")
    fetcher = TimedFetcher(transport, lambda m, u, p: (u, {}))
    fetcher.observers.append(lambda seconds, code: seen.append((seconds, code)))
    with pytest.raises(Exception, match="not an http"):
        await fetcher.fetch("ftp://example.invalid/x", "POST", [])
    await transport.close()
    assert len(seen) == 1 and seen[0][1] == 11200 and 0 <= seen[0][0] < 1
