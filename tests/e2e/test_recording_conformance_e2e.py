"""Recordings as Twilio documents them, end to end: the switch in-process, the lab phone sending a 1000 Hz tone,
the official twilio client (in a thread), and the media measured after download.

* A call created with Record=true names its recording in its `completed` status callback (RecordingUrl,
  RecordingSid, RecordingDuration) and in no earlier one.
* `PauseBehavior=skip` leaves the paused time out of the file; `silence` (the default) keeps it as silence.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
import requests
import soundfile as sf
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from media.tones import dominant_frequency
from switch.app import Switch, start_switch
from switch.core.config import Config
from switch.core.status import CallStatus
from tests.peers.harness import Hook, WebhookSink, free_port_block, free_tcp_port
from tests.peers.phone import PhoneProcess

ACCOUNT = "AC" + "3" * 32
TOKEN = "u" * 32
HOLD = '<Response><Pause length="20"/></Response>'
RATE = 8000
FRAME = 160  # 20 ms
T = TypeVar("T")


@pytest.fixture
async def switch(tmp_path: Path) -> AsyncIterator[Switch]:
    config = Config(http_port=free_tcp_port(), sip_port=free_port_block(2), data_dir=tmp_path / "data", workers=1,
                    account_sid=ACCOUNT, auth_token=TOKEN)
    running = await start_switch(config)
    yield running
    await running.stop()


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    hooks = WebhookSink().start()
    yield hooks
    hooks.stop()


@pytest.fixture
def client(switch: Switch) -> Client:
    api = Client(ACCOUNT, TOKEN)
    api.api.base_url = switch.base_url
    return api


async def _api(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """A blocking twilio-client call, off the loop that serves it."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def _hooks(sink: WebhookSink, path: str, call_sid: str, count: int) -> list[Hook]:
    return await asyncio.to_thread(sink.wait_statuses, path, call_sid, count, 15.0)


async def _in_progress(switch: Switch, sid: str) -> None:
    for _ in range(250):
        call = switch.calls.live.get(sid)
        if call is not None and call.status is CallStatus.IN_PROGRESS:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{sid} never went in-progress")


async def _samples(url: str) -> np.ndarray[Any, Any]:
    response = await asyncio.to_thread(requests.get, url + ".wav", auth=(ACCOUNT, TOKEN), timeout=10)
    assert response.status_code == 200, response.text
    samples, rate = sf.read(io.BytesIO(response.content), dtype="int16")
    assert rate == RATE
    return np.asarray(samples, dtype=np.float64)


def _quiet_runs(samples: np.ndarray[Any, Any]) -> list[float]:
    """The lengths in seconds of the runs of 20 ms frames with no tone in them (RMS under 300)."""
    usable = samples[: len(samples) - len(samples) % FRAME].reshape(-1, FRAME)
    loud = np.sqrt(np.mean(np.square(usable), axis=1)) > 300
    runs, length = [], 0
    for frame_loud in [*loud, True]:
        if not frame_loud:
            length += 1
        elif length:
            runs.append(length * FRAME / RATE)
            length = 0
    return runs


async def test_record_true_names_the_recording_in_the_completed_callback(
    switch: Switch, sink: WebhookSink, client: Client
) -> None:
    with PhoneProcess(["--answer", "auto", "--tone", "1000", "--exit-after-calls", "1"]) as phone:
        call = await _api(client.calls.create, to=phone.uri("bob"), from_="+15550199", twiml=HOLD, record=True,
                          trim="do-not-trim", status_callback=sink.url("/status"),
                          status_callback_event=["initiated", "ringing", "answered", "completed"],
                          recording_status_callback=sink.url("/rec"))
        await _in_progress(switch, call.sid)
        await asyncio.sleep(2.0)
        await _api(client.calls(call.sid).update, status="completed")
        status = await _hooks(sink, "/status", call.sid, 4)
        recording = await _hooks(sink, "/rec", call.sid, 1)
    assert [h.params["CallStatus"] for h in status] == ["initiated", "ringing", "in-progress", "completed"]
    assert [h.params["SequenceNumber"] for h in status] == ["0", "1", "2", "3"]
    for hook in status[:3]:  # nothing about the recording before the call ends
        assert not {"RecordingUrl", "RecordingSid", "RecordingDuration"} & set(hook.params), hook.params
    completed = status[3].params
    assert all(WebhookSink.valid(h, TOKEN) for h in status)

    # The recording's own callback (default event: completed) names the same recording.
    assert [h.params["RecordingStatus"] for h in recording] == ["completed"]
    rec = recording[0].params
    assert completed["RecordingSid"] == rec["RecordingSid"] and rec["RecordingSid"].startswith("RE")
    assert completed["RecordingUrl"] == rec["RecordingUrl"] == (
        f"{switch.base_url}/2010-04-01/Accounts/{ACCOUNT}/Recordings/{rec['RecordingSid']}")
    assert 1 <= int(completed["RecordingDuration"]) <= 3
    assert abs(int(completed["RecordingDuration"]) - int(rec["RecordingDuration"])) <= 1  # not trimmed
    assert int(completed["CallDuration"]) >= int(completed["RecordingDuration"])

    samples = await _samples(completed["RecordingUrl"])
    assert abs(len(samples) / RATE - int(completed["RecordingDuration"])) <= 1.0
    assert abs(dominant_frequency(samples[RATE // 5:], RATE) - 1000.0) < 10  # the phone's tone, recorded


async def test_a_call_without_record_has_no_recording_parameters(
    switch: Switch, sink: WebhookSink, client: Client
) -> None:
    with PhoneProcess(["--answer", "auto", "--tone", "1000", "--exit-after-calls", "1"]) as phone:
        call = await _api(client.calls.create, to=phone.uri("bob"), from_="+15550199", twiml=HOLD,
                          status_callback=sink.url("/status"))
        await _in_progress(switch, call.sid)
        # A recording started by REST is not the call's Record=true recording: the callback does not name it.
        started = await _api(client.calls(call.sid).recordings.create)
        await asyncio.sleep(1.0)
        await _api(client.calls(call.sid).update, status="completed")
        status = await _hooks(sink, "/status", call.sid, 1)
    assert [h.params["CallStatus"] for h in status] == ["completed"]
    assert not {"RecordingUrl", "RecordingSid", "RecordingDuration"} & set(status[0].params)
    assert started.sid.startswith("RE")


async def test_pause_behavior_skip_leaves_the_pause_out_and_silence_keeps_it(
    switch: Switch, sink: WebhookSink, client: Client
) -> None:
    with PhoneProcess(["--answer", "auto", "--tone", "1000", "--exit-after-calls", "1"]) as phone:
        call = await _api(client.calls.create, to=phone.uri("bob"), from_="+15550199", twiml=HOLD)
        await _in_progress(switch, call.sid)
        recordings = client.calls(call.sid).recordings
        events = ["in-progress", "completed"]
        skip = await _api(recordings.create, recording_status_callback=sink.url("/rec"),
                          recording_status_callback_event=events, trim="do-not-trim")
        silence = await _api(recordings.create, recording_status_callback=sink.url("/rec"),
                             recording_status_callback_event=events, trim="do-not-trim")
        await asyncio.sleep(1.5)
        paused = await _api(recordings(skip.sid).update, status="paused", pause_behavior="skip")
        assert paused.status == "paused"
        assert (await _api(recordings(silence.sid).update, status="paused", pause_behavior="silence")).status == (
            "paused")
        await asyncio.sleep(2.0)
        for rec in (skip, silence):
            assert (await _api(recordings(rec.sid).update, status="in-progress")).status == "in-progress"
        await asyncio.sleep(1.5)
        with pytest.raises(TwilioRestException) as excinfo:
            await _api(recordings(skip.sid).update, status="paused", pause_behavior="drop")
        assert (excinfo.value.status, excinfo.value.code) == (400, 20001)
        stopped = {rec.sid: await _api(recordings(rec.sid).update, status="stopped") for rec in (skip, silence)}
        await _api(client.calls(call.sid).update, status="completed")
        hooks = await _hooks(sink, "/rec", call.sid, 4)
    by_recording = {sid: [h.params["RecordingStatus"] for h in hooks if h.params["RecordingSid"] == sid]
                    for sid in (skip.sid, silence.sid)}
    assert by_recording == {skip.sid: ["in-progress", "completed"], silence.sid: ["in-progress", "completed"]}

    urls = {h.params["RecordingSid"]: h.params["RecordingUrl"] for h in hooks}
    skipped, kept = await _samples(urls[skip.sid]), await _samples(urls[silence.sid])
    # silence: about 5 s with a 2 s hole of silence in the middle; skip: about 3 s of tone with no hole.  (Each
    # REST request between the sleeps adds its latency to the recordings it falls into.)
    assert 4.4 <= len(kept) / RATE <= 6.5, len(kept) / RATE
    assert 2.4 <= len(skipped) / RATE <= 4.2, len(skipped) / RATE
    assert 1.6 <= (len(kept) - len(skipped)) / RATE <= 2.6, (len(kept) - len(skipped)) / RATE
    assert 1.6 <= max(_quiet_runs(kept)) <= 2.6, _quiet_runs(kept)
    assert max(_quiet_runs(skipped), default=0.0) <= 0.1, _quiet_runs(skipped)
    for samples in (skipped, kept):
        assert abs(dominant_frequency(samples[RATE // 5:], RATE) - 1000.0) < 10
    # The resources agree with the files.
    assert abs(int(stopped[skip.sid].duration) - len(skipped) / RATE) <= 1
    assert abs(int(stopped[silence.sid].duration) - len(kept) / RATE) <= 1
