"""sipp for `softswitch bench`: UAC load runs (sipp's built-in `uac` or the bench's own tracing scenario),
the built-in `uas` as a far end, and the parsing of sipp's screen dumps and `-trace_msg` message logs.

Every sipp gets `-timeout` and is killed if it overstays.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from switch.tools.bench.common import HOST, NUMBER, SIPP, Json, free_port_block, port_free, stop_process, wait_until

_SCREEN_RE = {
    "successful": re.compile(r"^\s*Successful call\s*\|\s*\d+\s*\|\s*(\d+)", re.M),
    "failed": re.compile(r"^\s*Failed call\s*\|\s*\d+\s*\|\s*(\d+)", re.M),
    "created": re.compile(r"^\s*Outgoing calls created\s*\|\s*\d+\s*\|\s*(\d+)", re.M),
    "cps": re.compile(r"^\s*Call Rate\s*\|\s*[\d.]+ cps\s*\|\s*([\d.]+) cps", re.M),
}
_LAST_ERROR_RE = re.compile(r"^Last Error: (.*)$", re.M)
_UNEXPECTED_RE = re.compile(r"while expecting '([^']*)'[^,]*, received '([^\r\n']*)")


@dataclass
class SippRun:
    """What one sipp `uac` run reported (from its `-trace_screen` file and exit status)."""

    offered_cps: float
    calls: int
    hold_ms: int
    successful: int = 0
    failed: int = 0
    achieved_cps: float = 0.0
    returncode: int | None = None
    seconds: float = 0.0
    last_error: str = ""
    message_log: Path | None = None

    @property
    def clean(self) -> bool:
        return self.failed == 0 and self.successful == self.calls

    def as_json(self) -> Json:
        return {"offered_cps": self.offered_cps, "achieved_cps": self.achieved_cps, "calls": self.calls,
                "hold_ms": self.hold_ms, "successful": self.successful, "failed": self.failed,
                "sipp_exit": self.returncode, "seconds": round(self.seconds, 2),
                "last_error": self.last_error}


def combine_runs(runs: list[SippRun]) -> SippRun:
    """Several sipp runs at once (one per worker) as one: counts and rates added up."""
    if len(runs) == 1:
        return runs[0]
    total = SippRun(offered_cps=sum(r.offered_cps for r in runs), calls=sum(r.calls for r in runs),
                    hold_ms=runs[0].hold_ms, successful=sum(r.successful for r in runs),
                    failed=sum(r.failed for r in runs), achieved_cps=round(sum(r.achieved_cps for r in runs), 3),
                    seconds=max(r.seconds for r in runs))
    codes = [r.returncode for r in runs]
    total.returncode = max((c for c in codes if c is not None), default=None)
    total.last_error = "; ".join(r.last_error for r in runs if r.last_error)[:500]
    return total


def _parse_screen(run: SippRun, text: str) -> None:
    """Fill `run` from the last cumulative counters of a sipp screen dump."""
    found: dict[str, str] = {}
    for key, pattern in _SCREEN_RE.items():
        matches = pattern.findall(text)
        if matches:
            found[key] = matches[-1]
    run.successful = int(found.get("successful", 0))
    run.failed = int(found.get("failed", 0))
    run.achieved_cps = float(found.get("cps", 0.0))
    errors = [e.strip() for e in _LAST_ERROR_RE.findall(text) if "epoll" not in e]  # epoll: sipp noise
    run.last_error = errors[-1] if errors else ""


def error_summary(text: str, limit: int = 4) -> str:
    """What sipp's `-trace_err` log says went wrong, counted by kind: `3x got 'SIP/2.0 486 Busy Here' while
    expecting 200`."""
    kinds: dict[str, int] = {}
    for expected, received in _UNEXPECTED_RE.findall(text):
        kind = f"got {received.strip()[:60]!r} while expecting {expected}"
        kinds[kind] = kinds.get(kind, 0) + 1
    for line in text.splitlines():
        if ("Aborting call" in line and "unexpected" not in line) or "timeout" in line.lower():
            kind = re.sub(r"'[^']*'|\d+", "#", line.split(": ", 1)[-1])[:100]
            kinds[kind] = kinds.get(kind, 0) + 1
    top = sorted(kinds.items(), key=lambda kv: -kv[1])[:limit]
    return "; ".join(f"{n}x {kind}" for kind, n in top)


_UAC_SDP = """      v=0
      o=sipp 2000 1 IN IP[media_ip_type] [media_ip]
      s=softswitch-bench
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15
      a=ptime:20
      a=sendrecv
"""


def uac_scenario(prefix: str, *, sdp: str = _UAC_SDP, after_ack: str = "",
                 name: str = "softswitch bench uac") -> str:
    """A UAC scenario like sipp's built-in `uac` (INVITE, optional 100/180/183, 200, ACK, hold `-d`, BYE),
    but with a From user unique per call (`<prefix><call number>`), so that each call can be found in
    the message logs of both ends: the switch's `<Dial>` child and the bare B2BUA's outgoing call both carry
    the caller's user in their From.  A provisional response may come after the 200 (a proxy in between, such
    as the SIP edge, relays responses from several processes): the INVITE starts a sipp transaction
    (`start_txn`, `response_txn`, `ack_txn`), so a late 1xx of it is ignored wherever the call is.  (An
    `optional="global"` recv would instead send the call back to wait for a second 200 that never comes.)
    `sdp` is the INVITE's offer (PCMU and telephone-event at `-mp`); `after_ack`, scenario lines run after the
    ACK (`switch.tools.bench.rtp_sipp` starts its RTP stream there)."""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="{name}">
  <send retrans="500" start_txn="invite">
    <![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "bench" <sip:{prefix}[call_number]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:{prefix}[call_number]@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      User-Agent: softswitch-bench-sipp
      Content-Type: application/sdp
      Content-Length: [len]

{sdp}
    ]]>
  </send>
  <recv response="100" optional="true" response_txn="invite" />
  <recv response="180" optional="true" response_txn="invite" />
  <recv response="183" optional="true" response_txn="invite" />
  <recv response="200" rrs="true" rtd="true" response_txn="invite" />
  <send ack_txn="invite">
    <![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: "bench" <sip:{prefix}[call_number]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: <sip:{prefix}[call_number]@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
{after_ack}  <pause/>
  <send retrans="500">
    <![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: "bench" <sip:{prefix}[call_number]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: <sip:{prefix}[call_number]@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true" />
</scenario>
"""


async def run_sipp_uac(target: str, calls: int, rate: float, hold_ms: int, workdir: Path, tag: str, *,
                       service: str = NUMBER, from_prefix: str | None = None, trace: bool = False,
                       scenario_text: str | None = None, extra_args: tuple[str, ...] = ()) -> SippRun:
    """sipp calling `service@target` `calls` times at `rate`/s, each held `hold_ms`.

    Without `from_prefix` it is sipp's built-in `uac`; with it, :func:`uac_scenario` (From user
    `<from_prefix><n>`); `scenario_text` is a scenario of the caller's own (it wins over both).  `trace` writes
    sipp's `-trace_msg` message log (see `SippRun.message_log`); `extra_args` go on sipp's command line.
    """
    port, media = free_port_block(1), free_port_block(4)
    screen = workdir / f"{tag}-screen.log"
    errors = workdir / f"{tag}-errors.log"
    budget = calls / rate + hold_ms / 1000 + 15
    scenario = ["-sn", "uac"]
    if from_prefix is not None or scenario_text is not None:
        path = workdir / f"{tag}-uac.xml"
        path.write_text(scenario_text if scenario_text is not None else uac_scenario(from_prefix or "bench"))
        scenario = ["-sf", str(path)]
    args = [SIPP, *scenario, "-s", service, "-i", HOST, "-p", str(port), "-mp", str(media),
            "-r", f"{rate:g}", "-m", str(calls), "-d", str(hold_ms), "-l", "1000",
            "-recv_timeout", "5000", "-timeout", f"{int(budget)}s", "-timeout_error",
            "-trace_screen", "-screen_file", str(screen), "-trace_err", "-error_file", str(errors), *extra_args]
    run = SippRun(offered_cps=rate, calls=calls, hold_ms=hold_ms)
    if trace:
        run.message_log = workdir / f"{tag}-messages.log"
        args += ["-trace_msg", "-message_file", str(run.message_log)]
    started = time.monotonic()
    with open(workdir / f"{tag}-sipp.err", "wb") as err:
        proc = await asyncio.create_subprocess_exec(*args, target, stdin=subprocess.DEVNULL,
                                                    stdout=subprocess.DEVNULL, stderr=err)
        try:
            await asyncio.wait_for(proc.wait(), budget + 10)
        except TimeoutError:
            await stop_process(proc, signal.SIGKILL, 2)
        finally:
            if proc.returncode is None:  # cancelled: do not leave sipp running
                proc.kill()
    run.seconds = time.monotonic() - started
    run.returncode = proc.returncode
    if screen.exists():
        _parse_screen(run, screen.read_text(errors="replace"))
    if run.failed and errors.exists():
        run.last_error = error_summary(errors.read_text(errors="replace")) or run.last_error
    if not run.last_error and run.returncode not in (0, 1):
        run.last_error = (workdir / f"{tag}-sipp.err").read_text(errors="replace").strip()[-300:]
    return run


@dataclass
class SippUas:
    """sipp's built-in `uas` (180 then 200 at once, waits for the BYE) for `calls` calls, or the scenario in the
    file `scenario`."""

    workdir: Path
    tag: str
    calls: int
    trace: bool = False
    scenario: Path | None = None
    port: int = 0
    proc: asyncio.subprocess.Process | None = None

    @property
    def message_log(self) -> Path:
        return self.workdir / f"{self.tag}-messages.log"

    @property
    def uri(self) -> str:
        return f"sip:bench@{HOST}:{self.port}"

    async def start(self, budget: float) -> SippUas:
        self.port = free_port_block(1)
        media = free_port_block(4)
        which = ["-sn", "uas"] if self.scenario is None else ["-sf", str(self.scenario)]
        args = [SIPP, *which, "-i", HOST, "-p", str(self.port), "-mp", str(media),
                "-m", str(self.calls), "-timeout", f"{int(budget)}s"]
        if self.trace:
            args += ["-trace_msg", "-message_file", str(self.message_log)]
        self.proc = await asyncio.create_subprocess_exec(*args, stdin=subprocess.DEVNULL,
                                                         stdout=subprocess.DEVNULL,
                                                         stderr=subprocess.DEVNULL)
        if not await wait_until(lambda: not port_free(self.port), 5.0):
            raise RuntimeError(f"sipp uas did not bind {HOST}:{self.port}")
        return self

    async def finish(self, timeout: float) -> int:
        """Wait for sipp to exit on its own (its `-m` calls done), then make it (SIGUSR1 = quit)."""
        assert self.proc is not None
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            await stop_process(self.proc, signal.SIGUSR1, 2.0)
        return await stop_process(self.proc, signal.SIGKILL, 1.0)

    async def kill(self) -> None:
        """Make sure sipp is gone (a no-op once `finish` has run)."""
        if self.proc is not None and self.proc.returncode is None:
            await stop_process(self.proc, signal.SIGKILL, 1.0)


# -- message logs --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SipMessage:
    """One message from a sipp `-trace_msg` log."""

    t: float
    sent: bool
    first_line: str
    call_id: str
    cseq_method: str
    from_user: str


_STAMP_RE = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6})$")
_FROM_USER_RE = re.compile(r"sips?:([^@;>\s]+)@")


def parse_sipp_messages(text: str) -> list[SipMessage]:
    """Parse sipp's message log: a dashed line with a local-time, microsecond stamp before each message."""
    messages: list[SipMessage] = []
    blocks: list[tuple[float, list[str]]] = []
    for line in text.splitlines():
        stamp = _STAMP_RE.match(line)
        if stamp:
            when = dt.datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
            blocks.append((when, []))
        elif blocks:
            blocks[-1][1].append(line)
    for when, lines in blocks:
        content = [ln for ln in lines if ln.strip()]
        if len(content) < 2:
            continue
        headers: dict[str, str] = {}
        for line in content[2:]:
            name, sep, value = line.partition(":")
            if sep and name.strip().lower() not in headers:
                headers[name.strip().lower()] = value.strip()
        user = _FROM_USER_RE.search(headers.get("from", headers.get("f", "")))
        messages.append(SipMessage(t=when, sent=" sent" in content[0], first_line=content[1].strip(),
                                   call_id=headers.get("call-id", headers.get("i", "")),
                                   cseq_method=headers.get("cseq", "").split(" ")[-1],
                                   from_user=user.group(1) if user else ""))
    return messages


def read_messages(path: Path | None) -> list[SipMessage]:
    """The messages of a sipp message log, or [] when there is none."""
    if path is None or not path.exists():
        return []
    return parse_sipp_messages(path.read_text(errors="replace"))


@dataclass
class PeerTimes:
    """Per call, when the peer (sipp uas) saw or sent each message of interest (wall clock, s)."""

    invite_in: float | None = None
    ringing_out: float | None = None
    ok_out: float | None = None
    bye_ok_out: float | None = None


def peer_times(messages: list[SipMessage]) -> dict[str, PeerTimes]:
    """From user -> first INVITE in, first 180 out, first 200/INVITE out, first 200/BYE out."""
    by_user: dict[str, PeerTimes] = {}
    for msg in messages:
        times = by_user.setdefault(msg.from_user, PeerTimes())
        if not msg.sent and msg.first_line.startswith("INVITE ") and times.invite_in is None:
            times.invite_in = msg.t
        elif msg.sent and msg.first_line.startswith("SIP/2.0 180") and times.ringing_out is None:
            times.ringing_out = msg.t
        elif msg.sent and msg.first_line.startswith("SIP/2.0 200") and msg.cseq_method == "INVITE":
            times.ok_out = times.ok_out or msg.t
        elif msg.sent and msg.first_line.startswith("SIP/2.0 200") and msg.cseq_method == "BYE":
            times.bye_ok_out = times.bye_ok_out or msg.t
    return by_user


@dataclass
class CallerTimes:
    """Per call, when the caller (sipp uac) sent its INVITE and got the first 180 and the 200 (wall clock, s)."""

    invite_out: float | None = None
    ringing_in: float | None = None
    ok_in: float | None = None


def caller_times(messages: list[SipMessage]) -> dict[str, CallerTimes]:
    """From user -> first INVITE sent, first 180 and first 200/INVITE received."""
    by_user: dict[str, CallerTimes] = {}
    for msg in messages:
        times = by_user.setdefault(msg.from_user, CallerTimes())
        if msg.sent and msg.first_line.startswith("INVITE ") and times.invite_out is None:
            times.invite_out = msg.t
        elif not msg.sent and msg.first_line.startswith("SIP/2.0 180") and times.ringing_in is None:
            times.ringing_in = msg.t
        elif not msg.sent and msg.first_line.startswith("SIP/2.0 200") and msg.cseq_method == "INVITE":
            times.ok_in = times.ok_in or msg.t
    return by_user
