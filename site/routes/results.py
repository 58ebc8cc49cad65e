"""Results, downloads, the ledger and receipt lookup: every one asks tally.is_announced first."""

from __future__ import annotations

from starlette.requests import Request
from starlette.concurrency import iterate_in_threadpool
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from .. import db as dbmod, tally
from ..errors import NotAnnounced
from ..web.pagecache import cached_page
from .api import ChineseJSON
from .common import NO_STORE, public_campaign

PUBLIC_CACHE = {"Cache-Control": "public, max-age=300"}


def _announced(request: Request) -> tuple[dict, dict | None]:
    """The campaign, and its results only if announced (None before)."""
    camp = public_campaign(request)
    now = request.state.now()
    if not tally.is_announced(camp, now):
        return camp, None
    db = request.state.store.db()
    tally.publish_winners_list(db, camp, now)
    return camp, tally.results(db, camp, now)


@cached_page
def results_page(request: Request):
    camp, res = _announced(request)
    return request.state.templates.TemplateResponse(
        request, "results/index.html", {"campaign": camp, "res": res, "announce_text": tally.announce_text(camp),
                                      "announced_at": tally.announced_at(camp, request.state.now())},
        headers=PUBLIC_CACHE if res is not None else NO_STORE)


def receipt_lookup(request: Request):
    """/c/{slug}/receipt?code=…: after the announcement, was this receipt counted, and how."""
    res = _download(request)
    camp = public_campaign(request)
    code = request.query_params.get("code", "")[:40]
    found = tally.lookup_receipt(request.state.store.db(), camp, code, request.state.now()) if code else None
    return request.state.templates.TemplateResponse(
        request, "results/lookup.html", {"campaign": camp, "res": res, "code": code, "found": found},
        status_code=200 if found else 404, headers=NO_STORE)


def _download(request: Request) -> dict:
    camp, res = _announced(request)
    if res is None:
        raise NotAnnounced(tally.announce_text(camp))
    return res


@cached_page
def results_csv(request: Request):
    res = _download(request)
    return Response(tally.results_csv(res), media_type="text/csv; charset=utf-8", headers={
        **PUBLIC_CACHE, "Content-Disposition": f'attachment; filename="{res["campaign"]}-results.csv"'})


@cached_page
def results_json(request: Request):
    return ChineseJSON(tally.results_json(_download(request)), headers=PUBLIC_CACHE)


def ledger_csv(request: Request):
    """Streamed: a million-ballot ledger never sits in memory. Its digest was fixed at the tally."""
    res = _download(request)
    camp = public_campaign(request)
    path = request.state.settings.db_path

    def lines():
        # its own connection: the stream's steps run on whichever pool thread is free
        db = dbmod.connect(path)
        try:
            for line in tally.ledger_lines(tally.ledger_rows(db, camp["id"])):
                yield line.encode("utf-8")
        finally:
            db.close()

    return StreamingResponse(iterate_in_threadpool(lines()), media_type="text/csv; charset=utf-8", headers={
        **PUBLIC_CACHE, "X-Ledger-SHA256": res["ledger_sha256"],
        "Content-Disposition": f'attachment; filename="{res["campaign"]}-ledger.csv"'})


@cached_page
def api_results(request: Request):
    return ChineseJSON(tally.results_json(_download(request)), headers=PUBLIC_CACHE)


routes = [
    Route("/c/{slug}/results", results_page, name="results:page"),
    Route("/c/{slug}/results.csv", results_csv, name="results:csv"),
    Route("/c/{slug}/results.json", results_json, name="results:json"),
    Route("/c/{slug}/ledger.csv", ledger_csv, name="results:ledger"),
]
api_routes = [Route("/campaigns/{slug}/results", api_results, name="campaign_results")]
