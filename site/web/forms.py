"""The organizer's campaign form: posted text in, field errors or a campaign for
campaigns.upsert_campaign out. No HTTP; the cross-field rules are campaigns.rule_problems,
the ones that depend on now and the stored campaign campaigns.check_change."""

from __future__ import annotations

import re

from .. import campaigns, catalog, clock

SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
INT_RE = re.compile(r"^[0-9]{1,7}$")
LOCAL_INPUT_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}$")  # what datetime-local sends
MAX_SLUG, MAX_TITLE, MAX_INTRO = 60, 120, 2000
MAX_CHOICES_LIMIT = 1000
ELECTORATES = {"open": "公开投票（每台设备一票）", "codes": "凭码投票（一次性投票码）"}


def text(form, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def int_in(text: str, lo: int, hi: int) -> int | None:
    return int(text) if INT_RE.match(text) and lo <= int(text) <= hi else None


def local_input(value: str | None) -> str:
    """A stored UTC time as a datetime-local value in Beijing time (minutes)."""
    dt = clock.from_db(value)
    return dt.astimezone(clock.LOCAL).strftime("%Y-%m-%dT%H:%M") if dt else ""


def from_campaign(db, camp: dict) -> dict:
    chosen = [b["slug"] for b in campaigns.candidates_of(db, camp["id"])]
    return {
        "slug": camp["slug"], "title": camp["title"], "intro": camp["intro"],
        "min_choices": str(camp["min_choices"]), "max_choices": str(camp["max_choices"]),
        "winners": str(camp["winners"]), "electorate": camp["electorate"],
        **{k: local_input(camp[k]) for k in campaigns.TIME_FIELDS},
        "ip_limit": "" if camp["ip_limit"] is None else str(camp["ip_limit"]),
        "candidates": chosen, "positions": {s: str(i) for i, s in enumerate(chosen, start=1)},
    }


def empty() -> dict:
    return {"slug": "", "title": "", "intro": "", "min_choices": "1", "max_choices": "10", "winners": "10",
            "electorate": "open", "opens_at": "", "closes_at": "", "announce_at": "", "ip_limit": "",
            "candidates": [], "positions": {}}


def from_post(form, creating: bool, slug: str | None) -> dict:
    """Only the named fields: never frozen_at, manual_state, ids or timestamps."""
    picked = []
    for value in form.getlist("candidate")[:500]:
        if isinstance(value, str) and value.strip() and value.strip() not in picked:
            picked.append(value.strip()[:100])
    return {
        "slug": text(form, "slug")[:100] if creating else slug,
        "title": text(form, "title")[:MAX_TITLE + 50],
        "intro": text(form, "intro")[:MAX_INTRO + 200],
        **{k: text(form, k)[:20] for k in ("min_choices", "max_choices", "winners", "ip_limit")},
        "electorate": text(form, "electorate"),
        **{k: text(form, k)[:40] for k in campaigns.TIME_FIELDS},
        "candidates": picked,
        "positions": {s: text(form, f"position_{s}")[:10] for s in picked},
    }


def _ordered_candidates(data: dict, errors: dict) -> list[str]:
    keyed = []
    for i, slug in enumerate(data["candidates"]):
        text = data["positions"].get(slug, "")
        pos = int_in(text, 1, 9999) if text else 10_000
        if pos is None:
            errors.setdefault("candidates", "排序只能填 1 到 9999 之间的整数，或留空（排在最后）。")
            pos = 10_000
        keyed.append((pos, i, slug))
    return [slug for _, _, slug in sorted(keyed)]


def check(db, data: dict, creating: bool, old: dict | None) -> tuple[dict, dict, dict]:
    """(errors by field, the campaign for upsert_campaign, brand ids by slug)."""
    errors: dict[str, str] = {}
    slug = data["slug"]
    if creating:
        if not slug:
            errors["slug"] = "请填写网址标识。"
        elif len(slug) > MAX_SLUG or not SLUG_RE.match(slug) or slug == "new":
            errors["slug"] = f"网址标识只能用小写英文字母、数字和单个连字符（如 shanghai-2026），最长 {MAX_SLUG} 个字符。"
        elif campaigns.slug_taken(db, slug):
            errors["slug"] = "这个网址标识已被其他评选使用，请换一个。"
    if not data["title"]:
        errors["title"] = "请填写评选名称。"
    elif len(data["title"]) > MAX_TITLE:
        errors["title"] = f"评选名称最长 {MAX_TITLE} 个字。"
    if len(data["intro"]) > MAX_INTRO:
        errors["intro"] = f"简介最长 {MAX_INTRO} 个字。"

    order = _ordered_candidates(data, errors)
    current = {b["slug"] for b in campaigns.candidates_of(db, old["id"])} if old else set()
    ids: dict[str, int] = {}
    for r in catalog.brands_with_slugs(db, order).values():
        if (r["published"] and not r["deleted_at"]) or r["slug"] in current:
            ids[r["slug"]] = r["id"]
    unknown = [s for s in order if s not in ids]
    if unknown:
        errors["candidates"] = "这些条目不存在或未发布：" + "、".join(unknown[:5])
    elif len(order) < 2 and "candidates" not in errors:
        errors["candidates"] = "请至少选择 2 个候选项目。"

    nums = {}
    for key, label in (("min_choices", "最少选择数"), ("max_choices", "最多选择数"), ("winners", "入选数")):
        nums[key] = int_in(data[key], 1, MAX_CHOICES_LIMIT)
        if nums[key] is None:
            errors[key] = f"{label}须为 1 到 {MAX_CHOICES_LIMIT} 之间的整数。"
    if data["electorate"] not in ELECTORATES:
        errors["electorate"] = "请选择投票人范围。"
    ip_limit = None
    if data["ip_limit"]:
        ip_limit = int_in(data["ip_limit"], 0, 1_000_000)
        if ip_limit is None:
            errors["ip_limit"] = "每小时上限须为 0 到 1000000 之间的整数（0 表示不限），留空则用全站默认值。"
    times = {key: _kept_time(data[key], old[key] if old else None) for key in campaigns.TIME_FIELDS}
    camp = {"slug": slug, "title": data["title"], "intro": data["intro"], "candidates": order if len(order) >= 2 else [],
            **nums, "electorate": data["electorate"], "ip_limit": ip_limit, **times}
    for field, problem in campaigns.rule_problems({**camp, **{k: v or 1 for k, v in nums.items()}}).items():
        if field not in nums or None not in nums.values():  # an unreadable number is reported above
            errors.setdefault(field, problem)
    camp["candidates"] = order
    return errors, camp, ids


def _kept_time(text: str, stored: str | None) -> str | None:
    """A time as posted; unchanged to the minute, the stored value (seconds included), so that
    saving the form unchanged logs no time change."""
    if not text:
        return None
    try:
        same = stored and local_input(stored) == clock.parse_input(text).astimezone(clock.LOCAL).strftime("%Y-%m-%dT%H:%M")
    except (ValueError, OverflowError):
        return text  # rule_problems reports it
    return stored if same else text
