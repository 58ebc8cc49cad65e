"""create_app(settings) builds the whole site; nothing happens at import time."""

from __future__ import annotations

import contextlib

import anyio.to_thread
from datetime import datetime
from typing import Callable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request

from . import clock, db as dbmod, qr
from .accounts import ABSOLUTE_TIMEOUT
from .web.pagecache import GZIP_MIN, CacheFront, PageCache
from .routes import build_routes, vote
from .routes.staff import STAFF_PREFIXES
from .routes.errors import error_response, make_handlers
from .security import SESSION_COOKIE, Tokens, derived_key
from .web.middleware import BodyLimit, OnlyUnder, SecurityHeaders
from .settings import Settings
from .web.links import Links
from .web.templating import add_links, make_templates
from .db.writer import Writer


THREADPOOL_SIZE = 16
ALREADY_COMPRESSED = ("image/png", "application/pdf", "application/zip", "application/gzip")


def create_app(settings: Settings, now: Callable[[], datetime] = clock.utcnow,
               qr_codes: qr.Codes | None = None) -> Starlette:
    """`now` is the clock every handler asks; tests pass a fake one to cross windows.
    `qr_codes` is the worker's QR cache and render turn (a test passes its own to count
    or hold renders); by default one is made at startup, keeping nothing if pages aren't cached."""
    templates = make_templates(settings)
    store = dbmod.Store(settings.db_path)
    tokens = Tokens(settings.secret)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        # `brandvote serve` migrates before the workers start; this covers tests and
        # `uvicorn --factory` use, and the file lock makes concurrent appliers safe.
        dbmod.migrate(settings.db_path)
        # Page renders and reads run in the threadpool, each thread with its own connection;
        # on 2 cores 16 threads keep the CPU busy, and 40 (anyio's default) only cost memory.
        anyio.to_thread.current_default_thread_limiter().total_tokens = THREADPOOL_SIZE
        writer = Writer(settings.db_path)
        writer.start()
        page_cache = PageCache(settings.db_path) if settings.cache_pages else None
        codes = qr_codes if qr_codes is not None else qr.Codes(
            max_entries=qr.CACHE_ENTRIES if settings.cache_pages else 0)
        try:
            yield {"store": store, "templates": templates, "settings": settings, "tokens": tokens,
                   "writer": writer, "now": now, "links": links, "page_cache": page_cache, "qr_codes": codes}
        finally:
            if page_cache is not None:
                page_cache.close()
            writer.stop()
            store.close_all()

    def render_413(scope):
        return error_response(templates, Request(scope), 413)

    def render_refusal(scope, status, code, message):
        return error_response(templates, Request(scope), status, message, code)

    app = Site(
        routes=build_routes(),
        lifespan=lifespan,
        exception_handlers=make_handlers(templates),
        middleware=[
            # Level 6, not Starlette's 9: much less CPU for nearly the same size (bench/FIGURES.md).
            # Excluded: only what this site serves already compressed, since Starlette
            # re-normalises the list on every request.
            Middleware(GZipMiddleware, minimum_size=GZIP_MIN, compresslevel=6,
                       exclude_content_types=ALREADY_COMPRESSED),
            Middleware(BodyLimit, max_body_bytes=settings.max_body_bytes, render_413=render_413),
            # Staff sessions: a signed cookie holding only a session id (see accounts.py), only
            # on the staff paths, signed with the staff-session purpose's own key (security.py).
            Middleware(OnlyUnder, middleware_class=SessionMiddleware, prefixes=STAFF_PREFIXES,
                       secret_key=derived_key(settings.secret, "staff-session"), session_cookie=SESSION_COOKIE,
                       max_age=int(ABSOLUTE_TIMEOUT.total_seconds()), same_site="strict",
                       https_only=settings.https),
        ],
        https=settings.https,
        refuse=render_refusal,
    )
    links = Links(settings.base_url, app.router)
    add_links(templates, links)
    return app


class Site(Starlette):
    """Starlette with the security headers outside its error middleware, so 500 pages carry them
    too, and cached pages answered just inside them (pagecache.CacheFront)."""

    def __init__(self, *args, https: bool = False, refuse=None, **kwargs):
        self.https = https
        self.refuse = refuse
        super().__init__(*args, **kwargs)

    def build_middleware_stack(self):
        return SecurityHeaders(CacheFront(super().build_middleware_stack(), front_pages=vote.FRONT_PAGES,
                                          refuse=self.refuse),
                               https=self.https)


def app_from_env() -> Starlette:
    """uvicorn factory entry (`brandvote serve` with workers): settings from the environment."""
    return create_app(Settings.from_env())
