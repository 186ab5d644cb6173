"""The conference bridge's clock, stopped while a worker holds nothing (issue 14, section 4: idle CPU per worker).

pjsua clocks its conference bridge with the null sound device (a master port and its thread, 50 ticks a second).
Measured on an idle worker (schedstat, 20 s): that thread took 0.30 % of a core, the pjsua loop 0.06 % and the
RTP thread 0.05 %.  pjsua's own auto-close (`sndAutoCloseTime`) cannot be used: it stops the clock when the bridge
has no connection, which a live call that only holds (a `<Pause>`) does not have, and that call's RTP would stop.

So the worker decides: the clock stops once the worker has held no leg, port, room, player, recording or tap for
`IDLE_S` seconds, and starts again before the worker acts on anything (each command, each incoming INVITE), so
no media exists while it is stopped.  Everything here runs on the pjsua thread.
"""

from __future__ import annotations

from collections.abc import Callable

from switch.worker.pjengine import pj

IDLE_S = 2.0  # with nothing held for this long, the clock stops


class MediaClock:
    """Starts and stops the null sound device of `ep` (running when made: `setNullDev` was called)."""

    def __init__(self, ep: pj.Endpoint, holds_media: Callable[[], bool], idle_s: float = IDLE_S) -> None:
        self._ep = ep
        self._holds_media = holds_media
        self._idle_s = idle_s
        self._quiet_since: float | None = None
        self.running = True

    def need(self) -> None:
        """Before the worker acts: the clock runs, and the quiet time starts again."""
        self._quiet_since = None
        if not self.running:
            self._ep.audDevManager().setNullDev()
            self.running = True

    def tick(self, now: float) -> None:
        """Each turn of the pjsua loop (`now`: monotonic seconds): stop the clock after `idle_s` of holding nothing."""
        if not self.running:
            return
        if self._holds_media():
            self._quiet_since = None
        elif self._quiet_since is None:
            self._quiet_since = now
        elif now - self._quiet_since >= self._idle_s:
            self._ep.audDevManager().setNoDev()
            self.running = False
