"""What the REST dialects ask of the call engine: plain requests in, `Call`s out.

The Twilio and Exotel edges parse their own parameters into these dataclasses and call a
`CallService`; the engine (`switch.core.calls.CallManager`) implements it.  Nothing here knows HTTP.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from switch.core.model import Call, CallbackEvent
from switch.core.paging import Cursor
from switch.core.status import CallStatus


@dataclass(frozen=True)
class NewCall:
    """A call to place, as the REST API asked for it (already validated)."""

    to: str
    from_: str
    url: str | None = None
    method: str = "POST"
    fallback_url: str | None = None
    fallback_method: str = "POST"
    twiml: str | None = None
    status_callback: str | None = None
    status_callback_method: str = "POST"
    status_callback_events: frozenset[CallbackEvent] = frozenset({CallbackEvent.COMPLETED})
    timeout: int = 60
    time_limit: int = 14400
    send_digits: str | None = None
    sip_auth_username: str | None = None
    sip_auth_password: str | None = None
    client_parameters: dict[str, str] | None = None  # a browser leg's custom parameters (`<Client><Parameter>`)
    caller_id: str | None = None
    record: bool = False
    recording_channels: str = "mono"  # mono | dual
    recording_status_callback: str | None = None
    recording_status_callback_method: str = "POST"
    recording_status_callback_events: tuple[str, ...] = ("completed",)  # in-progress completed absent
    recording_track: str = "both"  # inbound | outbound | both
    trim: str = "trim-silence"  # Calls create defaults to trim-silence
    machine_detection: str | None = None  # answering-machine detection: None, "enable" or "detect_message_end"
    machine_detection_timeout: int = 30  # seconds
    machine_detection_speech_threshold: int = 2400  # ms
    machine_detection_speech_end_threshold: int = 1200  # ms
    machine_detection_silence_timeout: int = 5000  # ms
    async_amd: bool = False
    async_amd_status_callback: str | None = None
    async_amd_status_callback_method: str = "POST"


@dataclass(frozen=True)
class CallUpdate:
    """A change to a live call: new TwiML (live redirect), a hang-up/cancel, a new StatusCallback."""

    url: str | None = None
    method: str | None = None
    twiml: str | None = None
    fallback_url: str | None = None
    fallback_method: str | None = None
    status: CallStatus | None = None  # only COMPLETED or CANCELED
    status_callback: str | None = None
    status_callback_method: str | None = None


@dataclass(frozen=True)
class CallFilter:
    """Filters of `GET .../Calls.json`; None means "any".

    The time filters are half-open ranges of moments: `start_time_after <= start_time < start_time_before`
    (likewise for `end_time`).  The edge turns its dialect's words into them: Twilio's `StartTime>` is the lower
    bound, `StartTime<` the upper one, and `StartTime=` a whole day (or second) as both.  A call without the time
    (never started, not ended) passes no bound on it.
    """

    to: str | None = None
    from_: str | None = None
    status: CallStatus | None = None
    parent_call_sid: str | None = None
    start_time_after: dt.datetime | None = None  # inclusive
    start_time_before: dt.datetime | None = None  # exclusive
    end_time_after: dt.datetime | None = None
    end_time_before: dt.datetime | None = None


class CallService(Protocol):
    """The engine seen from a REST edge."""

    account_sid: str
    auth_token: str

    async def create_call(self, request: NewCall) -> Call:
        """Place a call; returns it in status `queued`.  Raises a `RequestError` (e.g. CapacityError)."""
        ...

    def get_call(self, sid: str) -> Call | None: ...

    def list_calls(self, flt: CallFilter, offset: int, limit: int, cursor: Cursor | None = None) -> list[Call]:
        """Newest first (date_created, then sid, descending), `limit` at most: skipping `offset`, or on the
        `cursor`'s side of its key (`switch.core.paging`), in list order either way."""
        ...

    async def update_call(self, sid: str, update: CallUpdate) -> Call:
        """Apply `update`; raises NotFound, or CallNotLive when the call is not in a state for it."""
        ...

    def delete_call(self, sid: str) -> None:
        """Delete an ended call's record; raises NotFound, or InvalidState when the call is still live."""
        ...
