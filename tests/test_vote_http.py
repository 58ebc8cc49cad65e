"""The ballot contract through HTTP, with the clock injected: every answer and that
nothing is stored unless the answer is 303."""

import dataclasses
from datetime import timedelta
from http.cookies import SimpleCookie
from urllib.parse import urlencode

import pytest
from bs4 import BeautifulSoup
from starlette.testclient import TestClient

from brandvote import campaigns, voter_codes
from brandvote.app import create_app
from brandvote.security import CODE_COOKIE, DEVICE_COOKIE, Tokens

from helpers import CLOSES, NOW, OPENS, SLUG, FakeClock, csrf_from

BALLOT = f"/c/{SLUG}/ballot"


def make_client(settings, clock):
    return TestClient(create_app(settings, now=clock), base_url="https://testserver")


# conftest's client, with the demo campaign open for every test here.
pytestmark = pytest.mark.usefixtures("campaign")


def stored(db):
    return db.execute("select count(*) from ballots").fetchone()[0], db.execute("select count(*) from choices").fetchone()[0]


def open_ballot(client, clock, path=f"/c/{SLUG}"):
    """GET the page as a phone does; returns its CSRF token; the clock moves on as a person reads."""
    r = client.get(path)
    assert r.status_code == 200, r.text
    token = csrf_from(r.text)
    clock.advance(seconds=5)
    return token


def post(client, token, choices, **kw):
    return client.post(BALLOT, data={"csrf_token": token, "choice": choices}, follow_redirects=False, **kw)


def checked(response):
    soup = BeautifulSoup(response.text, "html.parser")
    return [i["value"] for i in soup.select("input[name=choice][checked]")]


def alert(response):
    node = BeautifulSoup(response.text, "html.parser").find(attrs={"role": "alert"})
    return node.get_text(strip=True) if node else ""


# ------------------------------------------------------------ the page

def test_ballot_page_states_the_rules_dates_and_candidates(client, candidates):
    r = client.get(f"/c/{SLUG}")
    soup = BeautifulSoup(r.text, "html.parser")
    text = soup.get_text(" ", strip=True)
    assert "最多选择10项，提交后不可更改" in text
    assert "投票截止" in text and "结果揭晓" in text
    assert [i["value"] for i in soup.select("input[name=choice]")] == candidates
    assert len(soup.select("details.choice__details summary")) == len(candidates)
    assert r.headers["cache-control"] == "no-store"
    cookie = r.headers["set-cookie"]
    assert DEVICE_COOKIE in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" in cookie


@pytest.mark.parametrize("base_url, secure", [("https://vote.example", True), ("http://127.0.0.1:8000", False)])
def test_a_first_visit_gets_a_year_long_httponly_device_cookie(seeded_settings, campaign, clock, base_url, secure):
    settings = dataclasses.replace(seeded_settings, base_url=base_url)
    with make_client(settings, clock) as c:
        first = c.get(f"/c/{SLUG}")
        again = c.get(f"/c/{SLUG}")
    assert len(first.headers.get_list("set-cookie")) == 1
    jar = SimpleCookie()
    jar.load(first.headers["set-cookie"])
    device = jar[DEVICE_COOKIE]
    assert (device["max-age"], device["path"], device["samesite"]) == (str(365 * 86400), "/", "lax")
    assert device["httponly"] is True and bool(device["secure"]) is secure
    assert Tokens(settings.secret).device(device.value)  # a signed device id, readable as it was sent
    assert "set-cookie" not in again.headers  # the phone keeps the device it was given


@pytest.mark.parametrize("at, words", [
    (OPENS - timedelta(seconds=1), "投票尚未开始"),
    (CLOSES, "投票已于"),
])
def test_outside_the_window_the_page_says_so_and_has_no_form(seeded_settings, campaign, at, words):
    with make_client(seeded_settings, FakeClock(at)) as c:
        r = c.get(f"/c/{SLUG}")
    assert r.status_code == 200
    assert words in r.text
    assert "<form class=\"ballot\"" not in r.text


# ------------------------------------------------------------ success, retries, second ballots

def test_ten_choices_are_stored_and_the_receipt_shows_them(client, clock, db, candidates):
    token = open_ballot(client, clock)
    r = post(client, token, candidates[:10])
    assert r.status_code == 303 and r.headers["location"] == f"/c/{SLUG}/receipt"
    assert stored(db) == (1, 10)
    receipt = client.get(r.headers["location"])
    soup = BeautifulSoup(receipt.text, "html.parser")
    code = soup.select_one(".receipt__code").get_text(strip=True)
    assert code == db.execute("select receipt from ballots").fetchone()[0]
    names = {b["slug"]: b["name"] for b in campaigns.candidates_of(db, 1)}
    assert [li.get_text(strip=True) for li in soup.select(".receipt__choices li")] == [names[s] for s in candidates[:10]]
    # coming back to the ballot shows the receipt, not the form
    again = client.get(f"/c/{SLUG}")
    assert code in again.text and "<form class=\"ballot\"" not in again.text


def test_a_double_tap_gets_the_same_receipt_and_one_ballot(client, clock, db, candidates):
    token = open_ballot(client, clock)
    assert post(client, token, candidates[:3]).status_code == 303
    assert post(client, token, candidates[:3]).status_code == 303
    assert stored(db) == (1, 3)


def test_a_different_second_ballot_is_409_and_still_one(client, clock, db, candidates):
    token = open_ballot(client, clock)
    post(client, token, candidates[:3])
    r = post(client, token, candidates[3:6])
    assert r.status_code == 409
    assert "已经投过票" in alert(r)
    assert stored(db) == (1, 3)


def test_channel_from_the_qr_url_is_remembered_with_the_ballot(client, clock, db, candidates):
    token = open_ballot(client, clock, f"/c/{SLUG}?ch=jiefang-daily")
    post(client, token, candidates[:1])
    assert db.execute("select channel from ballots").fetchone()[0] == "jiefang-daily"


# ------------------------------------------------------------ rule violations: 422, ticks kept, nothing stored

@pytest.mark.parametrize("make, status, words", [
    (lambda c: c[:11], 422, "最多只能选择 10 项"),
    (lambda c: [], 422, "至少选择 1 项"),
    (lambda c: [c[0], c[0]], 422, "重复"),
    (lambda c: [c[0], "no-such-entry"], 422, "候选名单"),
    (lambda c: [c[0], "guoshi-shuyuan"], 422, "候选名单"),
])
def test_broken_rules_are_422_with_ticks_kept(client, clock, db, candidates, make, status, words):
    token = open_ballot(client, clock)
    choices = make(candidates)
    r = post(client, token, choices)
    assert r.status_code == status
    assert words in alert(r)
    assert checked(r) == [c for c in candidates if c in choices]
    assert stored(db) == (0, 0)


def test_bracketed_field_name_counts_as_no_choice(client, clock, db, candidates):
    token = open_ballot(client, clock)
    r = client.post(BALLOT, data={"csrf_token": token, "choice[]": candidates[:2]}, follow_redirects=False)
    assert r.status_code == 422 and "至少选择" in alert(r)
    assert stored(db) == (0, 0)


def test_an_empty_body_is_403(client, clock, db):
    open_ballot(client, clock)
    r = client.post(BALLOT, content=b"", headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 403 and alert(r)
    assert stored(db) == (0, 0)


def test_a_malformed_multipart_body_is_400(client, clock, db):
    open_ballot(client, clock)
    r = client.post(BALLOT, content=b"--x\r\nnot a part",
                    headers={"content-type": "multipart/form-data; boundary=x"})
    assert r.status_code == 400 and "格式有误" in alert(r)
    assert stored(db) == (0, 0)


def test_a_2mb_body_is_413_declared_or_streamed(client, clock, db, candidates):
    token = open_ballot(client, clock)
    big = f"csrf_token={token}&choice={candidates[0]}&pad=".encode() + b"x" * (2 * 1024 * 1024)
    declared = client.post(BALLOT, content=big, headers={"content-type": "application/x-www-form-urlencoded"})
    assert declared.status_code == 413 and "过大" in declared.text

    def chunks():
        for i in range(0, len(big), 65536):
            yield big[i:i + 65536]

    streamed = client.post(BALLOT, content=chunks(), headers={"content-type": "application/x-www-form-urlencoded"})
    assert streamed.status_code == 413 and "过大" in streamed.text
    assert stored(db) == (0, 0)


@pytest.mark.parametrize("fields", [
    lambda token, c: [("csrf_token", token)] + [("choice", c[0])] * 200,  # more than 64 fields
    lambda token, c: [("csrf_token", token), ("choice", c[0]), ("note", "长" * 5000)],  # a field over 4 KB
])
def test_an_oversized_form_is_400_and_stores_nothing(client, clock, db, candidates, fields):
    token = open_ballot(client, clock)
    r = client.post(BALLOT, content=urlencode(fields(token, candidates)), follow_redirects=False,
                    headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and "格式有误" in alert(r)
    assert stored(db) == (0, 0)


@pytest.mark.parametrize("how", ["multipart", "charset"])
def test_a_ballot_posted_as_multipart_or_with_a_charset_is_stored(client, clock, db, candidates, how):
    """Browsers post urlencoded; a form some WebView sends as multipart, or with a charset
    parameter, is the same ballot."""
    token = open_ballot(client, clock)
    if how == "multipart":
        r = client.post(BALLOT, files=[("csrf_token", (None, token))] + [("choice", (None, c)) for c in candidates[:3]],
                        follow_redirects=False)
    else:
        r = client.post(BALLOT, content=urlencode([("csrf_token", token)] + [("choice", c) for c in candidates[:3]]),
                        headers={"content-type": "application/x-www-form-urlencoded; charset=UTF-8"},
                        follow_redirects=False)
    assert r.status_code == 303
    assert stored(db) == (1, 3)


# ------------------------------------------------------------ windows (injected clock)

def _post_at(seeded_settings, issued, at, candidates, db):
    """A device whose page (token) was issued at `issued`, submitting at `at`."""
    clock = FakeClock(issued)
    with make_client(seeded_settings, clock) as c:
        c.get(f"/c/{SLUG}")  # the device cookie comes from the ballot page
        device = c.cookies.get(DEVICE_COOKIE)
        tokens = Tokens(seeded_settings.secret)
        key = tokens.voter_key("device", tokens.device(device))
        token = tokens.csrf(key, 1, issued)
        clock.now = at
        return post(c, token, candidates[:2])


@pytest.mark.parametrize("issued, at, status", [
    (OPENS - timedelta(seconds=10), OPENS - timedelta(seconds=1), 403),   # one second before opening
    (OPENS - timedelta(seconds=10), OPENS, 303),                          # at opening
    (CLOSES - timedelta(minutes=5), CLOSES - timedelta(seconds=1), 303),   # one second before closing
    (CLOSES, CLOSES + timedelta(seconds=3), 403),                          # page loaded at closing
    (CLOSES - timedelta(minutes=1), CLOSES + timedelta(minutes=5), 303),   # grace: loaded before closing
    (CLOSES - timedelta(minutes=1), CLOSES + campaigns.GRACE, 403),           # grace is over
])
def test_the_window_is_exact(seeded_settings, campaign, db, candidates, issued, at, status):
    r = _post_at(seeded_settings, issued, at, candidates, db)
    assert r.status_code == status, alert(r)
    assert stored(db)[0] == (1 if status == 303 else 0)


def test_a_manually_closed_campaign_refuses(client, clock, db, candidates):
    token = open_ballot(client, clock)
    campaigns.set_manual_state(db, SLUG, "closed", clock.now - timedelta(minutes=20))
    r = post(client, token, candidates[:2])
    assert r.status_code == 403 and "结束" in alert(r)
    assert stored(db) == (0, 0)


# ------------------------------------------------------------ CSRF and voter tokens

def test_missing_forged_expired_other_campaign_and_too_fast_tokens_are_403(client, clock, db, candidates, seeded_settings):
    token = open_ballot(client, clock)
    tokens = Tokens(seeded_settings.secret)
    device = tokens.device(client.cookies.get(DEVICE_COOKIE))
    key = tokens.voter_key("device", device)
    cases = {
        "missing": None,
        "forged": Tokens("not-the-secret").csrf(key, 1, clock.now - timedelta(minutes=1)),
        "tampered": token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        "expired": tokens.csrf(key, 1, clock.now - timedelta(hours=7)),
        "other campaign": tokens.csrf(key, 2, clock.now - timedelta(minutes=1)),
        "other voter": tokens.csrf(tokens.voter_key("device", "someone-else"), 1, clock.now - timedelta(minutes=1)),
    }
    for name, bad in cases.items():
        data = {"choice": candidates[:2]}
        if bad is not None:
            data["csrf_token"] = bad
        r = client.post(BALLOT, data=data, follow_redirects=False)
        assert r.status_code == 403, name
        assert alert(r).startswith("选票未保存：") and "再点一次提交" in alert(r), name
        assert checked(r) == candidates[:2], name
    assert stored(db) == (0, 0)


def test_a_new_device_that_posts_at_once_is_refused_as_too_fast(client, clock, db, candidates):
    """The minimum age counts from the device's first ballot page: a script that fetches the
    page and posts in the same second is refused, and told its ballot was not stored."""
    token = csrf_from(client.get(f"/c/{SLUG}").text)
    clock.advance(seconds=1)
    r = post(client, token, candidates[:2])
    assert r.status_code == 403
    assert alert(r) == "选票未保存：页面刚刚打开。您的选择已保留，请确认后再点一次提交。"
    assert checked(r) == candidates[:2] and stored(db) == (0, 0)


def test_going_back_to_the_ballot_and_submitting_at_once_is_stored(client, clock, db, candidates):
    """A voter ticks, opens an entry page, comes back (the ballot is fetched again with a new
    token) and taps submit within a second: they have had the ballot for seconds, so it counts."""
    open_ballot(client, clock)  # the first page; the clock moves on 5 s as the voter reads
    client.get(f"/brands/{candidates[0]}")
    again = csrf_from(client.get(f"/c/{SLUG}").text)  # back: a new token, issued now
    clock.advance(seconds=0.5)
    r = post(client, again, candidates[:3])
    assert r.status_code == 303
    assert stored(db) == (1, 3)


def test_a_post_without_a_device_cookie_is_403(client, clock, db, candidates):
    token = open_ballot(client, clock)
    client.cookies.clear()
    r = post(client, token, candidates[:2])
    assert r.status_code == 403 and "Cookie" in alert(r)
    assert stored(db) == (0, 0)


def test_a_forged_device_cookie_is_403(client, clock, db, candidates):
    token = open_ballot(client, clock)
    client.cookies.clear()
    client.cookies.set(DEVICE_COOKIE, "eyJkIjoiYWJjIn0.forged")
    r = post(client, token, candidates[:2])
    assert r.status_code == 403
    assert stored(db) == (0, 0)


# ------------------------------------------------------------ per-IP limit

def test_the_ip_limit_answers_429_and_stores_exactly_n(seeded_settings, campaign, clock, db, candidates):
    settings = type(seeded_settings)(**{**seeded_settings.__dict__, "ip_limit": 3})
    with make_client(settings, clock) as c:
        statuses = []
        for i in range(4):
            c.cookies.clear()
            token = open_ballot(c, clock)
            statuses.append(post(c, token, candidates[:2],
                                 headers={"x-forwarded-for": f"198.51.100.{i}"}))  # spoofed: untrusted peer
    assert [r.status_code for r in statuses] == [303, 303, 303, 429]
    assert int(statuses[3].headers["retry-after"]) > 0
    assert "上限" in alert(statuses[3])
    assert stored(db)[0] == 3


def test_the_page_states_the_limits(client):
    text = BeautifulSoup(client.get(f"/c/{SLUG}").text, "html.parser").get_text()
    assert "每台设备只能投一次票" in text and "每小时最多接受" in text


# ------------------------------------------------------------ one-time voter codes

@pytest.fixture
def codes(db, campaign):
    db.execute("update campaigns set electorate = 'codes' where id = ?", [campaign["id"]])
    db.conn.commit()
    return voter_codes.create_codes(db, campaign["id"], 3, NOW)


def test_a_code_redeems_into_a_cookie_and_a_clean_url_then_votes_once(client, clock, db, codes, candidates):
    r = client.get(f"/v/{codes[0]}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/c/{SLUG}"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert CODE_COOKIE in r.headers["set-cookie"] and "HttpOnly" in r.headers["set-cookie"]
    token = open_ballot(client, clock)
    assert post(client, token, candidates[:2]).status_code == 303
    assert stored(db)[0] == 1
    # the same code again: refused at the door
    again = client.get(f"/v/{codes[0]}", follow_redirects=False)
    assert again.status_code == 403 and "已经使用过" in again.text
    # and a different ballot with the same code cookie is refused
    assert post(client, token, candidates[2:4]).status_code == 409
    assert stored(db)[0] == 1


def test_a_codes_campaign_without_a_code_shows_no_form_and_refuses(client, clock, db, codes, candidates):
    r = client.get(f"/c/{SLUG}")
    assert "凭投票码参加" in r.text and "csrf_token" not in r.text
    other = client.get(f"/v/{codes[1]}")  # another device redeems, to get a valid-looking token
    token = csrf_from(other.text)
    client.cookies.delete(CODE_COOKIE)
    clock.advance(seconds=5)
    assert post(client, token, candidates[:2]).status_code == 403
    assert stored(db)[0] == 0


@pytest.mark.parametrize("code", ["short", "A" * 32, "<script>", "x" * 500])
def test_an_unknown_code_is_403(client, code):
    r = client.get(f"/v/{code}", follow_redirects=False)
    assert r.status_code == 403 and "投票码无效" in r.text


def test_receipt_page_without_a_ballot_goes_back_to_the_ballot(client):
    r = client.get(f"/c/{SLUG}/receipt", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/c/{SLUG}"


@pytest.mark.parametrize("headers", [
    {"origin": "https://evil.example"},
    {"sec-fetch-site": "cross-site"},
    {"origin": "null"},
])
def test_a_cross_site_post_is_refused_even_with_a_valid_token(client, clock, db, candidates, headers):
    token = open_ballot(client, clock)
    r = post(client, token, candidates[:2], headers=headers)
    assert r.status_code == 403 and "其他网站" in alert(r)
    assert stored(db) == (0, 0)


def test_a_same_origin_post_passes_the_origin_check(client, clock, db, candidates):
    token = open_ballot(client, clock)
    r = post(client, token, candidates[:2], headers={"origin": "https://testserver", "sec-fetch-site": "same-origin"})
    assert r.status_code == 303


# ------------------------------------------------------------ the confirmation step, without JS

def test_submit_shows_the_choices_to_confirm_and_stores_nothing_until_confirmed(client, clock, db, candidates):
    token = open_ballot(client, clock)
    r = client.post(BALLOT, data={"csrf_token": token, "choice": [candidates[4], candidates[1]], "step": "review"})
    assert r.status_code == 200 and stored(db) == (0, 0)
    soup = BeautifulSoup(r.text, "html.parser")
    assert "您选择了 2 项" in soup.get_text()
    names = campaigns.candidate_names(db, campaigns.campaign_by_slug(db, SLUG)["id"])
    assert [li.get_text() for li in soup.select(".confirm__choices li")] == [names[candidates[1]], names[candidates[4]]]
    confirm = soup.select_one("form.confirm__form")
    data = {"csrf_token": confirm.select_one("input[name=csrf_token]")["value"],
            "choice": [i["value"] for i in confirm.select("input[name=choice]")]}
    done = client.post(confirm["action"], data=data, follow_redirects=False)
    assert done.status_code == 303 and stored(db) == (1, 2)


def test_back_to_edit_from_the_confirm_page_keeps_the_ticks(client, clock, db, candidates):
    token = open_ballot(client, clock)
    r = client.post(BALLOT, data={"csrf_token": token, "choice": candidates[:3], "step": "edit"})
    assert r.status_code == 200 and checked(r) == candidates[:3] and not alert(r)
    assert stored(db) == (0, 0)


def test_a_ballot_the_rules_refuse_is_refused_at_the_confirm_step(client, clock, db, candidates):
    token = open_ballot(client, clock)
    r = client.post(BALLOT, data={"csrf_token": token, "choice": candidates[:11], "step": "review"})
    assert r.status_code == 422
    assert alert(r) == "选票未保存：最多只能选择 10 项，您选择了 11 项。"
    assert checked(r) == candidates[:11] and stored(db) == (0, 0)
