"""The OpenAPI 3.1 description of /api, kept exact (additionalProperties: false) so a
schema-driven fuzzer can hold the server to it."""

from __future__ import annotations

from ..catalog import KINDS, MAX_PAGE, MAX_QUERY_CHARS
from ..campaigns import STATUS_LABELS


def _obj(props: dict, required: list[str] | None = None) -> dict:
    return {"type": "object", "properties": props, "required": required or list(props),
            "additionalProperties": False}


NULL_STR = {"type": ["string", "null"]}
FIGURE = _obj({"label": {"type": "string"}, "value": {"type": "number"}, "unit": {"type": "string"}})
SOURCE = {"type": "object", "properties": {"title": {"type": "string"}, "publisher": NULL_STR,
                                           "date": NULL_STR},
          "required": ["title", "publisher", "date"], "additionalProperties": False}
LIST_REF = _obj({"slug": {"type": "string"}, "title": {"type": "string"}})
BRAND_PROPS = {
    "slug": {"type": "string"}, "name": {"type": "string"},
    "kind": {"type": "string", "enum": list(KINDS)}, "kind_label": {"type": "string"},
    "organizer": {"type": "string"}, "region": {"type": "string"}, "district": NULL_STR,
    "year_founded": {"type": ["integer", "null"]}, "figures": {"type": "array", "items": FIGURE},
    "tags": {"type": "array", "items": {"type": "string"}}, "summary": {"type": "string"},
    "sources": {"type": "array", "items": SOURCE}, "url": {"type": "string"},
}
BRAND = _obj(BRAND_PROPS)
BRAND_DETAIL = _obj({**BRAND_PROPS, "lists": {"type": "array", "items": LIST_REF}})
CAMPAIGN_PROPS = {
    "slug": {"type": "string"}, "title": {"type": "string"}, "intro": {"type": "string"},
    "status": {"type": "string", "enum": list(STATUS_LABELS)},
    "min_choices": {"type": "integer"}, "max_choices": {"type": "integer"}, "winners": {"type": "integer"},
    "electorate": {"type": "string", "enum": ["open", "codes"]},
    "opens_at": NULL_STR, "closes_at": NULL_STR, "announce_at": NULL_STR,
    "announced_at": NULL_STR, "url": {"type": "string"},
}
CAMPAIGN = _obj(CAMPAIGN_PROPS)
CANDIDATE = _obj({"slug": {"type": "string"}, "name": {"type": "string"}, "organizer": {"type": "string"}})
CAMPAIGN_DETAIL = _obj({**CAMPAIGN_PROPS, "candidates": {"type": "array", "items": CANDIDATE}})
ERROR = _obj({"error": {"type": "string"}, "message": {"type": "string"}})
RESULT_ROW = _obj({"slug": {"type": "string"}, "name": {"type": "string"}, "votes": {"type": "integer"},
                   "share": {"type": "number"}, "rank": {"type": "integer"},
                   "winner": {"type": ["boolean", "null"]}, "tie": {"type": "boolean"}})
RESULTS = _obj({"campaign": {"type": "string"}, "title": {"type": "string"}, "ballots": {"type": "integer"},
                "winners": {"type": "integer"}, "tie_rule": {"type": "string"}, "ledger_sha256": {"type": "string"},
                "candidates": {"type": "array", "items": RESULT_ROW}})
SLUG = {"name": "slug", "in": "path", "required": True,
        "schema": {"type": "string", "pattern": "^[a-z0-9]+(?:-[a-z0-9]+)*$", "maxLength": 80}}
FILTERS = [
    {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": MAX_QUERY_CHARS}},
    {"name": "region", "in": "query", "schema": {"type": "string", "maxLength": 20}},
    {"name": "kind", "in": "query", "description": "空值表示全部类别",
     "schema": {"type": "string", "enum": ["", *KINDS]}},
    {"name": "list", "in": "query", "schema": {"type": "string", "maxLength": 80}},
    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}},
]


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _get(summary: str, ok: dict, params: list | None = None, errors: tuple[int, ...] = ()) -> dict:
    responses = {"200": _json(ok, "成功")}
    for status in errors:
        responses[str(status)] = _json({"$ref": "#/components/schemas/Error"}, "错误")
    return {"get": {"summary": summary, "parameters": params or [], "responses": responses}}


def _slug(example: str | None) -> dict:
    """The path's slug parameter, with a real slug as its example when one is known."""
    return {**SLUG, "example": example} if example else SLUG


def openapi_document(base_url: str, examples: dict[str, str] | None = None) -> dict:
    """`examples`: a real slug per kind ("brand", "list", "campaign"), so readers and
    schema-driven fuzzers reach the 200 answers, not only 404."""
    ex = examples or {}
    page = _obj({"total": {"type": "integer"}, "page": {"type": "integer"}, "pages": {"type": "integer"},
                 "page_size": {"type": "integer"}, "items": {"type": "array", "items": {"$ref": "#/components/schemas/Brand"}}})
    lists = _obj({"items": {"type": "array", "items": _obj({
        "slug": {"type": "string"}, "title": {"type": "string"}, "description": {"type": "string"},
        "size": {"type": "integer"}})}})
    list_detail = _obj({"slug": {"type": "string"}, "title": {"type": "string"}, "description": {"type": "string"},
                        "sources": {"type": "array", "items": SOURCE},
                        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Brand"}}})
    campaigns = _obj({"items": {"type": "array", "items": {"$ref": "#/components/schemas/Campaign"}}})
    return {
        "openapi": "3.1.0",
        "info": {"title": "brandvote API", "version": "1", "description": "工作品牌目录与评选的公开接口"},
        "servers": [{"url": base_url}],
        "paths": {
            "/api/brands": _get("搜索和筛选条目", page, FILTERS, (400,)),
            "/api/brands/{slug}": _get("一个条目", {"$ref": "#/components/schemas/BrandDetail"},
                                      [_slug(ex.get("brand"))], (404,)),
            "/api/lists": _get("全部榜单", lists),
            "/api/lists/{slug}": _get("一个榜单", list_detail, [_slug(ex.get("list"))], (404,)),
            "/api/campaigns": _get("全部评选（不含票数）", campaigns),
            "/api/campaigns/{slug}": _get("一个评选的规则、时间与候选项目（不含票数）",
                                          {"$ref": "#/components/schemas/CampaignDetail"},
                                          [_slug(ex.get("campaign"))], (404,)),
            "/api/campaigns/{slug}/results": _get("揭晓后的结果；揭晓前为 403",
                                                  {"$ref": "#/components/schemas/Results"},
                                                  [_slug(ex.get("campaign"))], (403, 404)),
        },
        "components": {"schemas": {"Brand": BRAND, "BrandDetail": BRAND_DETAIL, "Campaign": CAMPAIGN,
                                   "CampaignDetail": CAMPAIGN_DETAIL, "Results": RESULTS,
                                   "Error": ERROR}},
    }
