"""The Queues and Members REST API against a real switch, through the official twilio client: a queue made,
fetched, listed, updated and deleted by REST; a lab phone waiting in it (`<Enqueue waitUrl>`) seen as its member
(position, wait time, by CallSid and by `Front`), then dequeued by a member update with Url into TwiML that plays
a tone the phone hears (FFT), while its `<Enqueue>` action is told QueueResult=redirected.  Errors (404 for an
unknown queue or member, the refused delete of a queue someone waits in) and the raw JSON field names too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client
from twilio.twiml.voice_response import Enqueue, VoiceResponse

from media.audio import read_wav
from media.tones import dominant_frequency, rms
from tests.peers.harness import ACCOUNT_SID, AUTH_TOKEN, Hook, SwitchProcess, WebhookSink, wait_until
from tests.peers.phone import PhoneProcess

WAIT_HZ, DEQUEUED_HZ = 1200, 400
WINDOW = 0.25  # seconds of a recording per FFT
UNKNOWN_QUEUE = "QU" + "0" * 32
UNKNOWN_CALL = "CA" + "0" * 32
QUEUE_FIELDS = {"account_sid", "average_wait_time", "current_size", "date_created", "date_updated",
                "friendly_name", "max_size", "sid", "uri"}
MEMBER_FIELDS = {"call_sid", "date_enqueued", "position", "queue_sid", "uri", "wait_time"}


@pytest.fixture(scope="module")
def app() -> Iterator[WebhookSink]:
    sink = WebhookSink().start()
    for hz in (WAIT_HZ, DEQUEUED_HZ):
        sink.tone(f"/tone{hz}.wav", float(hz))
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def switch(tmp_path_factory: pytest.TempPathFactory, app: WebhookSink) -> Iterator[SwitchProcess]:
    proc = SwitchProcess(tmp_path_factory.mktemp("queue-rest"), workers=1)
    proc.start()
    yield proc
    code = proc.stop()
    assert code == 0, f"switch exited with {code}:\n{proc.log()}"


def _raw(switch: SwitchProcess, path: str, method: str = "GET") -> requests.Response:
    return requests.request(method, f"{switch.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/{path}",
                            auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=10)


def _rest_error(call: object) -> TwilioRestException:
    with pytest.raises(TwilioRestException) as caught:
        call()  # type: ignore[operator]
    return caught.value


def _hook(app: WebhookSink, path: str, sid: str, timeout: float = 20) -> Hook:
    app.wait_for(lambda hs: any(h.path == path and h.params.get("CallSid") == sid for h in hs), timeout)
    return next(h for h in app.for_path(path) if h.params.get("CallSid") == sid)


def _heard(path: Path, hz: float) -> int:
    """How many audible windows of a recording have `hz` as their dominant frequency."""
    samples, rate = read_wav(path)
    step = int(WINDOW * rate)
    parts = (samples[i:i + step] for i in range(0, len(samples) - step + 1, step))
    return sum(1 for part in parts if rms(part) > 500 and abs(dominant_frequency(part, rate) - hz) < 12)


def test_queue_crud_and_member_dequeued_by_rest(switch: SwitchProcess, app: WebhookSink, tmp_path: Path) -> None:
    client: Client = switch.client()
    queue = client.queues.create(friendly_name="rest-support", max_size=5)
    assert queue.sid.startswith("QU") and (queue.friendly_name, queue.max_size) == ("rest-support", 5)
    assert (queue.current_size, queue.average_wait_time) == (0, 0)
    assert client.queues(queue.sid).fetch().friendly_name == "rest-support"
    assert queue.sid in {q.sid for q in client.queues.list()}
    assert client.queues(queue.sid).update(max_size=10).max_size == 10
    assert client.queues(queue.sid).fetch().max_size == 10
    # a name in use (a second queue called the same): refused
    assert _rest_error(lambda: client.queues.create(friendly_name="rest-support")).status == 409

    response = VoiceResponse()
    response.append(Enqueue("rest-support", wait_url="/wait-rest", action="/rest-result"))
    app.twiml("/enqueue-rest", str(response))
    app.twiml("/wait-rest", f'<Response><Play>{app.url(f"/tone{WAIT_HZ}.wav")}</Play></Response>')
    app.twiml("/rest-result", "<Response><Hangup/></Response>")
    tone = app.url(f"/tone{DEQUEUED_HZ}.wav")
    app.twiml("/dequeued", f"<Response><Play>{tone}</Play><Play>{tone}</Play><Hangup/></Response>")
    rec = tmp_path / "caller.wav"
    with PhoneProcess(["--record", str(rec)]) as phone:
        sid = client.calls.create(to=phone.uri("q"), from_="+15550199", url=app.url("/enqueue-rest")).sid
        waiting = _hook(app, "/wait-rest", sid)
        assert (waiting.params["QueueSid"], waiting.params["QueuePosition"]) == (queue.sid, "1")
        members = client.queues(queue.sid).members
        wait_until(lambda: members.list()[0].wait_time >= 1, 5, "a wait time of a second")
        listed = members.list()
        assert [(m.call_sid, m.position, m.queue_sid) for m in listed] == [(sid, 1, queue.sid)]
        assert 1 <= listed[0].wait_time <= 5 and listed[0].date_enqueued is not None
        assert members(sid).fetch().call_sid == sid
        front = members("Front").fetch()
        assert (front.call_sid, front.position) == (sid, 1)
        shown = client.queues(queue.sid).fetch()
        assert (shown.current_size, shown.max_size) == (1, 10) and shown.average_wait_time >= 1
        refused = _rest_error(lambda: client.queues(queue.sid).delete())
        assert (refused.status, refused.code) == (409, 20001), refused
        assert _rest_error(lambda: members(UNKNOWN_CALL).fetch()).status == 404
        assert _rest_error(lambda: members(sid).update(url="not a url")).code == 21205

        dequeued = members(sid).update(url=app.url("/dequeued"), method="POST")
        assert (dequeued.call_sid, dequeued.queue_sid) == (sid, queue.sid)
        result = _hook(app, "/rest-result", sid)
        assert result.params["QueueResult"] == "redirected" and result.params["QueueSid"] == queue.sid
        assert int(result.params["QueueTime"]) >= 1
        fetched = _hook(app, "/dequeued", sid)
        assert fetched.method == "POST" and WebhookSink.valid(fetched)
        phone.wait_for("hangup", timeout=15)
    assert len([h for h in app.for_path("/rest-result") if h.params["CallSid"] == sid]) == 1  # told once
    assert _heard(rec, WAIT_HZ) >= 2, "the caller heard the wait music"
    assert _heard(rec, DEQUEUED_HZ) >= 4, "and then the dequeue TwiML's tone"

    assert client.queues(queue.sid).fetch().current_size == 0
    assert client.queues(queue.sid).members.list() == []
    assert _rest_error(lambda: client.queues(queue.sid).members("Front").fetch()).status == 404
    assert client.queues(queue.sid).delete() is True
    gone = _rest_error(lambda: client.queues(queue.sid).fetch())
    assert (gone.status, gone.code) == (404, 20404)
    assert queue.sid not in {q.sid for q in client.queues.list()}


def test_unknown_queues_and_members_are_404(switch: SwitchProcess) -> None:
    client = switch.client()
    for call in (lambda: client.queues(UNKNOWN_QUEUE).fetch(),
                 lambda: client.queues(UNKNOWN_QUEUE).update(max_size=3),
                 lambda: client.queues(UNKNOWN_QUEUE).delete(),
                 lambda: client.queues(UNKNOWN_QUEUE).members("Front").fetch(),
                 lambda: client.queues(UNKNOWN_QUEUE).members(UNKNOWN_CALL).update(url="https://example.com/")):
        error = _rest_error(call)
        assert (error.status, error.code) == (404, 20404), error
    listed = _raw(switch, f"Queues/{UNKNOWN_QUEUE}/Members.json")  # the client's list raises a bare TwilioException
    assert (listed.status_code, listed.json()["code"]) == (404, 20404)
    queue = client.queues.create(friendly_name="empty-one")
    assert queue.max_size == 1000  # Twilio's default
    error = _rest_error(lambda: client.queues(queue.sid).members(UNKNOWN_CALL).fetch())
    assert (error.status, error.code) == (404, 20404)
    bad = _rest_error(lambda: client.queues(queue.sid).update(max_size=5001))
    assert (bad.status, bad.code) == (400, 20001)
    assert client.queues(queue.sid).delete() is True


def test_raw_json_field_names(switch: SwitchProcess, app: WebhookSink) -> None:
    made = requests.post(f"{switch.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Queues.json",
                         data={"FriendlyName": "raw-json", "MaxSize": "7"}, auth=(ACCOUNT_SID, AUTH_TOKEN),
                         timeout=10)
    assert made.status_code == 201, made.text
    body = made.json()
    assert set(body) == QUEUE_FIELDS
    sid = body["sid"]
    assert body["uri"] == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Queues/{sid}.json"
    assert made.headers["Location"].endswith(body["uri"])
    assert (body["max_size"], body["current_size"], body["account_sid"]) == (7, 0, ACCOUNT_SID)
    assert body["date_created"].endswith("+0000")  # RFC 2822, as Twilio's
    page = _raw(switch, "Queues.json").json()
    assert {"queues", "uri", "page", "page_size", "first_page_uri", "next_page_uri",
            "previous_page_uri"} <= set(page)
    assert all(set(q) == QUEUE_FIELDS for q in page["queues"])

    app.twiml("/enqueue-raw", '<Response><Enqueue waitUrl="/wait-raw">raw-json</Enqueue></Response>')
    app.twiml("/wait-raw", '<Response><Pause length="5"/></Response>')
    with PhoneProcess([]) as phone:
        call = switch.client().calls.create(to=phone.uri("q"), from_="+15550199", url=app.url("/enqueue-raw"))
        _hook(app, "/wait-raw", call.sid)
        members = _raw(switch, f"Queues/{sid}/Members.json").json()
        assert [m["call_sid"] for m in members["queue_members"]] == [call.sid]
        member = _raw(switch, f"Queues/{sid}/Members/Front.json").json()
        assert set(member) == MEMBER_FIELDS
        assert member["uri"] == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Queues/{sid}/Members/{call.sid}.json"
        assert (member["position"], member["queue_sid"]) == (1, sid) and isinstance(member["wait_time"], int)
        refused = _raw(switch, f"Queues/{sid}.json", "DELETE")
        assert refused.status_code == 409
        assert set(refused.json()) == {"code", "message", "more_info", "status"}
        switch.client().calls(call.sid).update(status="completed")
        phone.wait_for("hangup", timeout=10)
    wait_until(lambda: _raw(switch, f"Queues/{sid}.json").json()["current_size"] == 0, 5, "the caller to leave")
    missing = _raw(switch, f"Queues/{UNKNOWN_QUEUE}.json")
    assert missing.status_code == 404 and missing.json()["code"] == 20404
    assert _raw(switch, f"Queues/{sid}.json", "DELETE").status_code == 204
