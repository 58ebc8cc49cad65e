"""Brands and lists: their rows, revisions, queries and search (brands.json is seed.py's).

Search uses the FTS5 trigram index for terms of three characters or more and a
parameterised LIKE for shorter ones, because trigram cannot match a two-character
Chinese word such as 读书 or 协商.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from sqlite_utils import Database

from . import clock, db as dbmod
from .errors import BadQuery, NotFound

KINDS = {
    "brand": "工作品牌",
    "highlight": "履职创新亮点",
    "case": "创新案例",
    "practice": "经验做法",
}
MAX_QUERY_CHARS = 500
MAX_PAGE = 10_000
BRAND_FIELDS = ("slug", "name", "kind", "organizer", "region", "district", "year_founded",
                "figures", "tags", "summary", "sources", "featured", "published")
JSON_FIELDS = ("figures", "tags", "sources")


# ---------------------------------------------------------------- rows and revisions

def brand_row(brand: dict) -> dict:
    """A brand as the brands table stores it (JSON fields as sorted JSON text)."""
    row = {k: brand.get(k) for k in BRAND_FIELDS}
    row["district"] = brand.get("district")
    row["year_founded"] = brand.get("year_founded")
    row["featured"] = int(bool(brand.get("featured", False)))
    row["published"] = int(bool(brand.get("published", True)))
    for key in JSON_FIELDS:
        row[key] = json.dumps(brand.get(key, []), ensure_ascii=False, sort_keys=True)
    return row


_INSERT_BRAND = (f"insert into brands ({', '.join(BRAND_FIELDS)}, created_at, updated_at)"
                 f" values ({', '.join(':' + k for k in BRAND_FIELDS)}, :now, :now)")


def insert_brand(db: Database, row: dict, stamp: str) -> int:
    """A new brand from brand_row(), created and updated at stamp; returns its id. The one
    insert, so a file's load and the editor's form cannot store a brand two ways."""
    return db.execute(_INSERT_BRAND, {**row, "now": stamp}).lastrowid


def record_revision(db: Database, brand_id: int, now: datetime, actor: str, action: str) -> None:
    """Inside the caller's transaction: the brand as it now stands, who and why."""
    row = dbmod.first(db, "select * from brands where id = ?", [brand_id])
    brand = decode_brand(row)
    snap = {k: brand[k] for k in BRAND_FIELDS}
    snap["featured"], snap["published"], snap["deleted"] = bool(snap["featured"]), bool(snap["published"]), bool(row["deleted_at"])
    db.execute("insert into brand_revisions (brand_id, at, actor, action, data) values (?, ?, ?, ?, ?)",
               [brand_id, clock.to_db(now), actor, action, json.dumps(snap, ensure_ascii=False, sort_keys=True)])


# ---------------------------------------------------------------- queries

def decode_brand(row: dict) -> dict:
    brand = dict(row)
    for key in JSON_FIELDS:
        brand[key] = json.loads(brand[key])
    # a figure stored as Infinity or NaN before the schema bounded it is never shown or emitted
    brand["figures"] = [f for f in brand["figures"] if isinstance(f.get("value"), int) or math.isfinite(f["value"])]
    brand["kind_label"] = KINDS.get(brand["kind"], brand["kind"])
    return brand


def brand_by_slug(db: Database, slug: str) -> dict:
    row = dbmod.first(db, "select * from brands where slug = ? and published = 1 and deleted_at is null", [slug])
    if row is None:
        raise NotFound("没有找到这个条目。")
    brand = decode_brand(row)
    brand["lists"] = list(db.query(
        "select l.slug, l.title from list_items li join lists l on l.id = li.list_id"
        " where li.brand_id = ? order by l.id", [row["id"]]))
    # A draft (never scheduled nor opened) leaves no public trace, its title and link included.
    brand["campaigns"] = list(db.query(
        "select c.slug, c.title from candidates k join campaigns c on c.id = k.campaign_id"
        " where k.brand_id = ? and (c.opens_at is not null or c.manual_state is not null)"
        " order by c.id", [row["id"]]))
    return brand


@dataclass
class Filters:
    q: str = ""
    region: str = ""
    kind: str = ""
    list: str = ""
    page: int = 1

    def as_params(self, **override) -> dict:
        values = {"q": self.q, "region": self.region, "kind": self.kind, "list": self.list,
                  "page": self.page, **override}
        return {k: v for k, v in values.items() if v not in ("", None, 1) or (k == "page" and v != 1)}


def brands_with_slugs(db: Database, slugs: list[str]) -> dict[str, dict]:
    """Entries by slug in any state (published or not, deleted or not), for the console."""
    if not slugs:
        return {}
    marks = ",".join("?" * len(slugs))
    return {r["slug"]: decode_brand(r) for r in db.query(f"select * from brands where slug in ({marks})", slugs)}


def first_brand_slug(db: Database) -> str | None:
    row = dbmod.first(db, "select slug from brands where published = 1 and deleted_at is null order by id limit 1")
    return row and row["slug"]


def parse_filters(params) -> Filters:
    """Strictly parse the query string of /brands and /api/brands; bad input → BadQuery (400)."""
    q = " ".join((params.get("q") or "").split())
    if len(q) > MAX_QUERY_CHARS:
        raise BadQuery(f"搜索词过长，最多 {MAX_QUERY_CHARS} 个字。")
    kind = (params.get("kind") or "").strip()
    if kind and kind not in KINDS:
        raise BadQuery("没有这种类别。可选：" + "、".join(f"{k}（{v}）" for k, v in KINDS.items()))
    region = (params.get("region") or "").strip()
    if len(region) > 20:
        raise BadQuery("地区名称过长。")
    list_slug = (params.get("list") or "").strip()
    if len(list_slug) > 80:
        raise BadQuery("榜单参数过长。")
    page_text = (params.get("page") or "1").strip()
    if not (page_text.isascii() and page_text.isdigit()) or not 1 <= int(page_text) <= MAX_PAGE:
        raise BadQuery(f"页码必须是 1 到 {MAX_PAGE} 之间的整数。")
    return Filters(q=q, region=region, kind=kind, list=list_slug, page=int(page_text))


@dataclass
class Page:
    items: list[dict]
    total: int
    page: int
    pages: int
    page_size: int


def _like(term: str) -> str:
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def search_brands(db: Database, filters: Filters, page_size: int = 20) -> Page:
    where = ["b.published = 1", "b.deleted_at is null"]
    params: dict[str, object] = {}
    terms = filters.q.replace("\x00", " ").split()  # a NUL would end the FTS5 string early: a 500
    long_terms = [t for t in terms if len(t) >= 3]
    if long_terms:
        where.append("b.id in (select rowid from brands_fts where brands_fts match :fts)")
        params["fts"] = " ".join('"' + t.replace('"', '""') + '"' for t in long_terms)
    for i, term in enumerate(t for t in terms if len(t) < 3):
        where.append(
            f"(b.name like :t{i} escape '\\' or b.organizer like :t{i} escape '\\'"
            f" or b.district like :t{i} escape '\\' or b.summary like :t{i} escape '\\'"
            f" or b.tags like :t{i} escape '\\')"
        )
        params[f"t{i}"] = _like(term)
    if filters.region:
        where.append("b.region = :region")
        params["region"] = filters.region
    if filters.kind:
        where.append("b.kind = :kind")
        params["kind"] = filters.kind
    order = "b.id"
    join = ""
    if filters.list:
        join = "join list_items li on li.brand_id = b.id join lists l on l.id = li.list_id and l.slug = :list"
        params["list"] = filters.list
        order = "li.position"
    if terms:
        params["first"] = _like(terms[0])
        order = f"(b.name like :first escape '\\') desc, {order}"
    sql_from = f"from brands b {join} where {' and '.join(where)}"
    total = next(iter(db.query(f"select count(*) as n {sql_from}", params)))["n"]
    pages = max(1, math.ceil(total / page_size))
    rows = db.query(
        f"select b.* {sql_from} order by {order} limit :limit offset :offset",
        {**params, "limit": page_size, "offset": (filters.page - 1) * page_size},
    )
    return Page([decode_brand(r) for r in rows], total, filters.page, pages, page_size)


def regions(db: Database) -> list[str]:
    return [r["region"] for r in db.query(
        "select region, min(id) as first from brands where published = 1 and deleted_at is null"
        " group by region order by first")]


def all_lists(db: Database) -> list[dict]:
    return list(db.query(
        "select l.slug, l.title, l.description, l.featured, count(b.id) as size from lists l"
        " left join list_items li on li.list_id = l.id"
        " left join brands b on b.id = li.brand_id and b.published = 1 and b.deleted_at is null"
        " group by l.id order by l.id"))


def list_by_slug(db: Database, slug: str) -> dict:
    row = dbmod.first(db, "select * from lists where slug = ?", [slug])
    if row is None:
        raise NotFound("没有找到这个榜单。")
    result = dict(row)
    result["sources"] = json.loads(row["sources"])
    result["items"] = [decode_brand(r) for r in db.query(
        "select b.* from list_items li join brands b on b.id = li.brand_id"
        " where li.list_id = ? and b.published = 1 and b.deleted_at is null order by li.position",
        [row["id"]])]
    return result


def featured_brands(db: Database, limit: int = 6) -> list[dict]:
    return [decode_brand(r) for r in db.query(
        "select * from brands where featured = 1 and published = 1 and deleted_at is null"
        " order by id limit ?", [limit])]


def counts_by_kind(db: Database) -> dict[str, int]:
    return {r["kind"]: r["n"] for r in db.query(
        "select kind, count(*) as n from brands where published = 1 and deleted_at is null group by kind")}


def is_empty(db: Database) -> bool:
    return next(iter(db.query("select count(*) as n from brands")))["n"] == 0
