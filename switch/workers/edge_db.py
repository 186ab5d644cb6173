"""The SIP edge's SQLite database: registrations, the SIP domains' keys, trunk registrations.

Kamailio keeps three things in `DATA_DIR/edge/edge.sqlite` (through its `db_sqlite` module), so that a restart of
the edge or of the whole switch loses none of them:

- `location`: the softphones' registrations (`usrloc` in write-through mode: every REGISTER is written at once
  and a new Kamailio loads them all at start);
- `htable`: the SIP domains' keys the script authenticates and routes with (`sipdom`, written by the control plane
  from the SIP API, `switch.workers.edge_domains`, and reloaded over RPC after every change);
- `uacreg`: the registrations the edge keeps with trunks (`switch.workers.edge_trunks`).

The tables are Kamailio's own, created from the schema files the Debian package ships for its SQLite driver,
so that they always match the installed modules' table versions.
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


def prepare_database(path: Path) -> None:
    """Create the database at `path`, or add the tables an older one lacks; existing rows are kept."""
    path.parent.mkdir(parents=True, exist_ok=True)
    schemas = schema_dir()
    with connect(path) as db:
        present = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for schema, tables in SCHEMAS.items():
            if all(table in present for table in tables):
                continue
            script = (schemas / f"{schema}-create.sql").read_text()
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
