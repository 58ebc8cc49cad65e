"""How `brandvote serve` runs uvicorn: the limits that keep slow or idle clients from
holding a worker's sockets, and why each value is what it is.

A reverse proxy in front (deploy/nginx.conf) is the real defence against slow clients: it
reads heads and bodies itself and hands the app only whole requests. These limits are for
what reaches uvicorn anyway (no proxy, or a proxy misconfigured), so that a few hundred
sockets cannot take every file descriptor of a worker.
"""

from __future__ import annotations

import resource

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# Seconds an idle connection is kept: after a response (uvicorn's keep-alive) and, through
# BoundedHttpTools, from the moment a connection opens until its first byte. A phone asks
# for the page's CSS and script within milliseconds of the page, so 5 s (uvicorn's default)
# loses nothing; nginx's upstream keepalive_timeout (4 s in the sample) must stay below it,
# or nginx reuses a connection the app is closing and answers 502.
TIMEOUT_KEEP_ALIVE = 5
# Seconds from a request's first byte to the end of its head. A head is one or two TCP
# segments (our cookies are small); 10 s covers three retransmissions on a bad mobile link,
# while a client that sends one header line every few seconds is cut off.
HEAD_TIMEOUT = 10
# Bytes of request head accepted: h11's own default (uvicorn's h11 option), and Node's. Our
# longest head (staff cookies, a long search URL) is under 2 KiB; httptools has no limit.
MAX_HEAD_BYTES = 16 * 1024
# Connections per worker before uvicorn answers 503 to new requests. uvicorn counts every
# open connection here, idle keep-alive ones included, not requests in progress: a crowd of
# phones each holding a few sockets for 5 s after each request can reach a thousand or two
# while the worker, serving a page in well under a millisecond, has only a few requests in
# hand. 4096 is far above that, and an idle socket costs the worker about 7 KiB (2000 of
# them: +14 MiB RSS), so a worker at the limit holds some 28 MiB more.
LIMIT_CONCURRENCY = 4096
# Files a worker needs besides client sockets: the database, its WAL and shared memory per
# connection, the secret, the listening socket, logs, pipes of the thread pool.
FD_RESERVE = 64
# Connections waiting to be accepted (a burst after "scan the code now"). They cost the
# worker nothing until accepted; Linux caps this at net.core.somaxconn (4096 since 5.4).
BACKLOG = 4096


class BoundedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for the idle start and for the head.

    uvicorn arms its keep-alive timer only after a response, and cancels it at the first byte
    received: a connection that never sends a byte, or sends its head a byte at a time, is
    kept for ever (uvicorn PR #1192, never merged), and httptools accepts a head of any size.
    Here the keep-alive timer also runs from the connection's start, any byte of a new head
    starts a HEAD_TIMEOUT deadline that only the head's end cancels, and a head over
    MAX_HEAD_BYTES is answered 431: as soon as the bytes of an unfinished head pass it, or,
    for a head that arrived whole in one read, through uvicorn's own response cycle.
    """

    head_timeout = HEAD_TIMEOUT
    max_head_bytes = MAX_HEAD_BYTES

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._head_bytes: int | None = 0  # bytes of the head being read; None while not reading one
        self._head_size = 0  # the parsed head: URL, names and values
        self._heads_done = 0
        self._head_timer = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def data_received(self, data: bytes) -> None:
        heads_done = self._heads_done
        super().data_received(data)
        # Bytes that ended a head belong (partly) to that request: counted only while a head is unfinished.
        if self._head_bytes is None or self._heads_done != heads_done or self.transport.is_closing():
            return
        self._head_bytes += len(data)
        if self._head_bytes > self.max_head_bytes:
            self._refuse_head()
        elif self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_too_slow)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_size = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._head_size += len(name) + len(value) + 4

    def on_headers_complete(self) -> None:
        self._head_bytes = None
        self._heads_done += 1
        self._cancel_head_timer()
        if self._head_size <= self.max_head_bytes:
            super().on_headers_complete()
            return
        app, self.app = self.app, head_too_large  # uvicorn runs self.app for this request
        try:
            super().on_headers_complete()
        finally:
            self.app = app

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_bytes = 0  # whatever comes next is the next request's head

    def connection_lost(self, exc) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        """No answer: the client is too slow to read one, and nginx does the same."""
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def _refuse_head(self) -> None:
        self._cancel_head_timer()
        self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                             + b"".join(b"%s: %s\r\n" % pair for pair in HEAD_TOO_LARGE_HEADERS)
                             + b"\r\n" + HEAD_TOO_LARGE)
        self.transport.close()


HEAD_TOO_LARGE = f"请求头过大（超过 {MAX_HEAD_BYTES // 1024} KB）。".encode()
HEAD_TOO_LARGE_HEADERS = [(b"content-type", b"text/plain; charset=utf-8"),
                          (b"content-length", str(len(HEAD_TOO_LARGE)).encode()), (b"connection", b"close")]


async def head_too_large(scope, receive, send) -> None:
    """The answer to a head over MAX_HEAD_BYTES that arrived whole: 431, then close."""
    await send({"type": "http.response.start", "status": 431, "headers": HEAD_TOO_LARGE_HEADERS})
    await send({"type": "http.response.body", "body": HEAD_TOO_LARGE})


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit, where allowed; return the soft limit.

    The soft limit is often 1024 while the hard one is far higher; every client socket is a
    file. Workers inherit the raised limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):  # e.g. macOS refuses more than OPEN_MAX: keep what we have
            pass
    return 1 << 30 if soft == resource.RLIM_INFINITY else soft


def connection_limit(wanted: int, open_files: int) -> int:
    """limit_concurrency that leaves FD_RESERVE files to the worker: at the limit the crowd
    gets a quick 503 rather than the whole worker failing to open its database."""
    return max(1, min(wanted, open_files - FD_RESERVE))


def uvicorn_options(host: str, port: int, workers: int, limit_concurrency: int, open_files: int) -> dict:
    """Keyword arguments for uvicorn.run; the protocol is named by import path so that
    workers (spawned processes) load the same class."""
    return dict(
        host=host, port=port, workers=workers, loop="uvloop", http="brandvote.serving:BoundedHttpTools",
        access_log=False, log_level="warning", proxy_headers=False, server_header=False,
        timeout_keep_alive=TIMEOUT_KEEP_ALIVE, limit_concurrency=connection_limit(limit_concurrency, open_files),
        backlog=BACKLOG, h11_max_incomplete_event_size=MAX_HEAD_BYTES,
    )
