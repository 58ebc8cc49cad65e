"""Rendered pages, kept per worker and keyed by what they depend on.

A crowd reads the same few pages; rendering one costs ~1.4 ms of Jinja (perf-limits.md),
serving stored bytes ~0.05 ms. A page depends on the data (site_version, bumped by
triggers on every catalog or campaign write, so every worker sees an edit at once) and on
the clock only through campaign states (open, closed, announced), so those are the key.
Only anonymous 200 responses that allow caching are kept; a gzip copy is made once.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import hashlib
import struct
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import compile_path

from . import clock, db as dbmod, tally, voting

MAX_ENTRIES = 1024
SCOPE_KEY = "brandvote.page_key"  # the key CacheFront computed, so a miss does not compute it twice
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

    async def send(self, scope, send) -> None:
        """Answer straight from the entry, without building a Request or a Response."""
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
                   if k in (b"if-none-match", b"accept-encoding")}
        response = self.response_for(headers)
        await response(scope, None, send)

    def response(self, request: Request) -> Response:
        return self.response_for(request.headers)

    def response_for(self, request_headers) -> Response:
        headers = dict(self.headers)
        headers["ETag"] = self.etag
        headers["Vary"] = "Accept-Encoding"
        if etag_matches(request_headers.get("if-none-match"), self.etag):
            return Response(status_code=304, headers={"ETag": self.etag, "Vary": "Accept-Encoding",
                                                      "Cache-Control": headers.get("cache-control", "")})
        if self.gzipped is not None and "gzip" in request_headers.get("accept-encoding", ""):
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
        self._states: tuple = ()
        self._states_until = None
        self.max_entries = max_entries
        # page key → a future the requests for it wait on while one of them renders it: after
        # an edit or the announcement, a crowd on a cold page costs one render, not one per
        # threadpool thread. Touched only on the event loop's thread.
        self.rendering: dict = {}
        self.hits = self.misses = 0

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def key(self, request: Request) -> tuple:
        return request.scope.get(SCOPE_KEY) or self.key_from_scope(request.scope)

    def key_from_scope(self, scope) -> tuple:
        db = self.read_db()
        version = db.execute("select n from site_version where id = 1").fetchone()[0]
        now = scope["state"]["now"]()
        if self._campaigns[0] != version or now >= self._states_until:
            self._refresh(db, version, now)
        return scope["path"], scope["query_string"], version, self._states

    def _refresh(self, db, version: int, now) -> None:
        """Campaign states change only at their own times: compute them, and the next such time."""
        campaigns = [dict(r) for r in db.query("select * from campaigns order by id")]
        self._campaigns = (version, campaigns)
        self._states = tuple((c["id"], voting.status(c, now), tally.voting_over(c, now)) for c in campaigns)
        times = []
        for c in campaigns:
            for field in ("opens_at", "closes_at", "announce_at"):
                t = clock.from_db(c.get(field))
                if t is not None:
                    times += [t, t + voting.GRACE] if field == "closes_at" else [t]
        future = [t for t in times if t > now]
        self._states_until = min(future) if future else now + timedelta(days=3650)

    def campaign(self, slug: str) -> dict | None:
        """From the list read with the current key (call key() first)."""
        return next((c for c in self._campaigns[1] if c["slug"] == slug), None)

    def read_db(self):
        """The loop thread's own connection, for a short indexed read on a hot path."""
        if self._db is None:
            self._db = dbmod.connect(self._db_path)
        return self._db

    def fragments(self, key, build) -> Fragments:
        """A page rendered once around a per-visitor placeholder; build() -> (before, after)."""
        return self.kept(("fragments", key), lambda: Fragments(*build()))

    def kept(self, key, build):
        """What build() returns, made once per key (a key holds the data version and the
        campaign states, so an edit or a new state makes it anew)."""
        with self._lock:
            value = self._entries.get(key)
        if value is None:
            value = build()
            with self._lock:
                self._entries[key] = value
        return value

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


GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, mtime 0, OS unknown


class Fragments:
    """A page that differs per visitor only in one short slot, kept plain and gzipped.

    Compressing the whole ballot page per request costs ~200 µs of the ~340 µs a phone's
    request took. Instead the parts around the slot are deflated once, each ending on a
    byte boundary, and each visitor's slot goes between them as a stored (uncompressed)
    deflate block (RFC 1951 §3.2.4): one valid gzip member, built with no compression work
    per request but the CRC of the slot and the short tail.
    """

    def __init__(self, before: bytes, after: bytes):
        self.before, self.after = before, after
        head = zlib.compressobj(6, zlib.DEFLATED, -15)
        self._deflated_before = head.compress(before) + head.flush(zlib.Z_SYNC_FLUSH)  # not final
        tail = zlib.compressobj(6, zlib.DEFLATED, -15)
        self._deflated_after = tail.compress(after) + tail.flush(zlib.Z_FINISH)  # the final block
        self._crc_before = zlib.crc32(before)

    def body(self, slot: bytes) -> bytes:
        return self.before + slot + self.after

    def gzipped(self, slot: bytes) -> bytes:
        if len(slot) > 0xFFFF:
            raise ValueError("a slot must fit one stored block")
        stored = b"\x00" + struct.pack("<HH", len(slot), len(slot) ^ 0xFFFF) + slot
        crc = zlib.crc32(self.after, zlib.crc32(slot, self._crc_before))
        size = len(self.before) + len(slot) + len(self.after)
        return b"".join((GZIP_HEADER, self._deflated_before, stored, self._deflated_after,
                         struct.pack("<II", crc, size & 0xFFFFFFFF)))


def cached_page(endpoint):
    """Serve a GET page from the cache when the site, the campaign states and the URL are the same."""

    @functools.wraps(endpoint)
    async def wrapper(request: Request) -> Response:
        cache: PageCache | None = request.state.page_cache
        if cache is None:
            return await run_in_threadpool(endpoint, request)
        key = cache.key(request)
        entry = cache.get(key)
        if entry is None and key in cache.rendering:  # another request renders this page now
            await asyncio.shield(cache.rendering[key])  # a waiter that goes away cancels only itself
            entry = cache.get(key)
        if entry is None:
            leads = key not in cache.rendering
            if leads:
                cache.rendering[key] = asyncio.get_running_loop().create_future()
            try:
                response = await run_in_threadpool(endpoint, request)
            finally:
                if leads:
                    cache.rendering.pop(key).set_result(None)
            if (response.status_code != 200 or "no-store" in response.headers.get("cache-control", "")
                    or "set-cookie" in response.headers):
                return response
            entry = cache.put(key, response)
        return entry.response(request)

    return wrapper


class CacheFront:
    """Serves cached pages before the rest of the middleware stack and the router.

    Entries are only ever stored by @cached_page handlers (anonymous pages that set no
    cookie and read none), under the same key, so answering here changes nothing but cost.
    `front_pages` are (path, handler) pairs for per-visitor pages assembled from cached
    fragments (the ballot page): handler(request) returns a complete response, headers
    included, or None to let the router answer.
    """

    def __init__(self, app, front_pages=()):
        self.app = app
        self.front_pages = [(compile_path(path)[0], handler) for path, handler in front_pages]

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            cache = scope.get("state", {}).get("page_cache")
            entry = response = None
            if cache is not None:
                try:
                    scope[SCOPE_KEY] = cache.key_from_scope(scope)
                    entry = cache.get(scope[SCOPE_KEY])
                    if entry is None:
                        response = self.front_page(scope)
                except Exception:  # e.g. a locked database: the app below answers, with its error pages
                    entry = response = None
            if entry is not None:
                return await entry.send(scope, send)
            if response is not None:
                return await response(scope, receive, send)
        await self.app(scope, receive, send)

    def front_page(self, scope) -> Response | None:
        for regex, handler in self.front_pages:
            match = regex.match(scope["path"])
            if match:
                return handler(Request({**scope, "path_params": match.groupdict()}))
        return None
