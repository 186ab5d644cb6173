"""The SIP edge's SQLite databases: registrations, the SIP domains' keys, trunk registrations.

Kamailio keeps three things in SQLite files in `DATA_DIR/edge/` (through its `db_sqlite` module), so that a restart
of the edge or of the whole switch loses none of them:

- `location` (`edge.sqlite`): the softphones' registrations (`usrloc` in write-back mode: Kamailio's timer
  process writes what changed every second, and everything at a clean stop; a new Kamailio loads them all at
  start; a Kamailio killed with -9 loses the last second's);
- `uacreg` (`edge.sqlite`): the registrations the edge keeps with trunks (`switch.workers.edge_trunks`), written
  by the control plane before each start of Kamailio;
- `htable` (`domains.sqlite`): the SIP domains' keys the script authenticates and routes with (`sipdom`, written
  by the control plane from the SIP API, `switch.workers.edge_domains`, and reloaded over RPC after every change).

The tables are Kamailio's own, created from the schema files the Debian package ships for its SQLite driver,
so that they always match the installed modules' table versions.

Kamailio's SQLite driver sets no busy timeout: a statement that meets a lock fails at once, and a REGISTER
whose location write fails gets 500.  So:
- one Kamailio process alone writes registrations (write-back, above).  In write-through mode each receiver
  process wrote its own REGISTERs, and under load they locked each other out (400 a second: half got 500);
- the file Kamailio writes while it runs is one the control plane never writes then (the domains' keys have a
  file of their own);
- both files are in WAL mode (`prepare_database`; SQLite keeps the mode in the file), where a reader never
  locks a writer out.  With the default rollback journal every `htable.reload` (a read, after each change made
  through the SIP API) failed the REGISTERs that came in during it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

SCHEMA_DIRS = (Path("/usr/share/kamailio/db_sqlite"), Path("/usr/local/share/kamailio/db_sqlite"))
# the schema file of each table the edge uses, and the tables it creates
SCHEMAS = {"standard": ("version",), "usrloc": ("location", "location_attrs"), "htable": ("htable",),
           "uac": ("uacreg",)}
EDGE_SCHEMAS = ("standard", "usrloc", "uac")  # edge.sqlite: what Kamailio writes
DOMAIN_SCHEMAS = ("standard", "htable")  # domains.sqlite: what the control plane writes while Kamailio runs
BUSY_TIMEOUT_S = 5.0


class EdgeDatabaseError(Exception):
    """The edge's database could not be created: the message says what to install or fix."""


def schema_dir() -> Path:
    """Where the installed Kamailio keeps its SQLite schema files (package kamailio-sqlite-modules)."""
    for directory in SCHEMA_DIRS:
        if (directory / "usrloc-create.sql").is_file():
            return directory
    raise EdgeDatabaseError("Kamailio's SQLite schemas were not found: `apt-get install kamailio-sqlite-modules` "
                            "(make does it)")


def db_url(path: Path) -> str:
    """The `db_url` Kamailio's modules are given for the database at `path`."""
    return f"sqlite://{path}"


@contextlib.contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    """A short-lived connection for one transaction (committed on success): Kamailio writes the same file."""
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        yield connection
        connection.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            connection.execute("ROLLBACK")
        raise
    finally:
        connection.close()


def prepare_database(path: Path, schemas: Iterable[str] = EDGE_SCHEMAS) -> None:
    """Create the database at `path` with the tables of `schemas` (names in SCHEMAS), or add the tables an older
    one lacks; existing rows are kept.  The file is switched to WAL mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    directory = schema_dir()
    wal = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)
    try:
        mode = wal.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    finally:
        wal.close()
    if mode != "wal":
        raise EdgeDatabaseError(f"{path}: SQLite kept journal mode {mode!r} instead of WAL")
    with connect(path) as db:
        present = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for schema in schemas:
            if all(table in present for table in SCHEMAS[schema]):
                continue
            script = (directory / f"{schema}-create.sql").read_text()
            for statement in _statements(script):
                db.execute(statement)


def _statements(script: str) -> Iterable[str]:
    """The SQL statements of a schema file (they hold no semicolons inside strings)."""
    return (part.strip() for part in script.split(";") if part.strip())


def replace_htable(path: Path, rows: dict[str, str]) -> None:
    """Make `rows` (key -> string value) the whole content of the `htable` table, in one transaction (it holds
    the one hash table `sipdom`; Kamailio reads it at start and on `htable.reload`, and never writes it)."""
    with connect(path) as db:
        db.execute("DELETE FROM htable")
        db.executemany("INSERT INTO htable (key_name, key_type, value_type, key_value, expires) "
                       "VALUES (?, 0, 0, ?, 0)", list(rows.items()))
