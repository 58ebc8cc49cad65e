"""Staff accounts, sign-in and sessions: rules only, `now` passed in.

The session cookie (Starlette's SessionMiddleware, signed) carries only a random
session id; the record lives here, so sign-out and timeouts end it for good and a
copied old cookie is worthless. Sign-in always makes a new id (no fixation).
"""

from __future__ import annotations

import functools
import re
import secrets
from datetime import datetime, timedelta

from sqlite_utils import Database
from zxcvbn import zxcvbn

from . import audit, clock
from .db import first, immediate
from .errors import BadRole, BadUnit, BadUsername, NoSuchUser, SignInFailed, Throttled, UserExists, WeakPassword
from .passwords import hash_password, verify_password
from .security import new_csrf_secret

ROLES = ("editor", "organizer", "admin", "juror", "nominator")
ROLE_LABELS = {"editor": "编辑", "organizer": "组织方", "admin": "管理员", "juror": "评委", "nominator": "推荐单位"}
UNIT_ROLES = ("juror", "nominator")  # roles whose unit decides what they may see (conflicts, own cases)
UNIT_MAX = 100
NO_PASSWORD = ""  # never a valid argon2 hash: verify_password answers False, so no sign-in
MIN_PASSWORD = 10
MAX_PASSWORD = 200  # the sign-in form's maxlength
IDLE_TIMEOUT = timedelta(minutes=30)
ABSOLUTE_TIMEOUT = timedelta(hours=8)
THROTTLE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_ACCOUNT = 5
MAX_FAILURES_PER_IP = 20


@functools.lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """Checked for unknown users so timing does not tell which accounts exist (made on first use)."""
    return hash_password("timing-equaliser-not-a-password")


PASSWORD_RULE = (f"密码至少 {MIN_PASSWORD} 个字符，不能容易被猜到：不要用重复或连续的字符、常见密码、"
                 "用户名或网站名称；几个不相关的词连在一起最好。")
# Words an attacker tries first against this site, besides the account's own name.
SITE_WORDS = ("brandvote", "brand", "vote", "admin", "editor", "organizer", "zhengxie", "shanghai",
              "政协", "工作品牌", "评选", "投票")
MIN_SCORE = 3  # zxcvbn: "safely unguessable" (about 10^8 guesses or more)
ZXCVBN_MAX = 72  # zxcvbn refuses longer input; a passphrase is no weaker than its start
# zxcvbn's feedback is English only (gettext with no catalogs shipped): its sentences in Chinese.
FEEDBACK_ZH = {
    'Straight rows of keys are easy to guess.': "键盘上连成一排的键很容易被猜到。",
    'Short keyboard patterns are easy to guess.': "简短的键盘图案很容易被猜到。",
    'Use a longer keyboard pattern with more turns.': "键盘图案要更长、拐弯更多。",
    'Repeats like "aaa" are easy to guess.': "像 aaa 这样的重复很容易被猜到。",
    'Repeats like "abcabcabc" are only slightly harder to guess than "abc".':
        "像 abcabcabc 这样的重复只比 abc 难猜一点点。",
    'Avoid repeated words and characters.': "不要重复同样的词或字符。",
    'Sequences like "abc" or "6543" are easy to guess.': "像 abc 或 6543 这样的顺序很容易被猜到。",
    'Avoid sequences.': "不要用连续的字母或数字。",
    'Recent years are easy to guess.': "最近的年份很容易被猜到。",
    'Avoid recent years.': "不要用最近的年份。",
    'Avoid years that are associated with you.': "不要用与您有关的年份。",
    'Dates are often easy to guess.': "日期往往很容易被猜到。",
    'Avoid dates and years that are associated with you.': "不要用与您有关的日期和年份。",
    'This is a top-10 common password.': "这是最常见的 10 个密码之一。",
    'This is a top-100 common password.': "这是最常见的 100 个密码之一。",
    'This is a very common password.': "这是一个非常常见的密码。",
    'This is similar to a commonly used password.': "这和一个常用密码很像。",
    'A word by itself is easy to guess.': "单独一个词很容易被猜到。",
    'Names and surnames by themselves are easy to guess.': "单独的姓名很容易被猜到。",
    'Common names and surnames are easy to guess.': "常见的姓名很容易被猜到。",
    "Capitalization doesn't help very much.": "首字母大写帮助不大。",
    'All-uppercase is almost as easy to guess as all-lowercase.': "全部大写和全部小写差不多一样好猜。",
    "Reversed words aren't much harder to guess.": "把词倒过来写并不会难猜多少。",
    "Predictable substitutions like '@' instead of 'a' don't help very much.":
        "用 @ 代替 a 这类可以预料的替换帮助不大。",
    'Add another word or two. Uncommon words are better.': "再加一两个词，不常见的词更好。",
    'Use a few words, avoid common phrases.': "用几个词，避开常见的短语。",
    'No need for symbols, digits, or uppercase letters.': "不必非用符号、数字或大写字母。",
}


def password_problem(password: str, username: str) -> str | None:
    """Why a new password is refused (in Chinese), or None if it is fine.

    Length alone let `aaaaaaaaaa`, ten spaces or the user's own name through; zxcvbn
    estimates how many guesses a password takes, counting repeats, sequences, keyboard
    patterns, common passwords and words, and the account's name and this site's words.
    """
    if len(password) < MIN_PASSWORD:
        return "密码太短。" + PASSWORD_RULE
    if len(password) > MAX_PASSWORD:
        return f"密码最多 {MAX_PASSWORD} 个字符。"
    name = username.strip()
    inputs = [w for w in (name, *re.split(r"[\W_]+", name)) if w] + list(SITE_WORDS)
    result = zxcvbn(password[:ZXCVBN_MAX], user_inputs=inputs)
    if result["score"] >= MIN_SCORE:
        return None
    hints = []
    if any(m.get("dictionary_name") == "user_inputs" for m in result["sequence"]):
        hints.append("密码里有用户名或网站名称。")
    feedback = result["feedback"]
    for sentence in [feedback["warning"], *feedback["suggestions"]]:
        if sentence in FEEDBACK_ZH and FEEDBACK_ZH[sentence] not in hints:
            hints.append(FEEDBACK_ZH[sentence])
    return "这个密码太容易被猜到。" + "".join(hints) + PASSWORD_RULE


def _check_password(password: str, username: str) -> None:
    problem = password_problem(password, username)
    if problem:
        raise WeakPassword(problem)


def _check_new_user(username: str, role: str, unit: str) -> None:
    """A nominator without a unit could not be told which cases are its own, and a unit is
    what a juror's conflicts are found by, so both roles name theirs."""
    if role not in ROLES:
        raise BadRole(f"角色必须是 {'、'.join(ROLES)} 之一。")
    if not username or len(username) > 40 or not username.isprintable():
        raise BadUsername()
    if role == "nominator" and not unit.strip():
        raise BadUnit("推荐单位账号须写明单位（--unit）。")
    if len(unit) > UNIT_MAX or not unit.isprintable():
        raise BadUnit()


def create_user(db: Database, username: str, password: str, role: str, now: datetime, unit: str = "",
                actor: str = "system") -> None:
    """Audited with the account, in one transaction: whoever makes an account (the console, the
    command line, the first start) leaves the same entry."""
    username, unit = username.strip(), unit.strip()
    _check_new_user(username, role, unit)
    _check_password(password, username)
    with immediate(db):
        if first(db, "select 1 from users where username = ?", [username]):
            raise UserExists(f"用户 {username} 已存在。")
        insert_user(db, username, hash_password(password), role, now, unit)
        audit.record(db, now, actor, "user.add", username, {"role": role, **({"unit": unit} if unit else {})})


def insert_user(db: Database, username: str, password_hash: str, role: str, now: datetime, unit: str = "",
                name: str = "") -> int:
    """Inside the caller's transaction (a review file creates its jurors with the review).
    NO_PASSWORD makes an account that cannot sign in until `user passwd` gives it one."""
    return db.execute("insert into users (username, password_hash, role, unit, name, created_at)"
                      " values (?, ?, ?, ?, ?, ?)",
                      [username, password_hash, role, unit, name, clock.to_db(now)]).lastrowid


def set_password(db: Database, username: str, password: str, now: datetime, actor: str = "system") -> None:
    _check_password(password, username)
    with immediate(db):
        user = _user(db, username)
        db.execute("update users set password_hash = ? where id = ?", [hash_password(password), user["id"]])
        db.execute("update sessions set ended_at = ? where user_id = ? and ended_at is null",
                   [clock.to_db(now), user["id"]])
        audit.record(db, now, actor, "user.passwd", username)


def set_disabled(db: Database, username: str, disabled: bool, now: datetime, actor: str = "system") -> None:
    with immediate(db):
        user = _user(db, username)
        db.execute("update users set disabled = ? where id = ?", [int(disabled), user["id"]])
        if disabled:
            db.execute("update sessions set ended_at = ? where user_id = ? and ended_at is null",
                       [clock.to_db(now), user["id"]])
        audit.record(db, now, actor, "user.disable" if disabled else "user.enable", username)


def _user(db: Database, username: str) -> dict:
    user = first(db, "select * from users where username = ?", [username])
    if user is None:
        raise NoSuchUser(f"没有用户 {username}。")
    return dict(user)


def has_users(db: Database) -> bool:
    return first(db, "select count(*) as n from users")["n"] > 0


def create_first_admin(db: Database, now: datetime) -> tuple[str, str] | None:
    """On the very first start only: an admin with a random password, to be printed once."""
    if has_users(db):
        return None
    password = secrets.token_urlsafe(15)
    create_user(db, "admin", password, "admin", now, actor="setup")
    return "admin", password


def list_users(db: Database) -> list[dict]:
    return [dict(r) for r in db.query("select id, username, role, unit, disabled, created_at,"
                                      " password_hash = '' as no_password from users order by id")]


# ---------------------------------------------------------------- sign-in

def sign_in(db: Database, username: str, password: str, ip_key: str, now: datetime) -> dict:
    """Reserve an attempt under the throttle, then check the password; on success a new session.

    The same message for an unknown user and a wrong password, and a password hash is
    checked either way, so neither the text nor the timing tells which accounts exist.
    `db` must be this thread's own connection (Store.db() called in the thread that runs this).
    """
    username = username.strip()[:40]
    attempt = reserve_attempt(db, username, ip_key, now)
    user = first(db, "select * from users where username = ?", [username])
    # An account without a password (a juror from a review file) is checked against the dummy
    # hash like an unknown one: the same time, the same refusal, whatever password is tried.
    has_password = user is not None and user["password_hash"] != NO_PASSWORD
    ok = verify_password(user["password_hash"] if has_password else _dummy_hash(), password)
    if not ok or not has_password or user["disabled"]:
        _settle_failure(db, attempt, username, ip_key, now)
        raise SignInFailed()
    session = {"id": secrets.token_urlsafe(32), "user_id": user["id"], "created_at": clock.to_db(now),
               "last_seen": clock.to_db(now), "csrf": new_csrf_secret()}
    with immediate(db):
        db.execute("delete from login_failures where id = ?", [attempt])  # a success is no failure
        db.execute("insert into sessions (id, user_id, created_at, last_seen, csrf) values"
                   " (:id, :user_id, :created_at, :last_seen, :csrf)", session)
        audit.record(db, now, username, "login")
    return session


def _failures(db: Database, username: str, ip_key: str, since: str, upto: int = 2**63 - 1) -> tuple[int, int]:
    """Failures (and attempts still being checked) in the window, up to row `upto`: for the
    account, for the address."""
    by_account = first(db, "select count(*) as n from login_failures where username = ? and at > ? and id <= ?",
                       [username, since, upto])["n"]
    by_ip = first(db, "select count(*) as n from login_failures where ip_key = ? and at > ? and id <= ?",
                  [ip_key, since, upto])["n"]
    return by_account, by_ip


def _throttled(counts: tuple[int, int]) -> bool:
    return counts[0] >= MAX_FAILURES_PER_ACCOUNT or counts[1] >= MAX_FAILURES_PER_IP


def reserve_attempt(db: Database, username: str, ip_key: str, now: datetime) -> int:
    """Count and reserve in one BEGIN IMMEDIATE, before the slow password check; the row's id.

    The reservation is a login_failures row, so it counts against both limits from the
    moment it is made: parallel attempts cannot all pass the count while each other's
    argon2 checks run, and at most the limit's number of passwords is ever checked. A
    success deletes it; a failure keeps it. A refused attempt writes nothing (no row, no
    audit entry, no fsync): once the limit is reached a plain read says so, without the lock.
    """
    since = clock.to_db(now - THROTTLE_WINDOW)
    if _throttled(_failures(db, username, ip_key, since)):
        raise Throttled()
    with immediate(db):
        if _throttled(_failures(db, username, ip_key, since)):
            raise Throttled()
        return db.execute("insert into login_failures (at, username, ip_key) values (?, ?, ?)",
                          [clock.to_db(now), username, ip_key]).lastrowid


def _settle_failure(db: Database, attempt: int, username: str, ip_key: str, now: datetime) -> None:
    """The reserved attempt stays a failure, audited. The failure that reaches a limit also
    records that throttling starts: one entry per account or address per window, however
    many attempts are refused after it."""
    since = clock.to_db(now - THROTTLE_WINDOW)
    with immediate(db):
        audit.record(db, now, username or "?", "login.failed")
        by_account, by_ip = _failures(db, username, ip_key, since, upto=attempt)
        minutes = int(THROTTLE_WINDOW.total_seconds() // 60)
        if by_account == MAX_FAILURES_PER_ACCOUNT:
            audit.record(db, now, username or "?", "login.throttled", "account",
                         detail={"failures": by_account, "minutes": minutes})
        if by_ip == MAX_FAILURES_PER_IP:
            audit.record(db, now, username or "?", "login.throttled", "address",
                         detail={"failures": by_ip, "minutes": minutes})


def session_user(db: Database, session_id: str | None, now: datetime) -> dict | None:
    """The signed-in user for a session id, or None if it ended, idled or aged out."""
    if not session_id or len(session_id) > 100:
        return None
    row = first(db,
        "select s.id as session_id, s.created_at, s.last_seen, s.ended_at, s.csrf, u.id, u.username, u.role,"
        " u.disabled from sessions s join users u on u.id = s.user_id where s.id = ?", [session_id])
    if row is None or row["ended_at"] or row["disabled"]:
        return None
    if now - clock.from_db(row["last_seen"]) > IDLE_TIMEOUT or now - clock.from_db(row["created_at"]) > ABSOLUTE_TIMEOUT:
        end_session(db, session_id, now)
        return None
    if now - clock.from_db(row["last_seen"]) > timedelta(minutes=1):  # don't write on every request
        db.execute("update sessions set last_seen = ? where id = ?", [clock.to_db(now), session_id])
        db.conn.commit()
    return dict(row)


def end_session(db: Database, session_id: str, now: datetime, actor: str | None = None) -> None:
    with immediate(db):
        db.execute("update sessions set ended_at = ? where id = ? and ended_at is null", [clock.to_db(now), session_id])
        if actor:
            audit.record(db, now, actor, "logout")


def audit_entries(db: Database, limit: int = 200, offset: int = 0) -> list[dict]:
    return [dict(r) for r in db.query("select * from audit_log order by id desc limit ? offset ?", [limit, offset])]
