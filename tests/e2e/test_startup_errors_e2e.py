"""`softswitch serve` as a user runs it with a mistake: one line on stderr, exit status 2, no traceback; and the
log options every subcommand takes, with each line about a call carrying its CallSid."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.peers.harness import SwitchProcess, WebhookSink, free_port_block, free_tcp_port
from tests.peers.sipp_peer import SippPeer


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "switch", "serve", *args], capture_output=True, text=True,
                          timeout=30, env=env, stdin=subprocess.DEVNULL)


def _addresses() -> list[str]:
    return ["--http", f"127.0.0.1:{free_tcp_port()}", "--sip", f"127.0.0.1:{free_port_block(2)}"]


def _one_line_failure(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]


@pytest.mark.parametrize(("text", "message"), [
    ('htttp = "127.0.0.1:8080"\n', "unknown key htttp (did you mean server.http, under [server]?)"),
    ('[sever]\nhttp = "127.0.0.1:8080"\n', "unknown table [sever] (did you mean [server]?)"),
    ('[server]\nworkers = "two"\n', "server.workers must be \"auto\" or a whole number, not 'two'"),
    ('[[trunks]]\nuri = "sip:a"\nprefix = ["+1"]\n',
     "unknown key trunks[0].prefix (did you mean trunks[0].prefixes?)"),
    ('[[numbers]]\nnumber = "+15550100"\nvoice_uri = "http://x"\n',
     "unknown key numbers[0].voice_uri (did you mean numbers[0].voice_url?)"),
    ('[[numbers]]\nnumber = "+15550100"\nvoice_url = "localhost/voice"\n',
     "numbers[0].voice_url must be an absolute http:// or https:// URL, not 'localhost/voice'"),
    ("[server\n", None),
])
def test_a_broken_config_is_one_line(tmp_path: Path, text: str, message: str | None) -> None:
    path = tmp_path / "softswitch.toml"
    path.write_text(text)
    line = _one_line_failure(_serve("--config", str(path), "-v"))  # -v after the subcommand is accepted
    prefix = f"softswitch: configuration error: {path}: "
    assert line.startswith(prefix)
    if message is not None:
        assert line == prefix + message
    else:  # TOML's own words, with the place
        assert line.endswith("(at line 1, column 8)")


def test_http_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = _serve("--data-dir", str(tmp_path), "--http", f"127.0.0.1:{port}", "--sip",
                     f"127.0.0.1:{free_port_block(2)}")
    assert _one_line_failure(out) == (f"softswitch: cannot start: HTTP port 127.0.0.1:{port}/TCP is already in use "
                                      "(another softswitch, or another server?)")


@pytest.mark.parametrize("edge", [True, False])
def test_sip_port_in_use(tmp_path: Path, edge: bool) -> None:
    config = tmp_path / "softswitch.toml"
    config.write_text(f"[edge]\nenabled = {str(edge).lower()}\n")
    sip = free_port_block(2)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", sip))
        out = _serve("--config", str(config), "--data-dir", str(tmp_path / "var"), "--http",
                     f"127.0.0.1:{free_tcp_port()}", "--sip", f"127.0.0.1:{sip}")
    assert _one_line_failure(out) == (f"softswitch: cannot start: SIP port 127.0.0.1:{sip}/UDP is already in use "
                                      "(another softswitch, or another server?)")


def test_data_dir_unusable(tmp_path: Path) -> None:
    afile = tmp_path / "var"
    afile.write_text("not a directory")
    out = _serve("--data-dir", str(afile / "sub"), *_addresses())
    assert _one_line_failure(out) == (f"softswitch: cannot start: data dir {afile / 'sub'} is not usable: not a "
                                      "directory (set --data-dir or [server] data_dir)")


def test_missing_espeak_ng(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SOFTSWITCH_NO_SPEECH"}
    env["PATH"] = str(tmp_path)  # no espeak-ng on it (Kamailio is still found in /usr/sbin)
    out = _serve("--data-dir", str(tmp_path / "var"), *_addresses(), env=env)
    assert _one_line_failure(out) == ("softswitch: cannot start: <Say> needs espeak-ng: `apt-get install espeak-ng` "
                                      "(make does it), or set SOFTSWITCH_NO_SPEECH=1 to start without speech")


@pytest.mark.parametrize("argv", [["serve", "--log-level", "debug", "--help"], ["serve", "-q", "--help"],
                                  ["bench", "--log-format", "json", "--help"], ["demo", "-v", "--help"],
                                  ["--log-level", "warning", "serve", "--help"]])
def test_log_options_on_every_subcommand(argv: list[str]) -> None:
    out = subprocess.run([sys.executable, "-m", "switch", *argv], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "--log-level" in out.stdout and "--log-format" in out.stdout


def test_bad_flag_value_is_argparse_usage_not_traceback() -> None:
    out = _serve("--pj-log-level", "9")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert out.stderr.splitlines()[-1] == \
        "softswitch serve: error: argument --pj-log-level: invalid choice: 9 (choose from 0, 1, 2, 3, 4, 5, 6)"


def test_a_calls_log_lines_carry_its_call_sid(tmp_path: Path) -> None:
    sink = WebhookSink().start()
    switch = SwitchProcess(tmp_path, workers=1, args=["--log-format", "json", "--log-level", "debug"]).start()
    try:
        url = sink.twiml("/v", "<Response><Pause length=\"1\"/><Hangup/></Response>")
        with SippPeer("uas_answer.xml", timeout=20) as far:
            sid = switch.client().calls.create(to=f"sip:bob@{far.uri_host}", from_="+15550199", url=url,
                                               status_callback=sink.url("/status")).sid
            sink.wait_for(lambda hooks: "completed" in sink.statuses("/status", sid), timeout=15)
            far.wait_sync(10)
    finally:
        switch.stop()
        sink.stop()
    lines = [json.loads(line) for line in switch.log().splitlines() if line.startswith("{")]
    about = [line for line in lines if sid in line["message"] or line.get("call_sid") == sid]
    assert about, switch.log()
    assert all(line.get("call_sid") == sid for line in about), [ln for ln in about if ln.get("call_sid") != sid]
    # the worker's events for the call (debug lines naming only the worker and the leg) carry it too
    events = [line["message"].split()[2] for line in lines if line.get("call_sid") == sid
              and line["message"].startswith("worker 0: ")]
    assert events == ["InviteSent", "Progress", "MediaReady", "Answered", "Ended"], events
    statuses = [line["message"].split(" -> ")[1] for line in about if " -> " in line["message"]]
    assert statuses == ["initiated", "ringing (SIP 180)", "in-progress (SIP 200)", "completed (SIP 200)"]
    # the media worker logs in the same format, each line saying which worker it comes from
    assert [line for line in lines if line.get("worker") == 0], switch.log()
    assert not [line for line in switch.log().splitlines() if line.startswith("worker0 ")]
