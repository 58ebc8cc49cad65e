"""Password strength: guessable passwords are refused wherever a password is set.

The rule is a plain function (accounts.password_problem); the admin users page and the
`user add` / `user passwd` commands each refuse a weak one with the rule in Chinese and
change nothing.
"""

import os
import re
import subprocess
import sys

import pytest
from starlette.testclient import TestClient

from brandvote import accounts
from brandvote.app import create_app
from brandvote.errors import WeakPassword

from helpers import NOW, PASSWORD, login, staff_csrf

WEAK = ["aaaaaaaaaa", " " * 10, "1234567890", "password123", "qwertyuiop", "brandvote2026",
        "editor1234"]
STRONG = [PASSWORD, "organizer pass phrase", "a-long-password-1", "墨绿 tram 菠萝 ridge 7"]


@pytest.mark.parametrize("password", WEAK + ["editor"], ids=repr)
def test_guessable_passwords_are_refused_in_chinese(password):
    problem = accounts.password_problem(password, "editor")
    assert problem is not None
    assert any("\u4e00" <= ch <= "\u9fff" for ch in problem)  # said in Chinese
    assert not any(word in problem for word in ("Repeats", "Add another", "common password"))  # no English left


def test_the_username_itself_is_refused_even_when_long():
    name = "zhang.wei.editor"
    problem = accounts.password_problem(name, name)
    assert problem is not None and "用户名" in problem
    assert accounts.password_problem(name + "2026", name) is not None


@pytest.mark.parametrize("password", STRONG, ids=repr)
def test_passphrases_pass(password):
    assert accounts.password_problem(password, "editor") is None


def test_too_long_is_refused_without_a_crash():
    # zxcvbn raises ValueError past 72 characters; the sign-in form takes at most 200
    long_phrase = "lantern quarry 菠萝 velvet ostrich 7 tundra marble kettle sparrow 墨绿 harbor fig"
    assert len(long_phrase) > 72 and accounts.password_problem(long_phrase, "editor") is None
    assert "最多" in accounts.password_problem("x" * 201, "editor")


def test_create_user_and_set_password_refuse_weak_ones(empty_db):
    with pytest.raises(WeakPassword) as exc:
        accounts.create_user(empty_db, "ed", "aaaaaaaaaa", "editor", NOW)
    assert exc.value.status == 400 and "密码" in exc.value.message
    assert not accounts.list_users(empty_db)
    accounts.create_user(empty_db, "ed", PASSWORD, "editor", NOW)
    before = empty_db.execute("select password_hash from users").fetchone()[0]
    with pytest.raises(WeakPassword):
        accounts.set_password(empty_db, "ed", "ed" * 5, NOW)
    assert empty_db.execute("select password_hash from users").fetchone()[0] == before


# ---------------------------------------------------------------- the admin users page

@pytest.fixture
def admin(seeded_settings, db):
    accounts.create_user(db, "boss", PASSWORD, "admin", NOW)
    accounts.create_user(db, "ed", PASSWORD, "editor", NOW)
    with TestClient(create_app(seeded_settings), base_url="https://testserver") as c:
        assert login(c, "boss").status_code == 303
        yield c


def notice(response) -> str:
    match = re.search(r'<p class="notice[^"]*" role="(?:status|alert)">([^<]+)</p>', response.text)
    assert match, "no notice on the page"
    return match.group(1)


def test_users_page_says_the_rule(admin):
    page = admin.get("/admin/users").text
    assert accounts.PASSWORD_RULE in page
    assert page.count(accounts.PASSWORD_RULE) >= 2  # new account and password reset


@pytest.mark.parametrize("password", ["aaaaaaaaaa", " " * 10, "newbie", "newbie2026"], ids=repr)
def test_users_page_refuses_a_weak_new_password_and_creates_nobody(admin, db, password):
    r = admin.post("/admin/users", data={"csrf_token": staff_csrf(admin), "action": "add",
                                         "username": "newbie", "password": password, "role": "editor"})
    assert r.status_code == 400
    assert "容易被猜到" in notice(r) or "至少 10 个字符" in notice(r)
    assert db.execute("select count(*) from users where username = 'newbie'").fetchone()[0] == 0
    ok = admin.post("/admin/users", data={"csrf_token": staff_csrf(admin), "action": "add",
                                          "username": "newbie", "password": PASSWORD, "role": "editor"})
    assert ok.status_code == 200 and "已创建" in ok.text


def test_users_page_refuses_a_weak_reset_and_keeps_the_old_password(admin, db, seeded_settings):
    before = db.execute("select password_hash from users where username = 'ed'").fetchone()[0]
    r = admin.post("/admin/users", data={"csrf_token": staff_csrf(admin), "action": "passwd",
                                         "username": "ed", "password": "ed" * 5})
    assert r.status_code == 400 and "容易被猜到" in notice(r)
    assert db.execute("select password_hash from users where username = 'ed'").fetchone()[0] == before
    with TestClient(create_app(seeded_settings), base_url="https://testserver") as other:
        assert login(other, "ed").status_code == 303  # the old password still signs in


# ---------------------------------------------------------------- the command

def run(*args, stdin=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRANDVOTE_")}
    return subprocess.run([sys.executable, "-m", "brandvote", *args], input=stdin, capture_output=True,
                          text=True, env=env, timeout=120)


def test_cli_refuses_weak_passwords_with_the_rule(tmp_path):
    db = str(tmp_path / "u.db")
    for weak in ("aaaaaaaaaa", " " * 10, "editor1"):
        r = run("user", "add", "editor1", "--role", "editor", "--db", db, stdin=weak + "\n")
        assert r.returncode == 1 and "密码" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert "容易被猜到" in r.stderr
    assert run("user", "add", "editor1", "--role", "editor", "--db", db, stdin=PASSWORD + "\n").returncode == 0
    r = run("user", "passwd", "editor1", "--db", db, stdin="editor1editor1\n")
    assert r.returncode == 1 and "容易被猜到" in r.stderr
    assert run("user", "passwd", "editor1", "--db", db, stdin="quartz 菠萝 tundra\n").returncode == 0


def test_cli_help_says_the_rule():
    for sub in ("add", "passwd"):
        r = run("user", sub, "--help")
        assert r.returncode == 0 and "至少 10 个字符" in r.stdout and "容易被猜到" in r.stdout
