"""baresip as a far end in tests: an independent SIP stack (libre/baresip, not PJSIP) on 127.0.0.1.

It answers at once (or dials `dial` at start), sends a sine tone (`ausine`) and keeps what it hears: the
`sndfile` filter writes the decoded audio of each call to ``dump-*-dec.wav`` in its directory.  No sound
device is used (`aubridge` stands in for the player).  It quits by itself after `seconds`.
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from tests.peers.harness import free_port_block

BARESIP = "baresip"
MODULES = "/usr/lib/baresip/modules"


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
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def uri(self) -> str:
        return f"sip:{self.user}@127.0.0.1:{self.port}"

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
        (self.workdir / "accounts").write_text(
            f"<sip:{self.user}@127.0.0.1:{self.port}>;answermode=auto;regint=0;audio_codecs={self.codec}/8000/1\n")

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

    def heard(self) -> Path:
        """The decoded audio of its (one) call, once the call has ended."""
        self.wait_for("terminated", timeout=15)
        dumps = sorted(self.workdir.glob("dump-*-dec.wav"))
        assert len(dumps) == 1, dumps
        return dumps[0]
