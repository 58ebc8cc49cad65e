"""The whole route table, readable at a glance."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from ..web.templating import PACKAGE_DIR
from . import api, catalog, editor, organizer, qr, results, review_console, staff, system, vote


class VersionedStatic(StaticFiles):
    """Static files: a URL carrying ?v=<content hash> may be cached for a year."""

    def file_response(self, full_path, stat_result, scope, status_code=200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        if b"v=" in scope.get("query_string", b""):
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        else:
            response.headers["Cache-Control"] = "public, max-age=300"
        return response


def build_routes() -> list:
    return [
        *vote.routes,  # first: the crowd's ballot GET and POST are matched without trying the rest
        *catalog.routes,
        *system.routes,
        *qr.routes,
        *results.routes,
        *staff.routes,
        *organizer.routes,
        *review_console.routes,
        *editor.routes,
        Mount("/api", routes=[*api.routes, *results.api_routes], name="api"),
        Mount("/static", app=VersionedStatic(directory=str(PACKAGE_DIR / "static")), name="static"),
    ]
