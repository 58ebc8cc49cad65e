"""The one migration set, applied once however many processes start together.

Migrations only ever append: a released one is never edited, so a database migrated by an
older version is brought forward step by step.
"""

from __future__ import annotations

import fcntl
from pathlib import Path

from sqlite_utils import Database, Migrations

from .connection import connect

migrations = Migrations("brandvote")


def migrate(path: Path | str) -> list[str]:
    """Apply pending migrations; returns the names applied.

    A file lock beside the database serialises concurrent appliers (several uvicorn
    workers, a CLI command started while the server starts), so each migration runs once.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".migrate-lock")
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        db = connect(path)
        try:
            db.enable_wal()
            pending = [m.name for m in migrations.pending(db)]
            migrations.apply(db)
            return pending
        finally:
            db.close()


def pending_migrations(db: Database) -> list[str]:
    return [m.name for m in migrations.pending(db)]


def append_only(db: Database, table: str) -> None:
    """Triggers that refuse UPDATE and DELETE: the table's history cannot be rewritten."""
    for verb in ("UPDATE", "DELETE"):
        db.execute(
            f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
        )


@migrations()
def m001_catalog(db: Database) -> None:
    db["brands"].create(
        {
            "id": int,
            "slug": str,
            "name": str,
            "kind": str,
            "organizer": str,
            "region": str,
            "district": str,
            "year_founded": int,
            "figures": str,  # JSON list of {label, value, unit}
            "tags": str,  # JSON list of strings
            "summary": str,
            "sources": str,  # JSON list of {title, publisher, date}
            "featured": int,
            "published": int,
            "deleted_at": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        not_null={"slug", "name", "kind", "organizer", "region", "figures", "tags",
                  "summary", "sources", "featured", "published", "created_at", "updated_at"},
        defaults={"featured": 0, "published": 1, "figures": "[]", "tags": "[]", "sources": "[]"},
        strict=True,
    )
    db["brands"].create_index(["slug"], unique=True)
    db["brands"].create_index(["region", "kind"])
    db["brands"].enable_fts(
        ["name", "organizer", "district", "summary", "tags"],
        tokenize="trigram",
        create_triggers=True,
    )
    db["lists"].create(
        {"id": int, "slug": str, "title": str, "description": str, "sources": str,
         "featured": int, "created_at": str, "updated_at": str},
        pk="id",
        not_null={"slug", "title", "description", "sources", "featured", "created_at", "updated_at"},
        defaults={"description": "", "sources": "[]", "featured": 1},
        strict=True,
    )
    db["lists"].create_index(["slug"], unique=True)
    db["list_items"].create(
        {"list_id": int, "brand_id": int, "position": int},
        pk=("list_id", "brand_id"),
        not_null={"position"},
        foreign_keys=[("list_id", "lists", "id"), ("brand_id", "brands", "id")],
        strict=True,
    )
    db["list_items"].create_index(["brand_id"])


@migrations()
def m002_campaigns(db: Database) -> None:
    db["campaigns"].create(
        {
            "id": int,
            "slug": str,
            "title": str,
            "intro": str,
            "min_choices": int,
            "max_choices": int,
            "winners": int,
            "electorate": str,
            "opens_at": str,
            "closes_at": str,
            "announce_at": str,
            "manual_state": str,  # null, or 'open' / 'closed' / 'announced' set by an organizer
            "ip_limit": int,  # null: the site default (BRANDVOTE_IP_LIMIT)
            "frozen_at": str,  # set at the first ballot: rules may no longer change
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        not_null={"slug", "title", "intro", "min_choices", "max_choices", "winners",
                  "electorate", "created_at", "updated_at"},
        defaults={"intro": "", "min_choices": 1, "max_choices": 10, "winners": 10,
                  "electorate": "open"},
        strict=True,
    )
    db["campaigns"].create_index(["slug"], unique=True)
    db["candidates"].create(
        {"campaign_id": int, "brand_id": int, "position": int},
        pk=("campaign_id", "brand_id"),
        not_null={"position"},
        foreign_keys=[("campaign_id", "campaigns", "id"), ("brand_id", "brands", "id")],
        strict=True,
    )


@migrations()
def m003_staff(db: Database) -> None:
    db["users"].create(
        {"id": int, "username": str, "password_hash": str, "role": str,
         "disabled": int, "created_at": str},
        pk="id",
        not_null={"username", "password_hash", "role", "disabled", "created_at"},
        defaults={"disabled": 0},
        strict=True,
    )
    db["users"].create_index(["username"], unique=True)
    db["audit_log"].create(
        {"id": int, "at": str, "actor": str, "action": str, "target": str, "detail": str},
        pk="id",
        not_null={"at", "actor", "action", "target", "detail"},
        defaults={"target": "", "detail": "{}"},
        strict=True,
    )
    append_only(db, "audit_log")


@migrations()
def m004_voting(db: Database) -> None:
    """Ballots and choices are append-only: triggers refuse UPDATE and DELETE.

    A ballot row holds no IP, user agent or raw token: voter_key is an HMAC of the
    device id or voter code, so the UNIQUE index can stop a second ballot without
    the database knowing who voted.
    """
    db["ballots"].create(
        {"id": int, "campaign_id": int, "voter_key": str, "receipt": str, "channel": str, "cast_at": str},
        pk="id",
        not_null={"campaign_id", "voter_key", "receipt", "cast_at"},
        foreign_keys=[("campaign_id", "campaigns", "id")],
        strict=True,
    )
    db["ballots"].create_index(["campaign_id", "voter_key"], unique=True)
    db["ballots"].create_index(["campaign_id", "receipt"], unique=True)
    db["choices"].create(
        {"ballot_id": int, "campaign_id": int, "brand_id": int},
        pk=("ballot_id", "brand_id"),
        foreign_keys=[("ballot_id", "ballots", "id"), ("campaign_id", "campaigns", "id"),
                      ("brand_id", "brands", "id")],
        strict=True,
    )
    db["choices"].create_index(["campaign_id", "brand_id"])
    db["voter_codes"].create(
        {"id": int, "campaign_id": int, "code_hash": str, "created_at": str, "used_at": str},
        pk="id",
        not_null={"campaign_id", "code_hash", "created_at"},
        foreign_keys=[("campaign_id", "campaigns", "id")],
        strict=True,
    )
    db["voter_codes"].create_index(["code_hash"], unique=True)
    db["ip_counts"].create(
        {"campaign_id": int, "ip_key": str, "hour": str, "n": int},
        pk=("campaign_id", "ip_key", "hour"),
        not_null={"n"},
        strict=True,
    )
    append_only(db, "ballots")
    append_only(db, "choices")
    db.executescript(
        """
        CREATE TRIGGER voter_codes_claim_once BEFORE UPDATE OF used_at ON voter_codes
        WHEN OLD.used_at IS NOT NULL
        BEGIN SELECT RAISE(ABORT, 'a voter code is used once'); END;
        """
    )


@migrations()
def m005_tallies(db: Database) -> None:
    """The tally, computed once after voting ends (and verified against the ledger)."""
    db["tallies"].create(
        {"campaign_id": int, "computed_at": str, "ballots": int, "counts": str,
         "ledger_sha256": str, "decided": str},
        pk="campaign_id",
        not_null={"computed_at", "ballots", "counts", "ledger_sha256"},
        foreign_keys=[("campaign_id", "campaigns", "id")],
        strict=True,
    )


@migrations()
def m006_staff_sessions(db: Database) -> None:
    """Server-side session records, so sign-out and timeouts really end a session, and
    brand revisions, so every save can be traced and undone."""
    db["sessions"].create(
        {"id": str, "user_id": int, "created_at": str, "last_seen": str, "ended_at": str, "csrf": str},
        pk="id",
        not_null={"user_id", "created_at", "last_seen", "csrf"},
        foreign_keys=[("user_id", "users", "id")],
        strict=True,
    )
    db["login_failures"].create(
        {"id": int, "at": str, "username": str, "ip_key": str},
        pk="id",
        not_null={"at", "username", "ip_key"},
        strict=True,
    )
    db["login_failures"].create_index(["username", "at"])
    db["login_failures"].create_index(["ip_key", "at"])
    db["brand_revisions"].create(
        {"id": int, "brand_id": int, "at": str, "actor": str, "action": str, "data": str},
        pk="id",
        not_null={"brand_id", "at", "actor", "action", "data"},
        foreign_keys=[("brand_id", "brands", "id")],
        strict=True,
    )
    db["brand_revisions"].create_index(["brand_id", "id"])
    append_only(db, "brand_revisions")
    db["pending_imports"].create(
        {"id": str, "actor": str, "created_at": str, "doc": str},
        pk="id",
        not_null={"actor", "created_at", "doc"},
        strict=True,
    )


@migrations()
def m007_site_version(db: Database) -> None:
    """A counter every catalog or campaign change bumps (by trigger, so no write path can
    forget): the key under which rendered pages are cached, shared by all workers."""
    db.executescript("CREATE TABLE site_version (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL);"
                     "INSERT INTO site_version (id, n) VALUES (1, 0);")
    for table in ("brands", "lists", "list_items", "campaigns", "candidates", "tallies"):
        for verb in ("INSERT", "UPDATE", "DELETE"):
            db.execute(f"CREATE TRIGGER {table}_{verb.lower()}_bumps_version AFTER {verb} ON {table} "
                       "BEGIN UPDATE site_version SET n = n + 1 WHERE id = 1; END")


@migrations()
def m008_receipt_hash(db: Database) -> None:
    """The ledger is sorted by SHA-256 of the receipt: store it, indexed, so a million-ballot
    ledger streams in order instead of being hashed and sorted in memory."""
    db.execute("ALTER TABLE ballots ADD COLUMN receipt_hash TEXT")
    db.execute("DROP TRIGGER ballots_no_update")
    rows = db.execute("SELECT id, receipt FROM ballots").fetchall()
    import hashlib

    db.conn.executemany("UPDATE ballots SET receipt_hash = ? WHERE id = ?",
                        [(hashlib.sha256(r.encode()).hexdigest(), i) for i, r in rows])
    db.execute("CREATE TRIGGER ballots_no_update BEFORE UPDATE ON ballots "
               "BEGIN SELECT RAISE(ABORT, 'ballots is append-only'); END")
    db.execute("CREATE INDEX ballots_ledger ON ballots (campaign_id, receipt_hash)")


@migrations()
def m009_ballot_choice_set(db: Database) -> None:
    """Each ballot's ledger line (sorted candidate slugs) kept with it, covered by an index, so
    a million-ballot ledger is one index scan; the tally still counts the choices table and
    checks the two agree."""
    db.execute("ALTER TABLE ballots ADD COLUMN choice_set TEXT")
    db.execute("DROP TRIGGER ballots_no_update")
    rows = db.execute("SELECT b.id, group_concat(br.slug, ';') FROM ballots b JOIN choices c ON c.ballot_id = b.id"
                      " JOIN brands br ON br.id = c.brand_id GROUP BY b.id").fetchall()
    db.conn.executemany("UPDATE ballots SET choice_set = ? WHERE id = ?",
                        [(";".join(sorted(s.split(";"))), i) for i, s in rows])
    db.execute("CREATE TRIGGER ballots_no_update BEFORE UPDATE ON ballots "
               "BEGIN SELECT RAISE(ABORT, 'ballots is append-only'); END")
    db.execute("DROP INDEX ballots_ledger")
    db.execute("CREATE INDEX ballots_ledger ON ballots (campaign_id, receipt_hash, choice_set)")


@migrations()
def m010_campaign_tally_ready(db: Database) -> None:
    """Whether a closed campaign's tally is kept and its cut-off decided (1), held by a tie
    (0), or not yet counted (NULL): an announcement by time waits for 1, so it can neither
    beat the grace period nor publish an undecided tie as 待定."""
    db.execute("ALTER TABLE campaigns ADD COLUMN tally_ready INTEGER")


@migrations()
def m011_reviews(db: Database) -> None:
    """Reviews (评审): nominated cases, a panel's score sheets, the organizer's decisions.

    Attachments keep their bytes in the database, so every server node sees the same file and
    a crash loses none that was acknowledged. `published` holds the outcome as published, so a
    later edit anywhere cannot change what the public was shown. Users get a unit (a juror's
    conflict, a nominator's cases) and a display name."""
    db.execute("ALTER TABLE users ADD COLUMN unit TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE users ADD COLUMN name TEXT NOT NULL DEFAULT ''")
    db["reviews"].create(
        {"id": int, "slug": str, "title": str, "intro": str, "criteria": str, "tiers": str, "aggregate": str,
         "campaign_id": int, "public_weight": str, "public_score": str, "stage": str, "publish_at": str,
         "ready": int, "published": str, "created_at": str, "updated_at": str},
        pk="id",
        not_null={"slug", "title", "intro", "criteria", "tiers", "aggregate", "stage", "created_at", "updated_at"},
        defaults={"intro": "", "stage": "draft"},
        foreign_keys=[("campaign_id", "campaigns", "id")],
        strict=True,
    )
    db["reviews"].create_index(["slug"], unique=True)
    db["review_jurors"].create(
        {"review_id": int, "user_id": int, "position": int},
        pk=("review_id", "user_id"),
        not_null={"position"},
        foreign_keys=[("review_id", "reviews", "id"), ("user_id", "users", "id")],
        strict=True,
    )
    db["cases"].create(
        {"id": int, "review_id": int, "slug": str, "title": str, "unit": str, "summary": str, "contact": str,
         "brand_id": int, "nominated_by": int, "state": str, "reason": str, "position": int,
         "created_at": str, "updated_at": str},
        pk="id",
        not_null={"review_id", "slug", "title", "unit", "summary", "contact", "state", "reason", "position",
                  "created_at", "updated_at"},
        defaults={"summary": "", "contact": "", "state": "nominated", "reason": ""},
        foreign_keys=[("review_id", "reviews", "id"), ("brand_id", "brands", "id"), ("nominated_by", "users", "id")],
        strict=True,
    )
    db["cases"].create_index(["review_id", "slug"], unique=True)
    db["attachments"].create(
        {"id": int, "case_id": int, "filename": str, "media_type": str, "bytes": bytes, "sha256": str,
         "size": int, "created_at": str},
        pk="id",
        not_null={"case_id", "filename", "media_type", "bytes", "sha256", "size", "created_at"},
        foreign_keys=[("case_id", "cases", "id")],
        strict=True,
    )
    db["attachments"].create_index(["case_id"])
    db["conflicts"].create(
        {"case_id": int, "user_id": int, "reason": str, "created_at": str},
        pk=("case_id", "user_id"),
        not_null={"reason", "created_at"},
        defaults={"reason": ""},
        foreign_keys=[("case_id", "cases", "id"), ("user_id", "users", "id")],
        strict=True,
    )
    db["scores"].create(
        {"id": int, "review_id": int, "case_id": int, "user_id": int, "marks": str, "comment": str,
         "updated_at": str},
        pk="id",
        not_null={"review_id", "case_id", "user_id", "marks", "comment", "updated_at"},
        defaults={"comment": ""},
        foreign_keys=[("review_id", "reviews", "id"), ("case_id", "cases", "id"), ("user_id", "users", "id")],
        strict=True,
    )
    db["scores"].create_index(["case_id", "user_id"], unique=True)
    db["decisions"].create(
        {"id": int, "review_id": int, "case_id": int, "tier": str, "reason": str, "actor": str, "at": str},
        pk="id",
        not_null={"review_id", "case_id", "reason", "actor", "at"},
        foreign_keys=[("review_id", "reviews", "id"), ("case_id", "cases", "id")],
        strict=True,
    )
    db["decisions"].create_index(["review_id", "case_id"], unique=True)
    for table in ("reviews", "cases"):
        for verb in ("INSERT", "UPDATE", "DELETE"):
            db.execute(f"CREATE TRIGGER {table}_{verb.lower()}_bumps_version AFTER {verb} ON {table} "
                       "BEGIN UPDATE site_version SET n = n + 1 WHERE id = 1; END")


@migrations()
def m012_campaign_announced_at(db: Database) -> None:
    """When results were announced by hand (earlier than planned, or later): the page and the
    API must show the real time, not the planned one."""
    db.execute("alter table campaigns add column announced_at text")
