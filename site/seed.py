"""brands.json: the bundled file, its JSON Schema, and load/export of a whole document.

A document is checked in full (schema, references, campaign rules) before anything is
written, then loaded in one transaction: the whole file or nothing. Campaigns go through
campaigns.upsert_campaign, the one rule path every door shares.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path

import jsonschema
from sqlite_utils import Database

from . import campaigns, catalog, clock, db as dbmod
from .errors import BrandvoteError, InvalidCatalog


# ---------------------------------------------------------------- the bundled file

def bundled_catalog_path() -> Path:
    """data/brands.json as installed with the package, whatever the current directory."""
    return Path(str(resources.files("brandvote") / "data" / "brands.json"))


@lru_cache(maxsize=1)
def validator() -> jsonschema.protocols.Validator:
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
        for e in sorted(validator().iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
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
        problems += [f"$.campaigns[{i}].{field}: {p}" for field, p in campaigns.rule_problems(camp).items()]
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


class _Rollback(Exception):
    """Raised inside the load transaction to undo a dry run."""


def load_document(db: Database, doc: dict, now: datetime, actor: str = "load", dry_run: bool = False,
                  may_manage_campaigns: bool = True) -> LoadReport:
    """Upsert brands, lists and campaigns by slug in one transaction, or change nothing.

    A dry run does all of it and rolls back, so a preview reports exactly what a load would.
    Campaigns pass through campaigns.upsert_campaign's one rule path; an editor's import
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
            row = catalog.brand_row(brand)
            old = dbmod.first(db, "select * from brands where slug = ?", [row["slug"]])
            if old is None:
                brand_id = catalog.insert_brand(db, row, stamp)
                report.added["brands"].append(row["slug"])
                catalog.record_revision(db, brand_id, now, actor, "load")
            elif any(old[k] != row[k] for k in catalog.BRAND_FIELDS) or old["deleted_at"]:
                dbmod.update_row(db, "brands", old["id"], {**{k: row[k] for k in catalog.BRAND_FIELDS if k != "slug"},
                                                           "deleted_at": None, "updated_at": stamp})
                report.changed["brands"].append(row["slug"])
                catalog.record_revision(db, old["id"], now, actor, "load")
            else:
                report.unchanged["brands"] += 1
        ids = {r["slug"]: r["id"] for r in db.query("select id, slug from brands")}
        for item in doc.get("lists", []):
            _upsert_list(db, item, ids, stamp, report)
        for i, camp in enumerate(doc.get("campaigns", [])):
            try:
                outcome = campaigns.upsert_campaign(db, camp, ids, now, actor=actor, may_manage=may_manage_campaigns)
            except BrandvoteError as exc:  # the whole file or nothing, the refusal at its JSON path
                raise InvalidCatalog([f"$.campaigns[{i}] ({camp['slug']}): {exc.message}"], exc.status) from exc
            if outcome == "unchanged":
                report.unchanged["campaigns"] += 1
            else:
                getattr(report, outcome)["campaigns"].append(camp["slug"])
        if dry_run:
            raise _Rollback()


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
        brand = catalog.decode_brand(row)
        out = {k: brand[k] for k in catalog.BRAND_FIELDS}
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
    return {"brands": brands, "lists": lists, "campaigns": campaigns.export_campaigns(db)}


def dump(doc: dict) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"
