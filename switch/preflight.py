"""What `softswitch serve` checks before it starts anything, so that a user's mistake is one line, not a trace.

The data directory must be a directory the switch can write; the HTTP port (TCP) and the SIP ports (UDP and
TCP: the edge's, its TLS port, the first worker's) must be free; the Debian packages the configuration needs
must be installed (kamailio with the edge, espeak-ng for `<Say>`).  Each failure is a `StartupError` whose
message says what is wrong and what to do.  A port taken between the check and the bind is still reported in
one line by the command line (`switch.cli`).
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

from media.speech import ESPEAK_PACKAGE
from switch.core.config import Config
from switch.workers.edge import EdgeError, find_kamailio, stop_stale_edge
from switch.workers.edge_config import EdgeFiles


class StartupError(Exception):
    """The switch cannot start in this environment; the message is one line for the user."""


def check_data_dir(path: Path) -> None:
    """`path` exists (created if need be) and is a directory the switch can write."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".softswitch-probe-"):
            pass
    except FileExistsError:
        raise StartupError(f"data dir {path} is not a directory") from None
    except OSError as exc:
        reason = "not a directory" if exc.errno == errno.ENOTDIR else exc.strerror
        raise StartupError(f"data dir {path} is not usable: {reason} (set --data-dir or [server] data_dir)") \
            from None


# The workers of a control plane that was killed (SIGKILL, a crash) notice their closed channel and leave within
# a second or two, letting go of the SIP ports: a restart waits this long for them before calling a port taken.
SIP_PORT_GRACE_S = 5.0


def check_port(host: str, port: int, kind: socket.SocketKind, what: str, grace: float = 0.0) -> None:
    """Bind `host:port` (TCP or UDP) for a moment: in use (still, after `grace` s), not an address of this
    machine, or not allowed."""
    deadline = time.monotonic() + grace
    while True:
        try:
            _probe(host, port, kind, what)
            return
        except _InUse as exc:
            if time.monotonic() >= deadline:
                raise StartupError(str(exc)) from None
        time.sleep(0.1)


class _InUse(Exception):
    pass


def _probe(host: str, port: int, kind: socket.SocketKind, what: str) -> None:
    bare = host.strip("[]") or "0.0.0.0"
    proto = "TCP" if kind == socket.SOCK_STREAM else "UDP"
    try:
        family = socket.getaddrinfo(bare, port, type=kind)[0][0]
    except socket.gaierror as exc:
        raise StartupError(f"{what}: cannot resolve {host}: {exc.strerror}") from None
    with socket.socket(family, kind) as probe:
        if kind == socket.SOCK_STREAM:  # as the servers do: a port in TIME_WAIT is free, a listener is not
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((bare, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise _InUse(f"{what} port {host}:{port}/{proto} is already in use (another softswitch, or another "
                             "server?)") from None
            if exc.errno == errno.EADDRNOTAVAIL:
                reason = f"cannot be bound: {bare} is not an address of this machine"
            elif exc.errno == errno.EACCES:
                reason = "needs privileges (a port below 1024)"
            else:
                reason = f"cannot be bound: {exc.strerror}"
            raise StartupError(f"{what} port {host}:{port}/{proto} {reason}") from None


def sip_ports(cfg: Config) -> list[tuple[str, int, str]]:
    """The SIP addresses `serve` binds, as (host, port, what): the edge's (with TLS) and the first worker's."""
    ports = [(cfg.sip_host, cfg.sip_port, "SIP")]
    if cfg.edge.enabled:
        worker_host, worker_port = cfg.worker_sip
        ports.append((worker_host, worker_port, "SIP worker ([edge] worker_port)"))
    return ports


def check_ports(cfg: Config) -> None:
    """The HTTP port and every SIP port free."""
    check_port(cfg.http_host, cfg.http_port, socket.SOCK_STREAM, "HTTP")
    for host, port, what in sip_ports(cfg):
        check_port(host, port, socket.SOCK_DGRAM, what, SIP_PORT_GRACE_S)
        check_port(host, port, socket.SOCK_STREAM, what, SIP_PORT_GRACE_S)
    if cfg.edge.enabled and cfg.edge.tls:
        check_port(cfg.sip_host, cfg.edge.tls_port or cfg.sip_port + 1, socket.SOCK_STREAM, "SIP over TLS",
                   SIP_PORT_GRACE_S)


def check_packages(cfg: Config) -> None:
    """Kamailio (with the edge) and espeak-ng installed, else the Debian package to install."""
    if cfg.edge.enabled:
        try:
            find_kamailio()
        except EdgeError as exc:
            raise StartupError(str(exc)) from None
    if shutil.which("espeak-ng") is None and not os.environ.get("SOFTSWITCH_NO_SPEECH"):
        raise StartupError(f"<Say> needs espeak-ng: `apt-get install {ESPEAK_PACKAGE}` (make does it), or set "
                           "SOFTSWITCH_NO_SPEECH=1 to start without speech")


def preflight(cfg: Config) -> None:
    """Every check above, cheapest first; the first failure raises StartupError.  A Kamailio that a killed run
    left on this data dir is stopped first: it holds the SIP address the new one needs."""
    check_data_dir(cfg.data_dir)
    check_packages(cfg)
    if cfg.edge.enabled:
        stop_stale_edge(EdgeFiles(cfg.data_dir / "edge"))
    check_ports(cfg)
