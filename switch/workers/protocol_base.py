"""The bases of the worker protocol's messages, its error types and `sip_text`.

Part of `switch.workers.protocol`, which re-exports every name here and documents the protocol as a whole.
"""

from __future__ import annotations

import re

import msgspec

_STRAY_SURROGATE = re.compile("[\ud800-\udc7f\udd00-\udfff]")


class ProtocolError(Exception):
    """The peer sent something that is not a protocol message (or a message could not be encoded)."""


class VersionMismatch(ProtocolError):
    """The worker's hello names another protocol version."""


def sip_text(value: object) -> str:
    """SIP text as valid UTF-8: bytes pjsua2 could not decode (surrogate escapes) become U+FFFD."""
    text = _STRAY_SURROGATE.sub("\ufffd", str(value))  # surrogates that stand for no byte
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


# Each message repeats frozen=True, kw_only=True: msgspec does not inherit kw_only; type checkers read frozen per class.
class Command(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="op"):
    """A command from the control plane to a worker (tagged by `op`)."""


class Event(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="ev"):
    """An event from a worker to the control plane (tagged by `ev`)."""
