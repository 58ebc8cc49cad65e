"""Results, downloads, the ledger and receipt lookup: every one asks tally.is_announced first."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import tally
from .api import ChineseJSON
from .vote import NO_STORE, _public_campaign

PUBLIC_CACHE = {"Cache-Control": "public, max-age=300"}


def _announced(request: Request) -> tuple[dict, dict | None]:
    """The campaign, and its results only if announced (None before)."""
    camp = _public_campaign(request)
    now = request.state.now()
    if not tally.is_announced(camp, now):
        return camp, None
    db = request.state.store.db()
    tally.publish_winners_list(db, camp, now)
    return camp, tally.results(db, camp, now)


def results_page(request: Request):
    camp, res = _announced(request)
    return request.state.templates.TemplateResponse(
        request, "results/index.html", {"campaign": camp, "res": res, "announce_text": tally.announce_text(camp)},
        headers=PUBLIC_CACHE if res is not None else NO_STORE)


def receipt_lookup(request: Request):
    """/c/{slug}/receipt?code=…: after the announcement, was this receipt counted, and how."""
    res = _download(request)
    camp = _public_campaign(request)
    code = request.query_params.get("code", "")[:40]
    found = tally.lookup_receipt(request.state.store.db(), camp, code, request.state.now()) if code else None
    return request.state.templates.TemplateResponse(
        request, "results/lookup.html", {"campaign": camp, "res": res, "code": code, "found": found},
        status_code=200 if found else 404, headers=NO_STORE)


def _download(request: Request) -> dict:
    camp, res = _announced(request)
    if res is None:
        raise tally.NotAnnounced(tally.announce_text(camp))
    return res


def results_csv(request: Request):
    res = _download(request)
    return Response(tally.results_csv(res), media_type="text/csv; charset=utf-8", headers={
        **PUBLIC_CACHE, "Content-Disposition": f'attachment; filename="{res["campaign"]}-results.csv"'})


def results_json(request: Request):
    return ChineseJSON(tally.results_json(_download(request)), headers=PUBLIC_CACHE)


def ledger_csv(request: Request):
    res = _download(request)
    camp = _public_campaign(request)
    text = tally.ledger_csv(tally.ledger_rows(request.state.store.db(), camp["id"]))
    return Response(text, media_type="text/csv; charset=utf-8", headers={
        **PUBLIC_CACHE, "X-Ledger-SHA256": tally.sha256(text),
        "Content-Disposition": f'attachment; filename="{res["campaign"]}-ledger.csv"'})


def api_results(request: Request):
    return ChineseJSON(tally.results_json(_download(request)), headers=PUBLIC_CACHE)


routes = [
    Route("/c/{slug}/results", results_page, name="results"),
    Route("/c/{slug}/results.csv", results_csv, name="results_csv"),
    Route("/c/{slug}/results.json", results_json, name="results_json"),
    Route("/c/{slug}/ledger.csv", ledger_csv, name="ledger"),
]
api_routes = [Route("/campaigns/{slug}/results", api_results, name="campaign_results")]
