"""A worker's players started and stopped faster than pjmedia can tell them apart (run as a program).

`python -m tests.peers.player_churn CYCLES` runs a real pjsua2 endpoint (null sound device, no SIP) and a real
`switch.worker.media.MediaManager` with one leg whose port is the sound device's.  Each cycle starts a looping
player of a one-frame WAV (so it reaches its end, and pjmedia posts an EOF, on every 20 ms tick) and stops the
oldest once `LIVE` play at once; every fourth player does not loop, and may end by itself.  The pjsua thread
stays busy in Python between cycles, as a loaded worker is, so the EOFs queue up in pjmedia's event thread.

pjsua2 2.17 destroys a player without withdrawing its EOF callback (see `switch.worker.media`): a worker that
destroyed stopped players at once died here with SIGSEGV within a few hundred cycles.  The program prints one
JSON line (what was played and reported) and exits 0, or dies.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import wave
from pathlib import Path

from switch.worker.media import MediaManager, PlayerEof
from switch.worker.pjengine import pj
from switch.worker.pjmedia import endpoint_config
from switch.workers.protocol import PlayDone

LIVE = 6
LEG = "leg0"


def main(cycles: int) -> int:
    ep = pj.Endpoint()
    ep.libCreate()
    ep.libInit(endpoint_config("player-churn", 1))
    ep.audDevManager().setNullDev()
    ep.libStart()
    events: list[object] = []
    eofs: list[PlayerEof] = []
    media = MediaManager(events.append, lambda work: eofs.append(work))  # type: ignore[arg-type]
    media.set_port(LEG, ep.audDevManager().getPlaybackDevMedia())
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "frame.wav")
        with wave.open(path, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(8000)
            out.writeframes(b"\x10\x00" * 160)  # 20 ms
        started = time.monotonic()
        for cycle in range(cycles):
            media.play(f"p{cycle}", LEG, path, cycle % 4 != 0)
            ep.libHandleEvents(cycle % 7)
            sum(i * i for i in range(3000))  # the pjsua thread holds the GIL a while, as a busy worker does
            while eofs:
                media.stop_play(eofs.pop(0).id, "eof")
            while len(media.players) > LIVE:
                media.stop_play(next(iter(media.players)))
            if media.retired:
                media.reap()
        media.close_all()
        done = [e for e in events if isinstance(e, PlayDone)]
        print(json.dumps({"cycles": cycles, "done": len(done), "eof": sum(d.reason == "eof" for d in done),
                          "left": len(media.players) + len(media.retired),
                          "seconds": round(time.monotonic() - started, 1)}), flush=True)
    os._exit(0)  # the library's own teardown is not what this checks


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
