"""Rendered pages, kept per worker and keyed by what they depend on.

A crowd reads the same few pages; rendering one costs ~1.4 ms of Jinja (perf-limits.md),
serving stored bytes ~0.05 ms. A page depends on the data (site_version, bumped by
triggers on every catalog or campaign write, so every worker sees an edit at once) and on
the clock only through campaign states (open, closed, announced), so those are the key.
Only anonymous 200 responses that allow caching are kept; a gzip copy is made once.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from . import db as dbmod, tally, voting

MAX_ENTRIES = 1024
GZIP_MIN = 500


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """If-None-Match uses the weak comparison: W/"x" matches "x"; * matches anything."""
    if not if_none_match:
        return False
    return any(tag.strip() == "*" or tag.strip().removeprefix("W/") == etag for tag in if_none_match.split(","))


@dataclass(frozen=True)
class Entry:
    body: bytes
    gzipped: bytes | None
    etag: str
    media_type: str
    headers: tuple

    def response(self, request: Request) -> Response:
        headers = dict(self.headers)
        headers["ETag"] = self.etag
        headers["Vary"] = "Accept-Encoding"
        if etag_matches(request.headers.get("if-none-match"), self.etag):
            return Response(status_code=304, headers={"ETag": self.etag, "Vary": "Accept-Encoding",
                                                      "Cache-Control": headers.get("cache-control", "")})
        if self.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"] = "gzip"
            return Response(self.gzipped, media_type=self.media_type, headers=headers)
        return Response(self.body, media_type=self.media_type, headers=headers)


class PageCache:
    """One per worker. Its own connection is used only on the event loop's thread: a hit
    costs one single-row read and no threadpool hop."""

    def __init__(self, db_path, max_entries: int = MAX_ENTRIES):
        self._db_path = db_path
        self._db = None
        self._entries: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self._campaigns: tuple[int, list[dict]] = (-1, [])
        self.max_entries = max_entries
        self.hits = self.misses = 0

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def key(self, request: Request) -> tuple:
        db = self.read_db()
        version = db.execute("select n from site_version where id = 1").fetchone()[0]
        cached_version, campaigns = self._campaigns
        if cached_version != version:
            campaigns = [dict(r) for r in db.query("select * from campaigns order by id")]
            self._campaigns = (version, campaigns)
        now = request.state.now()
        states = tuple((c["id"], voting.status(c, now), tally.voting_over(c, now)) for c in campaigns)
        return request.url.path, request.url.query, version, states

    def campaign(self, slug: str) -> dict | None:
        """From the list read with the current key (call key() first)."""
        return next((c for c in self._campaigns[1] if c["slug"] == slug), None)

    def read_db(self):
        """The loop thread's own connection, for a short indexed read on a hot path."""
        if self._db is None:
            self._db = dbmod.connect(self._db_path)
        return self._db

    def fragments(self, key, build) -> tuple[bytes, bytes]:
        """A page rendered once around a per-visitor placeholder: (before, after)."""
        with self._lock:
            parts = self._entries.get(("fragments", key))
        if parts is None:
            parts = build()
            with self._lock:
                self._entries[("fragments", key)] = parts
        return parts

    def get(self, key) -> Entry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                self.hits += 1
            else:
                self.misses += 1
            return entry

    def put(self, key, response: Response) -> Entry:
        body = bytes(response.body)
        keep = {k: v for k, v in response.headers.items()
                if k.lower() not in ("content-length", "content-encoding", "etag", "vary", "set-cookie")}
        media_type = response.media_type or "text/html"
        compressible = media_type.startswith(("text/", "application/json", "image/svg"))
        entry = Entry(body, gzip.compress(body, 6, mtime=0) if compressible and len(body) >= GZIP_MIN else None,
                      '"' + hashlib.sha256(body).hexdigest()[:32] + '"', media_type,
                      tuple(keep.items()))
        with self._lock:
            self._entries[key] = entry
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return entry


def cached_page(endpoint):
    """Serve a GET page from the cache when the site, the campaign states and the URL are the same."""

    @functools.wraps(endpoint)
    async def wrapper(request: Request) -> Response:
        cache: PageCache | None = request.state.page_cache
        if cache is None:
            return await run_in_threadpool(endpoint, request)
        key = cache.key(request)
        entry = cache.get(key)
        if entry is None:
            response = await run_in_threadpool(endpoint, request)
            if (response.status_code != 200 or "no-store" in response.headers.get("cache-control", "")
                    or "set-cookie" in response.headers):
                return response
            entry = cache.put(key, response)
        return entry.response(request)

    return wrapper
