"""Campaigns and their windows: rules only, no HTTP; `now` is always passed in.

A campaign's status is derived from its times plus the organizer's manual open/close,
so nothing has to flip a flag at the right second: every reader asks status(now).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlite_utils import Database

from . import clock
from .errors import BrandvoteError, InvalidCatalog, NotFound

STATUS_LABELS = {
    "draft": "筹备中",
    "scheduled": "即将开始",
    "open": "投票进行中",
    "closed": "投票已结束",
    "announced": "结果已揭晓",
}
RULE_FIELDS = ("min_choices", "max_choices", "winners", "electorate")
TIME_FIELDS = ("opens_at", "closes_at", "announce_at")


class RulesFrozen(BrandvoteError):
    status = 409
    code = "rules_frozen"
    message = "已有选票，候选项目、选择数量和投票人范围不能再修改。"


def status(campaign: dict, now: datetime) -> str:
    manual = campaign.get("manual_state")
    opens = clock.from_db(campaign.get("opens_at"))
    closes = clock.from_db(campaign.get("closes_at"))
    announce = clock.from_db(campaign.get("announce_at"))
    if manual == "announced":
        return "announced"
    if manual == "closed" or (closes is not None and now >= closes):
        if announce is not None and now >= announce:
            return "announced"
        return "closed"
    if manual == "open":
        return "open"
    if opens is None:
        return "draft"
    if now < opens:
        return "scheduled"
    return "open"


def rule_problems(camp: dict) -> list[str]:
    """Problems with a campaign's rules as given in a file or a form (Chinese, one per line)."""
    problems = []
    n = len(camp.get("candidates", []))
    lo, hi = camp.get("min_choices", 1), camp.get("max_choices", 10)
    if lo > hi:
        problems.append(f"最少选择数 {lo} 大于最多选择数 {hi}")
    if n and hi > n:
        problems.append(f"最多选择数 {hi} 超过候选项目数 {n}")
    if n and camp.get("winners", 10) > n:
        problems.append(f"入选数 {camp.get('winners')} 超过候选项目数 {n}")
    times = []
    for key in TIME_FIELDS:
        value = camp.get(key)
        if value:
            try:
                times.append((key, clock.parse_input(value)))
            except ValueError:
                problems.append(f"{key} 不是有效的时间：{value!r}")
    for (k1, t1), (k2, t2) in zip(times, times[1:]):
        if t1 > t2:
            problems.append(f"{k1} 晚于 {k2}")
    return problems


def _time_db(value: str | None) -> str | None:
    return clock.to_db(clock.parse_input(value)) if value else None


def _candidate_ids(db: Database, campaign_id: int) -> list[int]:
    return [r["brand_id"] for r in db.query(
        "select brand_id from candidates where campaign_id = ? order by position", [campaign_id])]


def audit(db: Database, now: datetime, actor: str, action: str, target: str, detail: dict | None = None) -> None:
    db.execute(
        "insert into audit_log (at, actor, action, target, detail) values (?, ?, ?, ?, ?)",
        [clock.to_db(now), actor, action, target, json.dumps(detail or {}, ensure_ascii=False)],
    )


def upsert_campaign(db: Database, camp: dict, brand_ids: dict[str, int], now: datetime,
                    actor: str = "load") -> str:
    """Insert or update one campaign by slug, inside the caller's transaction.

    Rules freeze at the first ballot; time changes are allowed but written to the audit log.
    """
    row = {
        "slug": camp["slug"],
        "title": camp["title"],
        "intro": camp.get("intro", ""),
        "min_choices": camp.get("min_choices", 1),
        "max_choices": camp.get("max_choices", 10),
        "winners": camp.get("winners", 10),
        "electorate": camp.get("electorate", "open"),
        "ip_limit": camp.get("ip_limit"),
        **{k: _time_db(camp.get(k)) for k in TIME_FIELDS},
    }
    candidates = [brand_ids[s] for s in camp["candidates"]]
    stamp = clock.to_db(now)
    old = next(iter(db.query("select * from campaigns where slug = ?", [row["slug"]])), None)
    if old is None:
        db.execute(
            "insert into campaigns (slug, title, intro, min_choices, max_choices, winners, electorate,"
            " ip_limit, opens_at, closes_at, announce_at, created_at, updated_at) values (:slug, :title,"
            " :intro, :min_choices, :max_choices, :winners, :electorate, :ip_limit, :opens_at, :closes_at,"
            " :announce_at, :now, :now)", {**row, "now": stamp})
        campaign_id = next(iter(db.query("select id from campaigns where slug = ?", [row["slug"]])))["id"]
        _set_candidates(db, campaign_id, candidates)
        return "added"
    old_candidates = _candidate_ids(db, old["id"])
    rules_changed = old_candidates != candidates or any(old[k] != row[k] for k in RULE_FIELDS)
    if rules_changed and old["frozen_at"]:
        raise InvalidCatalog([f"评选 {row['slug']}: {RulesFrozen.message}"])
    if not rules_changed and all(old[k] == row[k] for k in row):
        return "unchanged"
    times_changed = {k: [old[k], row[k]] for k in TIME_FIELDS if old[k] != row[k]}
    sets = ", ".join(f"{k} = :{k}" for k in row if k != "slug")
    db.execute(f"update campaigns set {sets}, updated_at = :now where id = :id", {**row, "now": stamp, "id": old["id"]})
    if old_candidates != candidates:
        _set_candidates(db, old["id"], candidates)
    if times_changed:
        audit(db, now, actor, "campaign.times", row["slug"], times_changed)
    return "changed"


def _set_candidates(db: Database, campaign_id: int, brand_ids: list[int]) -> None:
    db.execute("delete from candidates where campaign_id = ?", [campaign_id])
    db.conn.executemany(
        "insert into candidates (campaign_id, brand_id, position) values (?, ?, ?)",
        [(campaign_id, b, i) for i, b in enumerate(brand_ids)],
    )


def export_campaigns(db: Database) -> list[dict]:
    out = []
    for row in db.query("select * from campaigns order by id"):
        camp = {
            "slug": row["slug"],
            "title": row["title"],
            "intro": row["intro"],
            "candidates": [r["slug"] for r in db.query(
                "select b.slug from candidates k join brands b on b.id = k.brand_id"
                " where k.campaign_id = ? order by k.position", [row["id"]])],
            **{k: row[k] for k in RULE_FIELDS},
            **{k: row[k] for k in TIME_FIELDS},
        }
        if row["ip_limit"] is not None:
            camp["ip_limit"] = row["ip_limit"]
        out.append(camp)
    return out


def campaign_by_slug(db: Database, slug: str) -> dict:
    row = next(iter(db.query("select * from campaigns where slug = ?", [slug])), None)
    if row is None:
        raise NotFound("没有找到这个评选。")
    return dict(row)


def candidates_of(db: Database, campaign_id: int) -> list[dict]:
    """Candidates in the organizer's fixed order, never by votes."""
    from .catalog import decode_brand

    return [decode_brand(r) for r in db.query(
        "select b.* from candidates k join brands b on b.id = k.brand_id"
        " where k.campaign_id = ? order by k.position", [campaign_id])]


def list_campaigns(db: Database, now: datetime) -> list[dict]:
    """Every campaign with its status; open ones first, then upcoming, then the rest."""
    order = {"open": 0, "scheduled": 1, "announced": 2, "closed": 3, "draft": 4}
    camps = []
    for row in db.query("select * from campaigns order by id"):
        camp = dict(row)
        camp["status"] = status(camp, now)
        camps.append(camp)
    return sorted(camps, key=lambda c: order[c["status"]])


def set_manual_state(db: Database, slug: str, state: str, now: datetime, actor: str = "cli") -> dict:
    """Open, close or announce by hand; refuses a transition that makes no sense."""
    from .db import immediate

    with immediate(db):
        camp = campaign_by_slug(db, slug)
        current = status(camp, now)
        updates: dict[str, object] = {"manual_state": state}
        if state == "open":
            if current in ("closed", "announced"):
                raise BrandvoteError("评选已结束，不能重新开启。", code="campaign_closed", status=409)
            closes = clock.from_db(camp["closes_at"])
            if closes is not None and closes <= now:
                raise BrandvoteError("截止时间已过，请先修改截止时间。", code="closes_in_past", status=409)
            if not camp["opens_at"] or clock.from_db(camp["opens_at"]) > now:
                updates["opens_at"] = clock.to_db(now)
        elif state == "closed":
            if current not in ("open", "scheduled"):
                raise BrandvoteError(f"评选当前状态为“{STATUS_LABELS[current]}”，不能结束。",
                                     code="not_open", status=409)
            updates["closes_at"] = clock.to_db(now)
        elif state == "announced":
            if current != "closed":
                raise BrandvoteError("只有投票结束后才能揭晓结果。", code="not_closed", status=409)
        else:
            raise ValueError(state)
        sets = ", ".join(f"{k} = :{k}" for k in updates)
        db.execute(f"update campaigns set {sets}, updated_at = :now where id = :id",
                   {**updates, "now": clock.to_db(now), "id": camp["id"]})
        audit(db, now, actor, f"campaign.{state}", slug, {"was": current})
    return campaign_by_slug(db, slug)


def schedule_demo(db: Database, slug: str, now: datetime, days: int = 30) -> None:
    """First start of `make run`: give the demo campaign a real window and open it."""
    from .db import immediate

    with immediate(db):
        closes = now + timedelta(days=days)
        db.execute(
            "update campaigns set opens_at = ?, closes_at = ?, announce_at = ?, updated_at = ? where slug = ?",
            [clock.to_db(now), clock.to_db(closes), clock.to_db(closes + timedelta(days=7)),
             clock.to_db(now), slug])
        audit(db, now, "serve", "campaign.schedule_demo", slug, {"days": days})
    set_manual_state(db, slug, "open", now, actor="serve")
