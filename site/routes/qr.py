"""QR codes for campaigns (per channel) and entries, and the printable A4 poster.

Every encoded URL comes from links.url (settings.base_url), never from the request's Host header.
Size and channel are checked before anything is rendered; images come from the worker's
qr.Codes (cached, one render at a time) and are also kept by the page cache, keyed on
`ch` and `size` alone.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import campaigns, catalog, qr
from ..errors import BadChannel, QrBusy
from ..web.pagecache import cached_page, etag_matches
from .common import public_campaign

CACHE_HEADERS = {"Cache-Control": "public, max-age=86400"}


def parse_channel(request: Request) -> str | None:
    """`?ch=`: absent or empty → no channel; anything the ballot would not keep → 400."""
    ch = request.query_params.get("ch", "")
    if ch == "":
        return None
    if not campaigns.CHANNEL_RE.match(ch):
        raise BadChannel()
    return ch


def campaign_url(request: Request, slug: str, channel: str | None) -> str:
    url = request.state.links.url("vote:ballot", slug=slug)
    return f"{url}?ch={channel}" if channel else url


async def image_response(request: Request, url: str, fmt: str, size: int) -> Response:
    try:
        image = await request.state.qr_codes.image(url, fmt, size)
    except QrBusy as busy:  # a Chinese 503 page (not cached) that says when to come back
        raise HTTPException(503, detail=busy.message, headers={"Retry-After": "1"}) from None
    headers = {**CACHE_HEADERS, "ETag": image.etag}
    if etag_matches(request.headers.get("if-none-match"), image.etag):
        return Response(status_code=304, headers=headers)
    return Response(image.body, media_type=image.media_type, headers=headers)


def campaign_code(fmt: str):
    async def endpoint(request: Request) -> Response:
        size = qr.parse_size(request.query_params.get("size"), fmt)
        channel = parse_channel(request)
        camp = await run_in_threadpool(public_campaign, request)
        return await image_response(request, campaign_url(request, camp["slug"], channel), fmt, size)

    endpoint.__name__ = f"campaign_qr_{fmt}"
    return cached_page(endpoint, params=("ch", "size"))


@cached_page(params=("size",))
async def brand_code(request: Request) -> Response:
    size = qr.parse_size(request.query_params.get("size"), "svg")
    slug = request.path_params["slug"]
    brand = await run_in_threadpool(lambda: catalog.brand_by_slug(request.state.store.db(), slug))
    return await image_response(request, request.state.links.url("catalog:brand", slug=brand["slug"]), "svg", size)


def common_organizer(candidates: list[dict]) -> str | None:
    """The organizer every candidate names (organizers are joined with 、), if there is one;
    campaigns store no organizer of their own, so nothing is shown rather than a guess."""
    if not candidates:
        return None
    names = [[n.strip() for n in (c.get("organizer") or "").split("、") if n.strip()] for c in candidates]
    shared = set(names[0]).intersection(*map(set, names[1:]))
    return "、".join(n for n in names[0] if n in shared) or None


@cached_page(params=("ch",))
def poster(request: Request) -> Response:
    channel = parse_channel(request)
    camp = public_campaign(request)
    candidates = campaigns.candidates_of(request.state.store.db(), camp["id"])
    query = f"?ch={channel}" if channel else ""
    return request.state.templates.TemplateResponse(request, "qr/poster.html", {
        "campaign": camp,
        "channel": channel,
        "qr_src": f"/c/{camp['slug']}/qr.svg{query}",
        "url": campaign_url(request, camp["slug"], channel),
        "organizer": common_organizer(candidates),
        "candidate_count": len(candidates),
        "state": campaigns.status(camp, request.state.now()),
    })


routes = [
    Route("/c/{slug}/qr.svg", campaign_code("svg"), name="qr:campaign_svg"),
    Route("/c/{slug}/qr.png", campaign_code("png"), name="qr:campaign_png"),
    Route("/c/{slug}/poster", poster, name="qr:poster"),
    Route("/brands/{slug}/qr.svg", brand_code, name="qr:brand_svg"),
]
