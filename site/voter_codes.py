"""One-time voter codes for a closed electorate: made in bulk, stored only as hashes,
redeemed once."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlite_utils import Database

from . import ballots, clock
from .db import first, immediate
from .errors import CodesNotNeeded, NotOpen


CODE_BYTES = 20  # 160 bits ≥ the 128 the design asks for


def hash_code(code: str) -> str:
    return hashlib.sha256(normalize_code(code).encode()).hexdigest()


def normalize_code(code: str) -> str:
    """Codes are read aloud and typed: ignore case, spaces and dashes; O→0, I/L→1."""
    text = code.upper().replace("-", "").replace(" ", "")
    return text.translate(str.maketrans("OIL", "011"))


def format_code(raw: str) -> str:
    return "-".join(raw[i:i + 4] for i in range(0, len(raw), 4))


def create_codes(db: Database, campaign_id: int, count: int, now: datetime, progress=None) -> list[str]:
    """Make `count` one-time codes (160 bits each); only their SHA-256 is stored."""
    camp = first(db, "select electorate from campaigns where id = ?", [campaign_id])
    if camp["electorate"] != "codes":
        raise CodesNotNeeded()
    codes = []
    stamp = clock.to_db(now)
    with immediate(db):
        batch = []
        for i in range(count):
            raw = "".join(secrets.choice(ballots.RECEIPT_ALPHABET) for _ in range(32))  # 32 × 5 bits
            codes.append(format_code(raw))
            batch.append((campaign_id, hash_code(raw), stamp))
            if len(batch) == 1000 or i == count - 1:
                db.conn.executemany(
                    "insert into voter_codes (campaign_id, code_hash, created_at) values (?, ?, ?)", batch)
                batch = []
                if progress:
                    progress(i + 1, count)
    return codes


def code_campaign(db: Database, code: str) -> dict:
    """The campaign a voter code belongs to; refuses unknown and used codes alike (403)."""
    raw = normalize_code(code)
    if not 26 <= len(raw) <= 40 or not raw.isascii() or not raw.isalnum():
        raise NotOpen("投票码无效。")
    row = first(db,
        "select c.*, v.used_at as code_used_at, v.code_hash from voter_codes v"
        " join campaigns c on c.id = v.campaign_id where v.code_hash = ?", [hash_code(code)])
    if row is None:
        raise NotOpen("投票码无效。")
    if row["code_used_at"]:
        raise NotOpen("这个投票码已经使用过，每个投票码只能投一次票。")
    return dict(row)
