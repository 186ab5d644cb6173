"""`<Gather>`: digits with numDigits, finishOnKey and timeout, barge-in over its prompts, actionOnEmptyResult,
the default action (the current document), and digits pressed before it began."""

from __future__ import annotations

import asyncio

from tests.unit.fakes import FakeSwitch, Script, press, virtual_time, wait

pytestmark = virtual_time

VOICE = "http://app.test/voice"
ACTION = "http://app.test/gathered"
THANKS = "<Response><Say>Thanks</Say></Response>"


async def _gather(switch: FakeSwitch, twiml: str, script: Script | None = None) -> list[str]:
    switch.number("+15550100", voice_url=VOICE)
    switch.app.documents.setdefault(VOICE, twiml)
    switch.app.documents.setdefault(ACTION, THANKS)
    await switch.call_in("caller", script=script)
    await switch.ended("caller")
    assert switch.pool.trace[:2] == ["ring caller", "answer caller"]
    return switch.pool.trace[2:]


def _asked(switch: FakeSwitch, url: str = ACTION) -> list[dict[str, str]]:
    """The Gather parameters of each request to `url`."""
    return [{k: v for k, v in r.params.items() if k in ("Digits", "FinishedOnKey")}
            for r in switch.app.requests if r.url == url]


async def test_num_digits_and_barge_in(switch: FakeSwitch) -> None:
    twiml = (f"<Response><Gather numDigits='3' action='{ACTION}'><Say loop='5'>Enter your code</Say>"
             "</Gather><Say>Not reached</Say></Response>")
    trace = await _gather(switch, twiml, press("123", after=0.5))
    assert trace == ["play caller say-enter-your-code.wav", "stop_play say-enter-your-code.wav",
                     "play caller say-thanks.wav", "hangup caller 200"]
    assert _asked(switch) == [{"Digits": "123"}]
    assert switch.app.requests[1].method == "POST"


async def test_finish_on_key_ends_the_input_and_is_reported(switch: FakeSwitch) -> None:
    twiml = f"<Response><Gather action='{ACTION}' method='GET'><Say>Number then pound</Say></Gather></Response>"
    trace = await _gather(switch, twiml, press("42#", after=2))
    assert trace == ["play caller say-number-then-pound.wav", "play caller say-thanks.wav", "hangup caller 200"]
    assert _asked(switch) == [{"Digits": "42", "FinishedOnKey": "#"}]
    assert switch.app.trace == [f"POST {VOICE}", f"GET {ACTION}"]


async def test_no_input_goes_on_with_the_next_verb_after_the_timeout(switch: FakeSwitch) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    twiml = (f"<Response><Gather timeout='3' action='{ACTION}'><Say>Press a key</Say></Gather>"
             "<Say>Goodbye</Say></Response>")
    trace = await _gather(switch, twiml)
    assert trace == ["play caller say-press-a-key.wav", "play caller say-goodbye.wav", "hangup caller 200"]
    assert _asked(switch) == []
    assert loop.time() - start == 1 + 3 + 1 + 1  # prompt, timeout, goodbye, ended()'s settling second


async def test_action_on_empty_result_requests_the_action_without_digits(switch: FakeSwitch) -> None:
    twiml = f"<Response><Gather timeout='2' actionOnEmptyResult='true' action='{ACTION}'/></Response>"
    trace = await _gather(switch, twiml)
    assert trace == ["play caller say-thanks.wav", "hangup caller 200"]
    assert _asked(switch) == [{"Digits": ""}]


async def test_the_timeout_also_ends_a_partial_input(switch: FakeSwitch) -> None:
    twiml = f"<Response><Gather timeout='4' numDigits='4' action='{ACTION}'/></Response>"
    trace = await _gather(switch, twiml, press("12", after=1, gap=1))
    assert trace == ["play caller say-thanks.wav", "hangup caller 200"]
    assert _asked(switch) == [{"Digits": "12"}]
    assert switch.call("caller").duration == 1 + 1 + 4 + 1  # first digit, second, timeout, thanks


async def test_the_default_action_is_the_current_document(switch: FakeSwitch) -> None:
    def voice(params: dict[str, str]) -> str:
        if "Digits" in params:
            return f"<Response><Say>You pressed {params['Digits']}</Say></Response>"
        return "<Response><Gather numDigits='1'><Say>Menu</Say></Gather></Response>"

    switch.app.documents[VOICE] = voice
    trace = await _gather(switch, "", press("7", after=3))
    assert trace == ["play caller say-menu.wav", "play caller say-you-pressed-7.wav", "hangup caller 200"]
    assert switch.app.trace == [f"POST {VOICE}", f"POST {VOICE}"]
    assert _asked(switch, VOICE) == [{}, {"Digits": "7"}]


async def test_digits_pressed_before_the_gather_are_not_its_input(switch: FakeSwitch) -> None:
    twiml = (f"<Response><Say>Welcome</Say><Gather numDigits='1' action='{ACTION}'><Say>Menu</Say></Gather>"
             "</Response>")
    trace = await _gather(switch, twiml, press("9", after=0.2) + wait(after=1.5) + press("1"))
    assert trace == ["play caller say-welcome.wav", "play caller say-menu.wav", "stop_play say-menu.wav",
                     "play caller say-thanks.wav", "hangup caller 200"]
    assert _asked(switch) == [{"Digits": "1"}]


async def test_a_relative_action_resolves_against_the_document(switch: FakeSwitch) -> None:
    switch.app.documents["http://app.test/menu/choice"] = THANKS
    switch.app.documents["http://app.test/menu/start"] = (
        "<Response><Gather numDigits='1' action='choice'/></Response>")
    switch.number("+15550100", voice_url="http://app.test/menu/start")
    await switch.call_in("caller", script=press("5", after=1))
    await switch.ended("caller")
    assert switch.app.trace == ["POST http://app.test/menu/start", "POST http://app.test/menu/choice"]
