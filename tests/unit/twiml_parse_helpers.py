"""Helpers shared by the TwiML parser's tests (test_twiml_parse*.py)."""

from __future__ import annotations

from twilio.twiml.voice_response import VoiceResponse

from twiml.parse import parse


def only_verb(r: VoiceResponse) -> object:
    """Parse the document ``r`` renders and return its one verb."""
    response = parse(str(r))
    assert len(response.verbs) == 1, response.verbs
    return response.verbs[0]
