"""Shared helpers for tests (constants, database copies, form tokens)."""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
BASE_URL = "https://vote.example.org"
# The demo campaign (15 candidates, at most 10) and the window most tests open it for.
SLUG = "shanghai-2022-highlights"
OPENS, CLOSES, ANNOUNCE = NOW, NOW + timedelta(days=10), NOW + timedelta(days=17)


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


class FakeClock:
    """The app's clock in tests: starts where told, moves only when a test moves it."""

    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> datetime:
        from datetime import timedelta

        self.now = self.now + timedelta(**delta)
        return self.now


def wait_until(condition, seconds: float = 10) -> None:
    """Until condition() holds, for a state another thread reaches and no event marks
    (a request parked in the server); the deadline only bounds a failure."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def open_campaign(db, slug: str, opens: datetime, closes: datetime, announce: datetime, **extra) -> dict:
    from brandvote import clock

    sets = {"opens_at": clock.to_db(opens), "closes_at": clock.to_db(closes),
            "announce_at": clock.to_db(announce), **extra}
    db.execute(f"update campaigns set {', '.join(f'{k} = :{k}' for k in sets)} where slug = :slug",
               {**sets, "slug": slug})
    db.conn.commit()
    return dict(next(iter(db.query("select * from campaigns where slug = ?", [slug]))))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    def __init__(self, tmp: Path, workers: int = 1, env_extra: dict | None = None, args: tuple = ()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db_path = tmp / "live.db"
        self.log = tmp / "server.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("BRANDVOTE_")}
        env.update({"BRANDVOTE_BASE_URL": self.url, **(env_extra or {})})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "brandvote", "serve", "--db", str(self.db_path),
             "--port", str(self.port), "--workers", str(workers), *args],
            env=env, stdout=open(self.log, "w"), stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited:\n" + self.log.read_text())
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("server did not start:\n" + self.log.read_text())

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def live_ballots(server: LiveServer, headers: list) -> tuple[list[int], int]:
    """One new phone per entry of `headers` against a LiveServer: each opens the demo ballot
    with fresh cookies, then, once the forms are old enough, posts its first two choices with
    its own headers. The answers' statuses in order, and the ballots the server stored."""
    import httpx2

    from brandvote.security import CSRF_MIN_AGE_S

    forms = []
    for _ in headers:
        with httpx2.Client(base_url=server.url) as c:
            page = c.get(f"/c/{SLUG}")
            forms.append((dict(c.cookies), csrf_from(page.text), re.findall(r'name="choice" value="([^"]+)"', page.text)))
    # The form's minimum age on the server's own clock: a real process, no clock to move, no event.
    time.sleep(CSRF_MIN_AGE_S + 0.2)
    statuses = []
    for (cookies, token, slugs), extra in zip(forms, headers):
        with httpx2.Client(base_url=server.url, cookies=cookies) as c:
            statuses.append(c.post(f"/c/{SLUG}/ballot", data={"csrf_token": token, "choice": slugs[:2]},
                                   headers=extra).status_code)
    conn = sqlite3.connect(server.db_path)
    try:
        stored = conn.execute("select count(*) from ballots").fetchone()[0]
    finally:
        conn.close()
    return statuses, stored


PASSWORD = "correct horse battery"


def login(client, username: str, password: str = PASSWORD, next_path: str = "/admin"):
    page = client.get("/login")
    token = csrf_from(page.text)
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token,
                                       "next": next_path}, follow_redirects=False)


def staff_csrf(client) -> str:
    """The signed-in user's form token, as any admin page carries it."""
    return csrf_from(client.get("/admin").text)


# Staff GET routes that answer with a file, not a page (checked by test_editor's export test).
STAFF_DOWNLOADS = {"/admin/export", "/admin/reviews/{slug}/attachments/{attachment}"}


def staff_routes(routes) -> list[tuple[str, str, object]]:
    """(method, path, endpoint) of every staff route in a route table, sign-out last."""
    from starlette.routing import Mount, Route

    found = []

    def walk(routes, prefix):
        for r in routes:
            if isinstance(r, Mount) and r.routes:
                walk(r.routes, prefix + r.path)
            elif isinstance(r, Route):
                path = prefix + r.path
                if path.startswith("/admin") or path == "/logout":
                    for method in sorted((r.methods or set()) - {"HEAD"}):
                        found.append((method, path, r.endpoint))
    walk(routes, "")
    return sorted(found, key=lambda r: (r[1] == "/logout", r[1], r[0]))


def staff_get_paths() -> list[str]:
    """Every staff page a GET can reach, from the route table, so a new page is checked too."""
    from brandvote.routes import build_routes

    return sorted({path for method, path, _ in staff_routes(build_routes())
                   if method == "GET" and path not in STAFF_DOWNLOADS})


def fill_path(path: str, campaign: str, brand: str, review: str = "beijing-district-innovation-cases") -> str:
    """A concrete URL for a staff route path; {slug} is a campaign under /admin/campaigns, a
    review (the bundled demo by default) under /admin/reviews; {attachment} is the first file."""
    values = {"slug": campaign if path.startswith("/admin/campaigns") else review if path.startswith("/admin/reviews")
              else brand, "attachment": "1"}
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


def page_links(html: str) -> list[tuple[str, str]]:
    """(method, path) of every href, src and form action in a page that names a path on this
    site ("/…"): a form asks with its own method, everything else with GET."""
    from html.parser import HTMLParser

    found = []

    class Links(HTMLParser):
        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            for name in ("href", "src", "action"):
                value = attrs.get(name) or ""
                if value.startswith("/") and not value.startswith("//"):
                    method = (attrs.get("method") or "get").upper() if tag == "form" else "GET"
                    found.append((method, re.split(r"[?#]", value, maxsplit=1)[0]))
    Links().feed(html)
    return found


def resolves(routes, method: str, path: str) -> bool:
    """Whether the route table answers `method path` with a route (static files must exist)."""
    from starlette.routing import Mount, Route

    for r in routes:
        if isinstance(r, Route) and r.path_regex.fullmatch(path):
            if r.methods is None or method in r.methods:
                return True
        elif isinstance(r, Mount):
            match = r.path_regex.fullmatch(path)
            if match is None:
                continue
            rest = "/" + match.group("path").lstrip("/")
            if r.routes:
                if resolves(r.routes, method, rest):
                    return True
            elif method == "GET" and (Path(r.app.directory) / rest.lstrip("/")).is_file():
                return True
    return False
