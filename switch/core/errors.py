"""The switch's exception tree: neutral errors that carry what an edge needs to render them.

The core says what is wrong, never how a dialect reports it: a request for something that does not exist
(`NotFound`), a bad argument (`InvalidArgument`), an object not in a state for the request (`InvalidState`; a
call that is no longer live is `CallNotLive`), a clash with what exists (`Conflict`), no free capacity
(`CapacityError`).  `Problem` narrows an error where a dialect has a finer code for it.  The dialects' error
middleware maps each to an HTTP status and the dialect's own code and body: Twilio's and Conversations' in
`switch.dialects.errors`, Exotel's in `switch.dialects.exotel.api`.
"""

from __future__ import annotations

import enum

# Twilio's "Internal Failure": the code of a notification about a failure of the switch itself (a lost media
# worker, a recording or stream that failed in the media path), never of the app.  twiml.errors has the same.
INTERNAL_FAILURE = 12400


class SwitchError(Exception):
    """Base of every error the switch raises on purpose."""


class Problem(enum.StrEnum):
    """What exactly is wrong with a request, for dialects that tell these apart."""

    GENERAL = "general"
    NO_ROUTE = "no-route"  # a number no trunk serves
    INVALID_TO = "invalid-to"  # a destination that is neither a number nor a SIP URI the switch can dial
    INVALID_URL = "invalid-url"  # not an absolute http(s) URL
    NUMBER_TAKEN = "number-taken"  # the account has this number already
    IDENTITY_WITH_ADDRESS = "identity-with-address"  # a participant given both an identity and an address
    PARTICIPANT_EXISTS = "participant-exists"
    UNIQUE_NAME_TAKEN = "unique-name-taken"
    NOT_COMPLETE = "not-complete"  # a record that cannot be deleted before what it records has ended


class RequestError(SwitchError):
    """A request the core cannot serve; `message` says why in words a client can read."""

    def __init__(self, message: str, problem: Problem = Problem.GENERAL) -> None:
        super().__init__(message)
        self.message = message
        self.problem = problem


class NotFound(RequestError):
    """`what` (a path or a name) does not exist, or not for this account."""

    def __init__(self, what: str) -> None:
        super().__init__(f"The requested resource {what} was not found")
        self.what = what


class InvalidArgument(RequestError):
    """A parameter of the request is missing or wrong."""


class InvalidState(RequestError):
    """The object the request is about is not in a state that allows it (a completed recording paused, ...)."""


class CallNotLive(InvalidState):
    """The request needs a live call (or one in a given status) and the call is not."""


class Conflict(RequestError):
    """The request clashes with something that exists (a unique name taken, a participant already there)."""


class CapacityError(RequestError):
    """No media worker has a free call slot."""


class Unavailable(RequestError):
    """The switch takes no new calls: it is draining before it stops (SIGTERM)."""


class SipError(SwitchError):
    """A SIP-level failure with its response code."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"SIP {status} {reason}")
        self.status = status
        self.reason = reason


class ConfigError(SwitchError):
    """The configuration file or environment is unusable."""
