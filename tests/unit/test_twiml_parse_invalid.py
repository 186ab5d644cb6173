"""Unit tests for the TwiML parser: invalid and hostile documents (malformed XML, unsupported verbs and nouns, bad
values, DTDs and entities, size and depth limits), its error codes, and the documents in tests/unit/data/twiml."""

from __future__ import annotations

from pathlib import Path

import pytest
from twilio.twiml.voice_response import VoiceResponse

from twiml.errors import INVALID_CONTENT_TYPE, PARSE_FAILURE, SCHEMA_VALIDATION, VERB_NOT_SUPPORTED, TwimlError
from twiml.parse import parse
from twiml.verbs import Dial, Gather, Hangup, Number, Pause, Play, Record, Redirect, Response, Say, Sip

DATA = Path(__file__).parent / "data" / "twiml"


def error_of(document: str | bytes, **kwargs: int) -> TwimlError:
    with pytest.raises(TwimlError) as info:
        parse(document, **kwargs)
    return info.value


# --- invalid documents ------------------------------------------------------------------------------------------

BILLION_LAUGHS = (DATA / "invalid-12100-billion-laughs.xml").read_text()


@pytest.mark.parametrize(
    ("document", "code", "needle"),
    [
        pytest.param("hello, world", PARSE_FAILURE, "not well-formed", id="not-xml"),
        pytest.param("", PARSE_FAILURE, "empty", id="empty"),
        pytest.param("<Response><Say>hi", PARSE_FAILURE, "not well-formed", id="truncated"),
        pytest.param("<Response><Say>hi</Play></Response>", PARSE_FAILURE, "mismatched tag", id="mismatched"),
        pytest.param("<Reply><Say>hi</Say></Reply>", PARSE_FAILURE, "<Response>", id="wrong-root"),
        pytest.param("<Response/><Response/>", PARSE_FAILURE, "junk after", id="two-roots"),
        pytest.param("<Response><amazon:effect/></Response>", PARSE_FAILURE, "prefix", id="unbound-prefix"),
        pytest.param("<Response><Say>&nbsp;</Say></Response>", PARSE_FAILURE, "undefined entity", id="html-entity"),
        pytest.param(b"<Response>\xff</Response>", PARSE_FAILURE, "not well-formed", id="bad-utf8"),
        pytest.param(BILLION_LAUGHS, PARSE_FAILURE, "DOCTYPE", id="billion-laughs"),
        pytest.param(
            "<Response><Pay/></Response>", VERB_NOT_SUPPORTED, "does not support", id="unsupported"
        ),
        pytest.param(
            "<Response><Dial><Sim>DE1</Sim></Dial></Response>",
            VERB_NOT_SUPPORTED,
            "<Sim> is a Twilio noun of <Dial>",
            id="dial-sim",
        ),
        pytest.param(
            "<Response><Connect><Room>r</Room></Connect></Response>",
            VERB_NOT_SUPPORTED,
            "<Room>",
            id="connect-room",
        ),
        pytest.param(
            '<Response><Gather actionOnEmptyResult="yes"/></Response>',
            13338,
            "actionOnEmptyResult",
            id="action-on-empty",
        ),
        pytest.param(
            '<Response><Record recordingStatusCallbackEvent="done"/></Response>',
            13621,
            "recordingStatusCallbackEvent",
            id="rec-event",
        ),
        pytest.param(
            '<Response><Dial recordingStatusCallbackEvent="done">1</Dial></Response>',
            13621,
            "recordingStatusCallbackEvent",
            id="dial-rec-event",
        ),
        pytest.param(
            "<Response><Connect><Conversation/></Connect></Response>",
            32501,
            "serviceInstanceSid",
            id="conversation-sid",
        ),
        pytest.param(
            "<Response><Connect><Conversation serviceInstanceSid='IS1' statusCallbackEvent='completed'/></Connect>"
            "</Response>",
            32501,
            "call-completed",
            id="conversation-event",
        ),
        pytest.param(
            "<Response><Connect><Conversation serviceInstanceSid='IS1' colour='red'/></Connect></Response>",
            32501,
            "colour",
            id="conversation-attr",
        ),
    ],
)
def test_invalid_documents(document: str | bytes, code: int, needle: str) -> None:
    error = error_of(document)
    assert error.code == code
    assert needle in error.message, error.message


def test_first_error_wins_and_names_the_line() -> None:
    doc = ('<Response>\n  <Say>ok</Say>\n  <Gather\n     actionOnEmptyResult="soon">\n  </Gather>\n'
           "  <Enqueue/>\n</Response>")
    error = error_of(doc)
    assert (error.code, error.line) == (13338, 3)
    assert error.message == '<Gather> attribute actionOnEmptyResult="soon": expected true or false'
    assert str(error) == '13338: <Gather> attribute actionOnEmptyResult="soon": expected true or false (line 3)'


def test_nothing_is_returned_when_a_late_verb_is_bad() -> None:
    r = VoiceResponse()
    r.say("first")
    r.hangup()
    r.pay()
    assert error_of(str(r)).code == VERB_NOT_SUPPORTED


def test_billion_laughs_is_refused_before_expansion() -> None:
    error = error_of(BILLION_LAUGHS)
    assert error.code == PARSE_FAILURE
    assert "lol" not in error.message


@pytest.mark.parametrize(
    "document",
    [
        '<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><Response><Say>&xxe;</Say></Response>',
        '<!DOCTYPE Response SYSTEM "http://127.0.0.1:9/evil.dtd"><Response/>',
        '<!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p.dtd"> %p;]><Response/>',
        '<!DOCTYPE Response [<!ENTITY greeting "hi">]><Response><Say>&greeting;</Say></Response>',
    ],
    ids=["xxe-file", "external-dtd", "parameter-entity", "internal-entity"],
)
def test_dtds_and_external_entities_are_refused(document: str) -> None:
    error = error_of(document)
    assert error.code == PARSE_FAILURE
    assert "root:" not in error.message  # nothing from /etc/passwd leaked


def test_size_limit_counts_bytes() -> None:
    r = VoiceResponse()
    r.say("x" * 100)
    doc = str(r)
    size = len(doc.encode("utf-8"))
    assert parse(doc, max_bytes=size).verbs
    error = error_of(doc, max_bytes=size - 1)
    assert error.code == PARSE_FAILURE and str(size) in error.message
    # Non-ASCII text is counted in UTF-8 bytes, not characters.
    wide = "<Response><Say>" + "é" * 40 + "</Say></Response>"
    assert error_of(wide, max_bytes=len(wide) + 10).code == PARSE_FAILURE
    assert error_of(b"<Response/>" + b" " * 70000).code == PARSE_FAILURE  # default limit is 64 KiB


def test_deep_nesting_is_refused_while_parsing() -> None:
    doc = "<Response><Say>" + "<s>" * 5000 + "x" + "</s>" * 5000 + "</Say></Response>"
    error = error_of(doc)
    assert error.code == PARSE_FAILURE and "nested" in error.message


def test_error_codes() -> None:
    assert (PARSE_FAILURE, SCHEMA_VALIDATION, INVALID_CONTENT_TYPE) == (12100, 12200, 12300)
    assert repr(TwimlError(12300, "bad type")) == "TwimlError(code=12300, message='bad type', line=None)"


# --- fixtures ---------------------------------------------------------------------------------------------------


def test_valid_fixtures() -> None:
    ivr = parse((DATA / "valid-ivr.xml").read_bytes())
    assert [type(v) for v in ivr.verbs] == [Say, Gather, Say, Record, Hangup]
    assert ivr.verbs[0] == Say(text="Thanks for calling.", voice="woman", language="en-GB")
    assert ivr.verbs[1] == Gather(
        num_digits=1,
        action="/menu",
        method="POST",
        timeout=7,
        children=(
            Say(text="Press 1 for sales, 2 for support.", loop=2),
            Pause(length=2),
            Play(url="https://example.com/hold.wav"),
        ),
    )
    assert ivr.verbs[3] == Record(action="/voicemail", max_length=120, finish_on_key="#")
    assert ivr.warnings == ()

    dial = parse((DATA / "valid-dial.xml").read_bytes())
    assert dial.verbs == (
        Dial(
            action="/dial-done",
            timeout=20,
            caller_id="+15550100",
            record="record-from-answer-dual",
            answer_on_bridge=True,
            nouns=(
                Number(
                    number="+15550111",
                    send_digits="ww123#",
                    status_callback="/leg",
                    status_callback_event=("initiated", "ringing", "answered", "completed"),
                ),
                Sip(uri="sip:alice@192.0.2.10:5060;transport=udp", username="alice", password="secret"),
            ),
        ),
        Redirect(url="/next", method="GET"),
    )
    assert parse((DATA / "valid-empty.xml").read_bytes()) == Response()


@pytest.mark.parametrize("path", sorted(DATA.glob("invalid-*.xml")), ids=lambda p: p.stem)
def test_invalid_fixtures(path: Path) -> None:
    expected = int(path.stem.split("-")[1])
    assert error_of(path.read_bytes()).code == expected


@pytest.mark.parametrize("path", sorted(DATA.glob("warning-*.xml")), ids=lambda p: p.stem)
def test_warning_fixtures(path: Path) -> None:
    """A document with only warning-level problems parses; its first warning has the code in its name."""
    expected = int(path.stem.split("-")[1])
    response = parse(path.read_bytes())
    assert response.verbs
    assert response.warnings[0].code == expected


def test_a_document_seen_before_is_not_parsed_again_and_failures_are_not_kept() -> None:
    """The same text gets the same (immutable) Response, warnings included; a failing document fails every time,
    a longer limit then lets it through; a document over the cached length is parsed each time, alike."""
    text = '<Response><Say foo="1">hi</Say><Dial><Sip>sip:bob@127.0.0.1</Sip></Dial></Response>'
    first = parse(text)
    assert parse(text) is first and parse(text.encode()) == first
    assert [w.code for w in first.warnings] == [SCHEMA_VALIDATION]
    big = f"<Response><Say>{'a' * 9000}</Say></Response>"
    for _ in range(2):
        with pytest.raises(TwimlError) as caught:
            parse(text, max_bytes=50)
        assert caught.value.code == PARSE_FAILURE
    assert parse(text, max_bytes=20_000) == first
    assert parse(big) == parse(big) and parse(big) is not parse(big)
