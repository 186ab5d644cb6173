"""The conference messages of the worker protocol: legs mixed together on a worker's conference bridge.

Part of `switch.workers.protocol`, which re-exports every name here.  A conference `conf` on one worker is a full
mesh of its member legs (`switch.worker.conference`): each member hears every other member, not itself; a muted
member hears but is heard by nobody.  The control plane (`switch.workers.conference_mix`) joins members on
several workers into one conference through a *link* per worker: a tap-like pair of ports whose sink hears the
worker's local mix and whose source plays what the control plane sends into every local member.

    command         success                                 failure
    ConfJoin        ConfJoined                              ConfFailed
    ConfMute        (none)                                  (none: an unknown member is ignored)
    ConfLeave       ConfLeft (reason "left")                (none: a leg not in the conference has left)
    ConfLink        TapStarted(id, leg=""), TapAudio...     TapFailed
    TapSend(id)     (plays into every local member)
    TapStop(id)     TapEnded
    ConfPlay        PlayDone(id, leg="") at its end         PlayFailed
    ConfRecord      RecordDone(id) after StopRecord(id)     RecordFailed

`ConfLeft` also comes unasked when a member's leg ends (reason `hangup`) or the worker shuts down (`shutdown`).
`ConfSpeaking` reports a member starting or stopping to speak (the energy of what it sends, with hysteresis).
"""

from __future__ import annotations

from switch.workers.protocol_base import Command, Event


class ConfJoin(Command, tag="conf_join", frozen=True, kw_only=True):
    """Add `leg` to conference `conf` on this worker (`muted`: it hears but is not heard); a leg bridged 1:1 or
    already in another conference is refused (`ConfFailed`)."""

    conf: str
    leg: str
    muted: bool = False


class ConfMute(Command, tag="conf_mute", frozen=True, kw_only=True):
    """Mute (nobody hears the member) or unmute member `leg` of conference `conf`."""

    conf: str
    leg: str
    muted: bool


class ConfLeave(Command, tag="conf_leave", frozen=True, kw_only=True):
    """Take `leg` out of conference `conf`; `ConfLeft` (reason `left`) answers it."""

    conf: str
    leg: str


class ConfLink(Command, tag="conf_link", frozen=True, kw_only=True):
    """Open link `id` of conference `conf`: its local mix as `TapAudio` (track `inbound`), and `TapSend` into it."""

    conf: str
    id: str


class ConfPlay(Command, tag="conf_play", frozen=True, kw_only=True):
    """Play the WAV file `path` to every member of conference `conf` on this worker (`PlayDone` at its end)."""

    conf: str
    id: str
    path: str


class ConfRecord(Command, tag="conf_record", frozen=True, kw_only=True):
    """Record what is heard in conference `conf` on this worker (members and link) into the mono WAV `path`."""

    conf: str
    id: str
    path: str


class ConfJoined(Event, tag="conf_joined", frozen=True, kw_only=True):
    """`leg` is a member of conference `conf`: it hears the others and, unless muted, they hear it."""

    conf: str
    leg: str


class ConfFailed(Event, tag="conf_failed", frozen=True, kw_only=True):
    """`leg` could not join conference `conf` (no audio, bridged, in another conference)."""

    conf: str
    leg: str
    error: str


class ConfLeft(Event, tag="conf_left", frozen=True, kw_only=True):
    """`leg` is no member of conference `conf` any more (`reason`: left, hangup, shutdown)."""

    conf: str
    leg: str
    reason: str


class ConfSpeaking(Event, tag="conf_speaking", frozen=True, kw_only=True):
    """Member `leg` of conference `conf` started (`speaking`) or stopped speaking at `t` (epoch seconds)."""

    conf: str
    leg: str
    speaking: bool
    t: float


CONF_COMMANDS: tuple[type[Command], ...] = (ConfJoin, ConfMute, ConfLeave, ConfLink, ConfPlay, ConfRecord)
CONF_EVENTS: tuple[type[Event], ...] = (ConfJoined, ConfFailed, ConfLeft, ConfSpeaking)
ConfCommand = ConfJoin | ConfMute | ConfLeave | ConfLink | ConfPlay | ConfRecord
ConfEvent = ConfJoined | ConfFailed | ConfLeft | ConfSpeaking
