"""Counting, ranking, ties, the ledger, and the one embargo gate.

Counts come from the stored choices (GROUP BY), never from a running counter, and are
checked against a recount of the canonical ledger before they are kept. Every reader
of results asks is_announced() first: pages, API, downloads, ledger, receipt lookup.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from datetime import datetime

from sqlite_utils import Database

from . import audit, ballots, campaigns, clock, spreadsheet
from .db import first, immediate
from .errors import (AlreadyAnnounced, BadLedger, BadTieChoice, LedgerMismatch, NoTie, NotAnnounced, NotFound,
                     StillVoting, TieUndecided)

TIE_RULE = ("得票相同者名次相同（并列名次，如 1、2、2、4）。入选名额的最后一位若出现并列，"
            "并列者既不算入选也不算落选，由组织方在揭晓前决定并记入审计日志。")
LEDGER_HEADER = ["receipt_sha256", "choices"]


# ---------------------------------------------------------------- the gate

def voting_over(campaign: dict, now: datetime) -> bool:
    """No ballot can arrive any more: closed, and past the grace period for open pages."""
    if campaigns.status(campaign, now) not in ("closed", "announced"):
        return False
    closes = clock.from_db(campaign.get("closes_at"))
    return closes is None or now >= closes + campaigns.GRACE


def is_announced(campaign: dict, now: datetime) -> bool:
    """THE embargo gate: results of any kind leave the server only when this is true."""
    return campaigns.status(campaign, now) == "announced" and voting_over(campaign, now)


def announced_at(campaign: dict, now: datetime) -> str | None:
    """When the results were announced: by hand, the moment it was done; by time, the planned
    time. None before the announcement (the embargo gate decides)."""
    if not is_announced(campaign, now):
        return None
    return campaign.get("announced_at") or campaign.get("announce_at")


def announce_text(campaign: dict) -> str:
    when = clock.from_db(campaign.get("announce_at"))
    return f"结果将于 {clock.local_text(when)} 揭晓。" if when else "结果将由组织方另行揭晓。"


def require_announced(campaign: dict, now: datetime) -> None:
    if not is_announced(campaign, now):
        raise NotAnnounced(announce_text(campaign))


# ---------------------------------------------------------------- ranking (pure)

@dataclass
class Row:
    slug: str
    name: str
    organizer: str
    votes: int
    share: float
    rank: int
    winner: bool | None  # None: tied across the cut-off and not yet decided
    tie: bool


def rank(candidates: list[dict], counts: dict[str, int], ballots: int, winners: int,
         decided: list[str] | None = None) -> list[Row]:
    """Competition ranking (1, 2, 2, 4); a tie across the cut-off is reported, not resolved.

    `decided` lists the tied candidates the organizer put in, filling exactly the seats left.
    Rows come in rank order, ties in the campaign's own candidate order.
    """
    order = {c["slug"]: i for i, c in enumerate(candidates)}
    ranked = sorted(candidates, key=lambda c: (-counts.get(c["slug"], 0), order[c["slug"]]))
    rows: list[Row] = []
    for i, c in enumerate(ranked):
        votes = counts.get(c["slug"], 0)
        r = rows[-1].rank if rows and rows[-1].votes == votes else i + 1
        rows.append(Row(c["slug"], c["name"], c.get("organizer", ""), votes,
                        round(votes / ballots, 4) if ballots else 0.0, r, False, False))
    by_votes: dict[int, list[Row]] = {}
    for row in rows:
        by_votes.setdefault(row.votes, []).append(row)
    for group in by_votes.values():
        if len(group) > 1:
            for row in group:
                row.tie = True
    seats = min(winners, len(rows))
    for row in rows:
        group = by_votes[row.votes]
        first, last = group[0].rank, group[0].rank + len(group) - 1
        if last <= seats:
            row.winner = True
        elif first > seats:
            row.winner = False
        else:  # straddles the cut-off
            row.winner = None
            if decided is not None:
                row.winner = row.slug in decided
    return rows


def straddling(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r.winner is None]


# ---------------------------------------------------------------- the ledger

def ledger_rows(db: Database, campaign_id: int):
    """(receipt hash, sorted choices) in receipt-hash order: one scan of a covering index."""
    yield from db.conn.execute(
        "select receipt_hash, choice_set from ballots where campaign_id = ? order by receipt_hash", [campaign_id])


def ledger_lines(rows):
    """The canonical ledger, line by line: UTF-8, LF, header first; no voter key, no time."""
    yield ",".join(LEDGER_HEADER) + "\n"
    for receipt_hash, choices in rows:  # hex and slugs (^[a-z0-9]): spreadsheet.cell keeps them as they are
        yield f"{receipt_hash},{spreadsheet.cell(choices)}\n"


def ledger_csv(rows) -> str:
    return "".join(ledger_lines(rows))


def ledger_digest_and_counts(db: Database, campaign_id: int) -> tuple[str, int, dict[str, int]]:
    """One streaming pass: the ledger's SHA-256 and the counts a recount of it gives."""
    digest = hashlib.sha256()
    per_combo: dict[str, int] = {}
    chunk: list[str] = []
    ballots = 0
    for line_no, line in enumerate(ledger_lines(ledger_rows(db, campaign_id))):
        chunk.append(line)
        if line_no:
            ballots += 1
            choices = line[65:-1]  # after "<64 hex>," and before "\n"
            per_combo[choices] = per_combo.get(choices, 0) + 1
        if len(chunk) >= 10_000:
            digest.update("".join(chunk).encode("utf-8"))
            chunk.clear()
    digest.update("".join(chunk).encode("utf-8"))
    counts: dict[str, int] = {}
    for choices, n in per_combo.items():
        for slug in choices.split(";") if choices else ():
            counts[slug] = counts.get(slug, 0) + n
    return digest.hexdigest(), ballots, counts


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_ledger(text: str) -> tuple[int, dict[str, int]]:
    """Ballots and counts from a published ledger (what `brandvote recount` reads)."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = next(reader, None)
    if header != LEDGER_HEADER:
        raise BadLedger(f"不是有效的选票账本：表头应为 {','.join(LEDGER_HEADER)}")
    ballots, counts, seen = 0, {}, set()
    for line_no, row in enumerate(reader, start=2):
        if len(row) != 2 or len(row[0]) != 64 or row[0] in seen:
            raise BadLedger(f"账本第 {line_no} 行有误。")
        seen.add(row[0])
        choices = row[1].split(";") if row[1] else []
        if len(set(choices)) != len(choices):
            raise BadLedger(f"账本第 {line_no} 行有重复选项。")
        ballots += 1
        for slug in choices:
            counts[slug] = counts.get(slug, 0) + 1
    return ballots, counts


# ---------------------------------------------------------------- computing and storing

def count_from_choices(db: Database, campaign_id: int) -> tuple[int, dict[str, int]]:
    ballots = first(db, "select count(*) as n from ballots where campaign_id = ?", [campaign_id])["n"]
    counts = {r["slug"]: r["n"] for r in db.query(
        "select br.slug, count(*) as n from choices c join brands br on br.id = c.brand_id"
        " where c.campaign_id = ? group by c.brand_id", [campaign_id])}
    return ballots, counts


def stored_tally(db: Database, campaign: dict, now: datetime) -> dict:
    """The tally, computed once when voting is over, verified against the ledger, then kept."""
    if not voting_over(campaign, now):
        raise StillVoting()
    row = first(db, "select * from tallies where campaign_id = ?", [campaign["id"]])
    if row is None:
        with immediate(db):
            row = first(db, "select * from tallies where campaign_id = ?", [campaign["id"]])
            if row is None:
                ballots, counts = count_from_choices(db, campaign["id"])
                digest, ledger_ballots, ledger_counts = ledger_digest_and_counts(db, campaign["id"])
                if (ledger_ballots, ledger_counts) != (ballots, counts):
                    raise LedgerMismatch()
                row = {"campaign_id": campaign["id"], "computed_at": clock.to_db(now), "ballots": ballots,
                       "counts": json.dumps(counts, sort_keys=True), "ledger_sha256": digest,
                       "decided": None}
                db.execute("insert into tallies (campaign_id, computed_at, ballots, counts, ledger_sha256, decided)"
                           " values (:campaign_id, :computed_at, :ballots, :counts, :ledger_sha256, :decided)", row)
    return dict(row)


def results(db: Database, campaign: dict, now: datetime) -> dict:
    """The full result for an organizer after closing, or the public after the announcement."""
    stored = stored_tally(db, campaign, now)
    candidates = campaigns.candidates_of(db, campaign["id"])
    decided = json.loads(stored["decided"]) if stored["decided"] else None
    rows = rank(candidates, json.loads(stored["counts"]), stored["ballots"], campaign["winners"], decided)
    return {
        "campaign": campaign["slug"],
        "title": campaign["title"],
        "ballots": stored["ballots"],
        "winners": campaign["winners"],
        "tie_rule": TIE_RULE,
        "ledger_sha256": stored["ledger_sha256"],
        "computed_at": stored["computed_at"],
        "rows": rows,
        "undecided_tie": [r.slug for r in straddling(rows)],
    }


def settle(db: Database, campaign: dict, now: datetime) -> dict:
    """Once voting is over, keep the tally and mark whether its cut-off is decided: what an
    announcement by time waits for (campaigns.status). Called by whoever reads the campaign
    first after that; a no-op before and after. Returns the campaign as it now stands."""
    if campaign.get("tally_ready") is not None or not voting_over(campaign, now):
        return campaign
    ready = 0 if results(db, campaign, now)["undecided_tie"] else 1
    with immediate(db):
        db.execute("update campaigns set tally_ready = ? where id = ? and tally_ready is null",
                   [ready, campaign["id"]])
    return campaigns.campaign_by_slug(db, campaign["slug"])


def settled_campaigns(db: Database, now: datetime) -> list[dict]:
    """campaigns.list_campaigns, each due campaign settled first (see settle)."""
    for camp in campaigns.list_campaigns(db, now):
        if camp.get("tally_ready") is None and voting_over(camp, now):
            settle(db, camp, now)
    return campaigns.list_campaigns(db, now)


def public_campaigns(db: Database, now: datetime) -> list[dict]:
    """What the public may list: every campaign but drafts, settled."""
    return [c for c in settled_campaigns(db, now) if c["status"] != "draft"]


def public_campaign(db: Database, slug: str, now: datetime) -> dict:
    """The campaign as the public may see it, settled; a draft is not found, like no campaign."""
    camp = settle(db, campaigns.campaign_by_slug(db, slug), now)
    if campaigns.status(camp, now) == "draft":
        raise NotFound("没有找到这个评选。")
    return camp


def results_json(res: dict) -> dict:
    return {
        "campaign": res["campaign"], "title": res["title"], "ballots": res["ballots"],
        "winners": res["winners"], "tie_rule": res["tie_rule"], "ledger_sha256": res["ledger_sha256"],
        "candidates": [{"slug": r.slug, "name": r.name, "votes": r.votes, "share": r.share, "rank": r.rank,
                        "winner": r.winner, "tie": r.tie} for r in res["rows"]],
    }


def results_csv(res: dict) -> str:
    """For Excel: UTF-8 with BOM so Chinese opens intact."""
    buf = io.StringIO()
    writer = spreadsheet.writer(buf, lineterminator="\r\n")
    writer.writerow(["名次", "项目", "主办单位", "票数", "得票率", "入选", "并列", "slug"])
    for r in res["rows"]:
        writer.writerow([r.rank, r.name, r.organizer, r.votes, f"{r.share * 100:.1f}%",
                         {True: "是", False: "否", None: "待定"}[r.winner], "是" if r.tie else "", r.slug])
    writer.writerow([])
    writer.writerow(["有效选票", res["ballots"]])
    writer.writerow(["账本 SHA-256", res["ledger_sha256"]])
    return "\ufeff" + buf.getvalue()


def tie_at_cut_off(db: Database, campaign: dict, now: datetime) -> tuple[list[Row], int]:
    """The candidates tied across the last seat and how many seats they share, ranked without
    any earlier decision (so a decision can be revised until the announcement)."""
    stored = stored_tally(db, campaign, now)
    undecided = rank(campaigns.candidates_of(db, campaign["id"]), json.loads(stored["counts"]), stored["ballots"],
                     campaign["winners"])
    return straddling(undecided), min(campaign["winners"], len(undecided)) - sum(1 for r in undecided if r.winner)


def decide_tie(db: Database, campaign: dict, chosen: list[str], now: datetime, actor: str) -> dict:
    """The organizer puts some of the tied candidates in, exactly filling the seats left."""
    if is_announced(campaign, now):
        raise AlreadyAnnounced()
    tied, seats = tie_at_cut_off(db, campaign, now)
    if not tied:
        raise NoTie()
    tied_slugs = {r.slug for r in tied}
    if len(set(chosen)) != len(chosen) or not set(chosen) <= tied_slugs or len(chosen) != seats:
        raise BadTieChoice(f"请从并列的 {len(tied_slugs)} 项中选出 {seats} 项：{'、'.join(sorted(tied_slugs))}")
    with immediate(db):
        db.execute("update tallies set decided = ? where campaign_id = ?", [json.dumps(sorted(chosen)), campaign["id"]])
        db.execute("update campaigns set tally_ready = 1 where id = ?", [campaign["id"]])
        audit.record(db, now, actor, "tally.decide_tie", campaign["slug"], {"in": sorted(chosen),
                                                                             "tied": sorted(tied_slugs)})
    return results(db, campaign, now)


def publish_winners_list(db: Database, campaign: dict, now: datetime) -> str | None:
    """Once announced, the winners become a list in the catalog (idempotent)."""
    if not is_announced(campaign, now):
        return None
    slug = f"{campaign['slug']}-results"
    if first(db, "select 1 from lists where slug = ?", [slug]):
        return slug
    res = results(db, campaign, now)
    winners = [r.slug for r in res["rows"] if r.winner is True]
    ids = {r["slug"]: r["id"] for r in db.query("select id, slug from brands")}
    stamp = clock.to_db(now)
    with immediate(db):
        if first(db, "select 1 from lists where slug = ?", [slug]):
            return slug
        cursor = db.execute(
            "insert into lists (slug, title, description, sources, featured, created_at, updated_at)"
            " values (?, ?, ?, '[]', 1, ?, ?)",
            [slug, f"{campaign['title']}：入选结果",
             f"本站评选“{campaign['title']}”的揭晓结果，按得票排序；共 {res['ballots']} 张有效选票。", stamp, stamp])
        db.conn.executemany("insert into list_items (list_id, brand_id, position) values (?, ?, ?)",
                            [(cursor.lastrowid, ids[s], i) for i, s in enumerate(winners)])
    return slug


def lookup_receipt(db: Database, campaign: dict, code: str, now: datetime) -> dict | None:
    """After the announcement: was this receipt counted, and with which choices?"""
    require_announced(campaign, now)
    normalized = ballots.normalize_receipt(code)
    if normalized is None:
        return None
    row = first(db, "select id, cast_at from ballots where campaign_id = ? and receipt = ?",
                    [campaign["id"], normalized])
    if row is None:
        return None
    choices = [r["name"] for r in db.query(
        "select br.name from choices c join brands br on br.id = c.brand_id"
        " join candidates k on k.brand_id = c.brand_id and k.campaign_id = c.campaign_id"
        " where c.ballot_id = ? order by k.position", [row["id"]])]
    return {"receipt": normalized, "choices": choices, "hash": ballots.receipt_hash(normalized),
            "day": clock.from_db(row["cast_at"]).astimezone(clock.LOCAL).date().isoformat()}


def announce(db: Database, slug: str, now: datetime, actor: str = "cli") -> dict:
    """Announce by hand: only after voting is over, and only with any cut-off tie decided."""
    campaign = campaigns.campaign_by_slug(db, slug)
    if not voting_over(campaign, now):
        raise StillVoting("投票尚未结束（含截止后的宽限期），不能揭晓。")
    res = results(db, campaign, now)
    if res["undecided_tie"]:
        raise TieUndecided(res["undecided_tie"], "入选名额边界有并列未决定：" + "、".join(res["undecided_tie"])
                           + "。请先用 `brandvote tally SLUG --decide-tie …` 决定。")
    campaign = campaigns.set_manual_state(db, slug, "announced", now, actor=actor)
    publish_winners_list(db, campaign, now)
    return campaign


def recount(ledger_text: str, published: dict | None = None) -> dict:
    """Recompute the tally from a published ledger; compare with published results if given."""
    ballots, counts = parse_ledger(ledger_text)
    report = {"ballots": ballots, "counts": counts, "ledger_sha256": sha256(ledger_text.lstrip("\ufeff")),
              "matches": None, "differences": []}
    if published is not None:
        diffs = []
        if published.get("ballots") != ballots:
            diffs.append(f"有效选票：公布 {published.get('ballots')}，重算 {ballots}")
        if published.get("ledger_sha256") and published["ledger_sha256"] != report["ledger_sha256"]:
            diffs.append("账本 SHA-256 与公布的不一致")
        listed = {c["slug"]: c for c in published.get("candidates", [])}
        for slug in sorted(set(listed) | set(counts)):
            if listed.get(slug, {}).get("votes", 0) != counts.get(slug, 0):
                diffs.append(f"{slug}：公布 {listed.get(slug, {}).get('votes', 0)} 票，重算 {counts.get(slug, 0)} 票")
        if listed:
            rows = rank([{"slug": s, "name": c["name"]} for s, c in listed.items()], counts, ballots,
                        published.get("winners", 10))
            for row in rows:
                if listed[row.slug].get("rank") != row.rank:
                    diffs.append(f"{row.slug}：公布第 {listed[row.slug].get('rank')} 名，重算第 {row.rank} 名")
        report["differences"] = diffs
        report["matches"] = not diffs
    return report
