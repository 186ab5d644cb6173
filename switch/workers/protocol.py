"""The control plane <-> media worker protocol: typed, versioned messages, length-prefixed over a unix socket
(the ends of the socket: `switch.workers.stream`, `switch.worker.channel`).

Every message is a frozen `msgspec.Struct` listed in this module.  On the wire each is a 4-byte big-endian
length followed by a UTF-8 JSON object whose tag names its type: `"op"` for a command (control plane ->
worker), `"ev"` for an event (worker -> control plane).  The first message on a connection is the worker's
`Hello` carrying `PROTOCOL_VERSION`; the control plane refuses a worker that speaks another version
(`VersionMismatch`) or whose first message is anything else.  Malformed, truncated or oversized input raises
`ProtocolError`; nothing else escapes the decoders.

Every command that can fail has its own failure event, and the worker answers each such command exactly once:

    command         success                         failure
    Dial            InviteSent (then Progress...)    DialFailed
    Ring            (none)                          RingFailed
    Answer          Answered (once the ACK came)    AnswerFailed
    Hangup          Ended                           HangupFailed
    SendDtmf        (none)                          DtmfFailed
    Play            PlayDone (at its end)           PlayFailed
    Record          RecordDone (at its end)         RecordFailed
    RecordAttach    RecordAttached                  RecordAttachFailed
    Bridge          Bridged                         BridgeFailed
    TapStart        TapStarted (then TapAudio...)   TapFailed       (switch.workers.protocol_audio)
    ConfJoin        ConfJoined                      ConfFailed      (switch.workers.protocol_conf)
    PortOpen        (none)                          PortFailed      (switch.workers.protocol_port)

A `Dial` to a `webrtc:` URI, and `PortOpen`, make a *port leg*: a browser's call leg whose audio the control plane
relays (`switch.workers.protocol_port` lists how each command and `PortSignal` is answered on it).

`AllowRefer` and `ReferNotify` cannot fail either (a REFER is answered by the worker itself: `ReferReceived`
when it accepted it, `ReferRefused` when not; see `switch.worker.refer`).

`StopPlay`, `PauseRecord`, `StopRecord`, `Unbridge` and `Shutdown` cannot fail: an id or leg the worker no
longer knows is already done (its `PlayDone`/`RecordDone`/`Ended` has been or will be sent).  Commands for a
leg the worker no longer holds are ignored and logged (the leg's `Ended` is on its way).

`SipMessage` is no answer either: a worker started with `--sip-trace` reports every SIP message of its legs.

`DialogChanged` is no answer to a command: the worker reports the SIP facts of each leg's dialog (or of its INVITE
while unanswered) whenever they change, and the pool keeps them, so that the far ends of a worker that dies can
still be sent a BYE, a CANCEL or a final response (`switch.workers.reaper`).

SIP text (display names in URIs, reason phrases, Call-IDs) may carry any byte; the worker passes it through
`sip_text`, so that it is always valid UTF-8 here and encoding can never fail.
"""

from __future__ import annotations

import struct
from typing import Any, Union, cast

import msgspec

from switch.workers.protocol_audio import (  # the audio taps, re-exported here with the rest
    TAP_COMMANDS,
    TAP_EVENTS,
    TapAudio as TapAudio,
    TapClear as TapClear,
    TapCommand as TapCommand,
    TapEnded as TapEnded,
    TapEvent as TapEvent,
    TapFailed as TapFailed,
    TapMark as TapMark,
    TapMarkPlayed as TapMarkPlayed,
    TapSend as TapSend,
    TapStart as TapStart,
    TapStarted as TapStarted,
    TapStop as TapStop,
)
from switch.workers.protocol_base import (
    Command as Command,
    Event as Event,
    ProtocolError as ProtocolError,
    VersionMismatch as VersionMismatch,
    sip_text as sip_text,
)
from switch.workers.protocol_conf import (  # the conferences, re-exported here with the rest
    CONF_COMMANDS,
    CONF_EVENTS,
    ConfCommand as ConfCommand,
    ConfEvent as ConfEvent,
    ConfFailed as ConfFailed,
    ConfJoin as ConfJoin,
    ConfJoined as ConfJoined,
    ConfLeave as ConfLeave,
    ConfLeft as ConfLeft,
    ConfLink as ConfLink,
    ConfMute as ConfMute,
    ConfPlay as ConfPlay,
    ConfRecord as ConfRecord,
    ConfSpeaking as ConfSpeaking,
)
from switch.workers.protocol_media import (  # the media messages, re-exported here with the rest
    Bridge as Bridge,
    Bridged as Bridged,
    BridgeFailed as BridgeFailed,
    PauseRecord as PauseRecord,
    Play as Play,
    PlayDone as PlayDone,
    PlayFailed as PlayFailed,
    Record as Record,
    RecordAttach as RecordAttach,
    RecordAttached as RecordAttached,
    RecordAttachFailed as RecordAttachFailed,
    RecordDone as RecordDone,
    RecordFailed as RecordFailed,
    RecordResult as RecordResult,
    StopPlay as StopPlay,
    StopRecord as StopRecord,
    TapLevel as TapLevel,
    Unbridge as Unbridge,
)
from switch.workers.protocol_port import (  # the port legs (browser softphones), re-exported here with the rest
    PORT_COMMANDS,
    PORT_EVENTS,
    PORT_SCHEME as PORT_SCHEME,
    PORT_STATES as PORT_STATES,
    PortCommand as PortCommand,
    PortEvent as PortEvent,
    PortFailed as PortFailed,
    PortOpen as PortOpen,
    PortSignal as PortSignal,
)

PROTOCOL_VERSION = 9  # 3: DialogChanged; 4: Ended.rtp; 5: SipMessage; 6: Incoming.headers; 7: taps; 8: conferences;
# 9: port legs
MAX_MESSAGE = 1 << 20
HEADER = struct.Struct(">I")  # the length of the JSON body that follows
# -- commands: calls ----------------------------------------------------------------------------------


class Dial(Command, tag="dial", frozen=True, kw_only=True):
    """Send an INVITE to `uri` from `from_uri` on a new leg `leg`; `auth` (user, password) answers a challenge.
    Answered by `InviteSent`, then `Progress`/`Answered`/`Ended`; or by `DialFailed` if pjsua refused it."""

    leg: str
    uri: str
    from_uri: str = ""
    auth: tuple[str, str] | None = None


class Ring(Command, tag="ring", frozen=True, kw_only=True):
    """180 Ringing on the inbound leg `leg`; `RingFailed` if pjsua refuses."""

    leg: str


class Answer(Command, tag="answer", frozen=True, kw_only=True):
    """200 OK on the inbound leg `leg` (`MediaReady`, then `Answered` once the ACK came); `AnswerFailed`."""

    leg: str


class Hangup(Command, tag="hangup", frozen=True, kw_only=True):
    """End `leg`: CANCEL before the answer, BYE after, or the final response `code` for an inbound leg not yet
    answered.  Its `Ended` follows; `HangupFailed` if pjsua refuses."""

    leg: str
    code: int = 200


class SendDtmf(Command, tag="send_dtmf", frozen=True, kw_only=True):
    """Send `digits` as RFC 2833 events on `leg`; `DtmfFailed` if pjsua refuses."""

    leg: str
    digits: str


class AllowRefer(Command, tag="allow_refer", frozen=True, kw_only=True):
    """From now on a REFER on `leg` is accepted (202, NOTIFY `100 Trying`, `ReferReceived`), or refused 403 again
    (`allow` False, the default of every leg).  One transfer at a time: a REFER while one is pending is refused."""

    leg: str
    allow: bool = True


class ReferNotify(Command, tag="refer_notify", frozen=True, kw_only=True):
    """Tell the transferor of `leg` how its accepted REFER went: a NOTIFY whose sipfrag is `SIP/2.0 <code> <reason>`
    (`final`: the subscription ends with it).  Ignored when no transfer is pending on the leg."""

    leg: str
    code: int
    final: bool = True


class Shutdown(Command, tag="shutdown", frozen=True, kw_only=True):
    """Hang up every leg, stop every player and recording, and exit."""


# -- events: the worker ---------------------------------------------------------------------------------


class Hello(Event, tag="hello", frozen=True, kw_only=True):
    """The worker is up: its protocol `version`, index, real call `capacity`, SIP address and pid, and the
    pjsua2 `engine` it loaded (`pjproject 2.17 (built, epoll)`, `pjsua2-python 2.15.1.post1 (wheel)`)."""

    version: int
    worker: int
    capacity: int
    sip: str
    pid: int
    engine: str = ""


class Fatal(Event, tag="fatal", frozen=True, kw_only=True):
    """Sent instead of `Hello` by a worker that could not start (its SIP port taken, ...); it exits."""

    message: str


class Log(Event, tag="log", frozen=True, kw_only=True):
    """A line for the control plane's log (`level` is `info` or `warning`)."""

    level: str
    message: str


class EventsDropped(Event, tag="events_dropped", frozen=True, kw_only=True):
    """The worker's outgoing event queue overflowed: `total` events have been dropped since it started."""

    total: int


# -- events: calls ----------------------------------------------------------------------------------------


class Incoming(Event, tag="incoming", frozen=True, kw_only=True):
    """An INVITE arrived and became leg `leg` (the control plane answers it with Ring/Answer/Hangup)."""

    leg: str
    from_uri: str
    to_uri: str
    request_uri: str
    call_id: str
    t: float
    headers: dict[str, str] = {}  # the INVITE's X- headers, names as written (the edge's X-Softswitch-* among them)


class InviteSent(Event, tag="invite_sent", frozen=True, kw_only=True):
    """The INVITE of a `Dial` left, with SIP Call-ID `call_id`."""

    leg: str
    call_id: str
    t: float


class DialFailed(Event, tag="dial_failed", frozen=True, kw_only=True):
    """pjsua refused to place the `Dial` (no INVITE left): `code` is the SIP code to report, `status` pj's."""

    leg: str
    code: int
    reason: str
    status: int = 0


class Progress(Event, tag="progress", frozen=True, kw_only=True):
    """A provisional response (180, 183, ...) on an outbound leg; `sdp` when it brought early media."""

    leg: str
    code: int
    reason: str
    sdp: bool
    t: float


class Answered(Event, tag="answered", frozen=True, kw_only=True):
    """The leg is confirmed (200 and ACK)."""

    leg: str
    code: int = 200
    t: float


class RtpStats(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The RTP of one leg's audio, summed over its streams (a media change makes a new one; `streams` counts them),
    read from pjmedia just before each was destroyed.  `rx_*` is what arrived from the far end: packets, lost
    (sequence gaps), discarded (late, bad), reordered, duplicated, the largest interarrival jitter (µs);
    `tx_packets` what we sent; `jb_*` the jitter buffer's frames lost, discarded (overflow) and empty reads."""

    streams: int = 1
    rx_packets: int = 0
    rx_lost: int = 0
    rx_discarded: int = 0
    rx_reordered: int = 0
    rx_duplicates: int = 0
    rx_jitter_max_us: int = 0
    tx_packets: int = 0
    jb_lost: int = 0
    jb_discarded: int = 0
    jb_empty: int = 0


class Ended(Event, tag="ended", frozen=True, kw_only=True):
    """The leg is gone, with its last SIP `code` and `reason`; the worker no longer holds it.

    `rtp` sums its audio streams' RTP statistics (None when it never had a stream).  It is optional with a
    default, so an `Ended` without it (an older worker, a leg without audio) still decodes."""

    leg: str
    code: int
    reason: str
    answered: bool
    t: float
    rtp: RtpStats | None = None


class MediaReady(Event, tag="media_ready", frozen=True, kw_only=True):
    """The leg's audio became active: media commands may name it from now on."""

    leg: str
    t: float


class HoldChanged(Event, tag="hold", frozen=True, kw_only=True):
    """The far end put the leg on hold (an offer with sendonly or inactive audio) or took it off."""

    leg: str
    held: bool
    t: float


class Dialog(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What the control plane needs to end a leg at the SIP level without its worker (`switch.workers.reaper`).

    Header values are as they were on the wire (through `sip_text`).  `local` is our From (outbound) or To
    (inbound) with our tag once we have one; `remote` the far end's, with its tag once it answered.  `routes` are
    the Route values of the leg's next request: our INVITE's until a 2xx, then the dialog's route set (RFC 3261
    12.1).  `vias` are our INVITE's top Via (outbound: a CANCEL and the ACK of a non-2xx reuse its branch) or the
    far end's INVITE's Vias (inbound: a final response copies them).  `cseq` is the INVITE's CSeq number.
    `peer` is the `host:port` the far end's messages came from; `answered`: a 2xx was sent or received."""

    inbound: bool
    call_id: str
    local: str
    remote: str
    request_uri: str = ""
    target: str = ""
    routes: tuple[str, ...] = ()
    vias: tuple[str, ...] = ()
    cseq: int
    transport: str = "udp"
    peer: str = ""
    answered: bool = False


class DialogChanged(Event, tag="dialog", frozen=True, kw_only=True):
    """The SIP facts of `leg` changed (INVITE sent or received, the far end's answer, our response): `dialog`."""

    leg: str
    dialog: Dialog


class SipMessage(Event, tag="sip", frozen=True, kw_only=True):
    """A SIP message of `leg` went out ("sent") or came in ("received"), to or from `peer` (host:port); only
    from a worker started with `--sip-trace` (`[server] sip_trace`), for the call's SIP ladder."""

    leg: str
    direction: str
    peer: str
    text: str
    t: float


class DtmfReceived(Event, tag="dtmf", frozen=True, kw_only=True):
    """An RFC 2833 digit arrived on `leg` (and was relayed to the leg it is bridged to)."""

    leg: str
    digit: str
    t: float


class RingFailed(Event, tag="ring_failed", frozen=True, kw_only=True):
    """The 180 of a `Ring` could not be sent."""

    leg: str
    error: str


class AnswerFailed(Event, tag="answer_failed", frozen=True, kw_only=True):
    """The 200 of an `Answer` could not be sent."""

    leg: str
    error: str


class HangupFailed(Event, tag="hangup_failed", frozen=True, kw_only=True):
    """The CANCEL/BYE/final response `code` of a `Hangup` could not be sent."""

    leg: str
    code: int
    error: str


class DtmfFailed(Event, tag="dtmf_failed", frozen=True, kw_only=True):
    """The digits of a `SendDtmf` could not be sent."""

    leg: str
    digits: str
    error: str


class ReferReceived(Event, tag="refer", frozen=True, kw_only=True):
    """A REFER on `leg` was accepted (202 and NOTIFY `100 Trying` sent): `refer_to` is its Refer-To value as sent,
    `referred_by` its Referred-By (or ""), `headers` its X- headers; a `ReferNotify` must follow."""

    leg: str
    refer_to: str
    referred_by: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    t: float


class ReferRefused(Event, tag="refer_refused", frozen=True, kw_only=True):
    """A REFER on `leg` was refused with `code` (the leg does not take transfers now); the call goes on."""

    leg: str
    refer_to: str
    code: int
    t: float


COMMANDS: tuple[type[Command], ...] = (
    Dial, Ring, Answer, Hangup, SendDtmf, AllowRefer, ReferNotify, Play, StopPlay, Record, RecordAttach, PauseRecord,
    StopRecord, Bridge, Unbridge, Shutdown, *TAP_COMMANDS, *CONF_COMMANDS, *PORT_COMMANDS,
)
EVENTS: tuple[type[Event], ...] = (
    Hello, Fatal, Log, EventsDropped, Incoming, InviteSent, DialFailed, Progress, Answered, Ended, MediaReady,
    HoldChanged, DialogChanged, DtmfReceived, RingFailed, AnswerFailed, HangupFailed, DtmfFailed, ReferReceived,
    ReferRefused, PlayDone, PlayFailed, RecordDone, RecordFailed, RecordAttached, RecordAttachFailed, TapLevel,
    Bridged, BridgeFailed, SipMessage, *TAP_EVENTS, *CONF_EVENTS, *PORT_EVENTS,
)
Message = Command | Event
# Events about one leg (`leg` names it; the control plane finds its call by it).
LegEvent = (InviteSent | DialFailed | Progress | Answered | Ended | MediaReady | HoldChanged | DialogChanged
            | DtmfReceived | RingFailed | AnswerFailed | HangupFailed | DtmfFailed | ReferReceived | ReferRefused
            | PortFailed)
# Answers to media commands, matched by the command's `id`.
MediaResult = (PlayDone | PlayFailed | RecordDone | RecordFailed | RecordAttached | RecordAttachFailed | TapLevel
               | Bridged | BridgeFailed | TapEvent | ConfEvent)  # conference events: by their `conf`

_ENCODER = msgspec.json.Encoder()
_COMMAND_DECODER: msgspec.json.Decoder[Any] = msgspec.json.Decoder(Union[COMMANDS])  # type: ignore[valid-type]  # noqa: UP007
_EVENT_DECODER: msgspec.json.Decoder[Any] = msgspec.json.Decoder(Union[EVENTS])  # type: ignore[valid-type]  # noqa: UP007


class _Envelope(msgspec.Struct):
    """Just enough of a first message to refuse another protocol version before reading the rest."""
    ev: str = ""
    version: int | None = None


def encode(message: Message) -> bytes:
    """A message as it goes on the wire: length header, then JSON."""
    try:
        body = _ENCODER.encode(message)
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        raise ProtocolError(f"cannot encode {type(message).__name__}: {exc}") from exc
    if len(body) > MAX_MESSAGE:
        raise ProtocolError(f"message of {len(body)} bytes exceeds {MAX_MESSAGE}")
    return HEADER.pack(len(body)) + body


def _decode(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise ProtocolError(f"not a protocol message: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"bad JSON: {exc}") from exc


def decode_command(body: bytes) -> Command:
    """One command from a frame's body; ProtocolError for anything else."""
    return cast(Command, _decode(_COMMAND_DECODER, body))


def decode_event(body: bytes) -> Event:
    """One event from a frame's body; ProtocolError for anything else."""
    return cast(Event, _decode(_EVENT_DECODER, body))


def decode_hello(body: bytes) -> Hello | Fatal:
    """The first message of a worker: its `Hello` (of our version) or `Fatal`; VersionMismatch, ProtocolError."""
    try:
        envelope = msgspec.json.decode(body, type=_Envelope)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ProtocolError(f"bad first message: {exc}") from exc
    if envelope.ev == "hello" and envelope.version != PROTOCOL_VERSION:
        raise VersionMismatch(f"worker speaks protocol {envelope.version}, we speak {PROTOCOL_VERSION}")
    event = decode_event(body)
    if not isinstance(event, Hello | Fatal):
        raise ProtocolError(f"first message is {type(event).__name__}, not Hello")
    return event


def as_dict(message: Message) -> dict[str, Any]:
    """A message as plain JSON-able data, tag included (reports, logs)."""
    return cast(dict[str, Any], msgspec.to_builtins(message))
