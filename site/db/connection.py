"""The one way to open the SQLite file, and the write transaction.

Every connection gets the same pragmas (foreign keys, synchronous=FULL, busy timeout);
WAL is persistent and set once when migrating. Writes that must not interleave
(ballots, imports) take the write lock up front with BEGIN IMMEDIATE, so a read can never
turn into a failed lock upgrade under load.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path
from typing import Iterator

from sqlite_utils import Database

BUSY_TIMEOUT_S = 5.0


def connect(path: Path | str) -> Database:
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, check_same_thread=False)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = FULL")
    # 1 MB of page cache per connection (SQLite's default is 2 MB): a worker holds one per
    # thread, and the whole catalog fits many times over; the OS page cache does the rest.
    conn.execute("PRAGMA cache_size = -1024")
    return Database(conn)


def first(db: Database, sql: str, params=()) -> dict | None:
    """The first row as a dict, or None. Unlike Database.query it opens no SAVEPOINT of its
    own: two statements fewer per read, which counts in the writer's ballot path."""
    cursor = db.conn.execute(sql, params)
    row = cursor.fetchone()
    return None if row is None else dict(zip([c[0] for c in cursor.description], row))


# The columns update_row may name, per table: fixed here, so an SQL identifier never comes
# from a form, a file or a dict's keys. Ids, slugs and creation times are not among them.
UPDATABLE = {
    "brands": frozenset({"name", "kind", "organizer", "region", "district", "year_founded", "figures", "tags",
                         "summary", "sources", "featured", "published", "deleted_at", "updated_at"}),
    "campaigns": frozenset({"title", "intro", "min_choices", "max_choices", "winners", "electorate", "ip_limit",
                            "opens_at", "closes_at", "announce_at", "manual_state", "announced_at", "updated_at"}),
}


def update_row(db: Database, table: str, row_id: int, values: dict) -> None:
    """Set the named columns of one row, inside the caller's transaction. Not sqlite-utils'
    Table.update: that reads the row and the schema and opens a savepoint for every call,
    and would take any column name it is given."""
    columns = UPDATABLE[table]
    unknown = set(values) - columns
    if unknown:
        raise ValueError(f"{table}: not an updatable column: {', '.join(sorted(unknown))}")
    sets = ", ".join(f"{k} = ?" for k in values)
    db.execute(f"update {table} set {sets} where id = ?", [*values.values(), row_id])


@contextlib.contextmanager
def immediate(db: Database) -> Iterator[Database]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception; commits before returning."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.conn.rollback()
        raise
    else:
        db.conn.commit()


class Store:
    """One connection per thread, remembered so close_all() can close them (Datasette's way)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: list[Database] = []

    def db(self) -> Database:
        db = getattr(self._local, "db", None)
        if db is None:
            db = connect(self.path)
            self._local.db = db
            with self._lock:
                self._opened.append(db)
        return db

    def close_all(self) -> None:
        with self._lock:
            for db in self._opened:
                db.close()
            self._opened.clear()
        self._local = threading.local()
