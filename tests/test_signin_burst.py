"""Sign-in under a burst, and a throttled address flooding the audit log.

The throttle allows 5 failures per account and 20 per address in 15 minutes (SECURITY.md).
Under a burst of parallel attempts that must hold exactly: no more failed password checks
than the throttle allows (a success is no failure), never a 500, and the right password
either signs in or is told to wait. Once throttled, refusals are answered without writing: the audit log records that
throttling started, not every refused attempt.
"""

import sqlite3
import subprocess
import sys
import threading

import httpx2
import pytest
from starlette.testclient import TestClient

from brandvote import accounts, db as dbmod, errors
from brandvote.app import create_app

from helpers import NOW, PASSWORD, FakeClock, LiveServer, csrf_from, login

BURST = 30
RIGHT = 17  # the one attempt in the burst with the right password


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = LiveServer(tmp_path_factory.mktemp("signin"), workers=2)
    subprocess.run([sys.executable, "-m", "brandvote", "user", "add", "burst", "--role", "editor",
                    "--db", str(s.db_path)], input=PASSWORD + "\n", text=True, check=True, capture_output=True)
    yield s
    s.stop()


def rows(server, sql, params=()):
    conn = sqlite3.connect(server.db_path)
    try:
        return conn.execute(sql, params).fetchone()[0]
    finally:
        conn.close()


def test_a_burst_of_sign_ins_checks_at_most_the_allowed_passwords_and_never_fails(server):
    forms = []  # each attempt's own sign-in session cookie and form token
    for _ in range(BURST):
        with httpx2.Client(base_url=server.url, timeout=60) as c:
            token = csrf_from(c.get("/login").text)
            forms.append((dict(c.cookies), token))
    barrier = threading.Barrier(BURST)
    answers: dict[int, httpx2.Response] = {}
    errors: list[BaseException] = []

    def attempt(i):
        password = PASSWORD if i == RIGHT else f"wrong guess number {i}"
        cookies, token = forms[i]
        # a new connection per attempt: none sits idle past the server's keep-alive timeout
        with httpx2.Client(base_url=server.url, cookies=cookies, timeout=60) as c:
            barrier.wait()
            try:
                answers[i] = c.post("/login", data={"username": "burst", "password": password,
                                                    "csrf_token": token, "next": "/admin"})
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(BURST)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors

    statuses = [answers[i].status_code for i in range(BURST)]
    assert 500 not in statuses, (statuses, server.log.read_text()[-3000:])
    assert set(statuses) <= {303, 400, 429}, statuses
    # The limit counts failures: a success frees the slot it held, so one more guess may be checked.
    failed, signed_in = statuses.count(400), statuses.count(303)
    assert failed <= accounts.MAX_FAILURES_PER_ACCOUNT, f"{failed} failed password checks for one account: {statuses}"
    assert signed_in <= 1
    assert statuses[RIGHT] in (303, 429), statuses
    for r in answers.values():
        if r.status_code == 429:
            assert "登录失败次数过多" in r.text and int(r.headers["retry-after"]) > 0
    failures = rows(server, "select count(*) from login_failures where username = 'burst'")
    assert failures <= accounts.MAX_FAILURES_PER_ACCOUNT
    assert rows(server, "select count(*) from audit_log where action = 'login.failed'") <= failures
    assert "Traceback" not in server.log.read_text()


def test_concurrent_sign_ins_reserve_their_attempt_before_the_password_check(seeded_settings, db, monkeypatch):
    """The rule without HTTP: threads on their own connections, the same moment, one account."""
    accounts.create_user(db, "ed", PASSWORD, "editor", NOW)
    checks = []
    real_verify = accounts.verify_password
    monkeypatch.setattr(accounts, "verify_password", lambda h, p: checks.append(p) or real_verify(h, p))
    barrier = threading.Barrier(12)
    outcomes = []

    def attempt(i):
        conn = dbmod.connect(seeded_settings.db_path)
        barrier.wait()
        try:
            accounts.sign_in(conn, "ed", f"wrong guess {i}", "same-address", NOW)
        except errors.Throttled:
            outcomes.append("throttled")
        except errors.SignInFailed:
            outcomes.append("failed")
        finally:
            conn.close()

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(checks) == outcomes.count("failed") == accounts.MAX_FAILURES_PER_ACCOUNT
    assert outcomes.count("throttled") == 12 - accounts.MAX_FAILURES_PER_ACCOUNT


def test_a_success_does_not_count_as_a_failure(db):
    accounts.create_user(db, "ed", PASSWORD, "editor", NOW)
    for _ in range(accounts.MAX_FAILURES_PER_ACCOUNT + 3):
        accounts.sign_in(db, "ed", PASSWORD, "addr", NOW)
    assert db.execute("select count(*) from login_failures").fetchone()[0] == 0


# ---------------------------------------------------------------- the audit log under a flood

@pytest.fixture
def client(seeded_settings, db):
    for name in ("editor", "organizer"):
        accounts.create_user(db, name, PASSWORD, name, NOW)
    with TestClient(create_app(seeded_settings, now=FakeClock(NOW)), base_url="https://testserver") as c:
        yield c


def audit_rows(db) -> int:
    return db.execute("select count(*) from audit_log").fetchone()[0]


def flood(client, usernames, password=PASSWORD):
    token = csrf_from(client.get("/login").text)
    answers = [client.post("/login", data={"username": name, "password": password, "csrf_token": token},
                           follow_redirects=False) for name in usernames]
    return answers


def test_a_throttled_account_adds_no_audit_row_per_refused_attempt(client, db):
    for _ in range(accounts.MAX_FAILURES_PER_ACCOUNT):
        assert login(client, "editor", "wrong password!").status_code == 400
    before = audit_rows(db)
    answers = flood(client, ["editor"] * 200)
    assert {r.status_code for r in answers} == {429}
    assert all(int(r.headers["retry-after"]) > 0 and "登录失败次数过多" in r.text for r in answers)
    assert audit_rows(db) - before <= 2, "one refused attempt, one audit row: the log can be flooded"
    throttled = db.execute("select count(*) from audit_log where action = 'login.throttled'").fetchone()[0]
    assert 1 <= throttled <= 2  # throttling starting is still on record


def test_a_throttled_address_adds_no_audit_row_per_refused_attempt(client, db):
    for i in range(accounts.MAX_FAILURES_PER_IP):
        assert login(client, f"user{i}", "wrong password!").status_code == 400
    before = audit_rows(db)
    answers = flood(client, [f"other{i}" for i in range(200)] + ["organizer"])
    assert {r.status_code for r in answers} == {429}
    assert all(r.headers.get("retry-after") for r in answers)
    assert audit_rows(db) - before <= 2
    assert db.execute("select count(*) from login_failures").fetchone()[0] == accounts.MAX_FAILURES_PER_IP
