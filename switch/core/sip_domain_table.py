"""One SQLite table of SIP domain records (`switch.core.sip_domain_model`) with an in-memory copy of the account's
rows: the SIP edge asks for routes on every request, so reads never touch the database.

Columns follow the record's dataclass fields, converted as `switch.core.store` converts calls (datetimes as ISO
text in UTC, booleans as 0/1), so a record needs no hand-written SQL.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import sqlite3
import typing
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from switch.core.paging import Cursor, PageKey, select_page
from switch.core.store import Store, to_column

R = TypeVar("R")


class RecordTable(Generic[R]):
    """The rows of `table` for one account, as `record` dataclasses keyed by their `key` field.

    Writes go to the store first, then to memory, so a failed statement (a UNIQUE index) changes neither.
    """

    def __init__(self, store: Store, table: str, record: type[R], account_sid: str, key: str = "sid",
                 unique: Iterable[str] = ()) -> None:
        self._store = store
        self._table = table
        self._record = record
        self._key = key
        self._fields = [f.name for f in dataclasses.fields(record)]  # type: ignore[arg-type]
        self._hints = typing.get_type_hints(record)
        columns = ", ".join(f"{name} TEXT PRIMARY KEY" if name == key else name for name in self._fields)
        store.executescript(f"CREATE TABLE IF NOT EXISTS {table} ({columns});\n" + "".join(
            f"CREATE UNIQUE INDEX IF NOT EXISTS {table}_{column} ON {table} ({column});\n" for column in unique))
        rows = store.execute(f"SELECT * FROM {table} WHERE account_sid = ?", (account_sid,)).fetchall()
        self._rows: dict[str, R] = {}
        for row in rows:
            item = self._from_row(row)
            self._rows[getattr(item, key)] = item

    def _from_row(self, row: sqlite3.Row) -> R:
        values: dict[str, Any] = {}
        for name in self._fields:
            value, hint = row[name], self._hints[name]
            if value is not None:
                if hint is dt.datetime:
                    value = dt.datetime.fromisoformat(value)
                elif hint is bool:
                    value = bool(value)
                elif hint is int:
                    value = int(value)
                elif isinstance(hint, type) and issubclass(hint, enum.Enum):
                    value = hint(value)
            values[name] = value
        return self._record(**values)

    def _to_row(self, item: R) -> list[Any]:
        return [to_column(getattr(item, name)) for name in self._fields]

    def get(self, key: str) -> R | None:
        return self._rows.get(key)

    def values(self) -> list[R]:
        return list(self._rows.values())

    def where(self, keep: Callable[[R], bool]) -> list[R]:
        return [item for item in self._rows.values() if keep(item)]

    def insert(self, item: R) -> R:
        marks = ", ".join("?" for _ in self._fields)
        self._store.execute(f"INSERT INTO {self._table} ({', '.join(self._fields)}) VALUES ({marks})",
                            self._to_row(item))
        self._rows[getattr(item, self._key)] = item
        return item

    def replace(self, item: R) -> R:
        """Write every field of an existing record."""
        assignments = ", ".join(f"{name} = ?" for name in self._fields)
        key = getattr(item, self._key)
        self._store.execute(f"UPDATE {self._table} SET {assignments} WHERE {self._key} = ?",
                            [*self._to_row(item), key])
        self._rows[key] = item
        return item

    def put(self, item: R) -> R:
        """Write `item`, new or not."""
        return self.replace(item) if getattr(item, self._key) in self._rows else self.insert(item)

    def delete(self, keys: Iterable[str]) -> int:
        """Remove the records `keys` (those that exist); how many went."""
        gone = [key for key in keys if key in self._rows]
        for key in gone:
            self._store.execute(f"DELETE FROM {self._table} WHERE {self._key} = ?", (key,))
            del self._rows[key]
        return len(gone)

    def count_all_accounts(self, column: str, value: Any, other_than: str | None = None) -> int:
        """Rows of every account whose `column` is `value` (except the row `other_than`): a switch-wide check."""
        row = self._store.execute(
            f"SELECT COUNT(*) FROM {self._table} WHERE {column} = ? AND {self._key} IS NOT ?",
            (value, other_than)).fetchone()
        return int(row[0])


def page_of(items: list[R], key: Callable[[R], PageKey], offset: int, limit: int,
            cursor: Cursor | None) -> list[R]:
    """Oldest first, as every SIP list is: `limit` records after `offset`, or on the `cursor`'s side."""
    return select_page(items, key, descending=False, cursor=cursor, offset=offset, limit=limit)
