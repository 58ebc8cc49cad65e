"""Rendered pages, kept per worker and keyed by what they depend on.

A crowd reads the same few pages, and rendering one with Jinja costs many times more than
serving stored bytes (bench/FIGURES.md). A page depends on the data (site_version, bumped by
triggers on every catalog or campaign write, so every worker sees an edit at once) and on
the clock only through campaign states (open, closed, announced), so those are the key.
Only anonymous 200 responses that allow caching are kept; a gzip copy is made once.

The URL part of the key is only the query parameters the page declares (cached_page(params=…)),
and the page is handed only those: junk appended to a URL makes no entry and no render. The
cache is a segmented LRU, so a stream of URLs asked once each (one-off searches, new channels)
churns only the probation segment and never pushes out a page the crowd reads again.
Query strings over MAX_QUERY_BYTES or MAX_QUERY_PARAMS are refused in front (query_refusal).
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
from urllib.parse import unquote_plus

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import compile_path

from .. import campaigns, clock, db as dbmod, tally

MAX_ENTRIES = 1024
PROTECTED_SHARE = 0.75  # of the entries: pages read at least twice, safe from one-off floods
SCOPE_KEY = "brandvote.page_key"  # the key CacheFront computed, so a miss does not compute it twice
GZIP_MIN = 500


# A query string longer than this, or with more parameters, is refused before anything reads
# it. The longest legitimate one: /brands with a 500-character Chinese search (catalog's
# MAX_QUERY_CHARS, 9 bytes each percent-encoded) and every other filter, about 4.8 KB.
MAX_QUERY_BYTES = 8 * 1024
MAX_QUERY_PARAMS = 32


def query_refusal(query_string: bytes) -> tuple[int, str, str] | None:
    """(status, code, Chinese message) for an absurd query string, or None if it may be read.

    Nothing the site serves needs more; refusing it up front means no parser or cache
    lookup ever handles 60 KB of junk."""
    if len(query_string) > MAX_QUERY_BYTES:
        return 414, "uri_too_long", f"网址过长：查询参数超过 {MAX_QUERY_BYTES // 1024} KB，请缩短后再试。"
    if query_string.count(b"&") >= MAX_QUERY_PARAMS and _pieces(query_string) > MAX_QUERY_PARAMS:
        return 400, "too_many_params", f"查询参数过多：最多 {MAX_QUERY_PARAMS} 个。"
    return None


def _pieces(query_string: bytes) -> int:
    return sum(1 for piece in query_string.split(b"&") if piece)


def canonical_query(query_string: bytes, params: tuple[str, ...]) -> bytes:
    """The query string with only the declared parameters.

    Pieces are kept as sent and in their order (never re-encoded or sorted), so the page
    reads exactly what it would have read from the whole query string, and a URL without
    junk is its own canonical form (answered by CacheFront). Names are compared as
    Starlette's parser decodes them (%71 is q)."""
    if not query_string:
        return b""
    return b"&".join(piece for piece in query_string.split(b"&")
                     if piece and unquote_plus(piece.split(b"=", 1)[0].decode("latin-1")) in params)


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
        # A segmented LRU: what was stored and not read since waits in probation; what is read
        # again moves to protected. A flood of URLs asked once each evicts only probation.
        self._probation: OrderedDict = OrderedDict()
        self._protected: OrderedDict = OrderedDict()
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
        self.renders = 0  # pages handed to their endpoint by cached_page (misses that rendered)

    def __len__(self) -> int:
        return len(self._probation) + len(self._protected)

    def entries_for(self, path: str) -> int:
        """Cached responses of one path, whatever the query or the data version."""
        with self._lock:
            return sum(1 for segment in (self._probation, self._protected) for key, value in segment.items()
                       if isinstance(value, Entry) and key[0] == path)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def key(self, request: Request) -> tuple:
        """The key CacheFront computed, for this request's query string (cached_page may have
        cut it down to the declared parameters), or a new one."""
        front = request.scope.get(SCOPE_KEY)
        if front is None:
            return self.key_from_scope(request.scope)
        query = request.scope["query_string"]
        return front if front[1] == query else (front[0], query) + front[2:]

    def key_from_scope(self, scope) -> tuple:
        db = self.read_db()
        version = db.execute("select n from site_version where id = 1").fetchone()[0]
        now = scope["state"]["now"]()
        if self._campaigns[0] != version or now >= self._states_until:
            self._refresh(db, version, now)
        return scope["path"], scope["query_string"], version, self._states

    def _refresh(self, db, version: int, now) -> None:
        """Campaign states change only at their own times: compute them, and the next such time."""
        rows = [dict(r) for r in db.query("select * from campaigns order by id")]
        self._campaigns = (version, rows)
        self._states = tuple((c["id"], campaigns.status(c, now), tally.voting_over(c, now)) for c in rows)
        times = []
        for c in rows:
            for field in ("opens_at", "closes_at", "announce_at"):
                t = clock.from_db(c.get(field))
                if t is not None:
                    times += [t, t + campaigns.GRACE] if field == "closes_at" else [t]
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
            value = self._lookup(key)
        if value is None:
            value = build()
            with self._lock:
                self._store(key, value)
        return value

    def get(self, key) -> Entry | None:
        with self._lock:
            entry = self._lookup(key)
            if entry is not None:
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
            self._store(key, entry)
        return entry

    # The segments, touched only under the lock.

    def _lookup(self, key):
        value = self._protected.get(key)
        if value is not None:
            self._protected.move_to_end(key)
            return value
        value = self._probation.pop(key, None)
        if value is not None:  # read again since it was stored: promoted
            self._protected[key] = value
            self._trim()
        return value

    def _store(self, key, value) -> None:
        segment = self._protected if key in self._protected else self._probation
        segment[key] = value
        segment.move_to_end(key)
        self._trim()

    def _trim(self) -> None:
        """Protected holds at most PROTECTED_SHARE of the entries (its oldest go back to
        probation for one more chance); the oldest in probation go first."""
        protected_max = max(1, int(self.max_entries * PROTECTED_SHARE))
        while len(self._protected) > protected_max:
            key, value = self._protected.popitem(last=False)
            self._probation[key] = value
        while len(self) > self.max_entries:
            (self._probation or self._protected).popitem(last=False)


GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, mtime 0, OS unknown


class Fragments:
    """A page that differs per visitor only in one short slot, kept plain and gzipped.

    Compressing the whole ballot page per request was most of a first visit's cost. Instead
    the parts around the slot are deflated once, each ending on a
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


def cached_page(endpoint=None, *, params: tuple[str, ...] = ()):
    """Serve a GET page from the cache when the site, the campaign states and the URL are the same.

    `params` are the query parameters the page reads (none by default). Only they are part
    of the key, and the endpoint is handed a request holding only them, so what the key
    ignores the page cannot read. An async endpoint is awaited on the loop (it may wait
    there, for a render slot); a plain one runs in the threadpool.
    """
    if endpoint is None:
        return functools.partial(cached_page, params=tuple(params))
    params = tuple(params)
    if asyncio.iscoroutinefunction(endpoint):
        call = endpoint
    else:
        async def call(request):
            return await run_in_threadpool(endpoint, request)

    @functools.wraps(endpoint)
    async def wrapper(request: Request) -> Response:
        request = only_declared(request, params)
        cache: PageCache | None = request.state.page_cache
        if cache is None:
            return await call(request)
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
                cache.renders += 1
                response = await call(request)
            finally:
                if leads:
                    cache.rendering.pop(key).set_result(None)
            if (response.status_code != 200 or "no-store" in response.headers.get("cache-control", "")
                    or "set-cookie" in response.headers):
                return response
            entry = cache.put(key, response)
        return entry.response(request)

    wrapper.cache_params = params
    return wrapper


def only_declared(request: Request, params: tuple[str, ...]) -> Request:
    """The request as the page may see it: its query string cut to the declared parameters."""
    query = request.scope["query_string"]
    canonical = canonical_query(query, params)
    if canonical == query:
        return request
    return Request({**request.scope, "query_string": canonical}, request.receive)


class CacheFront:
    """Serves cached pages before the rest of the middleware stack and the router.

    Entries are only ever stored by @cached_page handlers (anonymous pages that set no
    cookie and read none), under the same key, so answering here changes nothing but cost.
    `front_pages` are (path, handler) pairs for per-visitor pages assembled from cached
    fragments (the ballot page): handler(request) returns a complete response, headers
    included, or None to let the router answer. Every request, whatever its method, is
    first checked against query_refusal. A query string holding junk besides the declared
    parameters misses here and is answered by the router, from the entry all such URLs share.
    """

    def __init__(self, app, front_pages=(), refuse=None):
        self.app = app
        self.front_pages = [(compile_path(path)[0], handler) for path, handler in front_pages]
        # refuse(scope, status, code, message) -> the site's error response, for query_refusal
        self.refuse = refuse

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and self.refuse is not None:
            refusal = query_refusal(scope.get("query_string", b""))
            if refusal is not None:
                return await self.refuse(scope, *refusal)(scope, receive, send)
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
