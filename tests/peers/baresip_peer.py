"""baresip as a far end in tests: an independent SIP stack (libre/baresip, not PJSIP) on 127.0.0.1.

It answers at once (or dials `dial` at start), sends a sine tone (`ausine`) and keeps what it hears: the
`sndfile` filter writes the decoded audio of each call to ``dump-*-dec.wav`` in its directory.  No sound
device is used (`aubridge` stands in for the player).  It quits by itself after `seconds`.

With ``domain`` it registers as ``sip:USER@DOMAIN`` (baresip 1.0's account line: ``auth_pass``, ``regint``, and
``outbound="sip:127.0.0.1:PORT"``, the proxy every request goes through, REGISTER and calls alike, since a lab
domain resolves nowhere); its registration state is read from its output::

    with BaresipPeer(tmp / "alice", user="alice", domain="acme.sip.localhost", password="pw",
                     outbound=f"sip:{registrar.uri_host}") as alice:
        alice.wait_registered(timeout=5)       # RegistrationFailed (code, reason) if refused
        assert alice.registration() == ("registered", 200)
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

from switch.tools.ports import free_port_block

BARESIP = "baresip"
MODULES = "/usr/lib/baresip/modules"

RegState = Literal["none", "registered", "failed"]
# baresip 1.0's lines about a registration (account AoR first):
#   "alice@acme.sip.localhost: {0/UDP/v4} 200 OK (sipp) [1 binding]"   (ua.c, on every 2xx)
#   "reg: sip:alice@acme.sip.localhost: 403 Forbidden (sipp)"            (reg.c, on a final failure)
#   "reg: sip:alice@acme.sip.localhost: Register: Connection timed out"  (reg.c, no answer, or a transport error)
_REG_OK_RE = re.compile(r"\{\d+/\w+/v\d\} (2\d\d) ([^\n(\[]*)")
_REG_FAIL_RE = re.compile(r"reg: \S+: (?:(\d{3}) ([^\n(]*)|Register: ([^\n]*))")


class RegistrationFailed(AssertionError):
    """baresip reported a failed registration: ``code`` (0 when no answer came) and ``reason``."""

    def __init__(self, code: int, reason: str, log: str) -> None:
        super().__init__(f"baresip registration failed: {code} {reason}\n{log[-3000:]}")
        self.code = code
        self.reason = reason


@dataclass
class BaresipPeer:
    """One baresip process, configured in `workdir`; use as a context manager."""

    workdir: Path
    user: str = "bot"
    tone: int = 440  # Hz, sent as soon as a call is up
    codec: str = "PCMU"  # the only audio codec it offers and accepts
    dial: str | None = None  # a SIP URI to call at start
    seconds: int = 30
    port: int = 0
    cafile: Path | None = None  # a PEM file of the certificates it trusts for SIP over TLS
    domain: str | None = None  # register as sip:USER@DOMAIN (else no registration)
    password: str | None = None  # auth_pass: digest password (for REGISTER and calls: 401/407)
    outbound: str | None = None  # outbound proxy for every request, e.g. "sip:127.0.0.1:5060"
    regint: int = 60  # REGISTER expires (baresip refreshes at about half of it)
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def uri(self) -> str:
        """Where it takes calls directly (its own address), registered or not."""
        return f"sip:{self.user}@127.0.0.1:{self.port}"

    @property
    def aor(self) -> str:
        """Its address of record: ``sip:USER@DOMAIN`` when registering, else :attr:`uri`."""
        return f"sip:{self.user}@{self.domain}" if self.domain else self.uri

    @property
    def log_path(self) -> Path:
        return self.workdir / "baresip.log"

    def _configure(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port_block(1)
        rtp = free_port_block(20)
        config = {
            "poll_method": "epoll",
            "sip_listen": f"127.0.0.1:{self.port}",
            "sip_trans_def": "udp",
            "audio_player": "aubridge,nil",
            "audio_alert": "aubridge,nil",
            "audio_source": f"ausine,{self.tone}",
            "ausrc_srate": "48000",  # ausine makes 48 kHz stereo only
            "ausrc_channels": "2",
            "auplay_srate": "8000",
            "auplay_channels": "1",
            "rtp_ports": f"{rtp}-{rtp + 19}",
            "module_path": MODULES,
            "snd_path": str(self.workdir),
        }
        if self.cafile is not None:
            config["sip_cafile"] = str(self.cafile)
        lines = [f"{key}\t{value}" for key, value in config.items()]
        lines += [f"module\t{m}" for m in ("g711.so", "ausine.so", "aubridge.so", "sndfile.so")]
        lines += [f"module_app\t{m}" for m in ("account.so", "menu.so")]
        (self.workdir / "config").write_text("\n".join(lines) + "\n")
        (self.workdir / "accounts").write_text(self.account_line() + "\n")

    def account_line(self) -> str:
        """Its one line in baresip's ``accounts`` file."""
        params = ["answermode=auto", f"audio_codecs={self.codec}/8000/1"]
        if self.domain is None:
            return f"<sip:{self.user}@127.0.0.1:{self.port}>;" + ";".join([*params, "regint=0"])
        params.append(f"regint={self.regint}")
        if self.password is not None:
            params.append(f"auth_pass={self.password}")
        if self.outbound is not None:
            params.append(f'outbound="{self.outbound}"')
        return f"<sip:{self.user}@{self.domain}>;" + ";".join(params)

    def __enter__(self) -> BaresipPeer:
        self._configure()
        args = [BARESIP, "-4", "-f", str(self.workdir), "-t", str(self.seconds)]
        if self.dial is not None:
            args += ["-e", f"/dial {self.dial}"]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         cwd=self.workdir)
        self.wait_for("baresip is ready", timeout=10)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        # baresip colours its errors with ANSI escapes
        return re.sub(r"\x1b\[[0-9;]*m", "", self.log_path.read_text(errors="replace"))

    def wait_for(self, text: str, timeout: float = 15.0) -> str:
        """Wait until `text` appears in baresip's output; returns the output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.log()
            if text in out:
                return out
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"baresip never said {text!r}:\n{self.log()[-3000:]}")

    def registrations(self) -> list[tuple[RegState, int, str]]:
        """Every registration outcome in its output so far, in order: ``("registered", 200, "OK")``,
        ``("failed", 403, "Forbidden")``, ``("failed", 0, "Connection timed out")`` (no answer, transport error)."""
        out = self.log()
        found: list[tuple[int, RegState, int, str]] = [
            (m.start(), "registered", int(m.group(1)), m.group(2).strip()) for m in _REG_OK_RE.finditer(out)]
        found += [(m.start(), "failed", int(m.group(1) or 0), (m.group(2) or m.group(3) or "").strip())
                  for m in _REG_FAIL_RE.finditer(out)]
        return [(state, code, reason) for _, state, code, reason in sorted(found)]

    def registration(self) -> tuple[RegState, int]:
        """The last registration outcome: ``("registered", 200)``, ``("failed", 403)`` or ``("none", 0)``."""
        outcomes = self.registrations()
        return (outcomes[-1][0], outcomes[-1][1]) if outcomes else ("none", 0)

    def wait_registered(self, timeout: float = 10.0, count: int = 1) -> int:
        """Wait for the ``count``-th registration outcome (refreshes count too); return its 2xx code, or raise
        :class:`RegistrationFailed` (AssertionError: none in time)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            outcomes = self.registrations()
            state, code, reason = outcomes[count - 1] if len(outcomes) >= count else ("none", 0, "")
            if state == "registered":
                return code
            if state == "failed":
                raise RegistrationFailed(code, reason, self.log())
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"baresip reported no registration within {timeout:g}s:\n{self.log()[-3000:]}")

    def heard(self) -> Path:
        """The decoded audio of its (one) call, once the call has ended."""
        self.wait_for("terminated", timeout=15)
        dumps = sorted(self.workdir.glob("dump-*-dec.wav"))
        assert len(dumps) == 1, dumps
        return dumps[0]
