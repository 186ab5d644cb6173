"""Where sipp and its scenarios are, what its exit codes mean, and free local ports for it
(used by `tests.peers.sipp_peer`, which re-exports them)."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

from switch.tools.ports import free_port_block

#: Directory holding the project's scenario files.
SCENARIO_DIR = Path(__file__).resolve().parent / "sipp"

#: sipp exit codes (``sipp -h``, "Exit codes").
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERNAL_COMMAND = 97
EXIT_NO_CALLS = 99
EXIT_FATAL = 255  # -1: fatal error, or -timeout reached with -timeout_error
EXIT_SOCKET_BIND = 254  # -2: fatal error binding a socket

LOCALHOST = "127.0.0.1"


def sipp_binary() -> str:
    """Return the path of the sipp executable (``$SIPP``, then ``PATH``, then /usr/bin/sipp)."""
    env = os.environ.get("SIPP")
    if env:
        return env
    return shutil.which("sipp") or "/usr/bin/sipp"


def scenario_path(name: str | os.PathLike[str]) -> Path:
    """Resolve a scenario: an existing path as is, else a file name in :data:`SCENARIO_DIR`."""
    path = Path(name)
    if path.is_file():
        return path.resolve()
    candidate = SCENARIO_DIR / path
    if candidate.is_file():
        return candidate
    raise FileNotFoundError(f"no sipp scenario {name!r} (looked in {SCENARIO_DIR})")


def free_udp_port() -> int:
    """A port free for UDP (and TCP) on 127.0.0.1 right now, below the ephemeral range (`switch.tools.ports`), so
    that no port-0 bind of another process (a lab phone) can take it before sipp binds it."""
    return free_port_block(1)


def free_udp_port_pair() -> int:
    """An even port ``p`` with ``p`` .. ``p + 3`` free (sipp's audio and video RTP/RTCP ports)."""
    base = free_port_block(5)
    return base + base % 2


def udp_port_bound(port: int, host: str = LOCALHOST) -> bool | None:
    """Whether some socket is bound to UDP ``host:port``, from /proc/net/udp (None: cannot tell).

    Reading /proc does not touch the port, so it cannot race with sipp's own bind().
    """
    wanted = {f"{port:04X}"}
    try:
        packed = socket.inet_aton(host)
    except OSError:
        return None
    local_hex = packed[::-1].hex().upper()
    try:
        with open("/proc/net/udp", encoding="ascii") as table:
            next(table, None)
            for line in table:
                fields = line.split()
                if len(fields) < 2 or ":" not in fields[1]:
                    continue
                addr, port_hex = fields[1].split(":", 1)
                if port_hex in wanted and addr in (local_hex, "00000000"):
                    return True
    except OSError:
        return None
    return False
