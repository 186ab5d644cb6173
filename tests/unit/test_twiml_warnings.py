"""Schema problems Twilio logs as warnings: the document still parses, the problem is ignored or the element
skipped, and each problem is one warning with Twilio's code (12200, or the verb's own 13xxx code).

Twilio's Error and Warning Dictionary (https://www.twilio.com/docs/api/errors) gives 12200 "Schema validation
warning" and the per-attribute codes (13314 "Gather: Invalid numDigits value", ...) Log Level WARNING; the few
that are errors are in ``test_twiml_parse.py::test_invalid_documents``.
"""

from __future__ import annotations

import pytest
from twilio.twiml.voice_response import VoiceResponse

from twiml.errors import SCHEMA_VALIDATION, TwimlWarning
from twiml.parse import parse
from twiml.verbs import (
    Connect,
    Conversation,
    Dial,
    Gather,
    Hangup,
    Number,
    Pause,
    Play,
    Record,
    Redirect,
    Reject,
    Say,
)


def codes(document: str) -> list[int]:
    return [w.code for w in parse(document).warnings]


# --- unknown attributes: ignored ---------------------------------------------------------------------------------


def test_an_unknown_attribute_is_ignored_and_the_verb_kept() -> None:
    response = parse('<Response><Say foo="bar">Hello</Say><Hangup/></Response>')
    assert response.verbs == (Say(text="Hello"), Hangup())
    assert response.warnings == (
        TwimlWarning(SCHEMA_VALIDATION, "<Say> does not allow the attribute foo; it was ignored", 1),
    )
    assert response.warnings[0].text == "line 1: <Say> does not allow the attribute foo; it was ignored"


def test_an_unknown_attribute_written_by_the_twilio_library_is_ignored() -> None:
    r = VoiceResponse()
    r.say("Hi", voice="alice", colour="red")  # the library passes unknown keyword arguments through
    r.play("/a.wav", loop=2, volume="11")
    response = parse(str(r))
    assert response.verbs == (Say(text="Hi", voice="alice"), Play(url="/a.wav", loop=2))
    assert [w.message for w in response.warnings] == [
        "<Say> does not allow the attribute colour; it was ignored",
        "<Play> does not allow the attribute volume; it was ignored",
    ]


def test_a_misspelled_attribute_gets_a_hint_and_its_default() -> None:
    response = parse('<Response><Gather num_digits="1"/></Response>')
    assert response.verbs == (Gather(num_digits=None),)
    assert response.warnings[0].message == (
        "<Gather> does not allow the attribute num_digits (did you mean numDigits?); it was ignored")


def test_an_attribute_on_response_is_ignored() -> None:
    response = parse('<Response foo="bar"><Hangup/></Response>')
    assert response.verbs == (Hangup(),)
    assert codes('<Response foo="bar"/>') == [SCHEMA_VALIDATION]


# --- bad values: Twilio's per-verb warning code, and the attribute's default -----------------------------------


@pytest.mark.parametrize(
    ("document", "verb", "code"),
    [
        pytest.param('<Say loop="-1">x</Say>', Say(text="x"), 13510, id="say-loop"),
        pytest.param('<Say voice=" ">x</Say>', Say(text="x"), 13511, id="say-voice"),
        pytest.param('<Play loop="1.5">a</Play>', Play(url="a"), 13410, id="play-loop"),
        pytest.param('<Play digits="12x">a</Play>', Play(url="a"), 13430, id="play-digits"),
        pytest.param('<Pause length="-1"/>', Pause(), 13910, id="pause-length"),
        pytest.param('<Pause length="99999999999999999"/>', Pause(), 13910, id="pause-huge"),
        pytest.param('<Gather timeout="abc"/>', Gather(), 13313, id="gather-timeout"),
        pytest.param('<Gather timeout="0"/>', Gather(), 13313, id="gather-timeout-0"),
        pytest.param('<Gather numDigits="0"/>', Gather(), 13314, id="gather-numdigits"),
        pytest.param('<Gather finishOnKey="#*"/>', Gather(), 13310, id="gather-finish"),
        pytest.param('<Gather method="PUT"/>', Gather(), 13312, id="gather-method"),
        pytest.param('<Gather input="keys"/>', Gather(), 13326, id="gather-input"),
        pytest.param('<Record playBeep="yes"/>', Record(), 13616, id="record-beep"),
        pytest.param('<Record maxLength="0"/>', Record(), 13612, id="record-maxlength"),
        pytest.param('<Record timeout="-5"/>', Record(), 13611, id="record-timeout"),
        pytest.param('<Record trim="sometimes"/>', Record(), 13699, id="record-trim"),
        pytest.param('<Redirect method="PUT">/a</Redirect>', Redirect(url="/a"), 13710, id="redirect-method"),
        pytest.param('<Reject reason="maybe"/>', Reject(), 13810, id="reject-reason"),
        pytest.param('<Dial record="sometimes">1</Dial>', Dial(nouns=(Number(number="1"),)), 13217, id="dial-rec"),
        pytest.param('<Dial timeout="601">1</Dial>', Dial(nouns=(Number(number="1"),)), 13212, id="dial-timeout"),
        pytest.param('<Dial ringTone="mars">1</Dial>', Dial(nouns=(Number(number="1"),)), 13220, id="dial-ring"),
        pytest.param('<Dial hangupOnStar="1">1</Dial>', Dial(nouns=(Number(number="1"),)), 13213, id="dial-star"),
        pytest.param(
            '<Dial><Number statusCallbackEvent="hungup">1</Number></Dial>',
            Dial(nouns=(Number(number="1"),)),
            SCHEMA_VALIDATION,
            id="number-event",
        ),
        pytest.param(
            '<Dial><Number sendDigits="x">1</Number></Dial>', Dial(nouns=(Number(number="1"),)), 13222, id="senddig"
        ),
    ],
)
def test_a_bad_value_is_a_warning_and_the_default_is_used(document: str, verb: object, code: int) -> None:
    response = parse(f"<Response>{document}<Hangup/></Response>")
    assert response.verbs == (verb, Hangup())
    assert [w.code for w in response.warnings] == [code]
    assert response.warnings[0].message.endswith("; the default was used")


# --- unknown, wrong-case and misplaced elements: skipped, the rest runs ----------------------------------------


def test_an_unknown_verb_is_skipped_and_the_next_ones_run() -> None:
    response = parse("<Response><Say>one</Say><os>rm -rf</os><Say>two</Say></Response>")
    assert response.verbs == (Say(text="one"), Say(text="two"))
    assert response.warnings == (TwimlWarning(SCHEMA_VALIDATION, "unknown element <os>; it was skipped", 1),)


def test_a_wrong_case_verb_is_skipped_with_a_hint() -> None:
    response = parse("<Response>\n<say>Hello</say>\n<Play>/a.wav</Play>\n</Response>")
    assert response.verbs == (Play(url="/a.wav"),)
    assert response.warnings == (
        TwimlWarning(SCHEMA_VALIDATION, "unknown element <say> (did you mean <Say>?); it was skipped", 2),
    )


def test_a_noun_at_the_top_level_is_skipped() -> None:
    response = parse("<Response><Number>+15550111</Number><Stream url='wss://x'/><Hangup/></Response>")
    assert response.verbs == (Hangup(),)
    assert [w.message for w in response.warnings] == [
        "<Number> is not allowed inside <Response>; it was skipped",
        "<Stream> is not allowed inside <Response>; it was skipped",
    ]


def test_a_verb_nested_in_gather_is_skipped_with_13320() -> None:
    r = VoiceResponse()
    gather = r.gather(num_digits=1)
    gather.say("Press one")
    gather.append(VoiceResponse().dial("+15550111"))  # a <Response> inside <Gather>...
    doc = str(r).replace("<Response><Dial>+15550111</Dial></Response>", "<Dial>+15550111</Dial>")
    response = parse(doc)
    assert response.verbs == (Gather(num_digits=1, children=(Say(text="Press one"),)),)
    assert response.warnings == (TwimlWarning(13320, "<Dial> is not allowed inside <Gather>; it was skipped", 1),)


def test_a_gather_in_a_gather_and_misplaced_nouns_are_skipped() -> None:
    assert codes("<Response><Gather><Gather/></Gather></Response>") == [13320]
    response = parse("<Response><Dial><Say>x</Say><Number>1</Number></Dial></Response>")
    assert response.verbs == (Dial(nouns=(Number(number="1"),)),)
    assert [w.code for w in response.warnings] == [13215]


def test_an_element_inside_a_text_verb_is_skipped_and_the_text_kept() -> None:
    response = parse("<Response><Play>http://a<Pause/>/b.wav</Play></Response>")
    assert response.verbs == (Play(url="http://a/b.wav"),)
    assert [w.message for w in response.warnings] == ["<Pause> is not allowed inside <Play>; it was skipped"]


def test_bad_markup_inside_say_skips_the_say() -> None:
    """twilio-go#220: wrong-case SSML (``<Emphasis>``) is a 12200 warning and nothing is said; twilio-csharp#479:
    unreadable SSML is warning 13520 "Say: Invalid text"."""
    response = parse("<Response><Say>Hello <Emphasis>you</Emphasis></Say><Say>Bye</Say></Response>")
    assert response.verbs == (Say(text="Bye"),)
    assert [(w.code, w.message) for w in response.warnings] == [
        (SCHEMA_VALIDATION, "unknown element <Emphasis>; it was skipped"),
        (13520, "the text of <Say> could not be read; it was skipped"),
    ]
    assert codes("<Response><Say><s><Play/></s></Say></Response>") == [SCHEMA_VALIDATION, 13520]


def test_an_empty_say_is_13520() -> None:
    response = parse("<Response><Say> </Say></Response>")
    assert response.verbs == (Say(text=""),)  # the Say task says nothing for empty text
    assert codes("<Response><Say/></Response>") == [13520]


def test_parameters_in_hangup_are_ignored_and_other_children_skipped() -> None:
    response = parse("<Response><Hangup><Parameter name='a' value='b'/><Say>x</Say></Hangup></Response>")
    assert response.verbs == (Hangup(),)
    assert [w.message for w in response.warnings] == [
        "<Parameter> inside <Hangup> is not supported by softswitch and was ignored",
        "<Say> is not allowed inside <Hangup>; it was skipped",
    ]


# --- verbs that cannot run as written: skipped -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "code", "needle"),
    [
        pytest.param("<Play> </Play>", SCHEMA_VALIDATION, "<Play> has neither a URL", id="play-empty"),
        pytest.param("<Redirect/>", SCHEMA_VALIDATION, "<Redirect> has no URL", id="redirect-empty"),
        pytest.param("<Dial/>", SCHEMA_VALIDATION, "<Dial> has nothing to dial", id="dial-empty"),
        pytest.param("<Connect/>", SCHEMA_VALIDATION, "<Connect> has no noun", id="connect-empty"),
    ],
)
def test_a_verb_that_cannot_run_is_skipped(document: str, code: int, needle: str) -> None:
    response = parse(f"<Response>{document}<Say>next</Say></Response>")
    assert response.verbs == (Say(text="next"),)
    [warning] = response.warnings
    assert warning.code == code and needle in warning.message and warning.message.endswith("it was skipped")


def test_bad_dial_nouns_are_dropped_and_a_dial_left_empty_is_skipped() -> None:
    response = parse("<Response><Dial><Number/><Sip>bob@x</Sip><Number>+1</Number></Dial></Response>")
    assert response.verbs == (Dial(nouns=(Number(number="+1"),)),)
    assert [w.code for w in response.warnings] == [13223, 13243]
    assert codes("<Response><Dial><Sip>bob@x</Sip></Dial></Response>") == [13243, SCHEMA_VALIDATION]


def test_dial_text_beside_nouns_is_ignored() -> None:
    response = parse("<Response><Dial>+1555<Number>+1666</Number></Dial></Response>")
    assert response.verbs == (Dial(nouns=(Number(number="+1666"),)),)
    assert [w.message for w in response.warnings] == [
        "<Dial> has both a number as text and nested nouns; the text was ignored"]


def test_connect_uses_its_first_noun() -> None:
    doc = ("<Response><Connect><Conversation serviceInstanceSid='IS1'/><Conversation serviceInstanceSid='IS2'/>"
           "</Connect></Response>")
    response = parse(doc)
    assert response.verbs == (Connect(noun=Conversation(service_instance_sid="IS1")),)
    assert [w.message for w in response.warnings] == ["<Connect> takes one noun, found 2; only the first is used"]


# --- Twilio features softswitch accepts without acting on them --------------------------------------------------


def test_gather_dtmf_speech_parses_without_a_warning() -> None:
    r = VoiceResponse()
    r.gather(input="dtmf speech", num_digits=1).say("Say or press one")
    response = parse(str(r))
    assert response.verbs == (Gather(input="dtmf speech", num_digits=1, children=(Say(text="Say or press one"),)),)
    assert response.warnings == ()


def test_gather_speech_keeps_its_speech_timeout() -> None:
    response = parse('<Response><Gather input="speech" speechTimeout="auto"/></Response>')
    assert response.verbs == (Gather(input="speech", speech_timeout="auto"),)
    assert response.warnings == ()


def test_gather_speech_in_another_language_is_heard_as_en_us_with_a_warning() -> None:
    response = parse('<Response><Gather input="speech" language="fr-FR"/></Response>')
    assert [w.code for w in response.warnings] == [SCHEMA_VALIDATION]
    assert "fr-FR" in response.warnings[0].message


def test_record_transcribe_parses_without_a_warning() -> None:
    r = VoiceResponse()
    r.record(transcribe=True, max_length=10)
    response = parse(str(r))
    assert response.verbs == (Record(transcribe=True, max_length=10),)
    assert response.warnings == ()


# --- many problems: all reported, in document order, with their lines ------------------------------------------


def test_every_problem_is_reported_once_in_document_order() -> None:
    doc = ('<Response>\n  <Say foo="1">a</Say>\n  <os/>\n  <Gather numDigits="x">\n    <Dial>1</Dial>\n'
           '  </Gather>\n  <Hangup/>\n</Response>')
    response = parse(doc)
    assert response.verbs == (Say(text="a"), Gather(), Hangup())
    assert [(w.code, w.line) for w in response.warnings] == [
        (SCHEMA_VALIDATION, 2), (SCHEMA_VALIDATION, 3), (13314, 4), (13320, 5)]
