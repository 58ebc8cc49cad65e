"""Settings are data: built once by the CLI or the server entry, passed to create_app.

Nothing here runs at import time; tests build a Settings by hand on a temporary file.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Settings:
    db_path: Path
    secret: str
    base_url: str = "http://127.0.0.1:8000"
    ip_limit: int = 200
    trusted_proxies: tuple[str, ...] = ()
    max_body_bytes: int = 1024 * 1024
    page_size: int = 20
    # Cached rendered pages and QR images may be turned off in tests that count renders.
    cache_pages: bool = True
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def https(self) -> bool:
        return self.base_url.startswith("https://")

    @property
    def loopback(self) -> bool:
        """Whether printed links and QR codes point at this machine only (no phone can open them)."""
        host = urlsplit(self.base_url).hostname or ""
        if host == "localhost" or host.endswith(".localhost"):
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    @classmethod
    def from_env(cls, environ: dict | None = None, db_path: str | None = None) -> "Settings":
        env = os.environ if environ is None else environ
        path = Path(db_path or env.get("BRANDVOTE_DB") or "./brandvote.db").resolve()
        secret = env.get("BRANDVOTE_SECRET") or secret_from_file(path)
        base_url = (env.get("BRANDVOTE_BASE_URL") or "http://127.0.0.1:8000").rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("BRANDVOTE_BASE_URL 必须以 http:// 或 https:// 开头")
        limit_text = env.get("BRANDVOTE_IP_LIMIT", "200").strip()
        if not limit_text.isdigit():
            raise ValueError("BRANDVOTE_IP_LIMIT 必须是非负整数")
        proxies = tuple(
            str(ipaddress.ip_network(p.strip(), strict=False))
            for p in env.get("BRANDVOTE_TRUSTED_PROXIES", "").split(",")
            if p.strip()
        )
        return cls(
            db_path=path,
            secret=secret,
            base_url=base_url,
            ip_limit=int(limit_text),
            trusted_proxies=proxies,
        )


def secret_from_file(db_path: Path) -> str:
    """One secret beside the database, created once with mode 0600.

    Every uvicorn worker reads the same file, so tokens signed by one worker verify in
    another; a per-process random secret would break that.
    """
    path = db_path.with_name(db_path.name + ".secret")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip()
