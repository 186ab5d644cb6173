"""The command line as a user runs it: `python -m switch`, generated credentials, SIGTERM with a live call."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.peers.harness import SwitchProcess, WebhookSink, free_port_block, free_tcp_port, wait_until
from tests.peers.sipp_peer import SippPeer


def test_help_lists_the_commands() -> None:
    out = subprocess.run([sys.executable, "-m", "switch", "--help"], capture_output=True, text=True, check=True)
    for command in ("serve", "bench", "demo"):
        assert command in out.stdout


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nsip = 'nonsense'\n")
    out = subprocess.run([sys.executable, "-m", "switch", "serve", "--config", str(bad)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "server.sip: expected HOST:PORT" in out.stderr


def _serve_once(data: Path) -> tuple[str, str]:
    """Start `softswitch serve` on `data`, stop it; the account SID and the token line of its banner."""
    http, sip = free_tcp_port(), free_port_block(1)
    proc = subprocess.Popen(
        [sys.executable, "-m", "switch", "serve", "--data-dir", str(data), "--http", f"127.0.0.1:{http}",
         "--sip", f"127.0.0.1:{sip}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={k: v for k, v in __import__("os").environ.items() if not k.startswith("SOFTSWITCH_")})
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 30  # the switch prints its credentials as the last start-up line
    while not lines or ("auth token" not in lines[-1] and lines[-1] and time.monotonic() < deadline):
        lines.append(proc.stdout.readline())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    text = "".join(lines)
    sid = re.search(r"account SID (AC[0-9a-f]{32})", text)
    token = re.search(r"auth token  (.*)", text)
    assert sid and token, text
    return sid.group(1), token.group(1)


def test_credentials_are_generated_once_and_kept(tmp_path: Path) -> None:
    sid, token = _serve_once(tmp_path)
    saved = json.loads((tmp_path / "credentials.json").read_text())
    assert (saved["account_sid"], saved["auth_token"]) == (sid, token)
    assert re.fullmatch(r"[0-9a-f]{32}", token)
    assert (tmp_path / "credentials.json").stat().st_mode & 0o777 == 0o600
    # the token is shown by the start that made it only
    assert _serve_once(tmp_path) == (sid, f"(not shown: from {tmp_path / 'credentials.json'})")


def test_sigterm_ends_live_calls_with_callbacks(tmp_path: Path) -> None:
    sink = WebhookSink().start()
    switch = SwitchProcess(tmp_path, workers=1).start()
    try:
        with SippPeer("uas_answer.xml", timeout=20) as far:
            sid = switch.client().calls.create(
                to=f"sip:bob@{far.uri_host}", from_="+15550199", url=sink.url("/v"),
                status_callback=sink.url("/status"),
                status_callback_event=["initiated", "ringing", "answered", "completed"]).sid
            sink.wait_statuses("/status", sid, 3)
            assert switch.stop(signal.SIGTERM) == 0
            assert far.wait_sync(10) == 0, far.describe()
        assert far.methods_received() == ["INVITE", "ACK", "BYE"]
        hooks = sink.wait_statuses("/status", sid, 4)
        assert [h.params["CallStatus"] for h in hooks] == ["initiated", "ringing", "in-progress", "completed"]
        switch.start()
        wait_until(lambda: switch.client().calls(sid).fetch().status == "completed", what="stored status")
    finally:
        switch.stop()
        sink.stop()
