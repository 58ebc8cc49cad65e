"""Times are stored as UTC ISO-8601 text and shown in Beijing time.

Rules take `now` as an argument; only the edges (CLI, request handlers) call utcnow().
"""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

LOCAL = ZoneInfo("Asia/Shanghai")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def to_db(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        raise ValueError("naive datetime")
    return dt.astimezone(timezone.utc).isoformat(timespec="seconds")


def from_db(text: str | None) -> datetime | None:
    if not text:
        return None
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt


def parse_input(text: str) -> datetime:
    """An ISO date-time as people write it; a time without zone is Beijing time."""
    dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=LOCAL)
    return dt


def local_text(dt: datetime | None) -> str:
    if dt is None:
        return "未定"
    d = dt.astimezone(LOCAL)
    return f"{d.year}年{d.month}月{d.day}日 {d:%H:%M}"
