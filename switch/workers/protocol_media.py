"""The media messages of the worker protocol (players, recordings, bridges): commands and their answers.

Part of `switch.workers.protocol`, which re-exports every name here and documents the protocol as a whole.
"""

from __future__ import annotations

from switch.workers.protocol_base import Command, Event

# -- commands: media ----------------------------------------------------------------------------------


class Play(Command, tag="play", frozen=True, kw_only=True):
    """Play the bridge-rate WAV `path` to `leg` (forever if `loop`).  Answered by `PlayDone` when it ends (eof,
    stopped, hangup, shutdown) or `PlayFailed` (no audio on the leg, a file pjmedia cannot open)."""

    id: str
    leg: str
    path: str
    loop: bool = False


class StopPlay(Command, tag="stop_play", frozen=True, kw_only=True):
    """Stop player `id` at once; its `PlayDone` (reason `stopped`) follows.  An unknown id already ended."""

    id: str


class Record(Command, tag="record", frozen=True, kw_only=True):
    """Tap `legs` into sample-aligned raw files `<base>.leg<i>.raw` (channel i hears what leg i sends).

    `slots` reserves channels for legs attached later (`RecordAttach`).  `mirror` (leg, channel) puts on that
    channel what the switch sends to the leg.  `level_ms` > 0 asks for a `TapLevel` of channel 0 every
    `level_ms` milliseconds (rounded to whole 20 ms frames).  Answered by `RecordDone` when the recording
    ends, or by `RecordFailed` if the tap could not start."""

    id: str
    base: str
    legs: tuple[str, ...] = ()
    slots: int = 0
    mirror: tuple[str, int] | None = None
    level_ms: int = 0


class RecordAttach(Command, tag="record_attach", frozen=True, kw_only=True):
    """Feed channel `index` of recording `id` from `leg` from now on: `RecordAttached` or `RecordAttachFailed`."""

    id: str
    index: int
    leg: str


class PauseRecord(Command, tag="pause_record", frozen=True, kw_only=True):
    """Pause (`paused`) or resume recording `id`.  A pause writes silence, so the files keep the call's time line;
    with `skip` it writes nothing and the files close up over it (Twilio's PauseBehavior=skip).  Either way the
    channels stay aligned with each other."""

    id: str
    paused: bool
    skip: bool = False


class StopRecord(Command, tag="stop_record", frozen=True, kw_only=True):
    """Stop recording `id`: its files are closed and its `RecordDone` (reason `stopped`) follows."""

    id: str


class Bridge(Command, tag="bridge", frozen=True, kw_only=True):
    """Connect the audio of legs `a` and `b` both ways (and relay RFC 2833 between them): `Bridged` or
    `BridgeFailed`, both carrying `id`."""

    id: str
    a: str
    b: str


class Unbridge(Command, tag="unbridge", frozen=True, kw_only=True):
    """Disconnect leg `a` from whatever it is bridged to (nothing if it is not bridged)."""

    a: str


# -- events: media ------------------------------------------------------------------------------------------


class PlayDone(Event, tag="play_done", frozen=True, kw_only=True):
    """Player `id` on `leg` ended: `reason` is eof, stopped, hangup or shutdown."""

    id: str
    leg: str
    reason: str


class PlayFailed(Event, tag="play_failed", frozen=True, kw_only=True):
    """Player `id` could not start (`error` says why); nothing was played."""

    id: str
    leg: str
    error: str


class RecordDone(Event, tag="record_done", frozen=True, kw_only=True):
    """Recording `id` ended (`reason`: stopped, hangup, shutdown; `worker_lost` is made by the control plane
    when the worker died): `frames` 20 ms frames per channel reached the files; `lost_frames` could not be
    written (a write error), so those ticks hold whatever the file had there (zeros)."""

    id: str
    frames: int
    reason: str
    lost_frames: int = 0


class RecordFailed(Event, tag="record_failed", frozen=True, kw_only=True):
    """Recording `id` could not start (a leg without audio, a file that cannot be created): nothing is tapped."""

    id: str
    error: str


RecordResult = RecordDone | RecordFailed
"""How a recording ends, as the control plane awaits it."""


class RecordAttached(Event, tag="record_attached", frozen=True, kw_only=True):
    """Channel `index` of recording `id` is fed from `leg` from now on."""

    id: str
    index: int
    leg: str


class RecordAttachFailed(Event, tag="record_attach_failed", frozen=True, kw_only=True):
    """Channel `index` of recording `id` could not be fed from `leg` (no audio, no such recording or channel)."""

    id: str
    index: int
    leg: str
    error: str


class TapLevel(Event, tag="tap_level", frozen=True, kw_only=True):
    """The RMS (16-bit sample units) of channel 0 of recording `id` over the last `Record.level_ms`."""

    id: str
    rms: float
    t: float


class Bridged(Event, tag="bridged", frozen=True, kw_only=True):
    """Bridge `id`: legs `a` and `b` hear each other."""

    id: str
    a: str
    b: str


class BridgeFailed(Event, tag="bridge_failed", frozen=True, kw_only=True):
    """Bridge `id` of legs `a` and `b` could not be made (`error` says why); nothing is connected."""

    id: str
    a: str
    b: str
    error: str
