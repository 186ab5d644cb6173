"""The port-leg messages of the worker protocol: a browser softphone's call leg, its audio relayed 20 ms at a time.

Part of `switch.workers.protocol`, which re-exports every name here.  A *port leg* (`switch.worker.port_legs`)
stands in for a SIP call on a worker: one conference-bridge port whose audio the control plane carries to and
from a browser (WebRTC, `media.webrtc`).  The worker keeps it as the leg's port (`MediaManager.set_port`), so
every media command (Play, Record, Bridge, taps, conferences) works on it as on a SIP leg; and it reports the
same leg events as a SIP leg, driven by `PortSignal` (what the browser did) and the usual leg commands:

    command                 success                                 failure
    Dial (uri webrtc:...)   InviteSent (call_id "webrtc-<leg>")     DialFailed
    PortOpen                (none: the control plane made the call) PortFailed
    PortSignal ringing      Progress (180 Ringing, no SDP)          (none: an unknown leg is ignored and logged)
    PortSignal answered     Answered, then MediaReady
    PortSignal dtmf         DtmfReceived, one per digit
    PortSignal ended        Ended (code, or 200 when 0)
    Answer                  Answered, then MediaReady               (none: an answered leg stays answered)
    Ring                    (none)
    Hangup                  Ended (code, reason "hangup")
    SendDtmf                (none: ignored, logged)
    TapSend(id=<leg>)       (queued and played as what the leg says)

Audio: what the switch sends the leg (players, a bridged leg, a conference) leaves as `TapAudio(id=<leg>,
track="outbound")`, 160 bytes of μ-law per 20 ms tick from the moment the port exists; `TapSend(id=<leg>)` queues
μ-law the browser said, played 20 ms per tick (silence when none waits; at most ~200 ms waits, the oldest dropped).
A port leg ends with `Ended` like any leg: hung up, ended by the browser, or the worker shutting down.
"""

from __future__ import annotations

from switch.workers.protocol_base import Command, Event

PORT_SCHEME = "webrtc:"  # a Dial to a URI with this scheme makes a port leg
PORT_STATES = ("ringing", "answered", "dtmf", "ended")


class PortOpen(Command, tag="port_open", frozen=True, kw_only=True):
    """Make port leg `leg` for a call the browser placed (not answered yet; `Answer` answers it).  No event
    answers it unless it fails (`PortFailed`)."""

    leg: str


class PortSignal(Command, tag="port_signal", frozen=True, kw_only=True):
    """The browser of port leg `leg` acted: `state` from PORT_STATES; `code` the final code of `ended` (0: 200),
    `digits` the keys of `dtmf`.  A signal for a leg the worker does not hold is ignored."""

    leg: str
    state: str
    code: int = 0
    digits: str = ""


class PortFailed(Event, tag="port_failed", frozen=True, kw_only=True):
    """Port leg `leg` of a `PortOpen` could not be made (`error`: why); the worker does not hold it."""

    leg: str
    error: str


PORT_COMMANDS: tuple[type[Command], ...] = (PortOpen, PortSignal)
PORT_EVENTS: tuple[type[Event], ...] = (PortFailed,)
PortCommand = PortOpen | PortSignal
PortEvent = PortFailed
