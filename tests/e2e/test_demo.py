"""`softswitch demo` (what `make demo` runs): exits 0 having shown the whole scenario, its summary and pictures."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
STATUSES = ["initiated", "ringing", "in-progress", "completed"]
# "  11985 ms  callback  A  /status       completed    CallSid=CA.. ParentCallSid=- SequenceNumber=3  sig ok"
CALLBACK = re.compile(r"^\s*\d+ ms  callback  ([AB])  (/status|/agent-status)\s+(\S+)\s+CallSid=(\S+) "
                      r"ParentCallSid=(\S+)\s+SequenceNumber=(\d+)  (sig ok|sig INVALID|unsigned)$")
# "  A    CAa2820b7c8a0a1cb2992615924ee50f45  -             outbound-api   sip:customer@...  completed   11 s"
CALL_ROW = re.compile(r"^  ([AB])\s+(CA[0-9a-f]{32})\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\d+) s$")


def test_demo_shows_the_whole_scenario(tmp_path: Path) -> None:
    env = dict(os.environ, TMPDIR=str(tmp_path))  # the demo's output directory lands in tmp_path
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "switch", "demo"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=60)
    elapsed = time.monotonic() - started
    report = f"exit {out.returncode} after {elapsed:.1f} s\n{out.stdout}\n{out.stderr}"
    assert out.returncode == 0, report
    assert elapsed < 30, report
    lines = out.stdout.splitlines()

    rows = [m.groups() for line in lines if (m := CALL_ROW.match(line))]
    assert [(leg, status) for leg, *_, status, _duration in rows] == [("A", "completed"), ("B", "completed")], report
    (_, parent, no_parent, parent_dir, *_), (_, child, childs_parent, child_dir, *_) = rows
    assert no_parent == "-" and parent_dir == "outbound-api"
    assert parent.startswith(childs_parent.rstrip(".")) and child_dir == "outbound-dial"

    callbacks = [m.groups() for line in lines if (m := CALLBACK.match(line))]
    for path, sid, parent_sid in (("/status", parent, "-"), ("/agent-status", child, childs_parent)):
        mine = [c for c in callbacks if c[1] == path]
        assert [c[2] for c in mine] == STATUSES, report
        assert [c[5] for c in mine] == ["0", "1", "2", "3"], report
        assert all(sid.startswith(c[3].rstrip(".")) and c[4] == parent_sid for c in mine), report
    assert all(c[6] == "sig ok" for c in callbacks), report
    assert "sig INVALID" not in out.stdout and "FAIL" not in out.stdout

    assert re.search(r"channel 1: +600 Hz dominates .*: the caller, phone A", out.stdout), report
    assert re.search(r"channel 2: +1000 Hz dominates .*: the agent, phone B", out.stdout), report

    pictures = sorted({Path(p) for p in re.findall(r"(/\S+\.png)$", out.stdout, re.MULTILINE)})
    assert {p.name for p in pictures} >= {"timeline.png"} and len(pictures) == 2, report
    for picture in pictures:
        assert picture.is_relative_to(tmp_path), picture
        data = picture.read_bytes()
        assert data[:8] == PNG_SIGNATURE, picture
        assert len(data) > 10_000, (picture, len(data))
    assert lines[-1].startswith("softswitch demo: OK"), report
