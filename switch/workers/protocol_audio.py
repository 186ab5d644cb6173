"""The audio-tap messages of the worker protocol: a leg's audio to the control plane and back, frame by frame.

Part of `switch.workers.protocol`, which re-exports every name here.  A tap is what Media Streams, speech
recognition and answering-machine detection listen with (`switch.workers.media_taps` on the control plane,
`switch.worker.media_taps` in the worker):

    command         success                         failure
    TapStart        TapStarted, then TapAudio...    TapFailed
    TapStop         TapEnded                        (none: an unknown tap has ended already)

`TapAudio` carries one 20 ms frame of one track as μ-law (160 bytes; base64 in the JSON), numbered from 0 per
track; `inbound` is what the leg sends, `outbound` what the switch sends it.  A tap started with `inject` also
plays what `TapSend` gives it into the leg, in order and in real time; `TapMark` puts a named mark after the audio
queued so far, and the worker answers `TapMarkPlayed` when the audio before it has played (`cleared`: it was
dropped by `TapClear`, which empties the queue at once).  `TapEnded` comes once per tap: stopped, its leg ended,
or the worker shut down.
"""

from __future__ import annotations

from switch.workers.protocol_base import Command, Event

TRACKS = ("inbound", "outbound")


class TapStart(Command, tag="tap_start", frozen=True, kw_only=True):
    """Start tap `id` on `leg`: `tracks` from TRACKS; `inject` lets `TapSend` play into the leg."""

    id: str
    leg: str
    tracks: tuple[str, ...] = ("inbound",)
    inject: bool = False


class TapStop(Command, tag="tap_stop", frozen=True, kw_only=True):
    """Stop tap `id`; its `TapEnded` follows."""

    id: str


class TapSend(Command, tag="tap_send", frozen=True, kw_only=True):
    """Queue μ-law audio (any length) to play into the tap's leg after what is queued already."""

    id: str
    payload: bytes


class TapMark(Command, tag="tap_mark", frozen=True, kw_only=True):
    """A mark after the audio queued so far: `TapMarkPlayed` once it has played (or was cleared)."""

    id: str
    name: str


class TapClear(Command, tag="tap_clear", frozen=True, kw_only=True):
    """Drop the tap's queued audio at once; each pending mark is answered (`cleared`)."""

    id: str


class TapStarted(Event, tag="tap_started", frozen=True, kw_only=True):
    """Tap `id` is listening (and, with `inject`, ready to play)."""

    id: str
    leg: str


class TapFailed(Event, tag="tap_failed", frozen=True, kw_only=True):
    """Tap `id` could not start (the leg has no audio, pjmedia refused a port)."""

    id: str
    leg: str
    error: str


class TapAudio(Event, tag="tap_audio", frozen=True, kw_only=True):
    """One 20 ms frame of `track`: `seq` counts the track's frames from 0, `ms` is the time since the tap started."""

    id: str
    track: str
    seq: int
    ms: int
    payload: bytes


class TapMarkPlayed(Event, tag="tap_mark_played", frozen=True, kw_only=True):
    """The audio before mark `name` has played (or, `cleared`, was dropped)."""

    id: str
    name: str
    cleared: bool = False


class TapEnded(Event, tag="tap_ended", frozen=True, kw_only=True):
    """Tap `id` ended (`reason`: stopped, hangup, shutdown); nothing more comes from it."""

    id: str
    reason: str


TAP_COMMANDS: tuple[type[Command], ...] = (TapStart, TapStop, TapSend, TapMark, TapClear)
TAP_EVENTS: tuple[type[Event], ...] = (TapStarted, TapFailed, TapAudio, TapMarkPlayed, TapEnded)
TapCommand = TapStart | TapStop | TapSend | TapMark | TapClear
TapEvent = TapStarted | TapFailed | TapAudio | TapMarkPlayed | TapEnded
