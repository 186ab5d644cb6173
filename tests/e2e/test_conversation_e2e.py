"""<Connect><Conversation> end to end: customers and workers are lab phones and sipp peers, the app is a
WebhookSink, conversations are made with the official client's Conversations API.  Every Result value is
reached by a real call; status callbacks, action parameters and recordings are checked as whole sequences."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client
from twilio.twiml.voice_response import Connect, VoiceResponse

from media.audio import read_wav
from media.tones import band_energy_ratio, dominant_frequency, rms
from tests.peers.harness import ACCOUNT_SID, Hook, SwitchProcess, WebhookSink, free_port_block, wait_until
from tests.peers.phone import PhoneProcess
from tests.peers.sipp_peer import SippPeer

MAIN = "IS" + "a1" * 16  # custom routing: the sink's /routing
POOL = "IS" + "b2" * 16  # pool routing: alice, bob
UNKNOWN = "IS" + "0" * 32
MAIN_NUMBER = "+15550300"
POOL_NUMBER = "+15550301"
ALL_EVENTS = "call-initiated call-ringing call-answered call-completed"
RFC2822 = re.compile(r"[A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000")


@dataclass
class ConversationSwitch(SwitchProcess):
    """The switch with `[[conversation_services]]` in its config file."""

    services: list[dict[str, Any]] = field(default_factory=list)

    def write_config(self) -> Path:
        path = super().write_config()
        lines = []
        for service in self.services:
            lines.append("[[conversation_services]]")
            for key, value in service.items():
                if isinstance(value, dict):
                    pairs = ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in value.items())
                    lines.append(f"{key} = {{ {pairs} }}")
                else:
                    lines.append(f"{key} = {json.dumps(value)}")
        path.write_text(path.read_text() + "\n".join(lines) + "\n")
        return path

    def conversations(self) -> Client:
        client = self.client()
        client.conversations.base_url = self.base_url
        return client


@pytest.fixture(scope="module")
def pool_ports() -> dict[str, int]:
    base = free_port_block(2)
    return {"alice": base, "bob": base + 1}


@pytest.fixture(scope="module")
def switch(tmp_path_factory: pytest.TempPathFactory, app: WebhookSink,
           pool_ports: dict[str, int]) -> Iterator[ConversationSwitch]:
    workers = {name: f"sip:{name}@127.0.0.1:{port}" for name, port in pool_ports.items()}
    proc = ConversationSwitch(
        tmp_path_factory.mktemp("conversation"), workers=1,
        numbers=[{"number": MAIN_NUMBER, "voice_url": app.url("/frontline")},
                 {"number": POOL_NUMBER, "voice_url": app.url("/frontline-pool")}],
        services=[{"sid": MAIN, "friendly_name": "Frontline", "routing_url": app.url("/routing")},
                  {"sid": POOL, "friendly_name": "Pool", "pool": ["alice", "bob"], "workers": workers}])
    proc.start()
    yield proc
    proc.stop()


def _document(action: str | None = "/after", method: str | None = None, **conversation: Any) -> str:
    response = VoiceResponse()
    connect = Connect(action=action, method=method)
    connect.conversation(**conversation)
    response.append(connect)
    return str(response)


def _hooks(app: WebhookSink, path: str, timeout: float = 20.0, count: int = 1, **match: str) -> list[Hook]:
    def matching(hooks: list[Hook]) -> list[Hook]:
        return [h for h in hooks if h.path == path and all(h.params.get(k) == v for k, v in match.items())]

    app.wait_for(lambda hs: len(matching(hs)) >= count, timeout)
    return matching(app.hooks)


def _conversation(switch: ConversationSwitch, customer: str, *, proxy: str = MAIN_NUMBER,
                  worker: str | None = None, sip_uri: str | None = None, service: str = MAIN) -> str:
    """A conversation between `customer` and (optionally) the worker `worker` dialed at `sip_uri`."""
    api = switch.conversations().conversations.v1.services(service)
    conversation = api.conversations.create(friendly_name=f"with {customer}")
    api.conversations(conversation.sid).participants.create(messaging_binding_address=customer,
                                                            messaging_binding_proxy_address=proxy)
    if worker is not None:
        api.conversations(conversation.sid).participants.create(
            identity=worker, attributes=json.dumps({"sip_uri": sip_uri} if sip_uri else {}))
    return str(conversation.sid)


def _customer(switch: ConversationSwitch, number: str, *args: str, called: str = MAIN_NUMBER) -> PhoneProcess:
    return PhoneProcess(["--call", f"sip:{called}@{switch.sip_uri_host}", "--user", number, *args])


def test_conversations_rest_api_in_twilio_shape(switch: ConversationSwitch) -> None:
    client = switch.conversations()
    services = {s.sid: s.friendly_name for s in client.conversations.v1.services.list()}
    assert services[MAIN] == "Frontline" and services[POOL] == "Pool"
    made = client.conversations.v1.services.create(friendly_name="made by REST")
    assert made.sid.startswith("IS") and len(made.sid) == 34
    api = client.conversations.v1.services(made.sid)
    first = api.conversations.create(friendly_name="one", unique_name="first", attributes='{"vip": true}')
    second = api.conversations.create(friendly_name="two")
    assert first.sid.startswith("CH") and first.chat_service_sid == made.sid and first.state == "active"
    assert first.url == f"{switch.base_url}/v1/Services/{made.sid}/Conversations/{first.sid}"
    assert api.conversations("first").fetch().sid == first.sid  # unique name in place of the SID
    assert [c.sid for c in api.conversations.list(page_size=1)] == [first.sid, second.sid]  # pages followed
    customer = api.conversations(first.sid).participants.create(messaging_binding_address="+15557770001",
                                                                 messaging_binding_proxy_address=MAIN_NUMBER)
    worker = api.conversations(first.sid).participants.create(identity="zoe",
                                                               attributes='{"sip_uri": "sip:zoe@127.0.0.1:5999"}')
    assert customer.sid.startswith("MB") and customer.identity is None
    assert customer.messaging_binding == {"type": "sms", "address": "+15557770001", "proxy_address": MAIN_NUMBER}
    assert worker.identity == "zoe" and worker.messaging_binding is None
    assert json.loads(worker.attributes) == {"sip_uri": "sip:zoe@127.0.0.1:5999"}
    participants = api.conversations(first.sid).participants.list()
    assert [p.sid for p in participants] == [customer.sid, worker.sid]
    with pytest.raises(TwilioRestException) as both:
        api.conversations(first.sid).participants.create(identity="x", messaging_binding_address="+15557770002")
    assert (both.value.status, both.value.code) == (400, 50211)
    with pytest.raises(TwilioRestException) as twice:
        api.conversations(first.sid).participants.create(identity="zoe")
    assert (twice.value.status, twice.value.code) == (409, 50433)
    with pytest.raises(TwilioRestException) as taken:
        api.conversations.create(unique_name="first")
    assert taken.value.status == 409
    assert api.conversations(first.sid).participants(worker.sid).delete()
    assert [p.sid for p in api.conversations(first.sid).participants.list()] == [customer.sid]
    assert api.conversations(second.sid).delete()
    with pytest.raises(TwilioRestException) as gone:
        api.conversations(second.sid).fetch()
    assert (gone.value.status, gone.value.code) == (404, 20404)
    assert client.conversations.v1.services(made.sid).delete()
    with pytest.raises(TwilioRestException) as unknown:
        client.conversations.v1.services(made.sid).fetch()
    assert unknown.value.status == 404
    stranger = Client(ACCOUNT_SID, "wrong")
    stranger.conversations.base_url = switch.base_url
    with pytest.raises(TwilioRestException) as refused:
        stranger.conversations.v1.services(MAIN).fetch()
    assert (refused.value.status, refused.value.code) == (401, 20003)


def _tone_share(samples: Any, rate: int, hz: float) -> float:
    return band_energy_ratio(samples, rate, hz) if len(samples) > rate // 2 and rms(samples) > 1000 else 0.0


def test_worker_answers_session_success_with_whisper_and_numbered_events(
        switch: ConversationSwitch, app: WebhookSink, tmp_path: Path) -> None:
    from media.audio import read_wav

    whisper = VoiceResponse()
    whisper.say("Customer calling")
    app.twiml("/whisper", str(whisper))
    app.twiml("/after", str(VoiceResponse()))
    app.twiml("/frontline", _document(service_instance_sid=MAIN, url="/whisper", status_callback="/conv-status",
                                      status_callback_event=ALL_EVENTS))
    heard_by_worker, heard_by_customer = tmp_path / "worker.wav", tmp_path / "customer.wav"
    with PhoneProcess(["--answer", "auto", "--answer-after", "0.5", "--tone", "1000", "--hangup-after", "4",
                       "--record", str(heard_by_worker)]) as worker:
        sid = _conversation(switch, "+15551110001", worker="carol", sip_uri=worker.uri("carol"))
        with _customer(switch, "+15551110001", "--tone", "440", "--record", str(heard_by_customer)) as customer:
            action = _hooks(app, "/after", From="+15551110001")[0]
            customer.wait_for("hangup", timeout=10)
        incoming = worker.events("incoming")[0]
    params = action.params
    assert params["Result"] == "session-success" and params["WorkerInitiated"] == "false"
    assert params["ConversationSid"] == sid and params["Direction"] == "inbound"
    assert params["DialCallStatus"] == "completed" and params["DialCallSid"].startswith("CA")
    assert 3 <= int(params["DialCallDuration"]) <= 5
    assert not any(k.startswith("Recording") for k in params)  # no `record`: no recording parameters
    assert action.method == "POST" and WebhookSink.valid(action)
    assert "+15551110001" in incoming["from"]  # the worker sees the customer's number
    events = _hooks(app, "/conv-status", count=4, DialCallSid=params["DialCallSid"])
    assert [h.params["Status"] for h in events] == ["call-initiated", "call-ringing", "call-answered",
                                                    "call-completed"]
    assert [h.params["SequenceNumber"] for h in events] == ["1", "2", "3", "4"]
    for hook in events:
        assert hook.params["AccountSid"] == ACCOUNT_SID and hook.params["ConversationSid"] == sid
        assert hook.params["WorkerInitiated"] == "false"
        assert hook.params["CallbackSource"] == "voice-conversation-service"
        assert RFC2822.fullmatch(hook.params["Timestamp"]), hook.params["Timestamp"]
        assert hook.method == "POST" and WebhookSink.valid(hook)
    whisper_fetch = [h for h in app.for_path("/whisper") if h.params.get("ParentCallSid") == action.params["CallSid"]]
    assert [h.params["CallSid"] for h in whisper_fetch] == [params["DialCallSid"]]
    samples, rate = read_wav(heard_by_worker)
    assert rms(samples[: rate]) > 200  # the whisper reached the worker first...
    assert _tone_share(samples[-rate:], rate, 440.0) > 0.5  # ...then the customer's voice
    samples, rate = read_wav(heard_by_customer)
    assert _tone_share(samples[-rate:], rate, 1000.0) > 0.5  # and the customer heard the worker


def test_voicemail_example_when_the_worker_does_not_answer(switch: ConversationSwitch, app: WebhookSink) -> None:
    # The reference's example: <Connect action><Conversation inboundTimeout/>, then Say + Record in the action.
    voicemail = VoiceResponse()
    voicemail.say("Sorry, your personal advisor is not available right now. "
                  "Please leave a message after the tone. Thank you!")
    voicemail.record(recording_status_callback="/vm-recording", action="/vm-done", max_length=2)
    app.twiml("/voicemail", str(voicemail))
    app.twiml("/vm-done", str(VoiceResponse()))
    app.twiml("/frontline", _document(action="/voicemail", service_instance_sid=MAIN, inbound_timeout=2,
                                      status_callback="/vm-status"))
    with SippPeer("uas_noanswer.xml", timeout=30) as advisor:
        sid = _conversation(switch, "+15551110002", worker="dave", sip_uri=f"sip:dave@{advisor.uri_host}")
        started = time.monotonic()
        with _customer(switch, "+15551110002", "--tone", "440") as customer:
            action = _hooks(app, "/voicemail", From="+15551110002")[0]
            assert 1.5 < time.monotonic() - started < 6
            done = _hooks(app, "/vm-done", From="+15551110002")[0]
            customer.wait_for("hangup", timeout=10)
        assert advisor.wait_sync(10) == 0, advisor.describe()
    assert advisor.methods_received() == ["INVITE", "CANCEL", "ACK"]
    params = action.params
    assert (params["Result"], params["DialCallStatus"], params["WorkerInitiated"]) == (
        "dialed-call-incomplete", "no-answer", "false")
    assert params["ConversationSid"] == sid and params["DialCallDuration"] == "0"
    status = _hooks(app, "/vm-status", DialCallSid=params["DialCallSid"])
    assert [(h.params["Status"], h.params["SequenceNumber"]) for h in status] == [("call-completed", "1")]
    recording = _hooks(app, "/vm-recording", CallSid=params["CallSid"])[0].params
    assert recording["RecordingStatus"] == "completed" and recording["RecordingSource"] == "RecordVerb"
    assert 1 <= int(recording["RecordingDuration"]) <= 3
    assert done.params["RecordingSid"] == recording["RecordingSid"]


def _route_with(switch: ConversationSwitch, app: WebhookSink, assignments: dict[str, tuple[str, str]]) -> None:
    """Custom routing: the app answers the routing webhook by adding the worker through the REST API."""

    def responder(hook: Hook) -> tuple[int, str, str]:
        target = assignments.get(hook.params.get("CustomerAddress", ""))
        if target is not None:
            identity, uri = target

            def assign() -> None:
                api = switch.conversations().conversations.v1.services(hook.params["ChatServiceSid"])
                api.conversations(hook.params["ConversationSid"]).participants.create(
                    identity=identity, attributes=json.dumps({"sip_uri": uri}))

            threading.Thread(target=assign, daemon=True).start()
        return 204, "", "text/plain"

    app.responses["/routing"] = responder


def test_custom_routing_assigns_a_worker_or_times_out(switch: ConversationSwitch, app: WebhookSink) -> None:
    app.twiml("/after", str(VoiceResponse()))
    app.twiml("/frontline", _document(service_instance_sid=MAIN, routing_assignment_timeout=1))
    with PhoneProcess(["--answer", "auto", "--hangup-after", "1"]) as worker:
        _route_with(switch, app, {"+15551110004": ("frank", worker.uri("frank"))})
        # Nobody answers the routing webhook for this customer: no worker within routingAssignmentTimeout.
        started = time.monotonic()
        with _customer(switch, "+15551110003") as customer:
            lonely = _hooks(app, "/after", From="+15551110003")[0].params
            customer.wait_for("hangup", timeout=10)
        assert 0.8 < time.monotonic() - started < 5
        # The app assigns a worker for this one, and the worker is dialed.
        with _customer(switch, "+15551110004") as customer:
            routed = _hooks(app, "/after", From="+15551110004")[0].params
            customer.wait_for("hangup", timeout=10)
        assert worker.events("answered")
    assert (lonely["Result"], lonely["WorkerInitiated"]) == ("no-other-participants", "false")
    assert "DialCallStatus" not in lonely
    routing = _hooks(app, "/routing", CustomerAddress="+15551110003")[0]
    assert routing.method == "POST" and WebhookSink.valid(routing)
    assert routing.params["ConversationSid"] == lonely["ConversationSid"]
    assert routing.params["ChatServiceSid"] == MAIN
    assert routing.params["MessagingBinding.Address"] == "+15551110003"
    assert routing.params["MessagingBinding.ProxyAddress"] == MAIN_NUMBER
    api = switch.conversations().conversations.v1.services(MAIN)
    created = api.conversations(lonely["ConversationSid"]).participants.list()  # autocreated, kept, no worker
    assert [(p.identity, (p.messaging_binding or {}).get("address")) for p in created] == [(None, "+15551110003")]
    assert routed["Result"] == "session-success" and routed["DialCallStatus"] == "completed"
    assigned = api.conversations(routed["ConversationSid"]).participants.list()
    assert sorted(str(p.identity) for p in assigned) == ["None", "frank"]


def test_pool_routing_round_robin_skips_a_worker_on_a_call(switch: ConversationSwitch, app: WebhookSink,
                                                            pool_ports: dict[str, int]) -> None:
    app.twiml("/after-pool", str(VoiceResponse()))
    app.twiml("/frontline-pool", _document(action="/after-pool", service_instance_sid=POOL))
    with PhoneProcess(["--answer", "auto"], sip=f"127.0.0.1:{pool_ports['alice']}", max_seconds=40) as alice, \
         PhoneProcess(["--answer", "auto"], sip=f"127.0.0.1:{pool_ports['bob']}", max_seconds=40) as bob:
        alice_uri = f"sip:alice@127.0.0.1:{pool_ports['alice']}"
        hold = switch.client().calls.create(to=alice_uri, from_=POOL_NUMBER,
                                            twiml="<Response><Pause length='4'/></Response>")
        alice.wait_for("answered", timeout=5)  # alice is on a call now: the pool skips her
        with _customer(switch, "+15551110005", "--hangup-after", "1", called=POOL_NUMBER) as customer:
            first = _hooks(app, "/after-pool", From="+15551110005")[0].params
            customer.wait_for("hangup", timeout=10)
        wait_until(lambda: switch.client().calls(hold.sid).fetch().status == "completed", what="the hold call")
        with _customer(switch, "+15551110006", "--hangup-after", "1", called=POOL_NUMBER) as customer:
            second = _hooks(app, "/after-pool", From="+15551110006")[0].params
            customer.wait_for("hangup", timeout=10)
        assert len(bob.events("answered")) == 1 and len(alice.events("answered")) == 2
    api = switch.conversations().conversations.v1.services(POOL)
    workers = [[p.identity for p in api.conversations(r["ConversationSid"]).participants.list() if p.identity]
               for r in (first, second)]
    assert workers == [["bob"], ["alice"]]  # bob (alice busy), then round robin back to alice
    assert first["Result"] == second["Result"] == "session-success"


def test_unknown_caller_is_refused_without_autocreation_or_fails_creation(switch: ConversationSwitch,
                                                                          app: WebhookSink) -> None:
    app.twiml("/after", str(VoiceResponse()))
    app.twiml("/frontline", _document(service_instance_sid=MAIN, inbound_autocreation=False))
    with _customer(switch, "+15551110007") as customer:
        refused = _hooks(app, "/after", From="+15551110007")[0].params
        hangup = customer.wait_for("hangup", timeout=10)
    assert (refused["Result"], refused["WorkerInitiated"]) == ("no-existing-conversation", "false")
    assert hangup["code"] == 603 and not customer.events("answered")  # rejected, never answered
    assert "ConversationSid" not in refused
    api = switch.conversations().conversations.v1.services(MAIN)
    callers = {(p.messaging_binding or {}).get("address") for c in api.conversations.list()
               for p in api.conversations(c.sid).participants.list()}
    assert "+15551110007" not in callers  # nothing was created
    # Autocreation into a service that does not exist: the conversation cannot be created.
    said = VoiceResponse()
    said.say("Sorry")
    app.twiml("/sorry", str(said))
    app.twiml("/frontline", _document(action="/sorry", service_instance_sid=UNKNOWN))
    with _customer(switch, "+15551110008") as customer:
        failed = _hooks(app, "/sorry", From="+15551110008")[0].params
        customer.wait_for("hangup", timeout=10)
    assert failed["Result"] == "failed-create-conversation"
    assert customer.events("answered")  # the action's <Say> answered the call


def test_worker_initiated_by_rest_with_get_methods(switch: ConversationSwitch, app: WebhookSink) -> None:
    whisper = VoiceResponse()
    whisper.say("Your advisor")
    app.twiml("/whisper-customer", str(whisper))
    app.twiml("/after-out", str(VoiceResponse()))
    app.twiml("/outbound", _document(action="/after-out", method="GET", service_instance_sid=MAIN,
                                     url="/whisper-customer", method_="GET", status_callback="/out-status",
                                     status_callback_method="GET", status_callback_event=ALL_EVENTS))
    with PhoneProcess(["--answer", "auto", "--hangup-after", "3"]) as customer, \
         PhoneProcess(["--answer", "auto"]) as worker:
        sid = _conversation(switch, customer.uri("gina"), worker="erin", sip_uri=worker.uri("erin"))
        call = switch.client().calls.create(to=worker.uri("erin"), from_=MAIN_NUMBER, method="GET",
                                            url=app.url(f"/outbound?ConversationSid={sid}"))
        action = _hooks(app, "/after-out", CallSid=call.sid)[0]
        worker.wait_for("hangup", timeout=10)
        incoming = customer.events("incoming")[0]
    params = action.params
    assert action.method == "GET" and WebhookSink.valid(action)
    assert (params["Result"], params["WorkerInitiated"], params["ConversationSid"]) == (
        "session-success", "true", sid)
    assert params["Direction"] == "outbound-api" and params["DialCallStatus"] == "completed"
    assert MAIN_NUMBER in incoming["from"]  # the customer sees the conversation's number
    whisper_fetch = [h for h in app.for_path("/whisper-customer") if h.params.get("ParentCallSid") == call.sid]
    assert [(h.method, h.params["CallSid"]) for h in whisper_fetch] == [("GET", params["DialCallSid"])]
    events = _hooks(app, "/out-status", count=4, DialCallSid=params["DialCallSid"])
    assert [(h.method, h.params["Status"], h.params["SequenceNumber"], h.params["WorkerInitiated"])
            for h in events] == [("GET", "call-initiated", "1", "true"), ("GET", "call-ringing", "2", "true"),
                                 ("GET", "call-answered", "3", "true"), ("GET", "call-completed", "4", "true")]
    assert all(WebhookSink.valid(h) for h in events)


def test_worker_initiated_by_sip_and_invalid_conversation(switch: ConversationSwitch, app: WebhookSink) -> None:
    app.twiml("/after", str(VoiceResponse()))
    app.twiml("/frontline", _document(service_instance_sid=MAIN))
    with PhoneProcess(["--answer", "auto", "--hangup-after", "1"]) as customer:
        sid = _conversation(switch, customer.uri("hugo"), worker="ivy")
        target = f"sip:{MAIN_NUMBER}@{switch.sip_uri_host};ConversationSid={sid}"
        with PhoneProcess(["--call", target, "--user", "ivy"]) as worker:
            called = _hooks(app, "/after", ConversationSid=sid)[0].params
            worker.wait_for("hangup", timeout=10)
    assert (called["Result"], called["WorkerInitiated"], called["Direction"]) == ("session-success", "true",
                                                                                  "inbound")
    unknown = "CH" + "0" * 32
    target = f"sip:{MAIN_NUMBER}@{switch.sip_uri_host};ConversationSid={unknown}"
    with PhoneProcess(["--call", target, "--user", "ivy"]) as worker:
        invalid = _hooks(app, "/after", From="ivy", Result="invalid-conversation")[0].params
        worker.wait_for("hangup", timeout=10)
    assert invalid["WorkerInitiated"] == "true" and "DialCallStatus" not in invalid


def test_dual_recording_from_ringing_with_trim(switch: ConversationSwitch, app: WebhookSink) -> None:
    app.twiml("/after", str(VoiceResponse()))
    app.twiml("/frontline", _document(service_instance_sid=MAIN, record="record-from-ringing-dual",
                                      trim="trim-silence", recording_status_callback="/conv-recording"))
    with PhoneProcess(["--answer", "auto", "--tone", "1000"]) as worker:
        _conversation(switch, "+15551110009", worker="jack", sip_uri=worker.uri("jack"))
        # This time the customer hangs up: the session ends the same way, and the worker's leg is hung up.
        with _customer(switch, "+15551110009", "--tone", "440", "--hangup-after", "3",
                       "--record", str(switch.workdir / "customer-heard-0009.wav")) as customer:
            params = _hooks(app, "/after", From="+15551110009")[0].params
            ended = customer.wait_for("hangup", timeout=10)
        assert worker.wait_for("hangup", timeout=5)["by"] == "remote"
    # the bridge first: the customer heard the worker's tone (if not, the worker's audio never reached the switch)
    customer_heard, heard_rate = read_wav(Path(ended["recording"]))
    assert abs(dominant_frequency(customer_heard[heard_rate:], heard_rate) - 1000.0) < 10
    assert params["Result"] == "session-success" and params["CallStatus"] == "completed"
    assert params["RecordingSid"].startswith("RE") and 2 <= int(params["RecordingDuration"]) <= 4
    status = _hooks(app, "/conv-recording", RecordingSid=params["RecordingSid"])[0].params
    assert (status["RecordingStatus"], status["RecordingChannels"], status["CallSid"]) == (
        "completed", "2", params["CallSid"])
    data, rate = switch.recording(params["RecordingUrl"])
    assert data.shape[1] == 2 and rate == 8000
    customer_channel, worker_channel = data[4000:, 0], data[4000:, 1]
    assert abs(dominant_frequency(customer_channel, rate) - 440.0) < 10
    assert abs(dominant_frequency(worker_channel, rate) - 1000.0) < 10
    recordings = switch.client().recordings.list(call_sid=params["CallSid"])
    assert [(r.sid, r.channels) for r in recordings] == [(params["RecordingSid"], 2)]


def test_internal_error_when_the_media_worker_dies(switch: ConversationSwitch, app: WebhookSink) -> None:
    sorry = VoiceResponse()
    sorry.say("Sorry")
    app.twiml("/after", str(sorry))
    # A worker nobody can dial (no sip_uri, no config entry) is an internal error too; the call goes on.
    app.twiml("/frontline", _document(service_instance_sid=MAIN))
    _conversation(switch, "+15551110011", worker="nowhere")
    with _customer(switch, "+15551110011") as customer:
        broken = _hooks(app, "/after", From="+15551110011")[0].params
        customer.wait_for("hangup", timeout=10)
    assert (broken["Result"], broken["CallStatus"]) == ("internal-error", "ringing")
    assert customer.events("answered")  # by the action's <Say>: not a hung call
    app.twiml("/after", str(VoiceResponse()))
    app.twiml("/frontline", _document(service_instance_sid=MAIN, status_callback="/crash-status",
                                      status_callback_event="call-answered call-completed"))
    with PhoneProcess(["--answer", "auto"]) as worker:
        _conversation(switch, "+15551110010", worker="kim", sip_uri=worker.uri("kim"))
        with _customer(switch, "+15551110010") as customer:
            answered = _hooks(app, "/crash-status", Status="call-answered")
            victim = switch.healthz()[1]["workers"][0]["pid"]
            os.kill(victim, signal.SIGKILL)
            params = _hooks(app, "/after", From="+15551110010")[0].params
            # The phones get no BYE: the SIP stack that held their calls died with the worker.
            assert customer.events("answered")
    dial_sid = answered[-1].params["DialCallSid"]
    assert (params["Result"], params["DialCallSid"], params["CallStatus"]) == ("internal-error", dial_sid, "failed")
    completed = _hooks(app, "/crash-status", Status="call-completed", DialCallSid=dial_sid)
    assert [h.params["SequenceNumber"] for h in completed] == ["2"]
    assert switch.client().calls(dial_sid).fetch().status == "failed"
    wait_until(lambda: switch.healthz()[0] == 200, timeout=15, what="a new media worker")


# -- units: the config entry, naming a conversation, the order of status callbacks ----------------------------
def test_config_entries_are_checked(tmp_path: Path) -> None:
    from switch.core.config import load_config
    from switch.core.errors import ConfigError

    def load(entry: str) -> Any:
        path = tmp_path / "c.toml"
        path.write_text(f"[[conversation_services]]\n{entry}\n")
        return load_config(path).conversation_services

    [service] = load(f'sid = "{POOL}"\npool = ["al"]\nworkers = {{ al = "sip:al@127.0.0.1:5062" }}')
    assert (service.sid, service.pool, service.workers, service.routing_url) == (
        POOL, ("al",), {"al": "sip:al@127.0.0.1:5062"}, None)
    for bad in ('sid = "IS123"',  # not IS + 32 hex
                f'sid = "{POOL}"\npool = ["al"]',  # a pool identity without a SIP URI
                f'sid = "{POOL}"\nrouting_url = "http://x/r"\npool = ["al"]\nworkers = {{ al = "sip:al@h" }}',
                f'sid = "{POOL}"\nworkers = {{ al = "tel:+1555" }}',
                f'sid = "{POOL}"\nroute = "http://x/r"'):
        with pytest.raises(ConfigError):
            load(bad)


def test_a_call_names_its_conversation_in_the_request_uri_or_the_document_url() -> None:
    from switch.verbs.connect import named_conversation

    sid = "CH" + "1" * 32
    assert named_conversation(None, f"sip:+15550300@127.0.0.1:5060;ConversationSid={sid}") == sid
    assert named_conversation(f"http://app/out?x=1&ConversationSid={sid}", None) == sid
    assert named_conversation("http://app/voice", "sip:+15550300@127.0.0.1:5060;transport=udp") is None
