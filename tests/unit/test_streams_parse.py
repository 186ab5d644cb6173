"""`<Start>`/`<Connect>`/`<Stop>` with `<Stream>`: parsing, the spec a stream runs with, and the wire format."""

from __future__ import annotations

import base64
import json

import pytest
from twilio.twiml.voice_response import Connect, Start, Stop, VoiceResponse

from switch.core.stream_messages import Outgoing, ProtocolError, ServerClear, ServerMark, ServerMedia, read
from switch.verbs.stream import stream_spec, websocket_url
from twiml import verbs
from twiml.errors import VERB_NOT_SUPPORTED, TwimlError
from twiml.parse import parse


def test_start_stream_with_every_attribute_and_parameters() -> None:
    response = VoiceResponse()
    start = Start()
    stream = start.stream(url="wss://bot.example/media", name="listener", track="both_tracks",
                          status_callback="/stream-status", status_callback_method="GET")
    stream.parameter(name="customer", value="42")
    stream.parameter(name="lang", value="en")
    response.append(start)
    response.say("go on")
    parsed = parse(str(response))
    assert parsed.warnings == ()
    assert parsed.verbs == (
        verbs.Start(stream=verbs.Stream(url="wss://bot.example/media", name="listener", track="both_tracks",
                                        status_callback="/stream-status", status_callback_method="GET",
                                        parameters=(("customer", "42"), ("lang", "en")))),
        verbs.Say(text="go on"),
    )


def test_connect_stream_and_stop_by_name() -> None:
    response = VoiceResponse()
    connect = Connect(action="/after")
    connect.stream(url="wss://bot/ws")
    stop = Stop()
    stop.stream(name="listener")
    response.append(stop)
    response.append(connect)
    parsed = parse(str(response))
    assert parsed.verbs == (
        verbs.Stop(stream=verbs.Stream(name="listener")),
        verbs.Connect(noun=verbs.Stream(url="wss://bot/ws"), action="/after"),
    )


def test_defaults() -> None:
    (start,) = parse("<Response><Start><Stream url='wss://b'/></Start></Response>").verbs
    assert isinstance(start, verbs.Start)
    assert start.stream.track == "inbound_track"
    assert start.stream.status_callback_method == "POST"
    assert start.stream.parameters == ()


@pytest.mark.parametrize(
    ("document", "warning"),
    [
        ("<Response><Start><Stream name='x'/></Start></Response>", "has no url; it was skipped"),
        ("<Response><Connect><Stream/></Connect></Response>", "has no url; it was skipped"),
        ("<Response><Start/></Response>", "has no <Stream>; it was skipped"),
        ("<Response><Stop/></Response>", "has no <Stream>; it was skipped"),
        ("<Response><Start><Say>x</Say></Start></Response>", "<Say> is not allowed inside <Start>"),
    ],
)
def test_skipped_with_a_warning(document: str, warning: str) -> None:
    parsed = parse(document)
    assert parsed.verbs == ()
    assert any(warning in w.message for w in parsed.warnings), parsed.warnings


def test_bad_track_is_a_warning_and_the_default() -> None:
    parsed = parse("<Response><Start><Stream url='wss://b' track='left'/></Start></Response>")
    (start,) = parsed.verbs
    assert isinstance(start, verbs.Start) and start.stream.track == "inbound_track"
    assert [w.message for w in parsed.warnings] == [
        '<Stream> attribute track="left": expected one of inbound_track, outbound_track, both_tracks; '
        "the default was used"]


def test_repeated_parameter_keeps_the_last_value_and_nameless_is_skipped() -> None:
    parsed = parse("<Response><Start><Stream url='wss://b'><Parameter name='a' value='1'/><Parameter value='z'/>"
                   "<Parameter name='a' value='2'/></Stream></Start></Response>")
    (start,) = parsed.verbs
    assert isinstance(start, verbs.Start) and start.stream.parameters == (("a", "2"),)
    assert any("no name" in w.message for w in parsed.warnings)


def test_unsupported_nouns_of_start_are_errors() -> None:
    with pytest.raises(TwimlError) as info:
        parse("<Response><Start><Siprec connectorName='x'/></Start></Response>")
    assert info.value.code == VERB_NOT_SUPPORTED


def test_websocket_urls() -> None:
    assert websocket_url("https://app.example/voice/doc", "/ws") == "wss://app.example/ws"
    assert websocket_url("http://app/voice", "ws://bot:8080/x?a=1") == "ws://bot:8080/x?a=1"
    assert websocket_url(None, "wss://bot/x") == "wss://bot/x"
    with pytest.raises(ValueError):
        websocket_url(None, "/relative")
    with pytest.raises(ValueError):
        websocket_url(None, "ftp://bot/x")


def test_spec_tracks_and_callback() -> None:
    noun = verbs.Stream(url="/ws", track="both_tracks", status_callback="status", parameters=(("k", "v"),))
    spec = stream_spec(noun, "https://app/twiml/doc", bidirectional=False)
    assert spec.url == "wss://app/ws"
    assert spec.tracks == ("inbound", "outbound")
    assert spec.status_callback == "https://app/twiml/status"
    assert spec.parameters == (("k", "v"),)


# -- the wire format ---------------------------------------------------------------------------------------------

def test_messages_to_the_server_are_numbered_and_shaped_as_twilios() -> None:
    out = Outgoing("MZ1", "AC1", "CA1")
    assert out.connected() == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    start = out.start(("inbound", "outbound"), {"a": "b"})
    assert start == {
        "event": "start", "sequenceNumber": "1",
        "start": {"accountSid": "AC1", "streamSid": "MZ1", "callSid": "CA1", "tracks": ["inbound", "outbound"],
                  "customParameters": {"a": "b"},
                  "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}},
        "streamSid": "MZ1",
    }
    media = out.media("outbound", 0, 20, b"\xff" * 160)
    assert media == {"event": "media", "sequenceNumber": "2",
                     "media": {"track": "outbound", "chunk": "1", "timestamp": "20",
                               "payload": base64.b64encode(b"\xff" * 160).decode()},
                     "streamSid": "MZ1"}
    assert out.dtmf("5") == {"event": "dtmf", "sequenceNumber": "3", "dtmf": {"track": "inbound_track",
                                                                              "digit": "5"}, "streamSid": "MZ1"}
    assert out.mark("m") == {"event": "mark", "sequenceNumber": "4", "mark": {"name": "m"}, "streamSid": "MZ1"}
    assert out.stop() == {"event": "stop", "sequenceNumber": "5", "stop": {"accountSid": "AC1", "callSid": "CA1"},
                          "streamSid": "MZ1"}
    json.dumps(start)  # all plain JSON


def test_reading_the_servers_messages() -> None:
    payload = base64.b64encode(bytes(range(10))).decode()
    assert read(json.dumps({"event": "media", "streamSid": "MZ", "media": {"payload": payload}})) == \
        ServerMedia(bytes(range(10)))
    assert read('{"event":"mark","streamSid":"MZ","mark":{"name":"n1"}}') == ServerMark("n1")
    assert read('{"event":"clear","streamSid":"MZ"}') == ServerClear()


@pytest.mark.parametrize("text", [
    "not json", "[1]", '{"event":"media"}', '{"event":"media","media":{"payload":"@@@"}}',
    '{"event":"mark","mark":{}}', '{"event":"dance"}', '{"event":"media","media":{"payload":5}}', "",
])
def test_unreadable_messages(text: str) -> None:
    with pytest.raises(ProtocolError):
        read(text)
