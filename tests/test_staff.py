"""Sign-in, sessions, roles and CSRF for the staff console, through HTTP."""

import re

import pytest
from bs4 import BeautifulSoup
from starlette.testclient import TestClient

from brandvote import accounts
from brandvote.security import same_secret
from brandvote.app import create_app

from helpers import NOW, PASSWORD, login, staff_csrf, staff_routes

ROLES = ("editor", "organizer", "admin")


@pytest.fixture
def app(seeded_settings, db, clock):
    for role in ROLES:
        accounts.create_user(db, role, PASSWORD, role, NOW)
    review_with_attachment(db)
    return create_app(seeded_settings, now=clock)


def review_with_attachment(db):
    """The demo review in scoring, one nominated case carrying attachment 1 (the review console's pages)."""
    from brandvote import nominations, review_results, reviews

    reviews.load_review(db, reviews.read_review_file(reviews.DEMO_REVIEW), NOW)
    slug = reviews.review_by_slug(db, "beijing-district-innovation-cases")["slug"]
    accounts.create_user(db, "unit-a", PASSWORD, "nominator", NOW, unit="海淀区政协")
    review_results.set_stage(db, slug, "nominating", NOW)
    nominations.nominate(db, slug, "unit-a", {"title": "t", "summary": "s", "contact": "c"},
                         [nominations.Upload("a.pdf", b"%PDF-1.4\n")], NOW)
    review_results.set_stage(db, slug, "screening", NOW)
    nominations.accept_all(db, slug, "", NOW, "test")
    review_results.set_stage(db, slug, "scoring", NOW)


@pytest.fixture
def client(app):
    with TestClient(app, base_url="https://testserver") as c:
        yield c


def signed_in(app, role):
    c = TestClient(app, base_url="https://testserver")
    c.__enter__()
    if role:
        assert login(c, role).status_code == 303
    return c


# ------------------------------------------------------------ the access matrix, from the route table

def sample(path, db):
    brand = db.execute("select slug from brands order by id limit 1").fetchone()[0]
    campaign = db.execute("select slug from campaigns order by id limit 1").fetchone()[0]
    rev = db.execute("select coalesce(max(id), 1) from brand_revisions").fetchone()[0]
    values = {"slug": campaign if path.startswith("/admin/campaigns") else brand, "rev": str(rev),
              "import_id": "no-such-import", "attachment": "1"}
    if path.startswith("/admin/reviews/"):
        values["slug"] = db.execute("select slug from reviews order by id limit 1").fetchone()[0]

    def fill(match):
        name = match.group(1)
        assert name in values, f"new path parameter {{{name}}} in {path}: teach the access matrix about it"
        return values[name]

    return re.sub(r"\{(\w+)\}", fill, path)


def test_every_staff_route_declares_its_roles(app):
    routes = staff_routes(app.routes)
    assert len(routes) >= 8
    for method, path, endpoint in routes:
        assert hasattr(endpoint, "required_roles"), f"{method} {path} is not guarded by requires()"


# What a role that may use a staff POST gets for one carrying nothing but its form token.
EMPTY_POST = {
    "/admin/brands/new": 422, "/admin/brands/{slug}/edit": 422, "/admin/brands/{slug}/delete": 422,  # the form, with its errors
    "/admin/brands/{slug}/publish": 303, "/admin/brands/{slug}/restore/{rev}": 303,  # done, back to the entry
    "/admin/campaigns/new": 422, "/admin/campaigns/{slug}/edit": 422, "/admin/campaigns/{slug}/state": 422,
    "/admin/campaigns/{slug}/tie": 422,
    "/admin/campaigns/{slug}/announce": 200,  # the confirmation page
    "/admin/campaigns/{slug}/codes": 409,  # the sample campaign votes by device: no codes needed
    "/admin/import": 422, "/admin/import/{import_id}/apply": 404,  # no such pending import
    "/admin/users": 400,
    "/admin/reviews/load": 400,  # no file
    "/admin/reviews/{slug}/stage": 422, "/admin/reviews/{slug}/screen": 422, "/admin/reviews/{slug}/decide": 422,
    "/admin/reviews/{slug}/publish-at": 303,  # an empty time clears it
    "/admin/reviews/{slug}/accept-all": 409,  # the sample review is scoring, not screening
    "/logout": 303,
}


@pytest.mark.parametrize("role", [None, *ROLES])
def test_access_matrix(app, db, role):
    c = signed_in(app, role)
    token = staff_csrf(c) if role else "x"
    try:
        for method, path, endpoint in staff_routes(app.routes):
            allowed = role == "admin" or (role is not None and role in endpoint.required_roles)
            url = sample(path, db)
            if method == "GET":
                r = c.get(url, follow_redirects=False)
            else:
                r = c.post(url, data={"csrf_token": token}, follow_redirects=False)
            if role is None:
                expected = (303,) if method == "GET" else (403,)
                assert r.status_code in expected, (method, url, r.status_code)
                if method == "GET":
                    assert r.headers["location"].startswith("/login")
            elif not allowed:
                assert r.status_code == 403, (role, method, url, r.status_code)
                assert "权限" in r.text
            else:
                assert method == "GET" or path in EMPTY_POST, f"new staff POST {path}: add its answer to EMPTY_POST"
                expected = 200 if method == "GET" else EMPTY_POST[path]
                assert r.status_code == expected, (role, method, url, r.status_code, r.text[:300])
                if path != "/logout":
                    assert not r.headers.get("location", "").startswith("/login"), (role, method, url)
    finally:
        c.__exit__(None, None, None)


def state_of(db):
    tables = ("brands", "brand_revisions", "campaigns", "candidates", "lists", "list_items", "users",
              "voter_codes", "tallies", "pending_imports")
    return {t: db.execute(f"select * from {t} order by rowid").fetchall() for t in tables}


def test_every_staff_post_refuses_a_missing_or_wrong_csrf_token_and_changes_nothing(app, db):
    c = signed_in(app, "admin")
    before = state_of(db)
    try:
        for method, path, endpoint in staff_routes(app.routes):
            if method != "POST":
                continue
            url = sample(path, db)
            for data in ({}, {"csrf_token": "forged"}, {"csrf_token": "forged¿'\"("}):
                r = c.post(url, data={**data, "action": "add", "username": "x"}, follow_redirects=False)
                assert r.status_code == 403, (url, data, r.status_code)
    finally:
        c.__exit__(None, None, None)
    assert state_of(db) == before


# ------------------------------------------------------------ sessions

def test_sign_in_gives_a_new_session_and_the_old_cookie_is_worthless(client, db):
    client.get("/login")
    before = client.cookies.get("bv_session")
    assert before
    assert login(client, "editor").status_code == 303
    after = client.cookies.get("bv_session")
    assert after != before
    assert client.get("/admin").status_code == 200
    # the pre-login cookie (an attacker's planted one) does not carry the sign-in
    with TestClient(client.app, base_url="https://testserver") as other:
        other.cookies.set("bv_session", before)
        assert other.get("/admin", follow_redirects=False).status_code == 303


def test_the_staff_session_lives_only_under_the_staff_paths(app, client):
    from brandvote.routes.staff import STAFF_PREFIXES
    for method, path, _ in staff_routes(app.routes):
        assert path.startswith(STAFF_PREFIXES), f"{method} {path}: outside the session's prefixes"
    assert login(client, "editor").status_code == 303
    signed_in_cookie = client.cookies.get("bv_session")
    for path in ("/", "/brands", "/lists", "/no-such-page"):
        r = client.get(path)
        assert "bv_session" not in r.headers.get("set-cookie", ""), path  # public pages never re-issue it
    assert client.cookies.get("bv_session") == signed_in_cookie
    assert client.get("/admin", follow_redirects=False).status_code == 200  # and the session still works


def test_session_cookie_flags(client):
    r = client.get("/login")
    cookie = r.headers["set-cookie"]
    assert "bv_session=" in cookie and "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    assert "secure" in cookie.lower()


def test_sign_out_really_ends_the_session(client):
    login(client, "editor")
    stolen = client.cookies.get("bv_session")
    r = client.post("/logout", data={"csrf_token": staff_csrf(client)}, follow_redirects=False)
    assert r.status_code == 303
    client.cookies.set("bv_session", stolen)  # replaying the cookie after sign-out
    assert client.get("/admin", follow_redirects=False).headers["location"].startswith("/login")


def test_idle_and_absolute_timeouts(client, clock):
    login(client, "editor")
    clock.advance(minutes=29)
    assert client.get("/admin").status_code == 200
    clock.advance(minutes=31)
    assert client.get("/admin", follow_redirects=False).status_code == 303
    login(client, "editor")
    for _ in range(16):  # active every 29 minutes for 7.7 hours
        clock.advance(minutes=29)
        assert client.get("/admin", follow_redirects=False).status_code == 200
    clock.advance(minutes=29)
    assert client.get("/admin", follow_redirects=False).status_code == 303, "8 hours at most"


def test_failed_sign_ins_are_throttled_without_telling_which_accounts_exist(client, db):
    wrong = login(client, "editor", "wrong password!")
    unknown = login(client, "nobody", "wrong password!")
    assert wrong.status_code == unknown.status_code == 400
    msg = lambda r: re.search(r'role="alert">([^<]+)<', r.text).group(1)
    assert msg(wrong) == msg(unknown) == "用户名或密码不正确。"
    for _ in range(4):
        assert login(client, "editor", "wrong password!").status_code == 400
    throttled = login(client, "editor")  # the right password, after 5 failures
    assert throttled.status_code == 429 and "15 分钟" in throttled.text
    assert int(throttled.headers["retry-after"]) > 0
    actions = [r[0] for r in db.execute("select action from audit_log")]
    assert actions.count("login.failed") == 6 and "login.throttled" in actions  # 5 editor + 1 unknown


def test_throttling_per_address_covers_many_accounts(client):
    for i in range(20):
        login(client, f"user{i}", "wrong password!")
    assert login(client, "organizer").status_code == 429


def test_login_needs_its_csrf_token(client):
    client.get("/login")
    r = client.post("/login", data={"username": "editor", "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 403
    for forged in ("forged", "forged¿'\"(", "\x00"):  # non-ASCII once raised in hmac.compare_digest: a 500
        r = client.post("/login", data={"username": "editor", "password": PASSWORD, "csrf_token": forged},
                        follow_redirects=False)
        assert r.status_code == 403 and "表单校验失败" in r.text
    assert client.get("/admin", follow_redirects=False).status_code == 303


def test_same_secret_is_false_for_anything_but_the_same_string():
    assert same_secret("abc", "abc")
    assert not same_secret("abc", "abd")
    assert not same_secret("¿'\"(", "abc") and not same_secret("abc", "¿")
    assert not same_secret(None, "abc") and not same_secret("abc", None) and not same_secret(["abc"], "abc")


def test_next_only_leads_inside_the_console(client):
    r = login(client, "editor", next_path="https://evil.example/")
    assert r.headers["location"] == "/admin"
    r = login(client, "editor", next_path="//evil.example/admin")
    assert r.headers["location"] == "/admin"


def test_disabled_user_cannot_sign_in_and_loses_sessions(client, db):
    login(client, "editor")
    accounts.set_disabled(db, "editor", True, NOW)
    assert client.get("/admin", follow_redirects=False).status_code == 303
    assert login(client, "editor").status_code == 400


def test_admin_manages_users_and_it_is_audited(client, db):
    login(client, "admin")
    token = staff_csrf(client)
    r = client.post("/admin/users", data={"csrf_token": token, "action": "add", "username": "ed2",
                                          "password": "another long pass", "role": "editor"})
    assert r.status_code == 200 and "已创建" in r.text
    short = client.post("/admin/users", data={"csrf_token": token, "action": "add", "username": "ed3",
                                              "password": "short", "role": "editor"})
    assert short.status_code == 400 and "至少" in short.text
    audit = client.get("/admin/audit")
    assert "user.add" in audit.text and "login" in audit.text
    soup = BeautifulSoup(audit.text, "html.parser")
    heads = [p.get_text(" ", strip=True) for p in soup.select(".audit__head")]
    assert "创建账号 · ed2" in heads and "登录" in heads
