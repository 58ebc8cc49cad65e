"""Nominations (推荐) and their attachments, and the organizer's screening (初审).

A unit's nominator submits a case while the review is nominating, and may edit it until
nominating ends; the organizer accepts or rejects each while screening. Attachments are kept
in the database (bytes, SHA-256, size), so every server node serves the same file and a crash
after the receipt loses none. Their type is read from their first bytes: a name or a
Content-Type is whatever the sender says, and a script named .pdf must not be served as one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlite_utils import Database

from . import audit, clock
from .db import first, immediate
from .errors import BadNomination, NoSuchCase, NotNominator, WrongStage
from .reviews import STAGE_LABELS, case_by_slug, require_stage, review_by_slug, review_stage

TITLE_MAX = 200
SUMMARY_MAX = 2000
CONTACT_MAX = 200
REASON_MAX = 2000
FILENAME_MAX = 200
MAX_ATTACHMENTS = 5
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
MAGIC = ((b"%PDF-", "application/pdf"), (b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"))
KINDS = "PDF、JPEG 或 PNG"


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes


def sniff(data: bytes) -> str | None:
    """The media type the content itself shows, or None when it is none of PDF, PNG, JPEG."""
    for magic, media_type in MAGIC:
        if data.startswith(magic):
            return media_type
    return None


def _text_problem(value: str, limit: int, required: bool) -> str | None:
    if required and not value.strip():
        return "必填。"
    if len(value) > limit:
        return f"最多 {limit} 个字符，现有 {len(value)} 个。"
    if not all(ch.isprintable() or ch in "\n\r\t" for ch in value):
        return "含有不可见的控制字符。"
    return None


def form_problems(fields: dict, uploads: list[Upload], kept: int = 0) -> dict[str, str]:
    """Every problem of a nomination at once: field → problem; attachments as `attachments[i]`."""
    problems: dict[str, str] = {}
    for name, limit in (("title", TITLE_MAX), ("summary", SUMMARY_MAX), ("contact", CONTACT_MAX)):
        problem = _text_problem(str(fields.get(name) or ""), limit, required=True)
        if problem:
            problems[name] = problem
    if kept + len(uploads) > MAX_ATTACHMENTS:
        problems["attachments"] = f"最多 {MAX_ATTACHMENTS} 个附件，现有 {kept + len(uploads)} 个。"
    for i, upload in enumerate(uploads):
        where = f"attachments[{i}]"
        if not upload.filename.strip() or len(upload.filename) > FILENAME_MAX or not upload.filename.isprintable():
            problems[where] = f"文件名不能为空，最多 {FILENAME_MAX} 个字符。"
        elif len(upload.data) > MAX_ATTACHMENT_BYTES:
            problems[where] = f"“{upload.filename}”超过 10 MB。"
        elif sniff(upload.data) is None:
            problems[where] = f"“{upload.filename}”不是 {KINDS} 文件（按文件内容判断，不看扩展名）。"
    return problems


def _nominator(db: Database, username: str) -> dict:
    user = first(db, "select id, username, role, unit, disabled from users where username = ?", [username])
    if user is None or user["role"] != "nominator" or user["disabled"] or not user["unit"].strip():
        raise NotNominator()
    return dict(user)


def _store_uploads(db: Database, case_id: int, uploads: list[Upload], stamp: str) -> None:
    for upload in uploads:
        db.execute("insert into attachments (case_id, filename, media_type, bytes, sha256, size, created_at)"
                   " values (?, ?, ?, ?, ?, ?, ?)",
                   [case_id, upload.filename.strip(), sniff(upload.data), upload.data,
                    hashlib.sha256(upload.data).hexdigest(), len(upload.data), stamp])


def _next_slug(db: Database, review_id: int) -> tuple[str, int]:
    """`case-N`, the first N not taken (a file's cases name their own slugs)."""
    n = first(db, "select count(*) as n from cases where review_id = ?", [review_id])["n"] + 1
    while first(db, "select 1 from cases where review_id = ? and slug = ?", [review_id, f"case-{n}"]):
        n += 1
    position = first(db, "select coalesce(max(position), -1) + 1 as p from cases where review_id = ?",
                     [review_id])["p"]
    return f"case-{n}", position


def nominate(db: Database, slug: str, username: str, fields: dict, uploads: list[Upload], now: datetime) -> str:
    """A unit's new case, awaiting screening; returns its slug (the receipt names it)."""
    with immediate(db):
        review = review_by_slug(db, slug)
        user = _nominator(db, username)
        require_stage(review, now, "nominating", doing="推荐案例")
        problems = form_problems(fields, uploads)
        if problems:
            raise BadNomination(problems)
        case_slug, position = _next_slug(db, review["id"])
        stamp = clock.to_db(now)
        case_id = db.execute(
            "insert into cases (review_id, slug, title, unit, summary, contact, nominated_by, state, position,"
            " created_at, updated_at) values (?, ?, ?, ?, ?, ?, ?, 'nominated', ?, ?, ?)",
            [review["id"], case_slug, fields["title"].strip(), user["unit"], fields["summary"].strip(),
             fields["contact"].strip(), user["id"], position, stamp, stamp]).lastrowid
        _store_uploads(db, case_id, uploads, stamp)
        audit.record(db, now, username, "review.nominate", f"{slug}/{case_slug}",
                     {"attachments": [u.filename for u in uploads]})
    return case_slug


def _own_case(db: Database, review: dict, case_slug: str, user: dict) -> dict:
    """A unit's case: nominated by anyone of the same unit, so a colleague can finish it. Any
    other case answers as missing, so a nominator cannot probe the other units' slugs."""
    try:
        case = case_by_slug(db, review, case_slug)
    except NoSuchCase:
        raise NotNominator()
    owner = first(db, "select unit from users where id = ?", [case["nominated_by"]]) if case["nominated_by"] else None
    if owner is None or owner["unit"] != user["unit"]:
        raise NotNominator()
    return case


def edit_nomination(db: Database, slug: str, case_slug: str, username: str, fields: dict, uploads: list[Upload],
                    remove: list[int], now: datetime) -> None:
    """Until nominating ends: new text, attachments added and removed, all or nothing."""
    with immediate(db):
        review = review_by_slug(db, slug)
        user = _nominator(db, username)
        require_stage(review, now, "nominating", doing="修改推荐材料")
        case = _own_case(db, review, case_slug, user)
        ids = {a["id"] for a in attachments_of(db, case["id"])}
        problems = form_problems(fields, uploads, kept=len(ids - set(remove)))
        unknown = [i for i in remove if i not in ids]
        if unknown:
            problems["remove"] = "要删除的附件不属于这个案例。"
        if problems:
            raise BadNomination(problems)
        stamp = clock.to_db(now)
        db.execute("update cases set title = ?, summary = ?, contact = ?, updated_at = ? where id = ?",
                   [fields["title"].strip(), fields["summary"].strip(), fields["contact"].strip(), stamp, case["id"]])
        db.conn.executemany("delete from attachments where id = ? and case_id = ?", [(i, case["id"]) for i in remove])
        _store_uploads(db, case["id"], uploads, stamp)
        audit.record(db, now, username, "review.nomination_edit", f"{slug}/{case_slug}",
                     {"added": [u.filename for u in uploads], "removed": remove})


def unit_cases(db: Database, slug: str, username: str, now: datetime) -> list[dict]:
    """The unit's own cases; the screening's outcome and reason only once screening is over, so
    a unit does not watch the organizer change their mind mid-way."""
    review = review_by_slug(db, slug)
    user = _nominator(db, username)
    rows = [dict(r) for r in db.query(
        "select k.id, k.slug, k.title, k.summary, k.contact, k.state, k.reason, k.created_at, k.updated_at"
        " from cases k join users u on u.id = k.nominated_by where k.review_id = ? and u.unit = ?"
        " order by k.position", [review["id"], user["unit"]])]
    screened = review_stage(review, now) not in ("draft", "nominating", "screening")
    for row in rows:
        if not screened:
            row["state"], row["reason"] = "nominated", ""
        row["attachments"] = attachments_of(db, row.pop("id"))
    return rows


def attachments_of(db: Database, case_id: int) -> list[dict]:
    """Without the bytes: a list of a case's files reads no file."""
    return [dict(r) for r in db.query(
        "select id, filename, media_type, sha256, size, created_at from attachments where case_id = ? order by id",
        [case_id])]


def attachment(db: Database, attachment_id: int) -> dict:
    """One file with its bytes and its case (for the handler to check who may read it)."""
    row = first(db, "select a.*, k.review_id, k.slug as case_slug from attachments a join cases k"
                    " on k.id = a.case_id where a.id = ?", [attachment_id])
    if row is None:
        raise NoSuchCase("没有这个附件。")
    return dict(row)


# ---------------------------------------------------------------- screening

def screen(db: Database, slug: str, case_slug: str, accept: bool, reason: str, now: datetime,
           actor: str = "cli") -> dict:
    """Accept or reject one case while screening; may be changed until screening ends. A
    rejection says why: the unit reads it once screening is over."""
    reason = (reason or "").strip()
    with immediate(db):
        review = review_by_slug(db, slug)
        require_stage(review, now, "screening", doing="初审")
        case = case_by_slug(db, review, case_slug)
        problem = _text_problem(reason, REASON_MAX, required=not accept)
        if problem:
            raise BadNomination({"reason": "不通过初审须写明理由。" if problem == "必填。" else problem})
        state = "accepted" if accept else "rejected"
        db.execute("update cases set state = ?, reason = ?, updated_at = ? where id = ?",
                   [state, reason, clock.to_db(now), case["id"]])
        audit.record(db, now, actor, f"review.{'accept' if accept else 'reject'}", f"{slug}/{case_slug}",
                     {"from": case["state"], "reason": reason})
    return case_by_slug(db, review, case_slug)


def accept_all(db: Database, slug: str, reason: str, now: datetime, actor: str) -> int:
    """Every case still awaiting screening accepted (the bundled demo's setup), audited one by one."""
    review = review_by_slug(db, slug)
    if review_stage(review, now) != "screening":
        raise WrongStage(f"评审目前{STAGE_LABELS[review_stage(review, now)]}，不在初审阶段。")
    waiting = [c["slug"] for c in db.query("select slug from cases where review_id = ? and state = 'nominated'"
                                           " order by position", [review["id"]])]
    for case_slug in waiting:
        screen(db, slug, case_slug, True, reason, now, actor)
    return len(waiting)
