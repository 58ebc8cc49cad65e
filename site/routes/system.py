"""Health check for load balancers and the CLI: answers only when the database does."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .. import db as dbmod


def healthz(request: Request):
    db = request.state.store.db()
    pending = dbmod.pending_migrations(db)
    ok = next(iter(db.query("select 1 as ok")))["ok"] == 1 and not pending
    return JSONResponse({"status": "ok" if ok else "migrations pending", "pending": pending},
                        status_code=200 if ok else 503, headers={"Cache-Control": "no-store"})


routes = [Route("/healthz", healthz, name="system:healthz")]
