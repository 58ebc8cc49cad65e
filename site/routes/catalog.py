"""Public catalog pages: home, search, entry, list. Parse, call catalog, render."""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from .. import catalog, tally
from ..web.pagecache import cached_page


def _db(request: Request):
    return request.state.store.db()


@cached_page
def home(request: Request):
    db = _db(request)
    now = request.state.now()
    campaigns = tally.public_campaigns(db, now)
    lists = [item for item in catalog.all_lists(db) if item["featured"]]
    return request.state.templates.TemplateResponse(request, "catalog/home.html", {
        "campaigns": campaigns,
        "lists": lists,
        "featured": catalog.featured_brands(db),
        "counts": catalog.counts_by_kind(db),
        "kinds": catalog.KINDS,
    })


# What /brands and /api/brands read (catalog.parse_filters): the page cache keys on these alone.
SEARCH_PARAMS = ("q", "region", "kind", "list", "page")


@cached_page(params=SEARCH_PARAMS)
def brands(request: Request):
    db = _db(request)
    filters = catalog.parse_filters(request.query_params)
    page = catalog.search_brands(db, filters, request.state.settings.page_size)
    list_title = None
    if filters.list:
        list_title = next((item["title"] for item in catalog.all_lists(db) if item["slug"] == filters.list), None)
    return request.state.templates.TemplateResponse(request, "catalog/brands.html", {
        "filters": filters,
        "page": page,
        "regions": catalog.regions(db),
        "kinds": catalog.KINDS,
        "lists": catalog.all_lists(db),
        "list_title": list_title,
    })


@cached_page
def brand(request: Request):
    db = _db(request)
    entry = catalog.brand_by_slug(db, request.path_params["slug"])
    share_url = request.state.links.url("catalog:brand", slug=entry["slug"])
    return request.state.templates.TemplateResponse(request, "catalog/brand.html", {
        "brand": entry, "share_url": share_url,
    })


@cached_page
def list_page(request: Request):
    db = _db(request)
    return request.state.templates.TemplateResponse(request, "catalog/list.html", {
        "list": catalog.list_by_slug(db, request.path_params["slug"]),
    })


@cached_page
def lists_index(request: Request):
    return request.state.templates.TemplateResponse(request, "catalog/lists.html", {
        "lists": catalog.all_lists(_db(request)),
    })


routes = [
    Route("/", home, name="catalog:home"),
    Route("/brands", brands, name="catalog:brands"),
    Route("/brands/{slug}", brand, name="catalog:brand"),
    Route("/lists", lists_index, name="catalog:lists"),
    Route("/lists/{slug}", list_page, name="catalog:list"),
]
