"""Parsing the call-center TwiML: <Dial><Conference>, <Dial><Queue>, <Enqueue> and <Leave>."""

from __future__ import annotations

import dataclasses

import pytest
from twilio.twiml.voice_response import Dial as TwilioDial, VoiceResponse

from twiml import verbs
from twiml.errors import DIAL_INVALID_NESTED_ELEMENT, SCHEMA_VALIDATION, VERB_NOT_SUPPORTED, TwimlError, TwimlWarning
from twiml.parse import CHILDREN, NOUNS, VERBS, parse
from twiml.schema import ELEMENTS, UNSUPPORTED
from twiml.verbs_callcenter import Conference, Enqueue, Leave, Queue


def doc(body: str) -> str:
    return f"<Response>{body}</Response>"


def conference(attrs: str = "", name: str = "room") -> tuple[Conference, tuple[TwimlWarning, ...]]:
    response = parse(doc(f"<Dial><Conference {attrs}>{name}</Conference></Dial>"))
    (dial,) = response.verbs
    assert isinstance(dial, verbs.Dial)
    (noun,) = dial.nouns
    assert isinstance(noun, Conference)
    return noun, response.warnings


def queue(attrs: str = "", name: str = "support") -> tuple[Queue, tuple[TwimlWarning, ...]]:
    response = parse(doc(f"<Dial><Queue {attrs}>{name}</Queue></Dial>"))
    (dial,) = response.verbs
    assert isinstance(dial, verbs.Dial)
    (noun,) = dial.nouns
    assert isinstance(noun, Queue)
    return noun, response.warnings


def enqueue(attrs: str = "", name: str = "support") -> tuple[Enqueue, tuple[TwimlWarning, ...]]:
    response = parse(doc(f"<Enqueue {attrs}>{name}</Enqueue>"))
    (verb,) = response.verbs
    assert isinstance(verb, Enqueue)
    return verb, response.warnings


def error_of(document: str) -> TwimlError:
    with pytest.raises(TwimlError) as info:
        parse(document)
    return info.value


def codes(warnings: tuple[TwimlWarning, ...]) -> list[int]:
    return [w.code for w in warnings]


# --- the tables ------------------------------------------------------------------------------------------------------


def test_tables_know_the_call_center_elements() -> None:
    assert VERBS["Enqueue"] is Enqueue and VERBS["Leave"] is Leave
    assert NOUNS["Conference"] is Conference and NOUNS["Queue"] is Queue
    assert {"Conference", "Queue"} <= CHILDREN["Dial"]
    assert {"Enqueue", "Leave"} <= CHILDREN["Response"]
    assert {"Conference", "Queue", "Enqueue", "Leave"} <= set(ELEMENTS)
    assert not {"Enqueue", "Leave"} & UNSUPPORTED["Response"]
    assert not {"Conference", "Queue"} & UNSUPPORTED["Dial"]


def test_the_unions_and_reexports() -> None:
    assert verbs.Conference is Conference and verbs.Queue is Queue
    assert verbs.Enqueue is Enqueue and verbs.Leave is Leave
    assert {Conference, Queue} <= set(verbs.DialNoun.__args__)  # type: ignore[attr-defined]
    assert {Enqueue, Leave} <= set(verbs.Verb.__args__)  # type: ignore[attr-defined]


def test_the_dataclasses_are_frozen_keyword_only_slots() -> None:
    for cls in (Conference, Queue, Enqueue, Leave):
        assert "__slots__" in cls.__dict__
        assert vars(cls)["__dataclass_params__"].frozen
        assert all(f.kw_only for f in dataclasses.fields(cls))
    with pytest.raises(dataclasses.FrozenInstanceError):
        Conference(name="x").muted = True  # type: ignore[misc]
    with pytest.raises(TypeError):
        Queue("support")  # type: ignore[misc]


def test_the_exact_fields() -> None:
    assert [f.name for f in dataclasses.fields(Conference)] == [
        "name", "muted", "beep", "start_conference_on_enter", "end_conference_on_exit", "wait_url", "wait_method",
        "max_participants", "record", "region", "trim", "coach", "participant_label", "status_callback",
        "status_callback_method", "status_callback_event", "recording_status_callback",
        "recording_status_callback_method", "recording_status_callback_event",
    ]  # fmt: skip
    assert [f.name for f in dataclasses.fields(Queue)] == ["name", "url", "method"]
    assert [f.name for f in dataclasses.fields(Enqueue)] == ["name", "action", "method", "wait_url", "wait_url_method"]
    assert dataclasses.fields(Leave) == ()


# --- <Conference> ----------------------------------------------------------------------------------------------------


def test_conference_defaults() -> None:
    noun, warnings = conference()
    assert warnings == ()
    assert noun == Conference(name="room")
    assert (noun.muted, noun.beep, noun.start_conference_on_enter, noun.end_conference_on_exit) == (
        False, "true", True, False)  # fmt: skip
    assert (noun.wait_url, noun.wait_method, noun.max_participants) == (None, "POST", 250)
    assert (noun.record, noun.region, noun.trim, noun.coach, noun.participant_label) == (
        "do-not-record", None, "trim-silence", None, None)  # fmt: skip
    assert (noun.status_callback, noun.status_callback_method, noun.status_callback_event) == (None, "POST", ())
    assert (noun.recording_status_callback, noun.recording_status_callback_method) == (None, "POST")
    assert noun.recording_status_callback_event == ("completed",)


def test_conference_every_attribute() -> None:
    noun, warnings = conference(
        'muted="TRUE" beep="false" startConferenceOnEnter="false" endConferenceOnExit="true" waitUrl=" /wait " '
        'waitMethod="get" maxParticipants="10" record="Record-From-Start" region=" ie1 " trim="do-not-trim" '
        'coach="CA123" participantLabel="agent" statusCallback="/conf" statusCallbackMethod="GET" '
        'statusCallbackEvent="start end,join leave mute hold modify speaker announcement" '
        'recordingStatusCallback="/rec" recordingStatusCallbackMethod="get" '
        'recordingStatusCallbackEvent="in-progress completed absent failed"'
    )
    assert warnings == ()
    assert noun == Conference(
        name="room", muted=True, beep="false", start_conference_on_enter=False, end_conference_on_exit=True,
        wait_url="/wait", wait_method="GET", max_participants=10, record="record-from-start", region="ie1",
        trim="do-not-trim", coach="CA123", participant_label="agent", status_callback="/conf",
        status_callback_method="GET",
        status_callback_event=("start", "end", "join", "leave", "mute", "hold", "modify", "speaker", "announcement"),
        recording_status_callback="/rec", recording_status_callback_method="GET",
        recording_status_callback_event=("in-progress", "completed", "absent", "failed"),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", "true"), ("FALSE", "false"), ("onEnter", "onEnter"), ("onenter", "onEnter"), ("ONEXIT", "onExit"),
     (" onExit ", "onExit")],
)  # fmt: skip
def test_conference_beep_values(raw: str, expected: str) -> None:
    noun, warnings = conference(f'beep="{raw}"')
    assert noun.beep == expected and warnings == ()


def test_conference_wait_url_empty_means_silence_and_absent_means_default_music() -> None:
    assert conference('waitUrl=""')[0].wait_url == ""
    assert conference('waitUrl="   "')[0].wait_url == ""
    assert conference()[0].wait_url is None


@pytest.mark.parametrize("value", ["2", "250", "100"])
def test_conference_max_participants_in_range(value: str) -> None:
    assert conference(f'maxParticipants="{value}"')[0].max_participants == int(value)


@pytest.mark.parametrize(
    ("attrs", "code", "field", "default"),
    [
        ('muted="yes"', 13230, "muted", False),
        ('beep="loud"', 13235, "beep", "true"),
        ('startConferenceOnEnter="1"', 13232, "start_conference_on_enter", True),
        ('waitMethod="PUT"', 13234, "wait_method", "POST"),
        ('maxParticipants="1"', SCHEMA_VALIDATION, "max_participants", 250),
        ('maxParticipants="251"', SCHEMA_VALIDATION, "max_participants", 250),
        ('maxParticipants="ten"', SCHEMA_VALIDATION, "max_participants", 250),
        ('record="true"', SCHEMA_VALIDATION, "record", "do-not-record"),
        ('record="record-from-answer"', SCHEMA_VALIDATION, "record", "do-not-record"),
        ('trim="trim"', SCHEMA_VALIDATION, "trim", "trim-silence"),
        ('statusCallbackMethod="PATCH"', SCHEMA_VALIDATION, "status_callback_method", "POST"),
        ('statusCallbackEvent="initiated"', SCHEMA_VALIDATION, "status_callback_event", ()),
        ('statusCallbackEvent=""', SCHEMA_VALIDATION, "status_callback_event", ()),
        ('recordingStatusCallbackMethod="x"', SCHEMA_VALIDATION, "recording_status_callback_method", "POST"),
    ],
)
def test_conference_bad_values_are_warnings_and_the_default_is_used(
    attrs: str, code: int, field: str, default: object
) -> None:
    noun, warnings = conference(attrs)
    assert getattr(noun, field) == default
    assert codes(warnings) == [code]
    assert "the default was used" in warnings[0].message and "<Conference> attribute" in warnings[0].message


def test_conference_bad_end_conference_on_exit_is_an_error() -> None:
    error = error_of(doc('<Dial><Conference endConferenceOnExit="sure">room</Conference></Dial>'))
    assert error.code == 13231 and "endConferenceOnExit" in error.message


def test_conference_bad_recording_event_is_an_error() -> None:
    error = error_of(doc('<Dial><Conference recordingStatusCallbackEvent="done">room</Conference></Dial>'))
    assert error.code == 13621 and "recordingStatusCallbackEvent" in error.message


@pytest.mark.parametrize("attr", ["jitterBufferSize", "eventCallbackUrl", "recordingConfigurationId"])
def test_conference_ignored_attributes_warn(attr: str) -> None:
    noun, warnings = conference(f'{attr}="x"')
    assert noun == Conference(name="room")
    assert codes(warnings) == [SCHEMA_VALIDATION] and "not supported by softswitch" in warnings[0].message


def test_conference_unknown_attribute_warns_with_a_hint() -> None:
    noun, warnings = conference('startconferenceonenter="false"')
    assert noun.start_conference_on_enter is True
    assert codes(warnings) == [SCHEMA_VALIDATION] and "did you mean startConferenceOnEnter?" in warnings[0].message


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("room", "room"), ("  Room 1234\n", "Room 1234"), ("Sales &amp; Support", "Sales & Support"),
     ("+14155550100", "+14155550100"), ("ünïcode/ルーム", "ünïcode/ルーム"), ("a  b", "a  b")],
)  # fmt: skip
def test_conference_name_is_any_text_stripped(raw: str, expected: str) -> None:
    assert conference(name=raw)[0].name == expected


@pytest.mark.parametrize("name", ["", "   ", "\n\t"])
def test_conference_without_a_name_is_an_error(name: str) -> None:
    error = error_of(doc(f"<Dial><Conference>{name}</Conference></Dial>"))
    assert error.code == SCHEMA_VALIDATION and "<Conference> has no conference room name" in error.message
    assert error.line == 1


def test_conference_children_are_skipped_with_a_warning() -> None:
    noun, warnings = conference(name="room<Say>hi</Say>")
    assert noun.name == "room"
    assert codes(warnings) == [SCHEMA_VALIDATION] and "<Say> is not allowed inside <Conference>" in warnings[0].text


def test_conference_keeps_the_dial_attributes() -> None:
    (dial,) = parse(doc('<Dial action="/after" timeLimit="60"><Conference>room</Conference></Dial>')).verbs
    assert isinstance(dial, verbs.Dial)
    assert (dial.action, dial.time_limit, dial.nouns) == ("/after", 60, (Conference(name="room"),))


def test_twilio_helper_library_output_parses() -> None:
    response = VoiceResponse()
    dial = TwilioDial(action="/done")
    dial.conference("Room 1234", muted=True, beep="onExit", status_callback_event="start end join",
                    wait_url="", max_participants=5)  # fmt: skip
    response.append(dial)
    (parsed,) = parse(str(response)).verbs
    assert isinstance(parsed, verbs.Dial)
    assert parsed.nouns == (Conference(name="Room 1234", muted=True, beep="onExit", wait_url="", max_participants=5,
                                       status_callback_event=("start", "end", "join")),)  # fmt: skip


# --- <Dial> holds one <Conference> or <Queue>, alone --------------------------------------------------------------


@pytest.mark.parametrize(
    "nouns",
    [
        "<Conference>a</Conference><Conference>b</Conference>",
        "<Conference>a</Conference><Number>+14155550100</Number>",
        "<Number>+14155550100</Number><Conference>a</Conference>",
        "<Queue>q</Queue><Queue>r</Queue>",
        "<Sip>sip:a@example.com</Sip><Queue>q</Queue>",
        "<Client>alice</Client><Queue>q</Queue>",
        "<Conference>a</Conference><Queue>q</Queue>",
    ],
)
def test_a_dial_with_a_conference_or_queue_holds_only_that(nouns: str) -> None:
    error = error_of(doc(f"<Dial>{nouns}</Dial>"))
    assert error.code == SCHEMA_VALIDATION
    assert "must hold only that one noun, found 2" in error.message


def test_a_skipped_noun_does_not_count() -> None:
    (dial,) = parse(doc("<Dial><Conference>a</Conference><Number></Number></Dial>")).verbs
    assert isinstance(dial, verbs.Dial) and dial.nouns == (Conference(name="a"),)


def test_text_beside_a_conference_is_ignored_with_a_warning() -> None:
    response = parse(doc("<Dial>+14155550100<Conference>a</Conference></Dial>"))
    (dial,) = response.verbs
    assert isinstance(dial, verbs.Dial) and dial.nouns == (Conference(name="a"),)
    assert "the text was ignored" in response.warnings[0].message


def test_several_numbers_are_still_fine() -> None:
    (dial,) = parse(doc("<Dial><Number>+1</Number><Number>+2</Number></Dial>")).verbs
    assert isinstance(dial, verbs.Dial) and len(dial.nouns) == 2


# --- <Queue> ---------------------------------------------------------------------------------------------------------


def test_queue_defaults_and_attributes() -> None:
    assert queue() == (Queue(name="support"), ())
    noun, warnings = queue('url=" /about-to-connect " method="get"', name="  support  ")
    assert noun == Queue(name="support", url="/about-to-connect", method="GET") and warnings == ()
    assert queue('url=""')[0].url is None


def test_queue_bad_method_warns() -> None:
    noun, warnings = queue('method="PUT"')
    assert noun.method == "POST" and codes(warnings) == [SCHEMA_VALIDATION]


@pytest.mark.parametrize("attr", ["reservationSid", "postWorkActivitySid"])
def test_queue_taskrouter_attributes_are_ignored(attr: str) -> None:
    noun, warnings = queue(f'{attr}="WR123"')
    assert noun == Queue(name="support")
    assert codes(warnings) == [SCHEMA_VALIDATION] and f"<Queue> attribute {attr} is not supported" in warnings[0].text


def test_queue_without_a_name_is_an_error() -> None:
    error = error_of(doc("<Dial><Queue url='/x'> </Queue></Dial>"))
    assert error.code == SCHEMA_VALIDATION and "<Queue> has no queue name" in error.message


# --- <Enqueue> -------------------------------------------------------------------------------------------------------


def test_enqueue_defaults() -> None:
    verb, warnings = enqueue()
    assert warnings == ()
    assert verb == Enqueue(name="support", action=None, method="POST", wait_url=None, wait_url_method="POST")


def test_enqueue_every_attribute() -> None:
    verb, warnings = enqueue('action="/left" method="get" waitUrl="/wait" waitUrlMethod="GET"', name=" support ")
    assert warnings == ()
    assert verb == Enqueue(name="support", action="/left", method="GET", wait_url="/wait", wait_url_method="GET")


def test_enqueue_empty_urls_mean_not_given() -> None:
    verb, _ = enqueue('action="" waitUrl=" "')
    assert verb.action is None and verb.wait_url is None


@pytest.mark.parametrize(("attrs", "field"), [('method="PUT"', "method"), ('waitUrlMethod="HEAD"', "wait_url_method")])
def test_enqueue_bad_methods_warn(attrs: str, field: str) -> None:
    verb, warnings = enqueue(attrs)
    assert getattr(verb, field) == "POST" and codes(warnings) == [SCHEMA_VALIDATION]


def test_enqueue_workflow_sid_with_a_name_is_ignored_with_a_warning() -> None:
    verb, warnings = enqueue('workflowSid="WW123"')
    assert verb == Enqueue(name="support")
    assert codes(warnings) == [SCHEMA_VALIDATION]
    assert "<Enqueue> attribute workflowSid is not supported by softswitch and was ignored" in warnings[0].text


def test_enqueue_max_queue_size_is_ignored_with_a_warning() -> None:
    verb, warnings = enqueue('maxQueueSize="5"')
    assert verb == Enqueue(name="support") and "maxQueueSize is not supported" in warnings[0].text


def test_enqueue_workflow_sid_without_a_name_is_refused() -> None:
    error = error_of(doc('<Enqueue workflowSid="WW123"><Task>{"type": "support"}</Task></Enqueue>'))
    assert error.code == VERB_NOT_SUPPORTED and "TaskRouter" in error.message


@pytest.mark.parametrize("body", ["<Enqueue/>", "<Enqueue>  </Enqueue>", "<Enqueue waitUrl='/w'></Enqueue>"])
def test_enqueue_without_a_name_is_an_error(body: str) -> None:
    error = error_of(doc(body))
    assert error.code == SCHEMA_VALIDATION and "<Enqueue> has no queue name" in error.message


def test_enqueue_name_up_to_64_characters() -> None:
    assert enqueue(name="q" * 64)[0].name == "q" * 64
    error = error_of(doc(f"<Enqueue>{'q' * 65}</Enqueue>"))
    assert error.code == SCHEMA_VALIDATION and "65 characters long, more than 64" in error.message


def test_enqueue_task_is_ignored_with_a_warning_and_other_children_are_skipped() -> None:
    verb, warnings = enqueue(name='support<Task priority="5">{"a": 1}</Task><Say>hi</Say>')
    assert verb == Enqueue(name="support")
    assert codes(warnings) == [SCHEMA_VALIDATION, SCHEMA_VALIDATION]
    assert "<Task> inside <Enqueue> (TaskRouter) is not supported" in warnings[0].text
    assert "<Say> is not allowed inside <Enqueue>" in warnings[1].text


def test_enqueue_then_more_verbs() -> None:
    response = VoiceResponse()
    response.enqueue("support", wait_url="wait.xml", action="/left")
    response.say("Unfortunately, the support line has closed.")
    enq, say = parse(str(response)).verbs
    assert enq == Enqueue(name="support", wait_url="wait.xml", action="/left")
    assert isinstance(say, verbs.Say)


# --- <Leave> ---------------------------------------------------------------------------------------------------------


def test_leave() -> None:
    response = parse(doc("<Leave/>"))
    assert response.verbs == (Leave(),) and response.warnings == ()
    response = VoiceResponse()
    response.leave()
    assert parse(str(response)).verbs == (Leave(),)


def test_leave_attributes_children_and_text_are_warnings() -> None:
    response = parse(doc('<Leave reason="done">bye<Say>x</Say></Leave>'))
    assert response.verbs == (Leave(),)
    messages = [w.message for w in response.warnings]
    assert codes(response.warnings) == [SCHEMA_VALIDATION] * 3
    assert "<Leave> does not allow the attribute reason; it was ignored" in messages[0]
    assert "<Say> is not allowed inside <Leave>" in messages[1]
    assert "text inside <Leave> was ignored" in messages[2]


# --- nesting ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "tag", "parent", "code"),
    [
        ("<Conference>room</Conference>", "Conference", "Response", SCHEMA_VALIDATION),
        ("<Queue>support</Queue>", "Queue", "Response", SCHEMA_VALIDATION),
        ("<Dial><Enqueue>support</Enqueue></Dial>", "Enqueue", "Dial", DIAL_INVALID_NESTED_ELEMENT),
        ("<Dial><Leave/></Dial>", "Leave", "Dial", DIAL_INVALID_NESTED_ELEMENT),
        ("<Gather><Enqueue>support</Enqueue></Gather>", "Enqueue", "Gather", 13320),
        ("<Gather><Leave/></Gather>", "Leave", "Gather", 13320),
        ("<Connect><Conference>room</Conference></Connect>", "Conference", "Connect", SCHEMA_VALIDATION),
        ("<Enqueue>q<Enqueue>r</Enqueue></Enqueue>", "Enqueue", "Enqueue", SCHEMA_VALIDATION),
    ],
)
def test_misplaced_elements_are_skipped_with_a_warning(body: str, tag: str, parent: str, code: int) -> None:
    response = parse(doc(body))
    warning = next(w for w in response.warnings if f"<{tag}>" in w.message)
    assert warning.code == code
    assert warning.message == f"<{tag}> is not allowed inside <{parent}>; it was skipped"
    assert not any(isinstance(v, Conference | Queue) for v in response.verbs)


def test_a_dial_whose_only_noun_was_misplaced_is_skipped() -> None:
    response = parse(doc("<Dial><Enqueue>support</Enqueue></Dial>"))
    assert response.verbs == ()
    assert "nothing to dial" in response.warnings[-1].message


def test_wrong_case_tags_are_unknown_elements_with_a_hint() -> None:
    response = parse(doc("<enqueue>support</enqueue><Dial><conference>room</conference></Dial>"))
    assert response.verbs == ()
    assert "unknown element <enqueue> (did you mean <Enqueue>?)" in response.warnings[0].message
    assert "unknown element <conference> (did you mean <Conference>?)" in response.warnings[1].message


def test_other_twilio_nouns_of_dial_are_still_unsupported() -> None:
    error = error_of(doc("<Dial><Sim>DE123</Sim></Dial>"))
    assert error.code == VERB_NOT_SUPPORTED
