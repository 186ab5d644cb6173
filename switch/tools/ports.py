"""Free ports on 127.0.0.1 for the switch's own tools (demo, bench) and the tests.

Ports are picked below the kernel's ephemeral range (`ip_local_port_range`, 32768-60999 by default), from
which the OS hands out every port-0 bind (the lab phone's SIP port, HTTP clients, sipp's sockets): a port
picked inside it could be taken by one of those between our check and the switch's bind.  Ports handed out
once are not handed out again in the same process; processes that pick at the same time (the test suite's
parallel workers) take disjoint slices of the range, named by ``SOFTSWITCH_PORT_SLICE=<index>/<count>``.
"""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path

HOST = "127.0.0.1"
LOWEST = 20000
_handed_out: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_HIGHEST = max(LOWEST + 2000, _ephemeral_low() - 1)


def port_free(port: int) -> bool:
    """Whether `port` is free for both UDP and TCP on 127.0.0.1."""
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                return False
    return True


def _slice() -> tuple[int, int]:
    """This process's part of LOWEST.._HIGHEST (``SOFTSWITCH_PORT_SLICE``: all of it when unset)."""
    index, _, count = os.environ.get("SOFTSWITCH_PORT_SLICE", "0/1").partition("/")
    try:
        i, n = int(index), max(1, int(count))
    except ValueError:
        i, n = 0, 1
    width = (_HIGHEST - LOWEST) // n
    return LOWEST + width * min(i, n - 1), LOWEST + width * (min(i, n - 1) + 1)


def free_port_block(count: int) -> int:
    """A base port with base..base+count-1 free for UDP and TCP, below the ephemeral range."""
    low, high = _slice()
    for _ in range(500):
        base = random.randrange(low, high - count)
        block = range(base, base + count)
        if not _handed_out.intersection(block) and all(port_free(p) for p in block):
            _handed_out.update(block)
            return base
    raise RuntimeError("no free port block on 127.0.0.1")


def free_tcp_port() -> int:
    """A free port for an HTTP server (free for UDP too, below the ephemeral range)."""
    return free_port_block(1)
