"""Exotel's connect API end to end: `softswitch serve` calls two lab phones (or a phone and sipp) through trunks,
and the status callbacks it POSTs are compared field by field with the samples of
../shared/reference/exotel-ringing-answered-events.txt (kept below as `REFERENCE_*`), including `Legs` at every
event.  Also: multipart callbacks, Exotel's default callback and its two retries, authentication, bad parameters,
call details (JSON and XML) and the connect applet's agent pass-through GETs.

Each test gets its own pair of trunk ports: From numbers 0980<i>... reach the agent port of test i, To numbers
0870<i>... its customer port, so a phone or sipp bound there is the leg.
"""

from __future__ import annotations

import json
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from aiohttp import web
from twilio.twiml.voice_response import Dial, VoiceResponse

from switch.tools.ports import free_port_block
from tests.peers.harness import Hook, SwitchProcess, WebhookSink
from tests.peers.phone import PhoneProcess
from tests.peers.sipp_peer import SippPeer

EXOTEL_SID = "softswitchlab1"
API_KEY = "exo-key"
API_TOKEN = "exo-token"
EXOPHONE = "08044556678"
APPLET_NUMBER = "08033334444"
TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
TESTS = 5  # port pairs reserved, one per test of the shared switch that places calls

# The reference's samples (its "answered" samples are not used for types: they carry "null" as a string and a
# no-answer Status while both legs are in progress; the ringing samples are consistent and newer).
REFERENCE_RINGING_FIRST: dict[str, Any] = {
    "CallSid": "09c14403fb2a31097ba5ed64f9251646", "EventType": "ringing", "DateCreated": "2022-04-06 10:44:40",
    "DateUpdated": "2022-04-06 10:44:41", "Status": "in-progress", "To": "08780296135", "From": "07874762218",
    "PhoneNumberSid": "08044556678", "StartTime": "2022-04-06 10:44:41", "EndTime": None,
    "EventTime": "2022-04-06 10:44:41", "Direction": "outbound-api", "RecordingUrl": None,
    "ConversationDuration": None,
    "Legs": [{"OnCallDuration": None, "Status": "in-progress"}, {"OnCallDuration": None, "Status": None}],
}
REFERENCE_RINGING_SECOND: dict[str, Any] = {
    **REFERENCE_RINGING_FIRST, "DateUpdated": "2022-04-06 10:44:46", "StartTime": "2022-04-06 10:44:44",
    "EventTime": "2022-04-06 10:44:46",
    "Legs": [{"OnCallDuration": None, "Status": "in-progress"}, {"OnCallDuration": None, "Status": "in-progress"}],
}
REFERENCE_TERMINAL: dict[str, Any] = {
    "CallSid": "054cfcd8910389ff64882d8e25211646", "EventType": "terminal", "DateCreated": "2022-04-06 10:48:00",
    "DateUpdated": "2022-04-06 10:48:16", "Status": "completed", "To": "08780296135", "From": "07874762218",
    "PhoneNumberSid": "08044556678", "StartTime": "2022-04-06 10:48:04", "EndTime": "2022-04-06 10:48:16",
    "EventTime": "2022-04-06 10:48:16", "Direction": "outbound-api",
    "RecordingUrl": "https://s3-us-west-2.amazonaws.com/exotel-us3-recordings/054cfcd8910389ff64882d8e25211646.mp3",
    "ConversationDuration": 6,
    "Legs": [{"OnCallDuration": 12, "RingingDuration": 4, "Status": "completed"},
             {"OnCallDuration": 6, "RingingDuration": 3, "Status": "completed"}],
}
# What the switch adds to the samples: CustomField in the terminal callback when the request had one (Exotel's
# callback parameter list has it, "only via 'terminal' StatusCallbackEvent") and, at the end, each leg's AnsweredBy
# (Exotel's StatusCallback documentation has it).
EXTRA_LEG_KEYS = {"AnsweredBy"}
CALL_KEYS = ["Sid", "ParentCallSid", "DateCreated", "DateUpdated", "AccountSid", "To", "From", "PhoneNumberSid",
             "Status", "StartTime", "EndTime", "Duration", "Price", "Direction", "AnsweredBy", "ForwardedFrom",
             "CallerName", "Uri", "RecordingUrl"]
PASSTHRU_KEYS = ["CallSid", "CallFrom", "CallTo", "Direction", "Created", "From", "To", "CurrentTime",
                 "DialWhomNumber", "Status", "EventType"]


@dataclass
class BodyHook(Hook):
    """A webhook with its raw body and content type (the Exotel callbacks are JSON or multipart)."""

    content_type: str = ""
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


class BodySink(WebhookSink):
    """The harness's webhook sink, keeping bodies."""

    def __init__(self) -> None:
        super().__init__()
        self.http_status: dict[str, int] = {}  # path -> HTTP status to answer (default 200)

    async def handle(self, request: web.Request) -> web.Response:
        body = b""
        if request.method == "GET":
            params = {k: str(v) for k, v in request.query.items()}
        elif request.content_type == "multipart/form-data":
            params = {k: str(v) for k, v in (await request.post()).items()}
        else:
            body = await request.read()
            params = {k: str(v) for k, v in (await request.post()).items()}
        hook = BodyHook(request.method, str(request.url), request.path, params,
                        request.headers.get("X-Twilio-Signature"), time.time(), request.content_type, body)
        with self._cond:
            self.hooks.append(hook)
            self._cond.notify_all()
        responder = self.responses.get(request.path)
        if responder is not None:
            status, text, ctype = responder(hook)
            return web.Response(status=status, text=str(text), content_type=ctype)
        return web.Response(status=self.http_status.get(request.path, 200))

    def bodies(self, path: str, count: int, timeout: float = 20.0) -> list[BodyHook]:
        """Wait for `count` requests to `path`; return them in arrival order."""
        self.wait_for(lambda hooks: len([h for h in hooks if h.path == path]) >= count, timeout)
        return [h for h in self.for_path(path) if isinstance(h, BodyHook)]


@dataclass
class ExotelSwitch(SwitchProcess):
    """The harness's switch with an [exotel] section: its own account SID, API key and token."""

    line_base: int = 0  # the first trunk port of the tests' lines

    def start(self, timeout: float = 30.0) -> ExotelSwitch:
        super().start(timeout)
        return self

    def write_config(self) -> Path:
        path = super().write_config()
        path.write_text(path.read_text() + f'[exotel]\nsid = "{EXOTEL_SID}"\napi_key = "{API_KEY}"\n'
                                           f'api_token = "{API_TOKEN}"\n')
        return path


@dataclass(frozen=True)
class Lines:
    """Test `index`'s numbers and the ports their trunks send them to."""

    index: int
    base: int

    @property
    def agent(self) -> str:
        return f"0980{self.index}123456"

    @property
    def customer(self) -> str:
        return f"0870{self.index}654321"

    @property
    def agent_sip(self) -> str:
        return f"127.0.0.1:{self.base + 2 * self.index}"

    @property
    def customer_port(self) -> int:
        return self.base + 2 * self.index + 1

    @property
    def customer_sip(self) -> str:
        return f"127.0.0.1:{self.customer_port}"


@pytest.fixture(scope="module")
def sink() -> Iterator[BodySink]:
    hooks = BodySink()
    hooks.start()
    yield hooks
    hooks.stop()


def _exotel_switch(workdir: Path, sink: BodySink, lines: int) -> ExotelSwitch:
    """A switch (not started) with trunks for `lines` tests' lines."""
    proc = ExotelSwitch(workdir, workers=1, numbers=[{"number": APPLET_NUMBER, "voice_url": sink.url("/applet")}])
    taken = {proc.sip_port, proc.sip_port + 1, proc.http_port}
    base = free_port_block(2 * lines)
    while taken & set(range(base, base + 2 * lines)):
        base = free_port_block(2 * lines)
    for i in range(lines):
        proc.trunks.append({"name": f"agents{i}", "uri": f"sip:127.0.0.1:{base + 2 * i}", "prefixes": [f"0980{i}"]})
        proc.trunks.append({"name": f"customers{i}", "uri": f"sip:127.0.0.1:{base + 2 * i + 1}",
                            "prefixes": [f"0870{i}"]})
    proc.line_base = base
    return proc


@pytest.fixture(scope="module")
def switch(tmp_path_factory: pytest.TempPathFactory, sink: BodySink) -> Iterator[ExotelSwitch]:
    proc = _exotel_switch(tmp_path_factory.mktemp("exotel"), sink, TESTS).start()
    yield proc
    assert proc.stop() == 0, proc.log()


def _lines(switch: ExotelSwitch, index: int) -> Lines:
    return Lines(index, switch.line_base)


def _api(switch: SwitchProcess, path: str, json_suffix: bool = True) -> str:
    return f"{switch.base_url}/v1/Accounts/{EXOTEL_SID}/{path}{'.json' if json_suffix else ''}"


def _connect(switch: SwitchProcess, sink: BodySink, lines: Lines, path: str, events: list[str],
             **params: str) -> dict[str, Any]:
    """POST Calls/connect.json as Exotel's curl sample does: the events in the URL, the rest in the form."""
    query = "&".join(f"StatusCallbackEvents[{i}]={e}" for i, e in enumerate(events))
    form = {"From": lines.agent, "To": lines.customer, "CallerId": EXOPHONE, "CallType": "trans",
            "StatusCallback": sink.url(path), **params}
    response = requests.post(_api(switch, "Calls/connect") + (f"?{query}" if query else ""), data=form,
                             auth=(API_KEY, API_TOKEN), timeout=10)
    assert response.status_code == 200, response.text
    call: dict[str, Any] = response.json()["Call"]
    return call


def _same_shape(ours: dict[str, Any], reference: dict[str, Any], extra: frozenset[str] = frozenset()) -> None:
    """Same keys as the reference sample (plus `extra`), same JSON types, Exotel's time format, same Legs shape."""
    assert set(ours) == set(reference) | extra, sorted(set(ours) ^ set(reference))
    for key, value in reference.items():
        if key == "Legs":
            continue
        assert type(ours[key]) is type(value), (key, ours[key], value)
        if isinstance(value, str) and TIME.fullmatch(value):
            assert TIME.fullmatch(ours[key]), (key, ours[key])
    assert len(ours["Legs"]) == len(reference["Legs"]) == 2
    for mine, theirs in zip(ours["Legs"], reference["Legs"], strict=True):
        extra = EXTRA_LEG_KEYS if "RingingDuration" in theirs else set()
        assert set(mine) == set(theirs) | extra, (mine, theirs)
        for key, value in theirs.items():
            assert type(mine[key]) is type(value), (key, mine, theirs)


def _legs(document: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(leg["Status"], leg["OnCallDuration"]) for leg in document["Legs"]]


EVENT_KEYS = ["CallSid", "EventType", "DateCreated", "DateUpdated", "Status", "To", "From", "PhoneNumberSid",
              "StartTime", "EndTime", "EventTime", "Direction", "RecordingUrl", "ConversationDuration", "Legs"]
TERMINAL_KEYS = [*EVENT_KEYS[:-1], "CustomField", "Legs"]  # with a CustomField in the request


def test_connect_answered_reports_ringing_and_answered_per_leg_then_terminal(switch: ExotelSwitch,
                                                                            sink: BodySink) -> None:
    lines = _lines(switch, 0)
    with PhoneProcess(["--answer", "auto", "--answer-after", "1", "--tone", "440"], sip=lines.agent_sip) as agent, \
         PhoneProcess(["--answer", "auto", "--answer-after", "1", "--hangup-after", "2", "--tone", "1000"],
                      sip=lines.customer_sip) as customer:
        call = _connect(switch, sink, lines, "/answered", ["terminal", "answered", "ringing"], Record="true",
                        RecordingChannels="dual", RecordingFormat="mp3", CustomField="ticket-42", TimeOut="10")
        hooks = sink.bodies("/answered", 5)
        customer.wait_for("hangup", timeout=5)
        agent.wait_for("hangup", timeout=5)
    # The response: Exotel's Call object, every field, Exotel's names and formats.
    assert list(call) == CALL_KEYS
    assert re.fullmatch(r"CA[0-9a-f]{32}", call["Sid"])
    assert (call["AccountSid"], call["From"], call["To"], call["PhoneNumberSid"], call["Direction"]) == \
        (EXOTEL_SID, lines.agent, lines.customer, EXOPHONE, "outbound-api")
    assert call["Status"] in ("queued", "in-progress") and TIME.fullmatch(call["DateCreated"])
    assert (call["ParentCallSid"], call["EndTime"], call["Duration"], call["Price"], call["RecordingUrl"]) == \
        (None, None, None, None, None)
    assert call["Uri"] == f"/v1/Accounts/{EXOTEL_SID}/Calls/{call['Sid']}.json"
    # Both parties saw the ExoPhone, never each other's number.
    assert EXOPHONE in agent.events("incoming")[0]["from"] and EXOPHONE in customer.events("incoming")[0]["from"]

    assert all(h.content_type == "application/json" for h in hooks)
    docs = [h.json() for h in hooks]
    assert [(d["EventType"], _legs(d)) for d in docs] == [
        ("ringing", [("in-progress", None), (None, None)]),
        ("answered", [("in-progress", None), (None, None)]),
        ("ringing", [("in-progress", None), ("in-progress", None)]),
        ("answered", [("in-progress", None), ("in-progress", None)]),
        ("terminal", [("completed", docs[4]["Legs"][0]["OnCallDuration"]),
                      ("completed", docs[4]["Legs"][1]["OnCallDuration"])]),
    ]
    for doc, reference in zip(docs, [REFERENCE_RINGING_FIRST, REFERENCE_RINGING_FIRST, REFERENCE_RINGING_SECOND,
                                     REFERENCE_RINGING_SECOND, REFERENCE_TERMINAL], strict=True):
        terminal = doc["EventType"] == "terminal"
        assert list(doc) == (TERMINAL_KEYS if terminal else EVENT_KEYS)
        _same_shape(doc, reference, frozenset({"CustomField"}) if terminal else frozenset())
        assert (doc["CallSid"], doc["From"], doc["To"], doc["PhoneNumberSid"], doc["Direction"]) == \
            (call["Sid"], lines.agent, lines.customer, EXOPHONE, "outbound-api")
        assert doc["DateCreated"] == call["DateCreated"] and doc["DateUpdated"] == doc["EventTime"]
    assert docs[4]["CustomField"] == "ticket-42"  # only in the terminal callback, as Exotel documents
    live = docs[:4]
    assert all(d["Status"] == "in-progress" and d["EndTime"] is None and d["ConversationDuration"] is None
               and d["RecordingUrl"] is None for d in live)
    assert [d["EventTime"] for d in docs] == sorted(d["EventTime"] for d in docs)
    # StartTime: the request's time until From answers (the response's), then the answer time (as in the
    # reference's samples).
    assert call["StartTime"] == call["DateCreated"] == live[0]["StartTime"]
    assert live[0]["StartTime"] <= live[1]["StartTime"] == live[2]["StartTime"] == live[3]["StartTime"]
    assert docs[4]["StartTime"] == live[1]["StartTime"]

    end = docs[4]
    assert (end["Status"], end["EndTime"], end["DateUpdated"]) == ("completed", end["EventTime"], end["EventTime"])
    assert 1 <= end["ConversationDuration"] <= 3
    leg1, leg2 = end["Legs"]
    assert leg2["OnCallDuration"] == end["ConversationDuration"]
    assert end["ConversationDuration"] < leg1["OnCallDuration"] <= end["ConversationDuration"] + 3
    assert 1 <= leg1["RingingDuration"] <= 2 and 1 <= leg2["RingingDuration"] <= 2
    assert leg1["AnsweredBy"] == leg2["AnsweredBy"] == "NA"
    assert end["RecordingUrl"] == (f"{switch.base_url}/v1/Accounts/{EXOTEL_SID}/Recordings/"
                                   f"{end['RecordingUrl'].rsplit('/', 1)[1]}")
    assert end["RecordingUrl"].endswith(".mp3")
    media = requests.get(end["RecordingUrl"], auth=(API_KEY, API_TOKEN), timeout=10)
    assert media.status_code == 200 and media.headers["Content-Type"] == "audio/mpeg" and len(media.content) > 1000
    assert requests.get(end["RecordingUrl"], timeout=10).status_code == 401

    # Call details, JSON and XML: the same call with Details of both legs.
    details = requests.get(_api(switch, f"Calls/{call['Sid']}"), auth=(API_KEY, API_TOKEN), timeout=10).json()["Call"]
    assert list(details) == [*CALL_KEYS, "Details"]
    assert (details["Status"], details["EndTime"], details["RecordingUrl"], details["Duration"]) == \
        ("completed", end["EndTime"], end["RecordingUrl"], str(leg1["OnCallDuration"]))
    assert details["Details"] == {
        "ConversationDuration": end["ConversationDuration"], "Leg1Status": "completed", "Leg2Status": "completed",
        "Legs": [{"Leg": {"Id": 1, "OnCallDuration": leg1["OnCallDuration"]}},
                 {"Leg": {"Id": 2, "OnCallDuration": leg2["OnCallDuration"]}}],
    }
    xml = requests.get(_api(switch, f"Calls/{call['Sid']}", json_suffix=False), auth=(API_KEY, API_TOKEN),
                       timeout=10)
    assert xml.headers["Content-Type"].startswith("application/xml")
    root = ET.fromstring(xml.content)
    assert root.tag == "TwilioResponse"
    assert [e.tag for e in root.iterfind("Call/*")] == [*CALL_KEYS, "Details"]
    assert root.findtext("Call/Sid") == call["Sid"] and root.findtext("Call/Details/Leg2Status") == "completed"
    assert [leg.findtext("Id") for leg in root.findall("Call/Details/Legs/Leg")] == ["1", "2"]
    assert root.findtext("Call/Price") == ""  # null is an empty element


def test_busy_second_leg_with_multipart_callbacks(switch: ExotelSwitch, sink: BodySink) -> None:
    lines = _lines(switch, 1)
    with PhoneProcess(["--answer", "auto"], sip=lines.agent_sip) as agent, \
         PhoneProcess(["--answer", "busy"], sip=lines.customer_sip) as customer:
        call = _connect(switch, sink, lines, "/busy", ["ringing", "answered", "terminal"],
                        StatusCallbackContentType="multipart/form-data", CustomField="lead 7")
        hooks = sink.bodies("/busy", 4)
        agent.wait_for("hangup", timeout=5)
        customer.wait_for("hangup", timeout=5)
    assert all(h.content_type == "multipart/form-data" for h in hooks)
    fields = [h.params for h in hooks]
    assert [(f["EventType"], f["Legs[0][Status]"], f["Legs[1][Status]"]) for f in fields] == [
        ("ringing", "in-progress", ""),
        ("answered", "in-progress", ""),
        ("ringing", "in-progress", "in-progress"),  # no answered event for a leg that was busy
        ("terminal", "completed", "busy"),
    ]
    live_keys = {*EVENT_KEYS[:-1], *(f"Legs[{i}][{k}]" for i in (0, 1) for k in ("OnCallDuration", "Status"))}
    assert all(set(f) == live_keys for f in fields[:3])
    end = fields[3]
    assert set(end) == live_keys | {"CustomField"} | {f"Legs[{i}][{k}]" for i in (0, 1)
                                                      for k in ("RingingDuration", "AnsweredBy")}
    assert (end["CallSid"], end["Status"], end["ConversationDuration"], end["RecordingUrl"], end["CustomField"]) == \
        (call["Sid"], "busy", "0", "", "lead 7")
    assert (end["Legs[1][OnCallDuration]"], end["Legs[1][AnsweredBy]"]) == ("0", "NA")
    assert int(end["Legs[0][OnCallDuration]"]) >= 0 and TIME.fullmatch(end["EndTime"])
    assert all(f["EndTime"] == "" and f["ConversationDuration"] == "" for f in fields[:3])  # null is empty
    details = requests.get(_api(switch, f"Calls/{call['Sid']}"), auth=(API_KEY, API_TOKEN), timeout=10).json()
    assert (details["Call"]["Status"], details["Call"]["Details"]["Leg1Status"],
            details["Call"]["Details"]["Leg2Status"]) == ("busy", "completed", "busy")


def test_no_answer_on_the_second_leg_after_timeout(switch: ExotelSwitch, sink: BodySink) -> None:
    lines = _lines(switch, 2)
    with SippPeer("uas_noanswer.xml", port=lines.customer_port, timeout=20) as silent, \
         PhoneProcess(["--answer", "auto", "--ring"], sip=lines.agent_sip) as agent:
        started = time.monotonic()
        call = _connect(switch, sink, lines, "/noanswer", ["terminal"], TimeOut="2")
        hooks = sink.bodies("/noanswer", 1)
        elapsed = time.monotonic() - started
        assert silent.wait_sync(10) == 0, silent.describe()
        agent.wait_for("hangup", timeout=5)
    assert 1.5 < elapsed < 8
    assert silent.methods_received() == ["INVITE", "CANCEL", "ACK"]
    [end] = [h.json() for h in hooks]
    _same_shape(end, REFERENCE_TERMINAL | {"RecordingUrl": None})  # no CustomField asked: none sent
    assert (end["CallSid"], end["EventType"], end["Status"], end["ConversationDuration"]) == \
        (call["Sid"], "terminal", "no-answer", 0)
    leg1, leg2 = end["Legs"]
    assert (leg1["Status"], leg2["Status"], leg2["OnCallDuration"]) == ("completed", "no-answer", 0)
    assert leg1["OnCallDuration"] >= 2 and 1 <= leg2["RingingDuration"] <= 3  # sipp rang until our timeout


def test_first_leg_busy_gets_the_default_callback_retried_twice(switch: ExotelSwitch, sink: BodySink) -> None:
    lines = _lines(switch, 3)
    sink.http_status["/failing"] = 500
    with PhoneProcess(["--answer", "busy"], sip=lines.agent_sip):
        call = _connect(switch, sink, lines, "/failing", [])
        sink.bodies("/failing", 3)
    time.sleep(2.0)  # a fourth attempt would come 2 s after the third
    hooks = [h for h in sink.for_path("/failing") if isinstance(h, BodyHook)]
    assert len(hooks) == 3  # the first attempt and Exotel's two retries
    assert [h.json() for h in hooks] == [hooks[0].json()] * 3
    document = hooks[0].json()
    assert list(document) == ["CallSid", "DateUpdated", "Status", "RecordingUrl"]  # no events asked: the default
    assert (document["CallSid"], document["Status"], document["RecordingUrl"]) == (call["Sid"], "busy", None)
    assert TIME.fullmatch(document["DateUpdated"])
    details = requests.get(_api(switch, f"Calls/{call['Sid']}"), auth=(API_KEY, API_TOKEN), timeout=10).json()
    assert details["Call"]["Details"] == {"ConversationDuration": 0, "Leg1Status": "busy", "Leg2Status": None,
                                          "Legs": [{"Leg": {"Id": 1, "OnCallDuration": 0}}]}


def test_authentication_and_bad_parameters(switch: ExotelSwitch, sink: BodySink) -> None:
    url = _api(switch, "Calls/connect")
    good = {"From": "09800000001", "To": "08700000001", "CallerId": EXOPHONE}

    def post(data: dict[str, str], auth: tuple[str, str] | None = (API_KEY, API_TOKEN), target: str = url,
             ) -> requests.Response:
        return requests.post(target, data=data, auth=auth, timeout=10)

    for auth in (None, (API_KEY, "wrong"), ("wrong", API_TOKEN)):
        denied = post(good, auth)
        assert denied.status_code == 401 and denied.headers["WWW-Authenticate"].startswith("Basic")
        assert denied.json()["RestException"]["Status"] == 401
    other = post(good, target=url.replace(EXOTEL_SID, "someoneelse"))
    assert other.status_code == 403 and other.json()["RestException"]["Status"] == 403
    for data, word in (({"To": "08700000001"}, "From"), ({"From": "09800000001"}, "To"),
                       ({"From": "09800000001", "To": "08700000001"}, "Missing parameter 'CallerId'"),
                       ({**good, "CustomField": "x" * 129}, "CustomField"),
                       ({**good, "From": "not a number"}, "From"),
                       ({**good, "StatusCallbackEvents[0]": "hangup"}, "StatusCallbackEvents"),
                       ({**good, "RecordingChannels": "stereo"}, "RecordingChannels"),
                       ({**good, "RecordingFormat": "wav"}, "RecordingFormat"),
                       ({**good, "TimeLimit": "14401"}, "TimeLimit"),
                       ({**good, "StatusCallbackContentType": "text/plain"}, "StatusCallbackContentType"),
                       ({**good, "StatusCallback": "ftp://x"}, "StatusCallback"),
                       ({**good, "To": "0123456789"}, "trunk")):  # To is routed before From is called
        bad = post(data)
        assert bad.status_code == 400, (data, bad.text)
        assert list(bad.json()) == ["RestException"] and word in bad.json()["RestException"]["Message"]
    # Without .json, Exotel's default: XML.
    xml = requests.post(url.removesuffix(".json"), data={"From": "09800000001"}, auth=(API_KEY, API_TOKEN),
                        timeout=10)
    root = ET.fromstring(xml.content)
    assert xml.status_code == 400 and root.tag == "TwilioResponse"
    assert root.findtext("RestException/Status") == "400" and "To" in (root.findtext("RestException/Message") or "")
    # The Twilio credentials are not the Exotel ones here; unknown calls are 404 in Exotel's format.
    missing = requests.get(_api(switch, "Calls/CA" + "0" * 32), auth=(API_KEY, API_TOKEN), timeout=10)
    assert missing.status_code == 404 and missing.json()["RestException"]["Status"] == 404


def test_connect_applet_agent_passthru(switch: ExotelSwitch, sink: BodySink) -> None:
    lines = _lines(switch, 4)
    response = VoiceResponse()
    dial = Dial(passthru_url="/passthru", sequential=True, timeout=5)
    dial.number(lines.agent)  # busy
    dial.number(lines.customer)  # answers, talks a second
    response.append(dial)
    sink.twiml("/applet", str(response))
    with PhoneProcess(["--answer", "busy"], sip=lines.agent_sip) as first, \
         PhoneProcess(["--answer", "auto", "--hangup-after", "1"], sip=lines.customer_sip) as second, \
         PhoneProcess(["--call", f"sip:{APPLET_NUMBER}@{switch.sip_uri_host}", "--user", "07874762218",
                       "--exit-after-calls", "1"]) as caller:
        hooks = sink.bodies("/passthru", 7)
        caller.wait_for("hangup", timeout=10)
        first.wait_for("hangup", timeout=5)
        second.wait_for("hangup", timeout=5)
    applet = sink.for_path("/applet")[-1].params
    assert all(h.method == "GET" for h in hooks)
    params = [h.params for h in hooks]
    assert all(list(p) == PASSTHRU_KEYS for p in params)
    assert [(p["DialWhomNumber"], p["EventType"], p["Status"]) for p in params] == [
        (lines.agent, "Dial", "busy"), (lines.agent, "Ringing", "busy"), (lines.agent, "Terminal", "free"),
        (lines.customer, "Dial", "busy"), (lines.customer, "Ringing", "busy"), (lines.customer, "Answered", "busy"),
        (lines.customer, "Terminal", "free"),
    ]
    for p in params:
        assert (p["CallSid"], p["CallFrom"], p["From"], p["CallTo"], p["To"], p["Direction"]) == \
            (applet["CallSid"], "07874762218", "07874762218", APPLET_NUMBER, APPLET_NUMBER, "outbound-dial")
        assert TIME.fullmatch(p["Created"]) and TIME.fullmatch(p["CurrentTime"]) and p["Created"] <= p["CurrentTime"]
    assert [p["CurrentTime"] for p in params] == sorted(p["CurrentTime"] for p in params)


def test_terminal_callback_a_crash_prevented_is_sent_after_restart(tmp_path: Path, sink: BodySink) -> None:
    proc = _exotel_switch(tmp_path, sink, 1).start()
    lines = _lines(proc, 0)
    try:
        with PhoneProcess(["--answer", "auto"], sip=lines.agent_sip) as agent, \
             PhoneProcess(["--answer", "ignore"], sip=lines.customer_sip) as customer:
            call = _connect(proc, sink, lines, "/crash", ["ringing", "terminal"])
            sink.bodies("/crash", 2)  # To is ringing
            assert proc.proc is not None
            proc.proc.kill()  # no chance to report anything
            proc.proc.wait()
            proc.proc = None
            agent.wait_for("hangup", timeout=10)  # the orphaned worker hangs up by itself
            customer.wait_for("hangup", timeout=10)
        proc.start()
        sink.wait_for(lambda hs: any(isinstance(h, BodyHook) and h.path == "/crash"
                                     and h.json()["EventType"] == "terminal" for h in hs))
    finally:
        assert proc.stop() == 0, proc.log()
    docs: list[dict[str, Any]] = []
    for hook in sink.bodies("/crash", 3):
        if hook.json() not in docs:  # delivered at least once: one the crash left unconfirmed is sent again
            docs.append(hook.json())
    assert [d["EventType"] for d in docs] == ["ringing", "ringing", "terminal"]
    end = docs[2]
    _same_shape(end, REFERENCE_TERMINAL | {"RecordingUrl": None})
    assert (end["CallSid"], end["Status"], [leg["Status"] for leg in end["Legs"]]) == \
        (call["Sid"], "failed", ["failed", "failed"])
