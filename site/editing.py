"""The editor's rules: a form becomes a brand, every save is a revision, any revision
can come back. No HTTP here; `now` and the actor are passed in.

A brand from a form is checked against the same JSON Schema as brands.json, so the
console cannot store what `brandvote load` would refuse.
"""

from __future__ import annotations

import difflib
import json
import re
import secrets
from datetime import datetime
from functools import lru_cache

import jsonschema
from sqlite_utils import Database

from . import clock, seed
from .catalog import BRAND_FIELDS, JSON_FIELDS, brand_row, decode_brand, insert_brand, record_revision
from .db import first, immediate, update_row
from .errors import BrandInCampaign, InvalidBrand, NotFound

FORM_FIELDS = ("slug", "name", "kind", "organizer", "region", "district", "year_founded", "summary",
               "tags", "figures", "sources", "featured")
LABELS = {"slug": "网址名（slug）", "name": "名称", "kind": "类别", "organizer": "主办单位", "region": "地区",
          "district": "区县", "year_founded": "创办年份", "summary": "摘要", "tags": "标签", "figures": "数据",
          "sources": "出处", "featured": "首页推荐", "published": "已发布", "deleted": "已删除"}
ACTIONS = {"create": "新建", "edit": "修改", "load": "文件导入", "publish": "发布", "unpublish": "取消发布",
           "delete": "删除"}


def action_label(action: str) -> str:
    if action.startswith("restore:"):
        return f"恢复到版本 {action.split(':', 1)[1]}"
    return ACTIONS.get(action, action)


# ---------------------------------------------------------------- form → brand

def _lines(text: str) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _number(text: str):
    """A figure as typed: digits with an optional decimal part, of at most 15 digits before
    it (a 400-digit value became Infinity, which is not JSON)."""
    if re.fullmatch(r"-?\d{1,15}", text):
        return int(text)
    if re.fullmatch(r"-?\d{1,15}\.\d{1,6}", text):
        return float(text)
    raise ValueError(text)


def brand_from_form(form, slug: str | None = None) -> tuple[dict, dict[str, str]]:
    """Only the named fields are read (no mass assignment); returns the brand and parse errors."""
    get = lambda k: (form.get(k) if isinstance(form.get(k), str) else "").strip()
    errors: dict[str, str] = {}
    brand = {
        "slug": slug if slug is not None else get("slug"),
        "name": get("name"), "kind": get("kind"), "organizer": get("organizer"), "region": get("region"),
        "district": get("district") or None, "summary": get("summary"),
        "tags": [t for t in re.split(r"[、,，\s]+", get("tags")) if t],
        "featured": form.get("featured") == "on",
        "year_founded": None, "figures": [], "sources": [],
    }
    year = get("year_founded")
    if year:
        if year.isascii() and year.isdigit():
            brand["year_founded"] = int(year)
        else:
            errors["year_founded"] = "创办年份应为四位数字，如 2004。"
    for i, line in enumerate(_lines(get("figures")), start=1):
        parts = [p.strip() for p in line.split("|")]
        try:
            if len(parts) not in (2, 3) or not parts[0]:
                raise ValueError(line)
            figure = {"label": parts[0], "value": _number(parts[1])}
            if len(parts) == 3 and parts[2]:
                figure["unit"] = parts[2]
            brand["figures"].append(figure)
        except ValueError:
            errors["figures"] = (f"第 {i} 行应写成“名称 | 数值 | 单位”，数值为数字"
                                 "（整数部分最多 15 位，小数最多 6 位）。")
            break
    for i, line in enumerate(_lines(get("sources")), start=1):
        parts = [p.strip() for p in line.split("|")] + ["", ""]
        if not parts[0]:
            errors["sources"] = f"第 {i} 行缺少文章标题。"
            break
        brand["sources"].append({"title": parts[0], "publisher": parts[1] or None, "date": parts[2] or None})
    return brand, errors


def form_values(brand: dict) -> dict:
    """A brand as the edit form shows it (the inverse of brand_from_form)."""
    figure = lambda f: " | ".join(str(x) for x in (f["label"], f["value"], f.get("unit")) if x not in (None, ""))
    source = lambda s: " | ".join(x or "" for x in (s["title"], s.get("publisher"), s.get("date"))).rstrip(" |")
    return {**brand, "district": brand.get("district") or "", "year_founded": brand.get("year_founded") or "",
            "tags": "、".join(brand.get("tags", [])), "figures": "\n".join(figure(f) for f in brand.get("figures", [])),
            "sources": "\n".join(source(s) for s in brand.get("sources", []))}


@lru_cache(maxsize=1)
def _brand_validator():
    schema = seed.validator().schema
    single = {"$schema": schema.get("$schema"), "$defs": schema["$defs"], "$ref": "#/$defs/brand"}
    cls = jsonschema.validators.validator_for(schema)
    return cls(single, format_checker=cls.FORMAT_CHECKER)


def _chinese(error: jsonschema.ValidationError) -> str:
    kind = error.validator
    if kind == "maxLength" or kind == "maxItems":
        return f"太长：最多 {error.validator_value} 个{'字' if kind == 'maxLength' else '项'}。"
    if kind == "minLength":
        return "不能为空。" if error.validator_value <= 1 else f"太短：至少 {error.validator_value} 个字。"
    if kind == "minItems":
        return f"至少需要 {error.validator_value} 项。"
    if kind == "pattern":
        return "只能使用小写英文字母、数字和连字符，如 guoshi-shuyuan。"
    if kind == "enum":
        return "请从列表中选择。"
    if kind == "uniqueItems":
        return "有重复的项。"
    if kind in ("minimum", "maximum"):
        lo, hi = error.schema.get("minimum"), error.schema.get("maximum")
        return f"数值超出范围（{lo:g} 到 {hi:g}）。" if lo is not None and hi is not None else "数值超出范围。"
    return "格式不正确。"


def validate_brand(brand: dict) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in _brand_validator().iter_errors(brand):
        field = str(error.absolute_path[0]) if error.absolute_path else "name"
        errors.setdefault(field, _chinese(error))
    return errors


# ---------------------------------------------------------------- saving, revisions

def stored_brand(db: Database, slug: str, include_deleted: bool = False) -> dict:
    """The row as stored (a deleted entry only when asked): what the editor and its history see."""
    row = first(db, "select * from brands where slug = ?", [slug])
    if row is None or (row["deleted_at"] and not include_deleted):
        raise NotFound("没有找到这个条目。")
    return dict(row)


def editable_brand(db: Database, slug: str) -> dict:
    return decode_brand(stored_brand(db, slug))


def save_brand(db: Database, brand: dict, now: datetime, actor: str, existing_slug: str | None = None) -> dict:
    """Create (existing_slug None) or update an entry; refuses invalid input with per-field errors."""
    errors = validate_brand(brand)
    if existing_slug is None and not errors.get("slug"):
        if first(db, "select 1 from brands where slug = ?", [brand["slug"]]):
            errors["slug"] = "这个网址名已被使用。"
    if errors:
        raise InvalidBrand(errors)
    stamp = clock.to_db(now)
    with immediate(db):
        if existing_slug is None:
            row = brand_row({**brand, "published": brand.get("published", False)})
            brand_id, action = insert_brand(db, row, stamp), "create"
        else:
            old = stored_brand(db, existing_slug)
            row = brand_row({**brand, "slug": existing_slug, "published": bool(old["published"])})
            fields = [k for k in BRAND_FIELDS if k not in ("slug", "published")]
            if all(old[k] == row[k] for k in fields):
                return editable_brand(db, existing_slug)
            update_row(db, "brands", old["id"], {**{k: row[k] for k in fields}, "updated_at": stamp})
            brand_id, action = old["id"], "edit"
        record_revision(db, brand_id, now, actor, action)
    return editable_brand(db, brand["slug"] if existing_slug is None else existing_slug)


def set_published(db: Database, slug: str, published: bool, now: datetime, actor: str) -> None:
    with immediate(db):
        row = stored_brand(db, slug)
        if bool(row["published"]) == published:
            return
        update_row(db, "brands", row["id"], {"published": int(published), "updated_at": clock.to_db(now)})
        record_revision(db, row["id"], now, actor, "publish" if published else "unpublish")


def delete_brand(db: Database, slug: str, now: datetime, actor: str) -> None:
    """Soft delete: hidden everywhere, kept with its history, restorable."""
    with immediate(db):
        row = stored_brand(db, slug)
        in_campaigns = [r["title"] for r in db.query(
            "select c.title from candidates k join campaigns c on c.id = k.campaign_id where k.brand_id = ?",
            [row["id"]])]
        if in_campaigns:
            raise BrandInCampaign(f"该条目是评选“{'、'.join(in_campaigns)}”的候选项目，不能删除；可以取消发布。")
        update_row(db, "brands", row["id"], {"deleted_at": clock.to_db(now), "updated_at": clock.to_db(now)})
        record_revision(db, row["id"], now, actor, "delete")


def revisions(db: Database, slug: str) -> list[dict]:
    """Newest first, each with its changes against the revision before it."""
    row = stored_brand(db, slug, include_deleted=True)
    revs = [dict(r) for r in db.query("select * from brand_revisions where brand_id = ? order by id", [row["id"]])]
    previous: dict = {}
    for rev in revs:
        rev["data"] = json.loads(rev["data"])
        rev["changes"] = diff(previous, rev["data"])
        previous = rev["data"]
    return list(reversed(revs))


def restore_revision(db: Database, slug: str, rev_id: int, now: datetime, actor: str) -> dict:
    """Bring back an earlier version as a new revision (history is never rewritten)."""
    row = stored_brand(db, slug, include_deleted=True)
    rev = first(db, "select * from brand_revisions where id = ? and brand_id = ?", [rev_id, row["id"]])
    if rev is None:
        raise NotFound("没有找到这个版本。")
    data = json.loads(rev["data"])
    brand = {k: data[k] for k in BRAND_FIELDS}
    brand["slug"] = slug
    values = brand_row(brand)
    with immediate(db):
        update_row(db, "brands", row["id"], {**{k: values[k] for k in BRAND_FIELDS if k != "slug"},
                                             "deleted_at": clock.to_db(now) if data.get("deleted") else None,
                                             "updated_at": clock.to_db(now)})
        record_revision(db, row["id"], now, actor, f"restore:{rev_id}")
    return decode_brand(stored_brand(db, slug, include_deleted=True))


def diff(old: dict, new: dict) -> list[dict]:
    """Field by field; text fields as character runs (Chinese has no word breaks)."""
    changes = []
    for field in (*BRAND_FIELDS, "deleted"):
        before, after = old.get(field), new.get(field)
        if before == after:
            continue
        before_text, after_text = _as_text(field, before), _as_text(field, after)
        runs = []
        matcher = difflib.SequenceMatcher(a=before_text, b=after_text, autojunk=False)
        for op, a0, a1, b0, b1 in matcher.get_opcodes():
            if op == "equal":
                runs.append(("same", before_text[a0:a1]))
            if op in ("delete", "replace"):
                runs.append(("del", before_text[a0:a1]))
            if op in ("insert", "replace"):
                runs.append(("ins", after_text[b0:b1]))
        changes.append({"field": field, "label": LABELS.get(field, field), "runs": runs})
    return changes


def _as_text(field: str, value) -> str:
    """A field as the edit form shows it, so the diff reads like what the editor typed."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if field in JSON_FIELDS:
        return form_values({field: value})[field]
    return str(value)


def stage_import(db: Database, doc, now: datetime, actor: str, may_manage_campaigns: bool = False):
    """Check a document as `load` would, without changing the catalog; keep it for the same
    editor to apply after the preview. Returns (report, import id); InvalidCatalog if bad.
    Campaigns are the organizer's: an editor's file may carry them only unchanged."""
    report = seed.load_document(db, doc, now, actor=actor, dry_run=True,
                                   may_manage_campaigns=may_manage_campaigns)
    import_id = secrets.token_urlsafe(16)
    with immediate(db):
        db.execute("insert into pending_imports (id, actor, created_at, doc) values (?, ?, ?, ?)",
                   [import_id, actor, clock.to_db(now), json.dumps(doc, ensure_ascii=False)])
    return report, import_id


def apply_import(db: Database, import_id: str, now: datetime, actor: str, may_manage_campaigns: bool = False):
    """Load a staged document (only its own editor's); it is consumed once loaded. Checked
    again in full: the campaigns may have moved on since the preview."""
    pending = first(db, "select * from pending_imports where id = ? and actor = ?", [import_id, actor])
    if pending is None:
        raise NotFound("没有找到这次导入，请重新上传文件。")
    report = seed.load_document(db, json.loads(pending["doc"]), now, actor=actor,
                                   may_manage_campaigns=may_manage_campaigns)
    with immediate(db):
        db.execute("delete from pending_imports where id = ?", [pending["id"]])
    return report


def list_for_editors(db: Database, q: str = "") -> list[dict]:
    sql = "select * from brands where deleted_at is null"
    params: list = []
    if q:
        sql += " and (name like ? or organizer like ? or slug like ?)"
        params = [f"%{q}%"] * 3
    return [decode_brand(r) for r in db.query(sql + " order by updated_at desc, id limit 500", params)]
