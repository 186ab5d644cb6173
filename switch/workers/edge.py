"""Kamailio as the SIP edge: `softswitch serve` writes its files, starts it, restarts it if it dies, stops it.

`Edge` owns one Kamailio process group (the main process and its children, started in a session of their own,
so a main process killed with SIGKILL leaves no child holding the public port: the whole group is killed before
the restart).  The control plane tells it which workers exist and which have a free leg (`Edge.workers_changed`);
it writes the dispatcher list (what a Kamailio reads as it starts) and, over the JSON-RPC datagram socket,
switches a worker that filled up or has a free leg again in place (`dispatcher.set_state`), or reloads the list
when a worker came or went (Kamailio allows one reload a second); a burst of changes is coalesced.  Live calls do not
depend on the edge process: their RTP flows between the far end and the worker, and their in-dialog requests
carry the Record-Route, so a new Kamailio relays them without any state from the old one.

Trunks with `register = true` are registered by Kamailio itself (`switch.workers.edge_trunks`): their rows are
written to the edge's database before every start of Kamailio, and their states polled for `status()["trunks"]`
and logged when they change.

`Edge.drain` (SIGTERM) lists every worker inactive from then on: new INVITEs get `503 All Workers Busy` with
Retry-After from Kamailio itself, while in-dialog requests of live calls still reach their workers (the workers
stay in the list, so `ds_is_from_list` still knows them).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import itertools
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from switch.workers.edge_config import (
    WORKER_SET,
    EdgeFiles,
    EdgeSettings,
    dispatcher_list,
    kamailio_script,
    tls_config,
)
from switch.workers.edge_db import (
    DOMAIN_SCHEMAS,
    EDGE_SCHEMAS,
    EdgeDatabaseError,
    prepare_database,
    replace_htable,
)
from switch.workers.edge_domains import HTABLE, EdgeDomain, htable_rows
from switch.workers.edge_trunks import RegistrationWatch, contact_address, local_host, write_registrations

log = logging.getLogger("switch.workers.edge")

START_TIMEOUT = 10.0
RESTART_DELAY = 0.3
RPC_TIMEOUT = 2.0
RELOAD_RETRY = 0.5  # after a refused update; Kamailio takes a reload once a second (reload_delta)
STOP_GRACE = 3.0
SHARED_MEMORY_MB = 128
PRIVATE_MEMORY_MB = 16


class EdgeError(Exception):
    """The edge could not be configured or started; the message says what to do."""


def stop_stale_edge(files: EdgeFiles, wait: float = 3.0) -> bool:
    """End the Kamailio a killed switch left running on this data dir (its pid file names it, and its command line
    names this script); True if there was one.  A switch that stops normally removes the file."""
    try:
        pid = int(files.pid.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, ValueError):
        files.pid.unlink(missing_ok=True)
        return False
    if "kamailio" not in cmdline or str(files.script) not in cmdline:
        files.pid.unlink(missing_ok=True)  # that pid is something else now
        return False
    log.warning("SIP edge: stopping the kamailio (pid %d) a previous run of the switch left running", pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + wait
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    files.pid.unlink(missing_ok=True)
    return True


def find_kamailio() -> tuple[str, str]:
    """The Kamailio binary and its module directory, or EdgeError naming the Debian package to install."""
    binary = shutil.which("kamailio") or next(
        (p for p in ("/usr/sbin/kamailio", "/usr/local/sbin/kamailio") if os.access(p, os.X_OK)), None)
    if binary is None:
        raise EdgeError("the SIP edge needs Kamailio: `apt-get install kamailio` (make does it), "
                        "or set [edge] enabled = false")
    candidates = [*sorted(glob.glob("/usr/lib/*/kamailio/modules")), "/usr/lib/kamailio/modules",
                  "/usr/local/lib64/kamailio/modules"]
    for path in candidates:
        if os.path.isfile(os.path.join(path, "dispatcher.so")):
            return binary, path
    raise EdgeError("Kamailio's modules (dispatcher.so) were not found; reinstall the kamailio package")


class EdgeRpc:
    """A JSON-RPC client for Kamailio's datagram socket (`jsonrpcs` with `transport` 4)."""

    def __init__(self, server: Path) -> None:
        self._server = server
        self._ids = itertools.count(1)

    async def call(self, method: str, *params: Any) -> Any:
        """Send one request and return its result; EdgeError for an error answer, TimeoutError for none."""
        client = self._server.with_name(f"rpc-client-{os.getpid()}-{next(self._ids)}.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            with contextlib.suppress(FileNotFoundError):
                client.unlink()
            sock.bind(str(client))
            sock.setblocking(False)
            request = {"jsonrpc": "2.0", "method": method, "params": list(params), "id": 1}
            sock.sendto(json.dumps(request).encode(), str(self._server))
            loop = asyncio.get_running_loop()
            data = await asyncio.wait_for(loop.sock_recv(sock, 65536), RPC_TIMEOUT)
        finally:
            sock.close()
            with contextlib.suppress(FileNotFoundError):
                client.unlink()
        answer = json.loads(data)
        if "error" in answer:
            raise EdgeError(f"kamailio {method}: {answer['error']}")
        return answer.get("result")


class Edge:
    """One supervised Kamailio in front of the workers."""

    def __init__(self, settings: EdgeSettings, directory: Path) -> None:
        self.settings = settings
        # /tmp itself, not $TMPDIR: a unix socket's path holds at most 107 bytes
        short = "/tmp" if os.path.isdir("/tmp") else None
        self.files = EdgeFiles(directory, Path(tempfile.mkdtemp(prefix="ssedge-", dir=short)))
        self.rpc = EdgeRpc(self.files.rpc_socket)
        self.process: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self.reloads = 0
        self._workers: list[tuple[str, bool]] = []
        self.draining = False  # drain(): every worker listed inactive, so new calls get 503 at the edge
        self._listed: list[tuple[str, bool]] | None = None  # the rows in the dispatcher list file
        self._loaded: list[tuple[str, bool]] | None = None  # the rows Kamailio has now (None: not known)
        self.state_changes = 0  # workers switched active or inactive in place (dispatcher.set_state)
        self._closing = False
        self._sync: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._dirty = asyncio.Event()
        self._log: Any = None
        self._domains: dict[str, str] = {}  # the `sipdom` rows the SIP API asks for
        self._domains_written: dict[str, str] | None = None  # the rows in the database (None: not yet written)
        self.domain_reloads = 0
        self._trunk_host = local_host(settings.host, settings.advertise)  # the registrations' Contact host
        self.trunks = RegistrationWatch(settings.trunks, contact_address(self._trunk_host, settings.port))
        self._trunk_poll: asyncio.Task[None] | None = None

    @property
    def up(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        """Write the script, start Kamailio and wait until it answers; EdgeError if it cannot start."""
        binary, modules = find_kamailio()
        self.files.directory.mkdir(parents=True, exist_ok=True)
        stop_stale_edge(self.files)
        try:
            prepare_database(self.files.database, EDGE_SCHEMAS)
            prepare_database(self.files.domains_database, DOMAIN_SCHEMAS)
        except (EdgeDatabaseError, OSError, sqlite3.Error) as exc:
            raise EdgeError(f"the SIP edge's databases in {self.files.directory}: {exc}") from exc
        self._write_domains()
        self._write_trunks()
        self.files.script.write_text(kamailio_script(self.settings, self.files, modules, secrets.token_hex(16)))
        if self.settings.tls_port:
            self.files.tls_config.write_text(tls_config(self.settings))
        self._write_list()
        check = await asyncio.create_subprocess_exec(
            binary, "-c", "-f", str(self.files.script), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
        output, _ = await check.communicate()
        if check.returncode != 0:
            tail = output.decode(errors="replace").strip().splitlines()[-5:]
            raise EdgeError(f"kamailio refused its configuration {self.files.script}: " + " | ".join(tail))
        self._binary = binary
        await self._spawn()
        self._watch = asyncio.get_running_loop().create_task(self._supervise())
        self._sync = asyncio.get_running_loop().create_task(self._syncer())
        if self.settings.trunks:
            self._trunk_poll = asyncio.get_running_loop().create_task(self.trunks.poll(self.rpc, lambda: self.up))

    async def _spawn(self) -> None:
        if self._log is None:
            self._log = self.files.log.open("ab")
        for stale in self.files.rpc_socket.parent.glob("rpc*.sock"):
            stale.unlink(missing_ok=True)
        self.process = await asyncio.create_subprocess_exec(
            self._binary, "-DD", "-E", "-f", str(self.files.script), "-m", str(SHARED_MEMORY_MB),
            "-M", str(PRIVATE_MEMORY_MB), stdin=asyncio.subprocess.DEVNULL, stdout=self._log, stderr=self._log,
            start_new_session=True)
        self.files.pid.write_text(f"{self.process.pid}\n")
        self._loaded = self._listed  # a new Kamailio reads the list file as it starts
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.returncode is not None:
                raise EdgeError(f"kamailio exited with {self.process.returncode} at start; see {self.files.log}")
            try:
                await self.rpc.call("core.version")
                break
            except (OSError, TimeoutError, EdgeError) as exc:
                if time.monotonic() > deadline:
                    self._kill_group()
                    raise EdgeError(f"kamailio did not answer within {START_TIMEOUT:.0f} s; "
                                    f"see {self.files.log}") from exc
                await asyncio.sleep(0.05)
        log.info("SIP edge up: kamailio pid %d on %s:%d (udp, tcp)", self.process.pid, self.settings.host,
                 self.settings.port)

    def _kill_group(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    async def _supervise(self) -> None:
        """Restart Kamailio whenever it dies (its whole process group first), until close()."""
        while not self._closing:
            process = self.process
            if process is None:
                return
            code = await process.wait()
            if self._closing:
                return
            self._kill_group()
            self.restarts += 1
            log.error("SIP edge: kamailio (pid %d) ended with %s; restarting", process.pid, code)
            await asyncio.sleep(RESTART_DELAY)
            try:
                self._write_list()
                self._write_trunks()
                await self._spawn()
            except EdgeError as exc:
                log.error("SIP edge restart failed: %s; trying again", exc)
                await asyncio.sleep(1.0)

    def workers_changed(self, workers: Iterable[tuple[str, bool]]) -> None:
        """The workers behind the edge now: (dispatcher URI, has a free leg) pairs.  Cheap; the reload follows."""
        current = list(workers)
        if current != self._workers:
            self._workers = current
            self._dirty.set()

    def domains_changed(self, domains: Iterable[EdgeDomain]) -> None:
        """The SIP domains now (from the SIP API): written to the edge's domains database and reloaded at once."""
        rows = htable_rows(domains)
        if rows != self._domains:
            self._domains = rows
            self._dirty.set()

    def _write_domains(self) -> bool:
        rows = self._domains  # replaced, never changed in place: what this call writes, whatever comes meanwhile
        if rows == self._domains_written:
            return False
        replace_htable(self.files.domains_database, rows)
        self._domains_written = rows
        return True

    def _write_trunks(self) -> None:
        """The registering trunks' rows, read by Kamailio when it starts (it then registers them anew)."""
        try:
            write_registrations(self.files.database, self.settings.trunks, self._trunk_host)
        except (OSError, sqlite3.Error) as exc:
            raise EdgeError(f"the SIP edge's database {self.files.database}: trunk registrations: {exc}") from exc

    async def contacts(self, aor: str) -> list[str]:
        """The registered contact URIs of `aor` (`user@domain`), [] when it has none or the edge is down."""
        if not self.up:
            return []
        try:
            found = await self.rpc.call("ul.lookup", "location", aor)
        except (OSError, TimeoutError, EdgeError):
            return []  # "AOR not found" is an error answer
        record = found.get("AoR", found) if isinstance(found, dict) else {}
        contacts = record.get("Contacts", []) if isinstance(record, dict) else []
        return [str(item.get("Contact", {}).get("Address", "")) for item in contacts if isinstance(item, dict)]

    def drain(self) -> None:
        """Take no new calls from now on: every worker is listed inactive (the reload follows at once)."""
        if not self.draining:
            self.draining = True
            self._dirty.set()

    def _write_list(self) -> list[tuple[str, bool]]:
        """The dispatcher list file, rewritten when it changed (what a Kamailio that starts reads); its rows."""
        rows = [(uri, free and not self.draining) for uri, free in self._workers]
        if rows != self._listed:
            tmp = self.files.dispatcher.with_suffix(".tmp")
            tmp.write_text(dispatcher_list(rows))
            tmp.replace(self.files.dispatcher)
            self._listed = rows
        return rows

    async def _syncer(self) -> None:
        """Tell Kamailio what changed: a worker that filled up or has a free leg again is switched in place
        (`dispatcher.set_state`, no limit on how often); a worker that came or went takes a reload of the
        list, which Kamailio allows once per `reload_delta` s (it answers "Ongoing reload" sooner)."""
        failures = 0
        while not self._closing:
            await self._dirty.wait()
            self._dirty.clear()
            await self._sync_domains()
            rows = self._write_list()
            if not self.up or rows == self._loaded:
                continue
            try:
                await self._load(rows)
                failures = 0
            except (OSError, TimeoutError, EdgeError) as exc:
                self._loaded = None  # not known: the next attempt reloads the whole list
                failures += 1
                level = logging.DEBUG if "Ongoing reload" in str(exc) and failures < 5 else logging.WARNING
                log.log(level, "SIP edge: dispatcher update failed (%s); retrying", exc)
                await asyncio.sleep(RELOAD_RETRY)
                self._dirty.set()

    async def _load(self, rows: list[tuple[str, bool]]) -> None:
        loaded = self._loaded
        if loaded is None or [uri for uri, _ in loaded] != [uri for uri, _ in rows]:
            await self.rpc.call("dispatcher.reload")
            self.reloads += 1
        else:
            for (uri, active), (_, was) in zip(rows, loaded, strict=True):
                if active != was:
                    await self.rpc.call("dispatcher.set_state", "a" if active else "i", WORKER_SET, uri)
                    self.state_changes += 1
        self._loaded = rows

    async def _sync_domains(self) -> None:
        try:
            if not await asyncio.to_thread(self._write_domains) or not self.up:  # SQLite, off the loop
                return
            await self.rpc.call("htable.reload", HTABLE)
            self.domain_reloads += 1
        except (OSError, TimeoutError, EdgeError, sqlite3.Error) as exc:
            log.warning("SIP edge: SIP domains reload failed (%s); retrying", exc)
            self._domains_written = None
            await asyncio.sleep(0.2)
            self._dirty.set()

    def status(self) -> dict[str, Any]:
        return {"up": self.up, "pid": self.process.pid if self.process else None, "restarts": self.restarts,
                "sip": f"{self.settings.host}:{self.settings.port}", "workers": len(self._workers),
                "workers_with_free_legs": sum(1 for _, free in self._workers if free), "reloads": self.reloads,
                "state_changes": self.state_changes,
                "draining": self.draining, "trunks": self.trunks.status()}

    async def close(self) -> None:
        """Stop Kamailio (SIGTERM, then SIGKILL to its group after a grace period)."""
        self._closing = True
        for task in (self._sync, self._watch, self._trunk_poll):
            if task is not None:
                task.cancel()
        process = self.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), STOP_GRACE)
        self._kill_group()
        self.files.pid.unlink(missing_ok=True)
        if self._log is not None:
            self._log.close()
            self._log = None
        shutil.rmtree(self.files.rpc_socket.parent, ignore_errors=True)
