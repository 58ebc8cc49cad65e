"""Brands and lists: queries, search, and the brands.json import/export.

Search uses the FTS5 trigram index for terms of three characters or more and a
parameterised LIKE for shorter ones, because trigram cannot match a two-character
Chinese word such as 读书 or 协商.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path

import jsonschema
from sqlite_utils import Database

from . import clock, db as dbmod, voting
from .errors import BadQuery, BrandvoteError, InvalidCatalog, NotFound

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


# ---------------------------------------------------------------- the bundled file

def bundled_catalog_path() -> Path:
    """data/brands.json as installed with the package, whatever the current directory."""
    return Path(str(resources.files("brandvote") / "data" / "brands.json"))


@lru_cache(maxsize=1)
def _validator() -> jsonschema.protocols.Validator:
    schema_path = resources.files("brandvote") / "data" / "brands.schema.json"
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def _json_path(error: jsonschema.ValidationError) -> str:
    path = "$"
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def validate_document(doc: object, existing_brand_slugs: set[str] = frozenset()) -> list[str]:
    """Every problem of a brands.json document, each prefixed with its JSON path."""
    problems = [
        f"{_json_path(e)}: {e.message}"
        for e in sorted(_validator().iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]
    if problems:
        return problems
    brand_slugs: set[str] = set()
    for i, brand in enumerate(doc["brands"]):
        if brand["slug"] in brand_slugs:
            problems.append(f"$.brands[{i}].slug: 重复的 slug {brand['slug']!r}")
        brand_slugs.add(brand["slug"])
    known = brand_slugs | set(existing_brand_slugs)
    for key, members in (("lists", "items"), ("campaigns", "candidates")):
        seen: set[str] = set()
        for i, item in enumerate(doc.get(key, [])):
            if item["slug"] in seen:
                problems.append(f"$.{key}[{i}].slug: 重复的 slug {item['slug']!r}")
            seen.add(item["slug"])
            if len(set(item[members])) != len(item[members]):
                problems.append(f"$.{key}[{i}].{members}: 有重复的条目")
            for j, slug in enumerate(item[members]):
                if slug not in known:
                    problems.append(f"$.{key}[{i}].{members}[{j}]: 没有 slug 为 {slug!r} 的条目")
    for i, camp in enumerate(doc.get("campaigns", [])):
        problems += [f"$.campaigns[{i}]: {p}" for p in voting.rule_problems(camp)]
    return problems


def read_document(path: Path) -> dict:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidCatalog([f"$: 无法读取文件 {path}: {exc}"]) from exc
    return parse_document(text)


def _no_constant(name: str):
    raise ValueError(name)


def parse_document(text: str) -> object:
    """JSON as the standard says: Python's json would take NaN and Infinity, which no JSON
    client can read back. A number too large for a float (1e400) still parses, to inf, and
    the schema's bounds refuse it with its path."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise InvalidCatalog([f"$: 不是有效的 JSON（第{exc.lineno}行第{exc.colno}列）: {exc.msg}"]) from exc
    except ValueError as exc:
        raise InvalidCatalog([f"$: 不是有效的 JSON：{exc} 不是数字（JSON 没有 NaN 和 Infinity）"]) from exc


# ---------------------------------------------------------------- load / export

@dataclass
class LoadReport:
    added: dict[str, list[str]] = field(default_factory=lambda: {"brands": [], "lists": [], "campaigns": []})
    changed: dict[str, list[str]] = field(default_factory=lambda: {"brands": [], "lists": [], "campaigns": []})
    unchanged: dict[str, int] = field(default_factory=lambda: {"brands": 0, "lists": 0, "campaigns": 0})

    @property
    def total_changes(self) -> int:
        return sum(len(v) for v in self.added.values()) + sum(len(v) for v in self.changed.values())

    def lines(self) -> list[str]:
        names = {"brands": "条目", "lists": "榜单", "campaigns": "评选"}
        out = []
        for key, label in names.items():
            out.append(f"{label}: 新增 {len(self.added[key])}，修改 {len(self.changed[key])}，"
                       f"未变 {self.unchanged[key]}")
            for slug in self.changed[key]:
                out.append(f"  修改 {slug}")
        return out


def _brand_row(brand: dict) -> dict:
    row = {k: brand.get(k) for k in BRAND_FIELDS}
    row["district"] = brand.get("district")
    row["year_founded"] = brand.get("year_founded")
    row["featured"] = int(bool(brand.get("featured", False)))
    row["published"] = int(bool(brand.get("published", True)))
    for key in JSON_FIELDS:
        row[key] = json.dumps(brand.get(key, []), ensure_ascii=False, sort_keys=True)
    return row


class _Rollback(Exception):
    """Raised inside the load transaction to undo a dry run."""


def load_document(db: Database, doc: dict, now: datetime, actor: str = "load", dry_run: bool = False,
                  may_manage_campaigns: bool = True) -> LoadReport:
    """Upsert brands, lists and campaigns by slug in one transaction, or change nothing.

    A dry run does all of it and rolls back, so a preview reports exactly what a load would.
    Campaigns pass through voting.upsert_campaign's one rule path; an editor's import
    (may_manage_campaigns False) may carry them only unchanged.
    """
    existing = {r["slug"] for r in db.query("select slug from brands")}
    problems = validate_document(doc, existing)
    if problems:
        raise InvalidCatalog(problems)
    report = LoadReport()
    try:
        _load(db, doc, now, actor, dry_run, report, may_manage_campaigns)
    except _Rollback:
        pass
    return report


def _load(db: Database, doc: dict, now: datetime, actor: str, dry_run: bool, report: LoadReport,
          may_manage_campaigns: bool) -> None:
    stamp = clock.to_db(now)
    with dbmod.immediate(db):
        for brand in doc["brands"]:
            row = _brand_row(brand)
            old = dbmod.first(db, "select * from brands where slug = ?", [row["slug"]])
            if old is None:
                db.execute(
                    "insert into brands (slug, name, kind, organizer, region, district, year_founded,"
                    " figures, tags, summary, sources, featured, published, created_at, updated_at)"
                    " values (:slug, :name, :kind, :organizer, :region, :district, :year_founded,"
                    " :figures, :tags, :summary, :sources, :featured, :published, :now, :now)",
                    {**row, "now": stamp},
                )
                report.added["brands"].append(row["slug"])
                record_revision(db, dbmod.first(db, "select id from brands where slug = ?", [row["slug"]])["id"],
                                now, actor, "load")
            elif any(old[k] != row[k] for k in BRAND_FIELDS) or old["deleted_at"]:
                sets = ", ".join(f"{k} = :{k}" for k in BRAND_FIELDS if k != "slug")
                db.execute(f"update brands set {sets}, deleted_at = null, updated_at = :now where slug = :slug",
                           {**row, "now": stamp})
                report.changed["brands"].append(row["slug"])
                record_revision(db, old["id"], now, actor, "load")
            else:
                report.unchanged["brands"] += 1
        ids = {r["slug"]: r["id"] for r in db.query("select id, slug from brands")}
        for item in doc.get("lists", []):
            _upsert_list(db, item, ids, stamp, report)
        for i, camp in enumerate(doc.get("campaigns", [])):
            try:
                outcome = voting.upsert_campaign(db, camp, ids, now, actor=actor, may_manage=may_manage_campaigns)
            except BrandvoteError as exc:  # the whole file or nothing, the refusal at its JSON path
                refused = InvalidCatalog([f"$.campaigns[{i}] ({camp['slug']}): {exc.message}"])
                refused.status = exc.status
                raise refused from exc
            if outcome == "unchanged":
                report.unchanged["campaigns"] += 1
            else:
                getattr(report, outcome)["campaigns"].append(camp["slug"])
        if dry_run:
            raise _Rollback()


def record_revision(db: Database, brand_id: int, now: datetime, actor: str, action: str) -> None:
    """Inside the caller's transaction: the brand as it now stands, who and why."""
    row = dbmod.first(db, "select * from brands where id = ?", [brand_id])
    brand = decode_brand(row)
    snap = {k: brand[k] for k in BRAND_FIELDS}
    snap["featured"], snap["published"], snap["deleted"] = bool(snap["featured"]), bool(snap["published"]), bool(row["deleted_at"])
    db.execute("insert into brand_revisions (brand_id, at, actor, action, data) values (?, ?, ?, ?, ?)",
               [brand_id, clock.to_db(now), actor, action, json.dumps(snap, ensure_ascii=False, sort_keys=True)])


def _upsert_list(db: Database, item: dict, ids: dict[str, int], stamp: str, report: LoadReport) -> None:
    row = {
        "slug": item["slug"],
        "title": item["title"],
        "description": item.get("description", ""),
        "sources": json.dumps(item.get("sources", []), ensure_ascii=False, sort_keys=True),
        "featured": int(bool(item.get("featured", True))),
    }
    old = dbmod.first(db, "select * from lists where slug = ?", [row["slug"]])
    members = [ids[s] for s in item["items"]]
    if old is None:
        db.execute("insert into lists (slug, title, description, sources, featured, created_at, updated_at)"
                   " values (:slug, :title, :description, :sources, :featured, :now, :now)", {**row, "now": stamp})
        list_id = dbmod.first(db, "select id from lists where slug = ?", [row["slug"]])["id"]
        report.added["lists"].append(row["slug"])
    else:
        list_id = old["id"]
        old_members = [r["brand_id"] for r in db.query(
            "select brand_id from list_items where list_id = ? order by position", [list_id])]
        if all(old[k] == row[k] for k in row) and old_members == members:
            report.unchanged["lists"] += 1
            return
        db.execute("update lists set title = :title, description = :description, sources = :sources,"
                   " featured = :featured, updated_at = :now where id = :id", {**row, "now": stamp, "id": list_id})
        report.changed["lists"].append(row["slug"])
    db.execute("delete from list_items where list_id = ?", [list_id])
    db.conn.executemany(
        "insert into list_items (list_id, brand_id, position) values (?, ?, ?)",
        [(list_id, brand_id, pos) for pos, brand_id in enumerate(members)],
    )


def load_file(db: Database, path: Path, now: datetime) -> LoadReport:
    return load_document(db, read_document(path), now)


def export_document(db: Database) -> dict:
    brands = []
    for row in db.query("select * from brands where deleted_at is null order by id"):
        brand = decode_brand(row)
        out = {k: brand[k] for k in BRAND_FIELDS}
        out["featured"] = bool(out["featured"])
        out["published"] = bool(out["published"])
        brands.append(out)
    lists = []
    for row in db.query("select * from lists order by id"):
        lists.append({
            "slug": row["slug"],
            "title": row["title"],
            "description": row["description"],
            "sources": json.loads(row["sources"]),
            "featured": bool(row["featured"]),
            "items": [r["slug"] for r in db.query(
                "select b.slug from list_items li join brands b on b.id = li.brand_id"
                " where li.list_id = ? and b.deleted_at is null order by li.position", [row["id"]])],
        })
    return {"brands": brands, "lists": lists, "campaigns": voting.export_campaigns(db)}


def dump(doc: dict) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"


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
