"""The audit log: one writer for every staff and system action (append-only by trigger)."""

from __future__ import annotations

import json
from datetime import datetime

from sqlite_utils import Database

from . import clock


def record(db: Database, now: datetime, actor: str, action: str, target: str = "",
           detail: dict | None = None) -> None:
    """Inside the caller's transaction, so an action and its entry commit together or not at all."""
    db.execute(
        "insert into audit_log (at, actor, action, target, detail) values (?, ?, ?, ?, ?)",
        [clock.to_db(now), actor, action, target, json.dumps(detail or {}, ensure_ascii=False)],
    )
