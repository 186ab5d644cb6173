"""A churn of short calls hanging up around their `<Record>`: every recording ends, each with one final callback.

Three sipp callers place 180 calls at 8 a second to a number whose TwiML is a `<Record>`, and hang up 0.3, 0.9 or
1.7 s after the answer, so calls end before, while and just after their take starts; three more load the switch
alike with calls to a second number (a media stream its server refuses, then a pause).  Each `<Record>` is cancelled
by its call's end at some point of its life.  Before the finalization was shielded from its waiter
(`switch.core.recordings.RecordingManager.stop`), one recording in each such run stayed `processing` for good,
without its callback (this test caught it in one run of two; the unit test in test_verbs_record.py always).
A take whose call hung up as it started ends absent without a fault reported: no recording notification.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from tests.peers.harness import SwitchProcess, WebhookSink, wait_until
from tests.peers.sipp_peer import SippPeer

pytestmark = pytest.mark.e2e

NUMBER = "+15550177"
BUSY = "+15550178"  # calls alongside: a media stream whose server refuses, then a pause
OTHER = '<Response><Start><Stream url="ws://127.0.0.1:9/refused"/></Start><Pause length="3"/></Response>'
RECORD = ('<Response><Record maxLength="5" trim="do-not-trim" recordingStatusCallback="/rec" '
          'recordingStatusCallbackEvent="in-progress completed absent"/></Response>')


def test_short_calls_around_their_record_leave_every_recording_final(tmp_path: Path) -> None:
    app = WebhookSink().start()
    app.twiml("/voice", RECORD)
    app.twiml("/other", OTHER)
    switch = SwitchProcess(tmp_path, workers=2, edge={}, numbers=[{"number": NUMBER, "voice_url": app.url("/voice")},
                                                                   {"number": BUSY, "voice_url": app.url("/other")}])
    switch.start()
    try:
        callers = [SippPeer("uac_inbound.xml", remote=f"127.0.0.1:{switch.sip_port}", service=number, calls=60,
                            rate=8, variables={"pause_ms": pause}, workdir=tmp_path, name=f"c{pause}-{number[-1]}",
                            timeout=60) for pause in (300, 900, 1700) for number in (NUMBER, BUSY)]
        for caller in callers:
            caller.start()
        for caller in callers:
            assert caller.wait_sync(60) == 0, caller.errors()
        client = switch.client()

        def settled() -> bool:
            return not client.calls.list(status="in-progress") and all(
                r.status in ("completed", "absent") for r in client.recordings.list(limit=1000))

        wait_until(settled, 20, "every call ended and every recording final")
        recordings = client.recordings.list(limit=1000)
        assert len(recordings) >= 60, len(recordings)  # most calls were answered long enough to start a take
        time.sleep(1)  # the last callbacks
        told: dict[str, list[str]] = {}
        for hook in app.hooks:
            if hook.path == "/rec":
                told.setdefault(hook.params["RecordingSid"], []).append(hook.params["RecordingStatus"])
        for rec in recordings:
            assert told.get(rec.sid, [])[-1:] == [rec.status], (rec.sid, rec.status, told.get(rec.sid))
            assert Counter(told[rec.sid])[rec.status] == 1, told[rec.sid]  # one final callback
        # a hang-up that beat its tap to the worker is no fault: no recording notification (one per run before)
        assert [n.message_text for n in client.notifications.list() if "recording" in n.message_text] == []
        assert [w["restarts"] for w in switch.healthz()[1]["workers"]] == [0, 0]
    finally:
        switch.stop()
        app.stop()
