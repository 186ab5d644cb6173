"""Players stopped while pjmedia still has their end-of-file news queued do not crash the worker.

`tests.peers.player_churn` drives a real pjsua2 endpoint and the worker's own `MediaManager` through 1,500
players of a one-frame WAV (an EOF every tick), stopping them as fast as a loaded worker might.  pjsua2 2.17
calls a destroyed player back for an EOF that was queued before its destruction; the worker destroyed stopped
players at once, and this program then died with SIGSEGV in well under a second (4 runs of 4).  Players are now
retired first and destroyed half a second later (`switch.worker.media`, "Players are destroyed late").
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

CYCLES = 1500
ROOT = Path(__file__).resolve().parents[2]


def test_players_stopped_under_their_eofs_leave_the_worker_alive() -> None:
    run = subprocess.run([sys.executable, "-m", "tests.peers.player_churn", str(CYCLES)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"the churn died ({run.returncode}):\n{run.stderr[-2000:]}"
    result = json.loads(run.stdout.strip().splitlines()[-1])
    # every player ended exactly once (a late EOF of a stopped player reports nothing), none was left behind
    assert result["done"] == CYCLES and result["left"] == 0, result
    # some of the non-looping quarter ended by themselves: their EOFs still reach the owner thread
    assert 0 < result["eof"] <= CYCLES // 4, result
