"""Jurors' score sheets: what a juror may see and score, conflicts, and paper sheets (CSV).

A juror sees the accepted cases of the reviews they sit on, minus their conflicts (a case of
their own unit, or one they declared), and only their own marks: never another juror's, nor
any total, so nobody scores towards the panel. Marks change until deciding begins.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime

from sqlite_utils import Database

from . import audit, clock
from .db import first, immediate
from .errors import BadScore, BadSheet, CaseConflict, NoSuchCase, NotJuror
from .nominations import REASON_MAX
from .review_file import SHEET_COLUMNS
from .reviews import case_by_slug, require_stage, review_by_slug
from .scoring import mark_problems

COMMENT_MAX = 2000


def _juror(db: Database, review: dict, username: str) -> dict:
    user = first(db, "select u.id, u.username, u.unit, u.disabled from review_jurors j join users u"
                     " on u.id = j.user_id where j.review_id = ? and u.username = ?", [review["id"], username])
    if user is None or user["disabled"]:
        raise NotJuror(f"{username} 不是评审“{review['title']}”的评委。")
    return dict(user)


def conflicted(db: Database, case: dict, juror: dict) -> bool:
    """Same non-blank unit as the case, or declared. Units are compared as written: the file and
    the nomination both take the unit's name from one place (the nominator's account)."""
    if juror["unit"].strip() and juror["unit"].strip() == case["unit"].strip():
        return True
    return first(db, "select 1 from conflicts where case_id = ? and user_id = ?", [case["id"], juror["id"]]) is not None


def _scorable(db: Database, review: dict, case_slug: str, juror: dict) -> dict:
    """The case, if this juror may score it; a conflicted or unaccepted case is refused without
    its details, so a conflicted juror learns nothing of it."""
    try:
        case = case_by_slug(db, review, case_slug)
    except NoSuchCase:
        raise NoSuchCase(f"评审“{review['title']}”没有可评分的案例“{case_slug}”。")
    if case["state"] != "accepted":
        raise NoSuchCase(f"评审“{review['title']}”没有可评分的案例“{case_slug}”。")
    if conflicted(db, case, juror):
        raise CaseConflict()
    return case


def juror_cases(db: Database, slug: str, username: str, now: datetime) -> list[dict]:
    """The juror's sheet: their cases in the review's order, each with their own marks only."""
    review = review_by_slug(db, slug)
    juror = _juror(db, review, username)
    require_stage(review, now, "scoring", "deciding", "published", doing="查看评分表")
    out = []
    for case in db.query("select k.*, b.slug as brand from cases k left join brands b on b.id = k.brand_id"
                         " where k.review_id = ? and k.state = 'accepted' order by k.position", [review["id"]]):
        case = dict(case)
        if conflicted(db, case, juror):
            continue
        mine = first(db, "select marks, comment, updated_at from scores where case_id = ? and user_id = ?",
                     [case["id"], juror["id"]])
        out.append({"slug": case["slug"], "title": case["title"], "unit": case["unit"], "summary": case["summary"],
                    "brand": case["brand"], "marks": json.loads(mine["marks"]) if mine else None,
                    "comment": mine["comment"] if mine else "", "updated_at": mine["updated_at"] if mine else None})
    return out


def _write_score(db: Database, review: dict, case: dict, juror: dict, marks: dict, comment: str, now: datetime) -> str:
    """Insert or replace one juror's sheet for one case, inside the caller's transaction."""
    old = first(db, "select id, marks, comment from scores where case_id = ? and user_id = ?", [case["id"], juror["id"]])
    text = json.dumps(marks, sort_keys=True)
    if old and (old["marks"], old["comment"]) == (text, comment):
        return "unchanged"
    stamp = clock.to_db(now)
    if old:
        db.execute("update scores set marks = ?, comment = ?, updated_at = ? where id = ?", [text, comment, stamp, old["id"]])
        return "changed"
    db.execute("insert into scores (review_id, case_id, user_id, marks, comment, updated_at) values (?, ?, ?, ?, ?, ?)",
               [review["id"], case["id"], juror["id"], text, comment, stamp])
    return "added"


def _comment_problem(comment: str) -> str | None:
    if len(comment) > COMMENT_MAX:
        return f"评语最多 {COMMENT_MAX} 个字符，现有 {len(comment)} 个。"
    return None


def save_score(db: Database, slug: str, case_slug: str, username: str, marks: dict, comment: str,
               now: datetime) -> str:
    """A juror's marks for one case (scoring.mark_problems checks each against its criterion).
    The audit entry names juror and case, never the marks: the log is read by admins, and a
    score must not reach anyone before the results do."""
    comment = (comment or "").strip()
    with immediate(db):
        review = review_by_slug(db, slug)
        juror = _juror(db, review, username)
        require_stage(review, now, "scoring", doing="评分")
        case = _scorable(db, review, case_slug, juror)
        problems = mark_problems(review["criteria"], marks)
        if _comment_problem(comment):
            problems["comment"] = _comment_problem(comment)
        if problems:
            raise BadScore(problems)
        result = _write_score(db, review, case, juror, marks, comment, now)
        if result != "unchanged":
            audit.record(db, now, username, "review.score", f"{slug}/{case_slug}", {"juror": username})
    return result


def declare_conflict(db: Database, slug: str, case_slug: str, username: str, reason: str, now: datetime,
                     actor: str | None = None) -> None:
    """A juror steps aside from a case (or the organizer records it for them) until deciding;
    a score already given is withdrawn with it, since a conflicted mark must not count."""
    reason = (reason or "").strip()
    with immediate(db):
        review = review_by_slug(db, slug)
        juror = _juror(db, review, username)
        require_stage(review, now, "screening", "scoring", doing="声明回避")
        case = case_by_slug(db, review, case_slug)
        if len(reason) > REASON_MAX:
            raise BadScore({"reason": f"理由最多 {REASON_MAX} 个字符。"})
        db.execute("insert into conflicts (case_id, user_id, reason, created_at) values (?, ?, ?, ?)"
                   " on conflict (case_id, user_id) do update set reason = excluded.reason",
                   [case["id"], juror["id"], reason, clock.to_db(now)])
        dropped = db.execute("delete from scores where case_id = ? and user_id = ?", [case["id"], juror["id"]]).rowcount
        audit.record(db, now, actor or username, "review.conflict", f"{slug}/{case_slug}",
                     {"juror": username, "reason": reason, "score_withdrawn": bool(dropped)})


# ---------------------------------------------------------------- paper sheets

def _header_problems(header: list[str], keys: list[str]) -> str | None:
    wanted = ["juror", "case", *keys]
    missing = [c for c in wanted if c not in header]
    extra = [c for c in header if c not in wanted and c != "comment"]
    dupes = sorted({c for c in header if header.count(c) > 1})
    parts = []
    if missing:
        parts.append(f"缺少列 {'、'.join(missing)}")
    if extra:
        parts.append(f"多出未知的列 {'、'.join(extra)}")
    if dupes:
        parts.append(f"列 {'、'.join(dupes)} 重复")
    if not parts:
        return None
    return "；".join(parts) + f"。表头应为：{','.join([*wanted, 'comment'])}（comment 可省略）。"


def _marks(row: dict, keys: list[str]) -> dict:
    """A cell as the integer it spells; anything else stays text, for mark_problems to refuse."""
    out = {}
    for key in keys:
        cell = (row.get(key) or "").strip()
        if cell == "":
            continue
        out[key] = int(cell) if cell.isascii() and cell.lstrip("-").isdigit() else cell
    return out


def _sheet_line(db: Database, review: dict, row: dict, keys: list[str], seen: set) -> tuple[tuple | None, str | None]:
    """One line checked: (juror, case, marks, comment) or the line's problem in Chinese."""
    username, case_slug = (row.get("juror") or "").strip(), (row.get("case") or "").strip()
    try:
        juror = _juror(db, review, username)
        case = _scorable(db, review, case_slug, juror)
    except (NotJuror, NoSuchCase, CaseConflict) as exc:
        return None, exc.message if not isinstance(exc, CaseConflict) else f"评委 {username} 须回避案例 {case_slug}。"
    if (username, case_slug) in seen:
        return None, f"评委 {username} 对案例 {case_slug} 的评分在文件中重复。"
    seen.add((username, case_slug))
    marks, comment = _marks(row, keys), (row.get("comment") or "").strip()
    problems = list(mark_problems(review["criteria"], marks).values())
    if _comment_problem(comment):
        problems.append(_comment_problem(comment))
    if problems:
        return None, "".join(problems)
    return (juror, case, marks, comment), None


def read_sheet(text: str) -> tuple[list[str], list[dict]]:
    """Header and rows of a CSV (a BOM from a spreadsheet program is dropped)."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    return list(reader.fieldnames or []), list(reader)


def load_sheets(db: Database, slug: str, text: str, now: datetime, actor: str = "cli") -> dict[str, int]:
    """Paper score sheets typed into a CSV: the same rules as the juror's screen, the whole file
    or nothing, every bad line reported by its number."""
    header, rows = read_sheet(text)
    with immediate(db):
        review = review_by_slug(db, slug)
        require_stage(review, now, "scoring", doing="录入评分表")
        keys = [c["key"] for c in review["criteria"]]
        problem = _header_problems(header, keys)
        if problem:
            raise BadSheet({"表头": problem})
        if not rows:
            raise BadSheet({"表头": "评分表没有数据行。"})
        good, problems, seen = [], {}, set()
        for n, row in enumerate(rows, start=2):
            line, problem = _sheet_line(db, review, row, keys, seen)
            if problem:
                problems[f"第 {n} 行"] = problem
            else:
                good.append(line)
        if problems:
            raise BadSheet(problems)
        counts = {"added": 0, "changed": 0, "unchanged": 0}
        for juror, case, marks, comment in good:
            counts[_write_score(db, review, case, juror, marks, comment, now)] += 1
        audit.record(db, now, actor, "review.sheets", slug, {"lines": len(good), **counts})
    return counts


def sheet_columns(review: dict) -> list[str]:
    """The header a paper sheet's CSV takes: juror, case, the criterion keys, comment."""
    return [SHEET_COLUMNS[0], SHEET_COLUMNS[1], *[c["key"] for c in review["criteria"]], SHEET_COLUMNS[2]]
