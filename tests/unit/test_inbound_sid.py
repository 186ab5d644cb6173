"""An inbound call's SID: the worker names an inbound leg like a CallSid and the call takes that name, so the
worker's own log lines about the leg name the call (switch.core.calls `_incoming`)."""

from __future__ import annotations

import re

from tests.unit.fakes import FakeSwitch, virtual_time

pytestmark = virtual_time


async def test_an_inbound_leg_named_like_a_callsid_names_the_call(switch: FakeSwitch) -> None:
    leg = "CA" + "5" * 32
    switch.number("+15550100", voice_url=None)  # no app: answered and held
    await switch.call_in(leg)
    assert switch.call(leg).sid == leg
    assert switch.calls.get_call(leg) is not None


async def test_any_other_leg_name_gets_a_new_callsid(switch: FakeSwitch) -> None:
    switch.number("+15550100", voice_url=None)
    await switch.call_in("caller")
    sid = switch.call("caller").sid
    assert sid != "caller" and re.fullmatch(r"CA[0-9a-f]{32}", sid)
