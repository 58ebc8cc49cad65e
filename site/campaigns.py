"""Campaigns: their status machine and the one rule path for every change to them.

A campaign's status is derived from its times plus the organizer's manual open/close,
so nothing has to flip a flag at the right second: every reader asks status(now). Rules
only, no HTTP; `now` is always passed in.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlite_utils import Database

from . import audit, clock
from .catalog import decode_brand
from .db import first, immediate, update_row
from .errors import (CampaignClosed, CampaignLocked, CannotClose, ClosesInPast, NotClosed, NotFound,
                     NotOrganizer, RulesFrozen)


STATUS_LABELS = {
    "draft": "筹备中",
    "scheduled": "即将开始",
    "open": "投票进行中",
    "closed": "投票已结束",
    "announced": "结果已揭晓",
}


RULE_FIELDS = ("min_choices", "max_choices", "winners", "electorate")


TIME_FIELDS = ("opens_at", "closes_at", "announce_at")


CHANNEL_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")  # a poster's channel: ?ch= on its QR code


GRACE = timedelta(minutes=10)  # a ballot page loaded before closing may still be submitted


def status(campaign: dict, now: datetime) -> str:
    manual = campaign.get("manual_state")
    opens = clock.from_db(campaign.get("opens_at"))
    closes = clock.from_db(campaign.get("closes_at"))
    announce = clock.from_db(campaign.get("announce_at"))
    if manual == "announced":
        return "announced"
    if manual == "closed" or (closes is not None and now >= closes):
        # By time only once the tally is kept with its cut-off decided (tally.settle).
        if announce is not None and now >= announce and campaign.get("tally_ready") == 1:
            return "announced"
        return "closed"
    if manual == "open":
        return "open"
    if opens is None:
        return "draft"
    if now < opens:
        return "scheduled"
    return "open"


def rule_problems(camp: dict) -> dict[str, str]:
    """The campaign's rules that hold whatever the door (a file, the console form): field →
    its first problem, in Chinese. Times are text as given (parse_input); check_change adds
    what depends on now and on the stored campaign."""
    problems: dict[str, str] = {}
    n = len(camp.get("candidates", []))
    lo, hi, winners = camp.get("min_choices", 1), camp.get("max_choices", 10), camp.get("winners", 10)
    if lo > hi:
        problems["min_choices"] = f"最少选择数 {lo} 大于最多选择数 {hi}。"
    if n and hi > n:
        problems["max_choices"] = f"最多选择数 {hi} 超过候选项目数 {n}。"
    if n and winners > n:
        problems["winners"] = f"入选数 {winners} 超过候选项目数 {n}。"
    times = {}
    for key in TIME_FIELDS:
        if camp.get(key):
            try:
                times[key] = clock.parse_input(camp[key])
                clock.to_db(times[key])
            except (ValueError, OverflowError):
                problems[key] = "时间格式有误，请按“年-月-日 时:分”填写（北京时间）。"
    opens, closes, announce = (times.get(k) for k in TIME_FIELDS)
    if opens and closes and opens >= closes:
        problems.setdefault("closes_at", "截止时间必须晚于开始时间。")
    if closes and announce and closes > announce:
        problems.setdefault("announce_at", "揭晓时间不能早于截止时间。")
    if opens and announce and opens > announce:
        problems.setdefault("announce_at", "揭晓时间不能早于开始时间。")
    if announce and not closes and "closes_at" not in problems:
        problems["closes_at"] = "设定揭晓时间时，也请设定截止时间。"
    return problems


def _time_db(value: str | None) -> str | None:
    return clock.to_db(clock.parse_input(value)) if value else None


def _candidate_ids(db: Database, campaign_id: int) -> list[int]:
    return [r["brand_id"] for r in db.query(
        "select brand_id from candidates where campaign_id = ? order by position", [campaign_id])]


def check_change(old: dict | None, new: dict, old_candidates: list[int], candidates: list[int],
                 now: datetime) -> None:
    """THE rule for changing a campaign, whatever the door (console form, import, `load`).

    Times only move forward: a window that has passed stays passed, and no time set here can
    open, close or announce in the past. Closing and announcing now are their own actions
    (set_manual_state, tally.announce), which check the grace period and the tie; an
    announcement by time waits for both too (status needs tally_ready).
    """
    if old is None:
        changed = {k for k in TIME_FIELDS if new.get(k)}
    else:
        state = status(old, now)
        differs = old_candidates != candidates or any(old[k] != new[k] for k in new if k != "slug")
        if state == "announced" and differs:
            raise CampaignLocked("结果已揭晓，评选不能再修改。")
        if old["frozen_at"] and (old_candidates != candidates or any(old[k] != new[k] for k in RULE_FIELDS)):
            raise RulesFrozen()
        changed = {k for k in TIME_FIELDS if old[k] != new[k]}
        if state == "closed" and changed & {"opens_at", "closes_at"}:
            raise CampaignLocked("投票已经结束，开始和截止时间不能再修改。")
        if state == "open" and "opens_at" in changed:
            raise CampaignLocked("投票已经开始，开始时间不能再修改。")
    closes, announce = clock.from_db(new.get("closes_at")), clock.from_db(new.get("announce_at"))
    if "closes_at" in changed and closes is not None and closes <= now:
        raise CampaignLocked("截止时间不能早于现在。如需现在结束投票，请用“结束投票”按钮。")
    if changed & {"closes_at", "announce_at"} and announce is not None:
        if closes is None:  # rule_problems words it for the field; here only to be safe
            raise CampaignLocked("设定揭晓时间时，也请设定截止时间。")
        if announce <= now:
            raise CampaignLocked("揭晓时间不能早于现在。如需现在揭晓，请在投票结束后用“揭晓结果”按钮。")
        if announce < closes + GRACE:
            raise CampaignLocked(f"揭晓时间须在截止时间 {int(GRACE.total_seconds() // 60)} 分钟之后："
                                 "截止后的宽限期内，已打开投票页的人仍可提交选票。")


def upsert_campaign(db: Database, camp: dict, brand_ids: dict[str, int], now: datetime,
                    actor: str = "load", may_manage: bool = True) -> str:
    """Insert or update one campaign by slug, inside the caller's transaction, through
    check_change. `may_manage` is False for an editor's import: a campaign it would add or
    change is refused, one it leaves as it is passes (an export read back in)."""
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
    old = first(db, "select * from campaigns where slug = ?", [row["slug"]])
    old_candidates = _candidate_ids(db, old["id"]) if old else []
    if old is not None and old_candidates == candidates and all(old[k] == row[k] for k in row):
        return "unchanged"
    if not may_manage:
        raise NotOrganizer()
    check_change(old, row, old_candidates, candidates, now)
    if old is None:
        db.execute(
            "insert into campaigns (slug, title, intro, min_choices, max_choices, winners, electorate,"
            " ip_limit, opens_at, closes_at, announce_at, created_at, updated_at) values (:slug, :title,"
            " :intro, :min_choices, :max_choices, :winners, :electorate, :ip_limit, :opens_at, :closes_at,"
            " :announce_at, :now, :now)", {**row, "now": stamp})
        campaign_id = first(db, "select id from campaigns where slug = ?", [row["slug"]])["id"]
        _set_candidates(db, campaign_id, candidates)
        return "added"
    times_changed = {k: [old[k], row[k]] for k in TIME_FIELDS if old[k] != row[k]}
    update_row(db, "campaigns", old["id"], {**{k: v for k, v in row.items() if k != "slug"}, "updated_at": stamp})
    if old_candidates != candidates:
        _set_candidates(db, old["id"], candidates)
    if times_changed:
        audit.record(db, now, actor, "campaign.times", row["slug"], times_changed)
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
    row = first(db, "select * from campaigns where slug = ?", [slug])
    if row is None:
        raise NotFound("没有找到这个评选。")
    return dict(row)


def slug_taken(db: Database, slug: str) -> bool:
    return first(db, "select 1 as taken from campaigns where slug = ?", [slug]) is not None


def candidates_of(db: Database, campaign_id: int) -> list[dict]:
    """Candidates in the organizer's fixed order, never by votes."""
    return [decode_brand(r) for r in db.query(
        "select b.* from candidates k join brands b on b.id = k.brand_id"
        " where k.campaign_id = ? order by k.position", [campaign_id])]


def candidate_keys(db: Database, campaign_id: int) -> list[tuple[str, int, str]]:
    """(slug, brand id, name) in the organizer's order: what a ballot is checked against and a
    receipt names, without decoding each candidate's whole entry."""
    return db.conn.execute(
        "select b.slug, b.id, b.name from candidates k join brands b on b.id = k.brand_id"
        " where k.campaign_id = ? order by k.position", [campaign_id]).fetchall()


def candidate_names(db: Database, campaign_id: int) -> dict[str, str]:
    """Slug → name in the organizer's order (decoding every entry cost half of each voter's
    receipt page)."""
    return {slug: name for slug, _, name in candidate_keys(db, campaign_id)}


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
    with immediate(db):
        camp = campaign_by_slug(db, slug)
        current = status(camp, now)
        updates: dict[str, object] = {"manual_state": state}
        if state == "open":
            if current in ("closed", "announced"):
                raise CampaignClosed()
            closes = clock.from_db(camp["closes_at"])
            if closes is not None and closes <= now:
                raise ClosesInPast()
            if not camp["opens_at"] or clock.from_db(camp["opens_at"]) > now:
                updates["opens_at"] = clock.to_db(now)
        elif state == "closed":
            if current not in ("open", "scheduled"):
                raise CannotClose(f"评选当前状态为“{STATUS_LABELS[current]}”，不能结束。")
            updates["closes_at"] = clock.to_db(now)
        elif state == "announced":
            if current != "closed":
                raise NotClosed()
            updates["announced_at"] = clock.to_db(now)
        else:
            raise ValueError(state)
        update_row(db, "campaigns", camp["id"], {**updates, "updated_at": clock.to_db(now)})
        audit.record(db, now, actor, f"campaign.{state}", slug, {"was": current})
    return campaign_by_slug(db, slug)


def schedule_demo(db: Database, slug: str, now: datetime, days: int = 30) -> None:
    """First start of `make run`: give the demo campaign a real window and open it."""
    with immediate(db):
        closes = now + timedelta(days=days)
        db.execute(
            "update campaigns set opens_at = ?, closes_at = ?, announce_at = ?, updated_at = ? where slug = ?",
            [clock.to_db(now), clock.to_db(closes), clock.to_db(closes + timedelta(days=7)),
             clock.to_db(now), slug])
        audit.record(db, now, "serve", "campaign.schedule_demo", slug, {"days": days})
    set_manual_state(db, slug, "open", now, actor="serve")
