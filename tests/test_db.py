import sqlite3
import threading

import pytest

from brandvote import db as dbmod
from brandvote.db.migrations import migrations

EXPECTED_TABLES = {
    "_sqlite_migrations", "brands", "lists", "list_items", "campaigns", "candidates", "users", "audit_log",
    "ballots", "choices", "voter_codes", "ip_counts", "tallies",
    "sessions", "login_failures", "brand_revisions", "pending_imports", "site_version",
    "reviews", "review_jurors", "cases", "attachments", "conflicts", "scores", "decisions",
}


def app_tables(db):
    return {t for t in db.table_names() if not t.startswith("brands_fts")}


def test_migrations_are_idempotent_and_create_exactly_the_expected_tables(tmp_path):
    path = tmp_path / "m.db"
    first = dbmod.migrate(path)
    assert first == [m.name for m in migrations._migrations]
    assert dbmod.migrate(path) == []
    db = dbmod.connect(path)
    assert app_tables(db) == EXPECTED_TABLES
    names = [r["name"] for r in db.query("select name from _sqlite_migrations")]
    assert sorted(names) == sorted(first)
    assert dbmod.pending_migrations(db) == []


def test_every_connection_is_wal_full_sync_with_foreign_keys(tmp_path):
    path = tmp_path / "p.db"
    dbmod.migrate(path)
    db = dbmod.connect(path)
    assert db.execute("pragma journal_mode").fetchone()[0] == "wal"
    assert db.execute("pragma synchronous").fetchone()[0] == 2  # FULL
    assert db.execute("pragma foreign_keys").fetchone()[0] == 1
    assert db.execute("pragma busy_timeout").fetchone()[0] == 5000


def test_concurrent_migrators_apply_each_migration_once(tmp_path):
    path = tmp_path / "race.db"
    errors = []

    def run():
        try:
            dbmod.migrate(path)
        except Exception as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    db = dbmod.connect(path)
    rows = [r["name"] for r in db.query("select name from _sqlite_migrations")]
    assert len(rows) == len(set(rows)) == len(migrations._migrations)


def test_immediate_rolls_back_on_error(empty_db):
    with pytest.raises(RuntimeError):
        with dbmod.immediate(empty_db):
            empty_db.execute("insert into audit_log (at, actor, action) values ('x', 'y', 'z')")
            raise RuntimeError("boom")
    assert empty_db.execute("select count(*) from audit_log").fetchone()[0] == 0
    assert not empty_db.conn.in_transaction


def test_audit_log_is_append_only(empty_db):
    empty_db.execute("insert into audit_log (at, actor, action) values ('2026', 'a', 'b')")
    empty_db.conn.commit()
    with pytest.raises(sqlite3.IntegrityError):
        empty_db.execute("update audit_log set actor = 'x'")
    with pytest.raises(sqlite3.IntegrityError):
        empty_db.execute("delete from audit_log")


def test_foreign_keys_refuse_a_list_item_for_a_missing_brand(db):
    list_id = db.execute("select id from lists limit 1").fetchone()[0]
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("insert into list_items (list_id, brand_id, position) values (?, 999999, 0)", [list_id])


def test_update_row_sets_only_allowed_columns_of_one_row(tmp_path):
    path = tmp_path / "u.db"
    dbmod.migrate(path)
    db = dbmod.connect(path)
    for slug in ("a", "b"):
        db.execute("insert into campaigns (slug, title, created_at, updated_at) values (?, ?, 't0', 't0')", [slug, slug])
    a = dbmod.first(db, "select id from campaigns where slug = 'a'")["id"]
    with dbmod.immediate(db):
        dbmod.update_row(db, "campaigns", a, {"title": "新", "updated_at": "t1"})
    rows = {r["slug"]: (r["title"], r["updated_at"]) for r in db.query("select * from campaigns")}
    assert rows == {"a": ("新", "t1"), "b": ("b", "t0")}
    for bad in ({"slug": "x"}, {"id": 9}, {"title = 'x', slug": "y"}):
        with pytest.raises(ValueError):
            dbmod.update_row(db, "campaigns", a, bad)
    with pytest.raises(KeyError):
        dbmod.update_row(db, "users", 1, {"role": "admin"})
