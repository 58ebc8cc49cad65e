"""The JSON API: the same rules and filters as the pages; errors as {"error", "message"}."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .. import campaigns, catalog, tally
from ..errors import BadQuery
from ..web.openapi import openapi_document
from ..web.pagecache import cached_page
from .catalog import SEARCH_PARAMS


class ChineseJSON(JSONResponse):
    def render(self, content) -> bytes:
        import json

        # allow_nan=False: never NaN or Infinity, which are not JSON (decode_brand drops them)
        return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


def brand_json(brand: dict, links) -> dict:
    out = {k: brand[k] for k in ("slug", "name", "kind", "kind_label", "organizer", "region",
                                 "district", "year_founded", "figures", "tags", "summary", "sources")}
    out["url"] = links.url("catalog:brand", slug=brand["slug"])
    if "lists" in brand:
        out["lists"] = [{"slug": item["slug"], "title": item["title"]} for item in brand["lists"]]
    return out


def campaign_json(db, camp: dict, now, links, with_candidates: bool) -> dict:
    out = {
        "slug": camp["slug"],
        "title": camp["title"],
        "intro": camp["intro"],
        "status": campaigns.status(camp, now),
        "min_choices": camp["min_choices"],
        "max_choices": camp["max_choices"],
        "winners": camp["winners"],
        "electorate": camp["electorate"],
        "opens_at": camp["opens_at"],
        "closes_at": camp["closes_at"],
        "announce_at": camp["announce_at"],
        "announced_at": tally.announced_at(camp, now),
        "url": links.url("vote:ballot", slug=camp["slug"]),
    }
    if with_candidates:
        out["candidates"] = [
            {"slug": b["slug"], "name": b["name"], "organizer": b["organizer"]}
            for b in campaigns.candidates_of(db, camp["id"])
        ]
    return out


def strict_filters(params) -> catalog.Filters:
    """The pages forgive stray spaces; the API holds clients to its OpenAPI document exactly:
    lengths as sent, `kind` empty or one of the kinds, `page` digits only."""
    kind = params.get("kind")
    if kind is not None and kind not in ("", *catalog.KINDS):
        raise BadQuery("没有这种类别。可选：" + "、".join(f"{k}（{v}）" for k, v in catalog.KINDS.items()))
    for name, limit, label in (("q", catalog.MAX_QUERY_CHARS, "搜索词"), ("region", 20, "地区名称"),
                               ("list", 80, "榜单参数")):
        if len(params.get(name) or "") > limit:
            raise BadQuery(f"{label}过长，最多 {limit} 个字。")
    page = params.get("page")
    if page is not None and not (page.isascii() and page.isdigit() and 1 <= int(page) <= catalog.MAX_PAGE):
        raise BadQuery(f"页码必须是 1 到 {catalog.MAX_PAGE} 之间的整数。")
    return catalog.parse_filters(params)


@cached_page(params=SEARCH_PARAMS)
def brands(request: Request):
    db = request.state.store.db()
    filters = strict_filters(request.query_params)
    page = catalog.search_brands(db, filters, request.state.settings.page_size)
    links = request.state.links
    return ChineseJSON({
        "total": page.total, "page": page.page, "pages": page.pages, "page_size": page.page_size,
        "items": [brand_json(b, links) for b in page.items],
    })


@cached_page
def brand(request: Request):
    db = request.state.store.db()
    entry = catalog.brand_by_slug(db, request.path_params["slug"])
    return ChineseJSON(brand_json(entry, request.state.links))


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
    links = request.state.links
    return ChineseJSON({
        "slug": item["slug"], "title": item["title"], "description": item["description"],
        "sources": item["sources"], "items": [brand_json(b, links) for b in item["items"]],
    })


@cached_page
def campaign_list(request: Request):
    db = request.state.store.db()
    now = request.state.now()
    links = request.state.links
    return ChineseJSON({"items": [
        campaign_json(db, c, now, links, with_candidates=False)
        for c in tally.public_campaigns(db, now)
    ]})


@cached_page
def campaign(request: Request):
    db = request.state.store.db()
    now = request.state.now()
    camp = tally.public_campaign(db, request.path_params["slug"], now)
    return ChineseJSON(campaign_json(db, camp, now, request.state.links, with_candidates=True))


def openapi(request: Request):
    db = request.state.store.db()
    now = request.state.now()
    first_list = next(iter(catalog.all_lists(db)), None)
    camp = next(iter(tally.public_campaigns(db, now)), None)
    examples = {"brand": catalog.first_brand_slug(db), "list": first_list and first_list["slug"],
                "campaign": camp and camp["slug"]}
    return ChineseJSON(openapi_document(request.state.settings.base_url, examples))


routes = [
    Route("/brands", brands, name="brands"),
    Route("/brands/{slug}", brand, name="brand"),
    Route("/lists", lists, name="lists"),
    Route("/lists/{slug}", list_detail, name="list"),
    Route("/campaigns", campaign_list, name="campaigns"),
    Route("/campaigns/{slug}", campaign, name="campaign"),
    Route("/openapi.json", openapi, name="openapi"),
]
