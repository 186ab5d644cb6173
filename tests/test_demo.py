"""`softswitch demo` (what `make demo` runs) finishes with status 0 and shows the whole call."""

from __future__ import annotations

import subprocess
import sys


def test_demo_shows_a_whole_call() -> None:
    out = subprocess.run([sys.executable, "-m", "switch", "demo"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    callbacks = [line.split()[3] for line in out.stdout.splitlines() if " callback " in line]
    assert callbacks == ["initiated", "ringing", "in-progress", "completed"]
    assert "signature=INVALID" not in out.stdout
    assert out.stdout.count("signature=valid") == 4
    assert "completed" in out.stdout.splitlines()[-1]
