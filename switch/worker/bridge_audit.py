"""A once-a-second check of the worker's media relations: every connection pjmedia should carry, and does.

A bridge between two legs is two conference connections (a -> b, b -> a); a recording channel is one (the leg's
port -> the channel's tap port).  `MediaManager` makes them, and makes them again on a leg's new port after a
media change.  Yet in rare test runs one such connection was missing for seconds with no error from pjmedia:
one party heard nothing, or one recording channel stayed silent, until a later re-INVITE re-made it.  The cause
is not known (pjmedia 2.17 applies connects and removals later, on its clock thread, and a port made and
dropped before that tick cancels the connects queued for its slot).  So the engine runs `BridgeAudit.check`
once a second: a connection found missing at two checks in a row, on the same two conference slots (a connect
just queued is not yet listed at the first), is made again and logged, so that a call never stays half silent
and the log says when it happened.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from switch.worker.pjengine import pj
from switch.worker.pjmedia import error_text

if TYPE_CHECKING:
    from switch.worker.media import MediaManager

log = logging.getLogger("switch.worker.media")

INTERVAL_S = 1.0


class BridgeAudit:
    """Finds and re-makes the connections of bridges and recording channels that pjmedia lost (module doc)."""

    def __init__(self, media: MediaManager) -> None:
        self.media = media
        self.repairs = 0
        self._suspects: set[tuple[str, int, int]] = set()

    def _expected(self) -> Iterator[tuple[str, Any, Any]]:
        """(what, source port, sink port) of every connection the media relations need now."""
        ports = self.media.ports
        for leg_id, peer in self.media.bridges.items():
            yield f"bridge {leg_id} -> {peer}", ports.get(leg_id), ports.get(peer)
        for rec in self.media.recordings.values():
            for index, source in enumerate(rec.sources):
                yield f"recording {rec.rec_id} channel {index + 1}", source, rec.ports[index]

    def check(self) -> int:
        """One check of every expected connection; returns how many were made again."""
        suspects: set[tuple[str, int, int]] = set()
        repaired = 0
        for what, source, sink in self._expected():
            if source is None or sink is None:
                continue
            try:
                key = (what, source.getPortId(), sink.getPortId())
                info = source.getPortInfo()  # kept while its listeners are read: SWIG's vector points into it
                if key[2] in list(info.listeners):
                    continue
            except pj.Error:  # a port pjsua is removing: its leg's next media state brings the new one
                continue
            if key not in self._suspects:
                suspects.add(key)
                continue
            log.warning("%s: conference connection %d -> %d missing for a second; made again", what, key[1], key[2])
            try:
                source.startTransmit(sink)
                repaired += 1
            except pj.Error as exc:
                log.warning("%s: cannot connect again: %s", what, error_text(exc))
        self._suspects = suspects
        self.repairs += repaired
        return repaired
