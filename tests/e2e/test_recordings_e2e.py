"""Call recording end to end: the switch in-process, the lab phone as the far end, the official twilio client.

The client is synchronous, so it runs in a thread (`_api`) while the switch serves it on the test's event
loop.  Audio is checked by FFT on the media downloaded over HTTP with basic auth, as a customer would.  The
last test runs `softswitch serve` as a process, kills it with SIGKILL mid-recording and starts it again.
"""

from __future__ import annotations

import asyncio
import email.utils
import io
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
import requests
import soundfile as sf
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from media.audio import decode, write_wav
from media.tones import band_energy_ratio, dominant_frequency, rms, sine
from switch.app import Switch, start_switch
from switch.core.config import Config
from switch.core.status import CallStatus
from tests.peers.harness import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    Hook,
    SwitchProcess,
    WebhookSink,
    free_port_block,
    free_tcp_port,
)
from tests.peers.phone import PhoneProcess

ACCOUNT = "AC" + "1" * 32
TOKEN = "t" * 32
HOLD = '<Response><Pause length="20"/></Response>'  # keeps the call up whether or not TwiML runs
RATE = 8000
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


async def _rec_hooks(sink: WebhookSink, call_sid: str, count: int, timeout: float = 15.0) -> list[Hook]:
    def mine(hooks: list[Hook]) -> list[Hook]:
        return [h for h in hooks if h.path == "/rec" and h.params.get("CallSid") == call_sid]

    await asyncio.to_thread(sink.wait_for, lambda hooks: len(mine(hooks)) >= count, timeout)
    return mine(sink.hooks)


async def _in_progress(switch: Switch, sid: str) -> None:
    for _ in range(250):
        call = switch.calls.live.get(sid)
        if call is not None and call.status is CallStatus.IN_PROGRESS:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{sid} never went in-progress")


async def _ended(switch: Switch, sid: str) -> None:
    for _ in range(250):
        if sid not in switch.calls.live:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{sid} never ended")


async def _download(url: str, auth: bool = True) -> requests.Response:
    return await asyncio.to_thread(requests.get, url, auth=(ACCOUNT, TOKEN) if auth else None, timeout=10)


def _wav(body: bytes) -> np.ndarray[Any, Any]:
    samples, rate = sf.read(io.BytesIO(body), dtype="int16")
    assert rate == RATE
    return np.asarray(samples)


def _frames_rms(samples: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """RMS of each 20 ms frame."""
    usable = samples[: len(samples) - len(samples) % 160].astype(np.float64)
    return np.sqrt(np.mean(np.square(usable.reshape(-1, 160)), axis=1))


def _tone_file(tmp_path: Path, hz: float) -> Path:
    path = tmp_path / f"tone-{hz:g}.wav"
    write_wav(path, sine(hz, 20.0, RATE), RATE)
    return path


async def test_calls_create_records_dual_with_callbacks_and_media(
    switch: Switch, sink: WebhookSink, client: Client, tmp_path: Path
) -> None:
    # The switch plays 600 Hz to the phone, which sends 1000 Hz: channel 1 is the phone, channel 2 the switch.
    twiml = f'<Response><Play loop="0">{_tone_file(tmp_path, 600)}</Play></Response>'
    with PhoneProcess(["--answer", "auto", "--tone", "1000", "--exit-after-calls", "1"]) as phone:
        call = await _api(client.calls.create, to=phone.uri("bob"), from_="+15550199", twiml=twiml, record=True,
                          recording_channels="dual", recording_status_callback=sink.url("/rec"),
                          recording_status_callback_event=["in-progress", "completed"], trim="do-not-trim")
        await _rec_hooks(sink, call.sid, 1)
        await asyncio.sleep(2.0)
        await _api(client.calls(call.sid).update, status="completed")
        hooks = await _rec_hooks(sink, call.sid, 2)
    assert [h.params["RecordingStatus"] for h in hooks] == ["in-progress", "completed"]
    assert all(WebhookSink.valid(h, TOKEN) for h in hooks)
    rsid = hooks[0].params["RecordingSid"]
    url = f"{switch.base_url}/2010-04-01/Accounts/{ACCOUNT}/Recordings/{rsid}"
    for hook in hooks:
        assert hook.params["RecordingSid"] == rsid and hook.params["RecordingUrl"] == url
        assert hook.params["AccountSid"] == ACCOUNT
        assert (hook.params["RecordingChannels"], hook.params["RecordingSource"]) == ("2", "OutboundAPI")
        assert email.utils.parsedate_to_datetime(hook.params["RecordingStartTime"]).tzinfo is not None
    assert 1 <= int(hooks[1].params["RecordingDuration"]) <= 4 and "ErrorCode" not in hooks[1].params

    listed = await _api(client.recordings.list, call_sid=call.sid)
    assert [r.sid for r in listed] == [rsid]
    rec = await _api(client.recordings(rsid).fetch)
    assert (rec.status, rec.channels, rec.source, rec.call_sid, rec.error_code) == (
        "completed", 2, "OutboundAPI", call.sid, None)
    assert rec.duration == hooks[1].params["RecordingDuration"] and rec.conference_sid is None
    assert rec.uri == f"/2010-04-01/Accounts/{ACCOUNT}/Recordings/{rsid}.json"
    assert [r.sid for r in await _api(client.calls(call.sid).recordings.list)] == [rsid]

    assert (await _download(url + ".wav", auth=False)).status_code == 401
    wav = await _download(url)  # RecordingUrl, no extension: WAV
    assert wav.status_code == 200 and wav.headers["Content-Type"] == "audio/x-wav"
    samples = _wav(wav.content)
    assert samples.shape[1] == 2 and 1.5 <= len(samples) / RATE <= 3.5
    assert abs(dominant_frequency(samples[1600:, 0], RATE) - 1000.0) < 10
    assert abs(dominant_frequency(samples[1600:, 1], RATE) - 600.0) < 10  # what the switch played
    assert band_energy_ratio(samples[1600:, 0], RATE, 600.0) < 0.05  # each track on its own channel
    assert (await _download(url + ".wav")).content == wav.content
    mp3 = await _download(url + ".mp3")
    assert mp3.status_code == 200 and mp3.headers["Content-Type"] == "audio/mpeg"
    decoded, rate = decode(mp3.content)
    assert abs(dominant_frequency(decoded[rate // 5:], rate) - 1000.0) < 10

    await _api(client.recordings(rsid).delete)
    with pytest.raises(TwilioRestException) as excinfo:
        await _api(client.recordings(rsid).fetch)
    assert (excinfo.value.status, excinfo.value.code) == (404, 20404)
    assert (await _download(url + ".wav")).status_code == 404
    assert not list((switch.config.data_dir / "recordings").glob(f"{rsid}*"))


async def test_recording_track_inbound_outbound_or_both(
    switch: Switch, sink: WebhookSink, client: Client, tmp_path: Path
) -> None:
    twiml = f'<Response><Play loop="0">{_tone_file(tmp_path, 600)}</Play></Response>'
    shares: dict[str, tuple[float, float]] = {}
    with PhoneProcess(["--answer", "auto", "--tone", "1000", "--exit-after-calls", "1"]) as phone:
        call = await _api(client.calls.create, to=phone.uri("bob"), from_="+15550199", twiml=twiml)
        await _in_progress(switch, call.sid)
        await asyncio.sleep(0.5)
        for track in ("inbound", "outbound", "both"):
            recordings = client.calls(call.sid).recordings
            rec = await _api(recordings.create, recording_track=track, trim="do-not-trim")
            assert (rec.track, rec.channels) == (track, 1)
            await asyncio.sleep(1.5)
            stopped = await _api(recordings(rec.sid).update, status="stopped")
            assert stopped.status == "completed"
            url = f"{switch.base_url}/2010-04-01/Accounts/{ACCOUNT}/Recordings/{rec.sid}.wav"
            samples = _wav((await _download(url)).content)
            assert samples.ndim == 1 and len(samples) / RATE >= 1.0
            body = samples[800:]
            shares[track] = (band_energy_ratio(body, RATE, 1000.0), band_energy_ratio(body, RATE, 600.0))
        await _api(client.calls(call.sid).update, status="completed")
    assert shares["inbound"][0] > 0.9 and shares["inbound"][1] < 0.05, shares  # the phone only
    assert shares["outbound"][1] > 0.9 and shares["outbound"][0] < 0.05, shares  # the switch's <Play> only
    assert shares["both"][0] > 0.3 and shares["both"][1] > 0.3, shares  # both, mixed


async def test_public_recording_media_needs_no_credentials(tmp_path: Path) -> None:
    config = Config(http_port=free_tcp_port(), sip_port=free_port_block(2), data_dir=tmp_path / "data", workers=1,
                    account_sid=ACCOUNT, auth_token=TOKEN, recordings_public=True)
    running = await start_switch(config)
    try:
        client = Client(ACCOUNT, TOKEN)
        client.api.base_url = running.base_url
        with PhoneProcess(["--answer", "auto", "--tone", "1000", "--exit-after-calls", "1"]) as phone:
            call = await _api(client.calls.create, to=phone.uri("bob"), from_="+15550199", twiml=HOLD)
            await _in_progress(running, call.sid)
            rec = await _api(client.calls(call.sid).recordings.create)
            await asyncio.sleep(1.0)
            await _api(client.calls(call.sid).recordings(rec.sid).update, status="stopped")
            await _api(client.calls(call.sid).update, status="completed")
        url = f"{running.base_url}/2010-04-01/Accounts/{ACCOUNT}/Recordings/{rec.sid}"
        media = await _download(url + ".wav", auth=False)
        assert media.status_code == 200
        assert abs(dominant_frequency(_wav(media.content)[800:], RATE) - 1000.0) < 10
        assert (await _download(url + ".mp3", auth=False)).status_code == 200
        assert (await _download(url + ".json", auth=False)).status_code == 401  # the resource is not public
        other = url.replace(ACCOUNT, "AC" + "2" * 32)
        assert (await _download(other + ".wav", auth=False)).status_code == 404
    finally:
        await running.stop()


async def test_rest_start_pause_resume_stop(switch: Switch, sink: WebhookSink, client: Client) -> None:
    with PhoneProcess(["--answer", "auto", "--tone", "1000", "--exit-after-calls", "1"]) as phone:
        call = await _api(client.calls.create, to=phone.uri("bob"), from_="+15550199", twiml=HOLD)
        await _in_progress(switch, call.sid)
        recordings = client.calls(call.sid).recordings
        rec = await _api(recordings.create, recording_status_callback=sink.url("/rec"),
                         recording_status_callback_event=["in-progress", "completed", "absent"])
        assert (rec.status, rec.source, rec.channels, rec.track) == ("in-progress", "StartCallRecordingAPI", 1, "both")
        assert rec.uri == f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{call.sid}/Recordings/{rec.sid}.json"
        await asyncio.sleep(1.0)
        paused = await _api(recordings(rec.sid).update, status="paused")
        assert paused.status == "paused"
        await asyncio.sleep(1.0)
        resumed = await _api(recordings("Twilio.CURRENT").update, status="in-progress")
        assert (resumed.sid, resumed.status) == (rec.sid, "in-progress")
        await asyncio.sleep(1.0)
        stopped = await _api(recordings(rec.sid).update, status="stopped")
        assert stopped.status == "completed" and 2 <= int(stopped.duration) <= 4
        for attempt, expected in [
            (lambda: recordings(rec.sid).update(status="paused"), (400, 21220)),
            (lambda: recordings("Twilio.CURRENT").update(status="stopped"), (404, 20404)),
            (lambda: recordings("RE" + "0" * 32).fetch(), (404, 20404)),
            (lambda: recordings(rec.sid).update(status="bogus"), (400, 20001)),
            (lambda: client.calls("CA" + "0" * 32).recordings.create(), (404, 20404)),
        ]:
            with pytest.raises(TwilioRestException) as excinfo:
                await _api(attempt)
            assert (excinfo.value.status, excinfo.value.code) == expected
        assert [r.sid for r in await _api(recordings.list)] == [rec.sid]
        await _api(client.calls(call.sid).update, status="completed")
        await _ended(switch, call.sid)
        with pytest.raises(TwilioRestException) as excinfo:
            await _api(recordings.create)
        assert (excinfo.value.status, excinfo.value.code) == (400, 21220)
    hooks = await _rec_hooks(sink, call.sid, 2)
    assert [h.params["RecordingStatus"] for h in hooks] == ["in-progress", "completed"]
    assert all(WebhookSink.valid(h, TOKEN) for h in hooks)
    assert hooks[1].params["RecordingSource"] == "StartCallRecordingAPI"
    samples = _wav((await _download(hooks[1].params["RecordingUrl"] + ".wav")).content)
    assert samples.ndim == 1 and 2.5 <= len(samples) / RATE <= 3.8
    loud = _frames_rms(samples) > 1000
    # The pause is a run of silence of about a second, with the tone before and after it.
    runs, start = [], None
    for i, is_loud in enumerate([*loud, True]):
        if not is_loud and start is None:
            start = i
        elif is_loud and start is not None:
            runs.append((start, i))
            start = None
    longest = max(runs, key=lambda r: r[1] - r[0])
    assert 0.7 <= (longest[1] - longest[0]) * 0.02 <= 1.4, runs
    assert loud[: longest[0]].mean() > 0.9 and loud[longest[1]:].mean() > 0.9
    assert abs(dominant_frequency(samples[: longest[0] * 160], RATE) - 1000.0) < 10


async def test_trim_silence_cuts_a_silent_start(
    switch: Switch, sink: WebhookSink, client: Client, tmp_path: Path
) -> None:
    late_tone = write_wav(tmp_path / "late.wav", np.concatenate([np.zeros(int(1.5 * RATE), np.int16),
                                                                  sine(1000.0, 4.0)]))
    with PhoneProcess(["--answer", "auto", "--play", str(late_tone), "--exit-after-calls", "1"]) as phone:
        call = await _api(client.calls.create, to=phone.uri("bob"), from_="+15550199", twiml=HOLD, record=True,
                          recording_status_callback=sink.url("/rec"),
                          recording_status_callback_event="in-progress completed")
        await _rec_hooks(sink, call.sid, 1)
        started = asyncio.get_running_loop().time()
        await asyncio.sleep(3.0)
        await _api(client.calls(call.sid).update, status="completed")
        recorded = asyncio.get_running_loop().time() - started
        hooks = await _rec_hooks(sink, call.sid, 2)
    assert [h.params["RecordingStatus"] for h in hooks] == ["in-progress", "completed"]
    samples = _wav((await _download(hooks[1].params["RecordingUrl"])).content)
    # 1.5 s of leading silence is gone but for the 100 ms kept before the first sound.
    assert len(samples) / RATE < recorded - 1.0, (len(samples) / RATE, recorded)
    assert rms(samples[1200:2400]) > 1000
    assert abs(dominant_frequency(samples[1200:], RATE) - 1000.0) < 10


async def test_a_call_hung_up_before_any_audio_leaves_an_absent_recording(
    switch: Switch, sink: WebhookSink, client: Client
) -> None:
    with PhoneProcess(["--answer", "auto", "--hangup-after", "0.3", "--exit-after-calls", "1"]) as phone:
        call = await _api(client.calls.create, to=phone.uri("bob"), from_="+15550199", twiml=HOLD, record=True,
                          recording_status_callback=sink.url("/rec"),
                          recording_status_callback_event=["completed", "absent"])
        hooks = await _rec_hooks(sink, call.sid, 1)
        await phone.event("hangup", timeout=10)
    assert [h.params["RecordingStatus"] for h in hooks] == ["absent"]
    assert WebhookSink.valid(hooks[0], TOKEN)
    assert hooks[0].params["ErrorCode"] == "16102" and hooks[0].params["RecordingDuration"] == "0"
    rec = await _api(client.recordings(hooks[0].params["RecordingSid"]).fetch)
    assert (rec.status, rec.error_code, rec.duration) == ("absent", 16102, "0")
    assert (await _download(hooks[0].params["RecordingUrl"])).status_code == 404


async def test_a_killed_worker_keeps_the_recording_made_so_far(
    switch: Switch, sink: WebhookSink, client: Client
) -> None:
    with PhoneProcess(["--answer", "auto", "--tone", "1000", "--exit-after-calls", "1"]) as phone:
        call = await _api(client.calls.create, to=phone.uri("bob"), from_="+15550199", twiml=HOLD, record=True,
                          trim="do-not-trim", recording_status_callback=sink.url("/rec"),
                          recording_status_callback_event=["in-progress", "completed", "absent"])
        await _rec_hooks(sink, call.sid, 1)
        await asyncio.sleep(1.5)
        pid = switch.pool.workers[0].pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        hooks = await _rec_hooks(sink, call.sid, 2)
    assert [h.params["RecordingStatus"] for h in hooks] == ["in-progress", "completed"]
    assert (await _api(client.calls(call.sid).fetch)).status == "failed"
    listed = await _api(client.recordings.list, call_sid=call.sid)
    assert [(r.sid, r.status) for r in listed] == [(hooks[0].params["RecordingSid"], "completed")]
    samples = _wav((await _download(hooks[1].params["RecordingUrl"])).content)
    assert np.count_nonzero(_frames_rms(samples) > 1000) * 0.02 > 0.5
    assert abs(dominant_frequency(samples[1600:], RATE) - 1000.0) < 10


def test_a_recording_survives_a_killed_switch(tmp_path: Path, sink: WebhookSink) -> None:
    """kill -9 of the whole control plane: the next start finalizes the recording from its raw files."""
    first = SwitchProcess(tmp_path).start()
    try:
        with PhoneProcess(["--answer", "auto", "--tone", "1000", "--exit-after-calls", "1"]) as phone:
            call = first.client().calls.create(to=phone.uri("bob"), from_="+15550199", twiml=HOLD, record=True,
                                               trim="do-not-trim", recording_status_callback=sink.url("/rec"),
                                               recording_status_callback_event=["in-progress", "completed"])
            sink.wait_for(lambda hooks: any(h.params.get("CallSid") == call.sid for h in hooks))
            time.sleep(1.5)
            first.stop(signal.SIGKILL)
            phone.wait_for("hangup", timeout=10)  # the orphaned worker hangs up and exits
    finally:
        first.stop()
    second = SwitchProcess(tmp_path).start()  # same data dir, fresh ports
    try:
        client = second.client()
        hooks = sink.wait_for(lambda hooks: len([h for h in hooks if h.params.get("CallSid") == call.sid]) >= 2)
        mine = [h for h in hooks if h.params.get("CallSid") == call.sid]
        assert [h.params["RecordingStatus"] for h in mine] == ["in-progress", "completed"]
        assert all(WebhookSink.valid(h) for h in mine)
        assert client.calls(call.sid).fetch().status == "failed"
        [rec] = client.recordings.list(call_sid=call.sid)
        assert rec.status == "completed" and int(rec.duration) >= 1
        media = requests.get(f"{second.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{rec.sid}.wav",
                             auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=10)
        samples = _wav(media.content)
        assert np.count_nonzero(_frames_rms(samples) > 1000) * 0.02 > 0.5
        assert abs(dominant_frequency(samples[1600:], RATE) - 1000.0) < 10
    finally:
        assert second.stop() == 0, second.log()
