"""Shared helpers for tests (constants, database copies, form tokens)."""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
BASE_URL = "https://vote.example.org"


def copy_db(src: Path, dest: Path) -> Path:
    source = sqlite3.connect(str(src))
    target = sqlite3.connect(str(dest))
    with target:
        source.backup(target)
    source.close()
    target.close()
    return dest


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no csrf_token field on the page"
    return match.group(1)
