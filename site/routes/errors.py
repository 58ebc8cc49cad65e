"""Every error becomes a Chinese page (or JSON under /api/), never a traceback."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import BrandvoteError

log = logging.getLogger("brandvote")

MESSAGES = {
    400: ("bad_request", "请求有误。"),
    403: ("forbidden", "没有权限进行这项操作。"),
    404: ("not_found", "没有找到这个页面。"),
    405: ("method_not_allowed", "不支持这种请求方式。"),
    409: ("conflict", "操作与当前状态冲突。"),
    413: ("too_large", "提交的内容过大。"),
    422: ("unprocessable", "提交的内容不符合要求。"),
    429: ("rate_limited", "请求过于频繁，请稍后再试。"),
    500: ("server_error", "服务器出了点问题，请稍后再试。我们已记录此错误。"),
    503: ("busy", "服务器繁忙，请稍后再试。"),
}


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def error_response(templates, request: Request, status: int, message: str | None = None,
                   code: str | None = None, headers: dict | None = None) -> Response:
    default_code, default_message = MESSAGES.get(status, ("error", "出错了。"))
    code = code or default_code
    message = message or default_message
    headers = {"Cache-Control": "no-store", **(headers or {})}
    if wants_json(request):
        return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)
    return templates.TemplateResponse(
        request, "errors/error.html", {"status": status, "message": message, "code": code},
        status_code=status, headers=headers,
    )


def make_handlers(templates) -> dict:
    async def http_exception(request: Request, exc: HTTPException) -> Response:
        message = exc.detail if exc.detail and exc.detail != _reason(exc.status_code) else None
        return error_response(templates, request, exc.status_code, message,
                              headers=dict(exc.headers or {}))

    async def domain_error(request: Request, exc: BrandvoteError) -> Response:
        return error_response(templates, request, exc.status, exc.message, exc.code)

    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(templates, request, 500)

    return {HTTPException: http_exception, BrandvoteError: domain_error, Exception: server_error}


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
