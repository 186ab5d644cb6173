"""Parameters of call webhooks, in Twilio's names: the one place that spells them."""

from __future__ import annotations

import datetime as dt
import email.utils
import math

from switch.core.model import Call

API_VERSION = "2010-04-01"


def rfc2822(value: dt.datetime) -> str:
    """Twilio's date format: `Tue, 31 Aug 2010 20:36:28 +0000`."""
    return email.utils.format_datetime(value.astimezone(dt.UTC)).replace("-0000", "+0000")


def standard_params(call: Call) -> list[tuple[str, str]]:
    """The parameters Twilio sends with every request about a call (TwiML fetches and callbacks)."""
    params = [
        ("CallSid", call.sid),
        ("AccountSid", call.account_sid),
        ("From", call.from_),
        ("To", call.to),
        ("Caller", call.from_),
        ("Called", call.to),
        ("CallStatus", str(call.status)),
        ("ApiVersion", API_VERSION),
        ("Direction", str(call.direction)),
    ]
    if call.forwarded_from:
        params.append(("ForwardedFrom", call.forwarded_from))
    if call.caller_name:
        params.append(("CallerName", call.caller_name))
    if call.parent_call_sid:
        params.append(("ParentCallSid", call.parent_call_sid))
    return params


def status_callback_params(call: Call, sequence: int, at: dt.datetime) -> list[tuple[str, str]]:
    """A call-progress status callback for the call's current status."""
    params = standard_params(call)
    params += [
        ("CallbackSource", "call-progress-events"),
        ("SequenceNumber", str(sequence)),
        ("Timestamp", rfc2822(at)),
    ]
    if call.sip_response_code is not None:
        params.append(("SipResponseCode", str(call.sip_response_code)))
    if call.status.terminal:
        seconds = call.duration or 0
        params.append(("CallDuration", str(seconds)))
        params.append(("Duration", str(math.ceil(seconds / 60))))
    return params
