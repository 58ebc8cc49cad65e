"""Staff accounts: editors, organizers, admins. Passwords are hashed with argon2id."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlite_utils import Database

from . import clock
from .errors import BrandvoteError
from .security import hash_password

ROLES = ("editor", "organizer", "admin")
MIN_PASSWORD = 10


def create_user(db: Database, username: str, password: str, role: str, now: datetime) -> None:
    username = username.strip()
    if role not in ROLES:
        raise BrandvoteError(f"角色必须是 {'、'.join(ROLES)} 之一。")
    if not username or len(username) > 40 or not username.isprintable():
        raise BrandvoteError("用户名不能为空，最多 40 个字符。")
    if len(password) < MIN_PASSWORD:
        raise BrandvoteError(f"密码至少 {MIN_PASSWORD} 个字符。")
    if next(iter(db.query("select 1 from users where username = ?", [username])), None):
        raise BrandvoteError(f"用户 {username} 已存在。", status=409)
    db.execute(
        "insert into users (username, password_hash, role, created_at) values (?, ?, ?, ?)",
        [username, hash_password(password), role, clock.to_db(now)],
    )
    db.conn.commit()


def has_users(db: Database) -> bool:
    return next(iter(db.query("select count(*) as n from users")))["n"] > 0


def create_first_admin(db: Database, now: datetime) -> tuple[str, str] | None:
    """On the very first start only: an admin with a random password, to be printed once."""
    if has_users(db):
        return None
    password = secrets.token_urlsafe(15)
    create_user(db, "admin", password, "admin", now)
    return "admin", password
