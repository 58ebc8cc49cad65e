"""A review's results: one path from the score sheets to the published tiers.

sheets → each juror's weighted score → the panel's expert score → the public score (from the
linked campaign's counts, only once that campaign is announced) → the final score → rank →
seats with the organizer's decisions. Organizers read it from `deciding` on; the public reads
only what was frozen at publication (reviews.published), through reviews.review_published.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from sqlite_utils import Database

from . import audit, clock, scoring, tally
from .db import first, immediate
from .errors import BadDecision, NoSuchReview, PublicScoreUnavailable, ReviewNotPublished, StageRefused
from .nominations import REASON_MAX
from .reviews import (STAGE_LABELS, at_least, case_by_slug, cases_of, check_move, entry_problems, require_stage,
                      review_by_slug, review_published, review_stage, write_stage)


@dataclass(frozen=True)
class Results:
    review: dict
    cases: dict[str, dict]  # slug → case row, in the review's order
    sheets: dict[str, dict[str, dict]]  # case → juror → marks
    expert: dict[str, Fraction | None]
    public: dict[str, Fraction] | None
    outcome: scoring.Outcome
    spread: list[scoring.Spread]
    means: dict[str, dict[str, Fraction | None]]


def _sheets(db: Database, review: dict, cases: dict[str, dict]) -> dict[str, dict[str, dict]]:
    sheets: dict[str, dict[str, dict]] = {slug: {} for slug in cases}
    for row in db.query("select k.slug as case_slug, u.username, s.marks from scores s join cases k on k.id = s.case_id"
                        " join users u on u.id = s.user_id join review_jurors j on j.user_id = s.user_id"
                        " and j.review_id = s.review_id where s.review_id = ? order by j.position", [review["id"]]):
        if row["case_slug"] in sheets:
            sheets[row["case_slug"]][row["username"]] = json.loads(row["marks"])
    return sheets


def _public(db: Database, review: dict, cases: dict[str, dict], now: datetime) -> dict[str, Fraction] | None:
    """The campaign's votes for each case's brand on 0–100; refused before its announcement,
    since no count of a campaign exists for anybody until then."""
    if not review["campaign"]:
        return None
    camp = _linked_campaign(db, review, now)
    if not tally.is_announced(camp, now):
        raise PublicScoreUnavailable(f"关联的网络投票“{camp['title']}”尚未揭晓，不能计算综合得分。"
                                     f"{tally.announce_text(camp)}")
    res = tally.results(db, camp, now)
    votes = {r.slug: r.votes for r in res["rows"]}
    mine = {slug: votes.get(case["brand"], 0) for slug, case in cases.items()}
    most = max(mine.values(), default=0)
    return {slug: scoring.public_score(n, review["public_score"] or "leader", most, res["ballots"])
            for slug, n in mine.items()}


def _linked_campaign(db: Database, review: dict, now: datetime) -> dict:
    """The linked campaign, its tally settled when that can be done here: tally.settle opens
    its own write transaction, so inside a caller's it is read as it stands; the callers
    that write (set_stage, decide, settle) settle it first, before theirs."""
    camp = dict(first(db, "select * from campaigns where id = ?", [review["campaign_id"]]))
    return camp if db.conn.in_transaction else tally.settle(db, camp, now)


def _settle_campaign(db: Database, slug: str, now: datetime) -> None:
    review = review_by_slug(db, slug)
    if review["campaign"]:
        _linked_campaign(db, review, now)


def settle_campaign(db: Database, review: dict, now: datetime) -> None:
    """Keep the linked campaign's tally once its voting is over (tally.settle), before any
    transaction of ours: it takes the write lock itself, and its announcement by time waits
    for it."""
    if review.get("campaign_id"):
        tally.settle(db, dict(first(db, "select * from campaigns where id = ?", [review["campaign_id"]])), now)


def _decisions(db: Database, review: dict) -> dict[str, scoring.Decision]:
    return {r["slug"]: scoring.Decision(r["tier"], r["reason"]) for r in db.query(
        "select k.slug, d.tier, d.reason from decisions d join cases k on k.id = d.case_id where d.review_id = ?",
        [review["id"]])}


def compute(db: Database, review: dict, now: datetime, decisions: dict | None = None) -> Results:
    """The whole result as it stands; `decisions` replaces the stored ones (to test a new one)."""
    cases = {c["slug"]: c for c in cases_of(db, review["id"], "accepted")}
    sheets = _sheets(db, review, cases)
    juror_scores = {c: {j: scoring.juror_score(review["criteria"], m) for j, m in by.items()} for c, by in sheets.items()}
    expert = {c: scoring.expert_score(s.values(), review["aggregate"]) for c, s in juror_scores.items()}
    public = _public(db, review, cases, now)
    final = {c: scoring.final_score(expert[c], public[c] if public else None,
                                    review["public_weight"] if public else None) for c in cases}
    rows = scoring.rank(final)
    outcome = scoring.fill_seats(rows, review["tiers"], _decisions(db, review) if decisions is None else decisions)
    means = scoring.criterion_means(review["criteria"], {c: list(by.values()) for c, by in sheets.items()})
    return Results(review, cases, sheets, expert, public, outcome, scoring.juror_spread(juror_scores, expert), means)


def organizer_results(db: Database, slug: str, now: datetime) -> Results:
    """For organizers (`review scores`, the console): from deciding on, refused before, so no
    ranking exists while jurors still score."""
    review = settle(db, review_by_slug(db, slug), now)
    require_stage(review, now, "deciding", "published", doing="查看评审结果")
    settle_campaign(db, review, now)
    return compute(db, review, now)


def _figure(value) -> float | None:
    shown = scoring.display(value)
    return None if shown is None else float(shown)


def results_json(res: Results) -> dict:
    """The results as published (and frozen): 1-decimal figures, the rule, the departures."""
    tiers = {t["key"]: t["name"] for t in res.review["tiers"]}
    cases = []
    for p in res.outcome.placements:
        case = res.cases[p.slug]
        cases.append({"slug": p.slug, "title": case["title"], "unit": case["unit"], "brand": case["brand"],
                      "score": _figure(p.score), "expert": _figure(res.expert[p.slug]),
                      "public": _figure(res.public[p.slug]) if res.public else None,
                      "jurors": len(res.sheets[p.slug]), "rank": p.rank, "tied": p.tied,
                      "tier": p.tier, "tier_name": tiers.get(p.tier)})
    return {"review": res.review["slug"], "title": res.review["title"], "rule": scoring.rule_text(res.review),
            "criteria": [{"key": c["key"], "name": c["name"]} for c in res.review["criteria"]],
            "tiers": res.review["tiers"], "cases": cases,
            "criterion_means": {c: {k: _figure(v) for k, v in m.items()} for c, m in res.means.items()},
            "departures": [{"case": d.case, "rank": d.rank, "by_rank": d.by_rank, "tier": d.tier,
                            "reason": d.reason, "tie": d.tie} for d in res.outcome.departures],
            "undecided": res.outcome.undecided}


# ---------------------------------------------------------------- decisions

def _ready(db: Database, review: dict, now: datetime) -> int:
    try:
        return int(compute(db, review, now).outcome.complete)
    except PublicScoreUnavailable:
        return 0


def decide(db: Database, slug: str, case_slug: str, tier: str | None, reason: str, now: datetime,
           actor: str = "cli") -> Results:
    """The organizer places a case (a tier key, or None for no tier) with a written reason.
    A placement the rank order already gives withdraws the earlier decision instead."""
    reason = (reason or "").strip()
    _settle_campaign(db, slug, now)
    with immediate(db):
        review = review_by_slug(db, slug)
        require_stage(review, now, "deciding", doing="决定等次")
        case = case_by_slug(db, review, case_slug)
        if len(reason) > REASON_MAX:
            raise BadDecision({case_slug: f"理由最多 {REASON_MAX} 个字符。"})
        decisions = _decisions(db, review)
        by_rank = compute(db, review, now, decisions={}).outcome
        placed = {p.slug: p for p in by_rank.placements}
        if case_slug in decisions and placed.get(case_slug) and placed[case_slug].decided \
                and placed[case_slug].by_rank == tier:
            decisions.pop(case_slug)  # back to the rank order
        else:
            decisions[case_slug] = scoring.Decision(tier, reason)
        res = compute(db, review, now, decisions=decisions)  # BadDecision if it cannot stand
        db.execute("delete from decisions where review_id = ? and case_id = ?", [review["id"], case["id"]])
        if case_slug in decisions:
            db.execute("insert into decisions (review_id, case_id, tier, reason, actor, at) values (?, ?, ?, ?, ?, ?)",
                       [review["id"], case["id"], tier, reason, actor, clock.to_db(now)])
        db.execute("update reviews set ready = ? where id = ?", [int(res.outcome.complete), review["id"]])
        audit.record(db, now, actor, "review.decide", f"{slug}/{case_slug}",
                     {"tier": tier, "reason": reason, "withdrawn": case_slug not in decisions})
    return res


# ---------------------------------------------------------------- stages that need the results

def _results_problems(db: Database, review: dict, stage: str, now: datetime) -> dict[str, str]:
    if stage == "deciding" and review["campaign"]:
        try:
            _public(db, review, {}, now)
        except PublicScoreUnavailable as exc:
            return {"campaign": exc.message}
    if stage == "published":
        res = compute(db, review, now)
        if not res.outcome.complete:
            return {"decisions": f"等次边界有并列未决定：{'、'.join(res.outcome.undecided)}。"
                                 "请用 brandvote review decide 逐个决定。"}
    return {}


def set_stage(db: Database, slug: str, target: str, now: datetime, actor: str = "cli") -> dict:
    """THE stage move: forward only, every check of every stage crossed, audited."""
    _settle_campaign(db, slug, now)
    with immediate(db):
        review = review_by_slug(db, slug)
        crossed = check_move(review, target, now)
        problems: dict[str, str] = {}
        for stage in crossed:
            problems.update(entry_problems(db, review, stage))
            if not problems:
                problems.update(_results_problems(db, review, stage, now))
        if problems:
            raise StageRefused(problems)
        if target == "published":
            _publish(db, review, now, actor)
        else:
            extra = {"ready": _ready(db, review, now)} if target == "deciding" else {}
            write_stage(db, review, target, now, actor, **extra)
    return review_by_slug(db, slug)


def _publish(db: Database, review: dict, now: datetime, actor: str) -> None:
    """Inside the caller's transaction: the outcome frozen, each tier a catalog list."""
    frozen = results_json(compute(db, review, now))
    frozen["published_at"] = clock.to_db(now)
    lists = publish_lists(db, review, frozen, now)
    write_stage(db, review, "published", now, actor, published=json.dumps(frozen, ensure_ascii=False))
    audit.record(db, now, actor, "review.publish", review["slug"], {"lists": lists})


def publish_lists(db: Database, review: dict, frozen: dict, now: datetime) -> list[str]:
    """`{slug}-{tier key}` per tier, its cases' catalog entries in rank order (a case without
    an entry is in the results, not in a list). An existing list of that slug is left alone."""
    stamp, made = clock.to_db(now), []
    for tier in review["tiers"]:
        slug = f"{review['slug']}-{tier['key']}"
        if first(db, "select 1 from lists where slug = ?", [slug]):
            continue
        members = [c for c in frozen["cases"] if c["tier"] == tier["key"]]
        ids = [first(db, "select id from brands where slug = ?", [c["brand"]])["id"] for c in members if c["brand"]]
        list_id = db.execute(
            "insert into lists (slug, title, description, sources, featured, created_at, updated_at)"
            " values (?, ?, ?, '[]', 1, ?, ?)",
            [slug, f"{review['title']}：{tier['name']}",
             f"本站评审“{review['title']}”公布的{tier['name']}（{len(members)} 个），按名次排列。", stamp, stamp]).lastrowid
        db.conn.executemany("insert into list_items (list_id, brand_id, position) values (?, ?, ?)",
                            [(list_id, b, i) for i, b in enumerate(ids)])
        made.append(slug)
    return made


def settle(db: Database, review: dict, now: datetime) -> dict:
    """A review due at publish_at is published by whoever reads it first; a no-op otherwise."""
    if review_stage(review, now) != "published" or review["stage"] == "published":
        return review
    _settle_campaign(db, review["slug"], now)
    with immediate(db):
        fresh = review_by_slug(db, review["slug"])
        if fresh["stage"] == "deciding" and review_published(fresh, now):
            _publish(db, fresh, now, "system")
    return review_by_slug(db, review["slug"])


# ---------------------------------------------------------------- the public

def public_results(db: Database, slug: str, now: datetime) -> dict:
    """The frozen results, through the one gate; ReviewNotPublished before."""
    review = settle(db, review_by_slug(db, slug), now)
    if not review_published(review, now) or not review["published"]:
        raise ReviewNotPublished(f"评审“{review['title']}”的结果尚未公布（目前{STAGE_LABELS[review_stage(review, now)]}）。")
    return json.loads(review["published"])


def public_review(db: Database, slug: str, now: datetime) -> dict:
    """What anyone may read at any stage: never a score, rank or tier before publication."""
    review = settle(db, review_by_slug(db, slug), now)
    if review_stage(review, now) == "draft":
        raise NoSuchReview()
    cases = cases_of(db, review["id"], "accepted") if at_least(review, "scoring", now) else []
    return {"slug": review["slug"], "title": review["title"], "intro": review["intro"],
            "stage": review_stage(review, now), "stage_name": STAGE_LABELS[review_stage(review, now)],
            "criteria": review["criteria"], "tiers": review["tiers"], "campaign": review["campaign"],
            "rule": scoring.rule_text(review), "publish_at": review["publish_at"],
            "cases": [{"slug": c["slug"], "title": c["title"], "unit": c["unit"], "summary": c["summary"],
                       "brand": c["brand"]} for c in cases]}

