"""The TwiML of speech: `<Gather>`'s speech attributes and `<Record transcribe>` as the parser reads them."""

from __future__ import annotations

from twilio.twiml.voice_response import Gather as TwilioGather, VoiceResponse

from twiml.parse import parse
from twiml.verbs import Gather, Record, Say


def test_gather_speech_attributes_are_read() -> None:
    response = VoiceResponse()
    gather = TwilioGather(input="speech dtmf", hints="Check my balance, pay my bill", speech_timeout="auto",
                          max_speech_time=20, language="en-US", partial_result_callback="/partial",
                          partial_result_callback_method="GET", barge_in=False, profanity_filter=False,
                          action_on_empty_result=True, speech_model="phone_call", enhanced=True)
    gather.say("Say something")
    response.append(gather)
    parsed = parse(str(response).encode())
    assert parsed.verbs == (Gather(input="speech dtmf", hints="Check my balance, pay my bill", speech_timeout="auto",
                                   max_speech_time=20, partial_result_callback="/partial",
                                   partial_result_callback_method="GET", barge_in=False, profanity_filter=False,
                                   action_on_empty_result=True, children=(Say(text="Say something"),)),)
    # speechModel and enhanced are accepted and ignored: a warning each, nothing about speech itself
    assert all("speechModel" in w.message or "enhanced" in w.message for w in parsed.warnings)


def test_speech_timeout_takes_seconds_or_auto_and_warns_otherwise() -> None:
    for raw, value in ((b"3", 3), (b"60", 60), (b"AUTO", "auto")):
        doc = b"<Response><Gather input='speech' speechTimeout='" + raw + b"'/></Response>"
        assert parse(doc).verbs == (Gather(input="speech", speech_timeout=value),)
    for attributes in (b"speechTimeout='soon'", b"speechTimeout='0'", b"speechTimeout='61'"):
        bad = parse(b"<Response><Gather input='speech' " + attributes + b"/></Response>")
        assert bad.verbs == (Gather(input="speech"),)
        assert [w.code for w in bad.warnings] == [13327]
    assert [w.code for w in parse(b"<Response><Gather maxSpeechTime='61'/></Response>").warnings] == [13328]


def test_a_language_other_than_en_us_is_a_warning_and_en_us_is_heard() -> None:
    parsed = parse(b"<Response><Gather input='speech' language='fr-FR'/></Response>")
    assert parsed.verbs == (Gather(input="speech", language="fr-FR"),)
    [warning] = parsed.warnings
    assert warning.code == 12200
    assert "en-US only" in warning.message and "'fr-FR'" in warning.message
    # a DTMF-only Gather's language says nothing about speech
    assert parse(b"<Response><Gather language='fr-FR'/></Response>").warnings == ()


def test_record_transcribe_and_its_callback() -> None:
    assert parse(b"<Response><Record transcribe='true'/></Response>").verbs == (Record(transcribe=True),)
    implied = parse(b"<Response><Record transcribeCallback='/t'/></Response>")
    assert implied.verbs == (Record(transcribe=True, transcribe_callback="/t"),)
    assert implied.warnings == ()
    off = parse(b"<Response><Record transcribe='false' transcribeCallback='/t'/></Response>")
    assert off.verbs == (Record(transcribe=False, transcribe_callback="/t"),)
