"""The small ASGI guards every response passes: security headers, a body limit, and a
middleware confined to some paths (the staff session must not touch the crowd's pages)."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)


class SecurityHeaders:
    """Adds the same security headers to every response, error pages included."""

    def __init__(self, app: ASGIApp, https: bool = False):
        self.app = app
        self.headers = [
            (b"content-security-policy", CSP.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"same-origin"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
        ]
        if https:
            self.headers.append((b"strict-transport-security", b"max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    h for h in self.headers if h[0] not in present
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class OnlyUnder:
    """Runs a middleware for some path prefixes only; other requests skip it.

    Used for the staff session: public pages never read or re-issue the staff cookie, and
    the crowd's requests do not pay for parsing it.
    """

    def __init__(self, app: ASGIApp, middleware_class, prefixes: tuple[str, ...], **options):
        self.plain = app
        self.wrapped = middleware_class(app, **options)
        self.prefixes = prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefixes):
            await self.wrapped(scope, receive, send)
        else:
            await self.plain(scope, receive, send)


class BodyLimit:
    """Refuses bodies over the limit with the site's own Chinese 413.

    Starlette's built-in max_body_size answers a declared oversize Content-Length with a
    plain-text English 413 that replaces any handler's page, so we check here instead:
    a declared length is refused before reading, a streamed body as soon as it passes
    the limit (raised into the handler, rendered by the 413 exception handler).
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int, render_413):
        self.app = app
        self.limit = max_body_bytes
        self.render_413 = render_413

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            response = self.render_413(scope)
            return await response(scope, receive, send)
        total = 0

        async def limited_receive() -> Message:
            nonlocal total
            message = await receive()
            if message["type"] == "http.request":
                total += len(message.get("body", b""))
                if total > self.limit:
                    raise HTTPException(413)
            return message

        await self.app(scope, limited_receive, send)
