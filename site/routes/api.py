"""The JSON API: the same rules and filters as the pages; errors as {"error", "message"}."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .. import catalog, voting
from ..openapi import openapi_document
from ..pagecache import cached_page


class ChineseJSON(JSONResponse):
    def render(self, content) -> bytes:
        import json

        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def brand_json(brand: dict, base_url: str) -> dict:
    out = {k: brand[k] for k in ("slug", "name", "kind", "kind_label", "organizer", "region",
                                 "district", "year_founded", "figures", "tags", "summary", "sources")}
    out["url"] = f"{base_url}/brands/{brand['slug']}"
    if "lists" in brand:
        out["lists"] = [{"slug": item["slug"], "title": item["title"]} for item in brand["lists"]]
    return out


def campaign_json(db, camp: dict, now, base_url: str, with_candidates: bool) -> dict:
    out = {
        "slug": camp["slug"],
        "title": camp["title"],
        "intro": camp["intro"],
        "status": voting.status(camp, now),
        "min_choices": camp["min_choices"],
        "max_choices": camp["max_choices"],
        "winners": camp["winners"],
        "electorate": camp["electorate"],
        "opens_at": camp["opens_at"],
        "closes_at": camp["closes_at"],
        "announce_at": camp["announce_at"],
        "url": f"{base_url}/c/{camp['slug']}",
    }
    if with_candidates:
        out["candidates"] = [
            {"slug": b["slug"], "name": b["name"], "organizer": b["organizer"]}
            for b in voting.candidates_of(db, camp["id"])
        ]
    return out


@cached_page
def brands(request: Request):
    db = request.state.store.db()
    filters = catalog.parse_filters(request.query_params)
    page = catalog.search_brands(db, filters, request.state.settings.page_size)
    base = request.state.settings.base_url
    return ChineseJSON({
        "total": page.total, "page": page.page, "pages": page.pages, "page_size": page.page_size,
        "items": [brand_json(b, base) for b in page.items],
    })


@cached_page
def brand(request: Request):
    db = request.state.store.db()
    entry = catalog.brand_by_slug(db, request.path_params["slug"])
    return ChineseJSON(brand_json(entry, request.state.settings.base_url))


@cached_page
def lists(request: Request):
    db = request.state.store.db()
    return ChineseJSON({"items": [
        {"slug": item["slug"], "title": item["title"], "description": item["description"], "size": item["size"]}
        for item in catalog.all_lists(db)
    ]})


@cached_page
def list_detail(request: Request):
    db = request.state.store.db()
    item = catalog.list_by_slug(db, request.path_params["slug"])
    base = request.state.settings.base_url
    return ChineseJSON({
        "slug": item["slug"], "title": item["title"], "description": item["description"],
        "sources": item["sources"], "items": [brand_json(b, base) for b in item["items"]],
    })


@cached_page
def campaigns(request: Request):
    db = request.state.store.db()
    now = request.state.now()
    base = request.state.settings.base_url
    return ChineseJSON({"items": [
        campaign_json(db, c, now, base, with_candidates=False)
        for c in voting.list_campaigns(db, now) if c["status"] != "draft"
    ]})


@cached_page
def campaign(request: Request):
    db = request.state.store.db()
    camp = voting.campaign_by_slug(db, request.path_params["slug"])
    now = request.state.now()
    if voting.status(camp, now) == "draft":
        raise voting.NotFound("没有找到这个评选。")
    return ChineseJSON(campaign_json(db, camp, now, request.state.settings.base_url, with_candidates=True))


def openapi(request: Request):
    return ChineseJSON(openapi_document(request.state.settings.base_url))


routes = [
    Route("/brands", brands, name="brands"),
    Route("/brands/{slug}", brand, name="brand"),
    Route("/lists", lists, name="lists"),
    Route("/lists/{slug}", list_detail, name="list"),
    Route("/campaigns", campaigns, name="campaigns"),
    Route("/campaigns/{slug}", campaign, name="campaign"),
    Route("/openapi.json", openapi, name="openapi"),
]
