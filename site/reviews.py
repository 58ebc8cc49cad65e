"""Reviews (评审): their rows, their stage machine, the one embargo gate, and the review file.

Rules only, `now` passed in. A review moves draft → nominating → screening → scoring →
deciding → published and never back: a step back would let criteria change under scores
already given, or a published tier be taken back. What each step needs before it is entered
is checked here (early stages) and in review_results (deciding, published: they need the
results). Nominations live in nominations.py, score sheets in review_scores.py.
"""

from __future__ import annotations

import json
from importlib import resources
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from sqlite_utils import Database

from . import audit, clock
from .accounts import NO_PASSWORD, ROLE_LABELS, insert_user
from .db import first, immediate
from .errors import InvalidReview, NoSuchCase, NoSuchReview, ReviewLocked, StageRefused, WrongStage
from .review_file import Review, Tier, parse_review, seat_problems

STAGES = ("draft", "nominating", "screening", "scoring", "deciding", "published")
STAGE_LABELS = {"draft": "筹备中", "nominating": "推荐中", "screening": "初审中", "scoring": "评分中",
                "deciding": "待决定", "published": "已公布"}
DEMO_REVIEW = Path(str(resources.files("brandvote") / "data" / "reviews" / "beijing-district-innovation-cases.json"))
RULE_FIELDS = ("criteria", "tiers", "aggregate", "campaign", "public_weight", "public_score")


# ---------------------------------------------------------------- rows

def decode_review(row: dict) -> dict:
    """A review row with its JSON read back; `campaign` is the linked campaign's slug."""
    review = dict(row)
    review["criteria"] = json.loads(row["criteria"])
    review["tiers"] = json.loads(row["tiers"])
    review["public_weight"] = json.loads(row["public_weight"]) if row["public_weight"] else None
    return review


_SELECT = ("select r.*, c.slug as campaign from reviews r left join campaigns c on c.id = r.campaign_id")


def review_by_slug(db: Database, slug: str) -> dict:
    row = first(db, _SELECT + " where r.slug = ?", [slug])
    if row is None:
        raise NoSuchReview(f"没有找到评审“{slug}”。")
    return decode_review(row)


def list_reviews(db: Database, now: datetime) -> list[dict]:
    reviews = [decode_review(dict(r)) for r in db.query(_SELECT + " order by r.id")]
    for review in reviews:
        review["status"] = review_stage(review, now)
    return reviews


def cases_of(db: Database, review_id: int, state: str | None = None) -> list[dict]:
    """In the review's own order (the file's, then nominations as they came): the order a
    tie is listed in, never anything score-derived."""
    sql = ("select k.*, b.slug as brand from cases k left join brands b on b.id = k.brand_id"
           " where k.review_id = ?")
    params: list = [review_id]
    if state:
        sql += " and k.state = ?"
        params.append(state)
    return [dict(r) for r in db.query(sql + " order by k.position, k.id", params)]


def case_by_slug(db: Database, review: dict, slug: str) -> dict:
    row = first(db, "select k.*, b.slug as brand from cases k left join brands b on b.id = k.brand_id"
                    " where k.review_id = ? and k.slug = ?", [review["id"], slug])
    if row is None:
        raise NoSuchCase(f"评审“{review['title']}”没有案例“{slug}”。")
    return dict(row)


def jurors_of(db: Database, review_id: int) -> list[dict]:
    return [dict(r) for r in db.query(
        "select u.id, u.username, u.name, u.unit, u.password_hash = '' as no_password from review_jurors j"
        " join users u on u.id = j.user_id where j.review_id = ? order by j.position", [review_id])]


# ---------------------------------------------------------------- stages and the gate

def review_stage(review: dict, now: datetime) -> str:
    """The stage as the world sees it: `deciding` becomes `published` at publish_at, but only
    once the decision is complete (`ready`, kept by review_results), so a time set in advance
    can never publish an undecided tie."""
    stage = review["stage"]
    due = clock.from_db(review.get("publish_at"))
    if stage == "deciding" and due is not None and now >= due and review.get("ready") == 1:
        return "published"
    return stage


def review_published(review: dict, now: datetime) -> bool:
    """THE embargo gate for reviews: no score, rank or tier of a review leaves the server for
    anyone but its organizers until this is true (review_results.public_results asks it)."""
    return review_stage(review, now) == "published"


def at_least(review: dict, stage: str, now: datetime) -> bool:
    return STAGES.index(review_stage(review, now)) >= STAGES.index(stage)


def require_stage(review: dict, now: datetime, *stages: str, doing: str) -> None:
    current = review_stage(review, now)
    if current not in stages:
        allowed = "、".join(STAGE_LABELS[s] for s in stages)
        raise WrongStage(f"评审“{review['title']}”目前{STAGE_LABELS[current]}，{doing}只能在{allowed}阶段进行。")


def entry_problems(db: Database, review: dict, stage: str) -> dict[str, str]:
    """What stands in the way of entering `stage` (the early stages; review_results adds the
    checks of deciding and published, which need the results)."""
    if stage != "scoring":
        return {}
    problems: dict[str, str] = {}
    waiting = cases_of(db, review["id"], "nominated")
    if waiting:
        problems["cases"] = f"还有 {len(waiting)} 个案例未初审：{'、'.join(c['slug'] for c in waiting)}。"
    accepted = cases_of(db, review["id"], "accepted")
    if not accepted:
        problems.setdefault("cases", "没有通过初审的案例。")
    else:
        problems.update(seat_problems(_tiers(review), len(accepted)))
    if not jurors_of(db, review["id"]):
        problems["jurors"] = "评审还没有评委。"
    return problems


def _tiers(review: dict) -> tuple[Tier, ...]:
    return tuple(Tier(t["key"], t["name"], t["seats"]) for t in review["tiers"])


def check_move(review: dict, target: str, now: datetime) -> list[str]:
    """The stages a move crosses, target last; forward only."""
    if target not in STAGES:
        raise StageRefused({"stage": f"没有阶段“{target}”，只能是 {'、'.join(STAGES)}。"})
    current = STAGES.index(review_stage(review, now))
    if STAGES.index(target) <= current:
        raise StageRefused({"stage": f"阶段只能向后推进：目前{STAGE_LABELS[STAGES[current]]}，"
                                     f"不能改为{STAGE_LABELS[target]}。"})
    return list(STAGES[current + 1:STAGES.index(target) + 1])


def write_stage(db: Database, review: dict, target: str, now: datetime, actor: str, **extra) -> None:
    """Inside the caller's transaction, audited with where it came from."""
    sets = {"stage": target, "updated_at": clock.to_db(now), **extra}
    db.execute(f"update reviews set {', '.join(f'{k} = ?' for k in sets)} where id = ?",  # keys: this module's
               [*sets.values(), review["id"]])
    audit.record(db, now, actor, "review.stage", review["slug"], {"from": review["stage"], "to": target})


def set_publish_at(db: Database, slug: str, when: datetime | None, now: datetime, actor: str = "cli") -> dict:
    """The time the decided results publish themselves; never in the past, never after publication."""
    with immediate(db):
        review = review_by_slug(db, slug)
        if at_least(review, "published", now):
            raise WrongStage("评审结果已公布，不能再设定公布时间。")
        if when is not None and when <= now:
            raise StageRefused({"publish_at": "公布时间须晚于现在。"})
        db.execute("update reviews set publish_at = ?, updated_at = ? where id = ?",
                   [clock.to_db(when), clock.to_db(now), review["id"]])
        audit.record(db, now, actor, "review.publish_at", slug, {"publish_at": clock.to_db(when)})
    return review_by_slug(db, slug)


# ---------------------------------------------------------------- the review file

@dataclass
class LoadReport:
    slug: str
    review: str = "unchanged"  # added | changed | unchanged
    cases_added: list[str] = field(default_factory=list)
    cases_changed: list[str] = field(default_factory=list)
    jurors_created: list[str] = field(default_factory=list)
    jurors_joined: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        head = {"added": "新增", "changed": "修改", "unchanged": "未变"}[self.review]
        out = [f"评审 {self.slug}：{head}",
               f"案例：新增 {len(self.cases_added)}（待初审），修改 {len(self.cases_changed)}",
               f"评委：加入 {len(self.jurors_joined)}，新建账号 {len(self.jurors_created)}"]
        if self.jurors_created:
            out.append("新建的评委账号还没有密码，须用 brandvote user passwd 用户名 设定后才能登录："
                       + "、".join(self.jurors_created))
        return out


def _rules(parsed: Review, campaign_id: int | None) -> dict:
    return {"criteria": json.dumps([asdict(c) for c in parsed.criteria], ensure_ascii=False),
            "tiers": json.dumps([asdict(t) for t in parsed.tiers], ensure_ascii=False),
            "aggregate": parsed.aggregate, "campaign_id": campaign_id,
            "public_weight": None if parsed.public_weight is None else json.dumps(parsed.public_weight),
            "public_score": parsed.public_score}


def _references(db: Database, parsed: Review, problems: dict) -> tuple[int | None, dict[str, int]]:
    """The linked campaign and the cases' brands, which only the database can vouch for."""
    campaign_id = None
    if parsed.campaign:
        row = first(db, "select id from campaigns where slug = ?", [parsed.campaign])
        if row is None:
            problems["campaign"] = f"没有网络投票“{parsed.campaign}”。"
        else:
            campaign_id = row["id"]
    brands = {c.brand for c in parsed.cases if c.brand}
    ids = {r["slug"]: r["id"] for r in db.query("select id, slug from brands where deleted_at is null")}
    for i, case in enumerate(parsed.cases):
        if case.brand and case.brand not in ids:
            problems[f"cases[{i}].brand"] = f"目录中没有条目“{case.brand}”。"
    return campaign_id, {b: ids[b] for b in brands if b in ids}


def _juror_accounts(db: Database, parsed: Review, problems: dict) -> dict[str, dict]:
    """Existing accounts by username; an account with another role cannot be made a juror by a
    file (an editor would gain a juror's view without anybody deciding it)."""
    found = {}
    for i, juror in enumerate(parsed.jurors):
        user = first(db, "select id, username, role, unit, name from users where username = ?", [juror.username])
        if user is None:
            continue
        if user["role"] != "juror":
            problems[f"jurors[{i}].username"] = (f"账号 {juror.username} 已存在，角色是{ROLE_LABELS.get(user['role'], user['role'])}，"
                                                 "不是评委。")
        found[juror.username] = dict(user)
    return found


def _locked(stored: dict, stage: str, parsed: Review, rules: dict) -> dict[str, str]:
    """What the file would change that the review's stage has frozen (`stored`: the raw row)."""
    problems: dict[str, str] = {}
    if stage == "published" and (stored["title"], stored["intro"]) != (parsed.title, parsed.intro):
        problems["title"] = "结果已公布，标题和简介不能再改。"
    if STAGES.index(stage) >= STAGES.index("scoring"):
        for name in RULE_FIELDS:
            column = "campaign_id" if name == "campaign" else name
            if stored[column] != rules[column]:
                problems[name] = f"评审已进入{STAGE_LABELS[stage]}阶段，评分规则、等次和网络投票设置不能再改。"
    return problems


def _case_locked(old_case: dict, case, brand_id: int | None, stage: str) -> bool:
    same = (old_case["title"], old_case["unit"], old_case["summary"], old_case["brand_id"]) == (
        case.title, case.unit, case.summary, brand_id)
    return not same and STAGES.index(stage) >= STAGES.index("scoring")


def load_review(db: Database, doc: object, now: datetime, actor: str = "load") -> LoadReport:
    """THE way a review file gets in: the whole file or nothing, every problem at once.

    Cases from the file arrive as nominations awaiting screening; cases nominated through the
    site and absent from the file stay. Jurors missing as accounts are created without a
    password (accounts.NO_PASSWORD), so they cannot sign in until `user passwd`."""
    parsed = parse_review(doc)
    with immediate(db):
        problems: dict[str, str] = {}
        campaign_id, brand_ids = _references(db, parsed, problems)
        accounts = _juror_accounts(db, parsed, problems)
        if problems:
            raise InvalidReview(problems)
        stored = first(db, "select * from reviews where slug = ?", [parsed.slug])
        rules = _rules(parsed, campaign_id)
        report = LoadReport(parsed.slug)
        locked = _locked(stored, review_stage(stored, now), parsed, rules) if stored else {}
        _write_review(db, stored, parsed, rules, now, report)
        review = review_by_slug(db, parsed.slug)
        locked.update(_write_cases(db, review, parsed, brand_ids, now, report))
        locked.update(_write_jurors(db, review, parsed, accounts, now, report))
        if locked:
            raise ReviewLocked(locked)
        audit.record(db, now, actor, "review.load", parsed.slug, {
            "review": report.review, "cases_added": report.cases_added, "cases_changed": report.cases_changed,
            "jurors_created": report.jurors_created, "jurors_joined": report.jurors_joined})
    return report


def _write_review(db: Database, stored: dict | None, parsed: Review, rules: dict, now: datetime,
                  report: LoadReport) -> None:
    """The review's own row; a locked change is reported by _locked and rolled back with it."""
    stamp = clock.to_db(now)
    values = {"title": parsed.title, "intro": parsed.intro, **rules}
    if stored is None:
        report.review = "added"
        db.execute(
            "insert into reviews (slug, title, intro, criteria, tiers, aggregate, campaign_id, public_weight,"
            " public_score, stage, created_at, updated_at) values (:slug, :title, :intro, :criteria, :tiers,"
            " :aggregate, :campaign_id, :public_weight, :public_score, 'draft', :now, :now)",
            {**values, "slug": parsed.slug, "now": stamp})
    elif any(stored[k] != v for k, v in values.items()):
        report.review = "changed"
        db.execute("update reviews set title = :title, intro = :intro, criteria = :criteria, tiers = :tiers,"
                   " aggregate = :aggregate, campaign_id = :campaign_id, public_weight = :public_weight,"
                   " public_score = :public_score, updated_at = :now where id = :id",
                   {**values, "now": stamp, "id": stored["id"]})


def _write_cases(db: Database, review: dict, parsed: Review, brand_ids: dict[str, int], now: datetime,
                 report: LoadReport) -> dict[str, str]:
    stage, stamp = review_stage(review, now), clock.to_db(now)
    problems: dict[str, str] = {}
    position = first(db, "select coalesce(max(position), -1) as n from cases where review_id = ?",
                     [review["id"]])["n"]
    for i, case in enumerate(parsed.cases):
        brand_id = brand_ids.get(case.brand) if case.brand else None
        old = first(db, "select * from cases where review_id = ? and slug = ?", [review["id"], case.slug])
        if old is None and STAGES.index(stage) >= STAGES.index("scoring"):
            problems[f"cases[{i}]"] = f"评审已进入{STAGE_LABELS[stage]}阶段，不能再新增案例。"
        elif old is None:
            position += 1
            db.execute("insert into cases (review_id, slug, title, unit, summary, brand_id, state, position,"
                       " created_at, updated_at) values (?, ?, ?, ?, ?, ?, 'nominated', ?, ?, ?)",
                       [review["id"], case.slug, case.title, case.unit, case.summary, brand_id, position, stamp, stamp])
            report.cases_added.append(case.slug)
        elif _case_locked(old, case, brand_id, stage):
            problems[f"cases[{i}]"] = f"评审已进入{STAGE_LABELS[stage]}阶段，案例内容不能再改。"
        elif (old["title"], old["unit"], old["summary"], old["brand_id"]) != (case.title, case.unit, case.summary, brand_id):
            db.execute("update cases set title = ?, unit = ?, summary = ?, brand_id = ?, updated_at = ? where id = ?",
                       [case.title, case.unit, case.summary, brand_id, stamp, old["id"]])
            report.cases_changed.append(case.slug)
    return problems


def _write_jurors(db: Database, review: dict, parsed: Review, accounts: dict[str, dict], now: datetime,
                  report: LoadReport) -> dict[str, str]:
    """Before scoring the file's panel is the panel; from scoring on jurors may join (until
    deciding) but not leave, since their scores would vanish with them."""
    stage = review_stage(review, now)
    frozen = STAGES.index(stage) >= STAGES.index("scoring")
    sitting = {j["username"]: j for j in jurors_of(db, review["id"])}
    problems: dict[str, str] = {}
    for i, juror in enumerate(parsed.jurors):
        user = accounts.get(juror.username)
        if user is None:
            user_id = insert_user(db, juror.username, NO_PASSWORD, "juror", now, juror.unit, juror.name)
            report.jurors_created.append(juror.username)
        else:
            user_id = user["id"]
            if (user["unit"], user["name"]) != (juror.unit, juror.name):
                if frozen:
                    problems[f"jurors[{i}].unit"] = "评分已开始，评委的单位和姓名不能再改（单位决定回避）。"
                db.execute("update users set unit = ?, name = ? where id = ?", [juror.unit, juror.name, user_id])
        if juror.username not in sitting:
            if STAGES.index(stage) >= STAGES.index("deciding"):
                problems[f"jurors[{i}]"] = f"评审已进入{STAGE_LABELS[stage]}阶段，不能再增加评委。"
            db.execute("insert into review_jurors (review_id, user_id, position) values (?, ?, ?)",
                       [review["id"], user_id, i])
            report.jurors_joined.append(juror.username)
    gone = [u for u in sitting if u not in {j.username for j in parsed.jurors}]
    if gone and frozen:
        problems["jurors"] = f"评分已开始，评委不能退出：{'、'.join(gone)}。"
    for username in gone:
        db.execute("delete from review_jurors where review_id = ? and user_id = ?", [review["id"], sitting[username]["id"]])
    db.conn.executemany("update review_jurors set position = ? where review_id = ? and user_id ="
                        " (select id from users where username = ?)",
                        [(i, review["id"], j.username) for i, j in enumerate(parsed.jurors)])
    return problems


def read_review_file(path) -> object:
    """JSON from a file, or InvalidReview saying why it is not JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidReview({"$": f"无法读取文件：{exc}"})
    except json.JSONDecodeError as exc:
        raise InvalidReview({"$": f"不是有效的 JSON（第 {exc.lineno} 行第 {exc.colno} 列）：{exc.msg}"})
