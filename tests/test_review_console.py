"""The organizer's review console through HTTP: the review file, stages, screening with
attachments, scoring progress (never a score), results, decisions and publication (issue 20)."""

from __future__ import annotations

import io
import json
import re

import pytest
from starlette.testclient import TestClient

from brandvote import accounts, nominations, review_results, review_scores, reviews
from brandvote.app import create_app
from brandvote.nominations import Upload

from helpers import NOW, PASSWORD, FakeClock, login, staff_csrf

R = "console-review"
CASES = ["dongcheng-sanzhu-gongcheng", "dongcheng-zijin-yishiting", "shunyi-yuedu-shuwu", "fengtai-yuanzhuo-xiawucha",
         "tongzhou-kuomian-xieshang"]
PDF = b"%PDF-1.4\n%console test\n"


def review_doc(**extra) -> dict:
    doc = {
        "slug": R, "title": "控制台测试评审", "intro": "",
        "criteria": [{"key": "innovation", "name": "创新性", "weight": 3, "max": 10},
                     {"key": "effect", "name": "实效性", "weight": 1, "max": 10}],
        "tiers": [{"key": "excellent", "name": "优秀", "seats": 2}, {"key": "shortlisted", "name": "入围", "seats": 1}],
        "jurors": [{"username": f"j{i}", "name": f"评委{i}", "unit": "评审组"} for i in range(1, 4)],
        "cases": [{"slug": s, "title": f"案例{s[:6]}", "unit": f"{s.split('-')[0]}区政协", "summary": "", "brand": s}
                  for s in CASES],
    }
    doc.update(extra)
    return doc


@pytest.fixture
def clock():
    return FakeClock(NOW)


@pytest.fixture
def app(seeded_settings, db, clock):
    accounts.create_user(db, "org", PASSWORD, "organizer", NOW)
    accounts.create_user(db, "ed", PASSWORD, "editor", NOW)
    return create_app(seeded_settings, now=clock)


@pytest.fixture
def client(app):
    with TestClient(app, base_url="https://testserver") as c:
        assert login(c, "org").status_code == 303
        c.token = staff_csrf(c)
        yield c


def text_of(html: str) -> str:
    body = html.split('<main id="main"', 1)[1]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))


def upload(client, doc, name="review.json"):
    data = doc if isinstance(doc, bytes) else json.dumps(doc, ensure_ascii=False).encode()
    return client.post("/admin/reviews/load", data={"csrf_token": client.token},
                       files={"file": (name, io.BytesIO(data), "application/json")})


def post(client, action, **data):
    return client.post(f"/admin/reviews/{R}/{action}", data={"csrf_token": client.token, **data},
                       follow_redirects=False)


def move(client, stage):
    """The console's two steps: the button, then the confirmation."""
    ask = post(client, "stage", stage=stage)
    assert ask.status_code == 200 and 'name="confirm" value="yes"' in ask.text
    done = post(client, "stage", stage=stage, confirm="yes")
    assert done.status_code == 303, text_of(done.text)[:800]
    assert done.headers["location"] == f"/admin/reviews/{R}?done=stage"
    return client.get(done.headers["location"])


def counts(db):
    return {t: db.execute(f"select count(*) from {t}").fetchone()[0]
            for t in ("reviews", "cases", "users", "scores", "decisions", "lists", "audit_log")}


def score(db, juror, case, a, b):
    review_scores.save_score(db, R, case, juror, {"innovation": a, "effect": b}, "", NOW)


# ---------------------------------------------------------------- the whole walk

def test_an_organizer_walks_a_review_from_the_file_to_publication(client, db):
    page = upload(client, review_doc())
    assert page.status_code == 200
    text = text_of(page.text)
    assert "评审文件已载入" in text and "评审 console-review：新增" in text and "案例：新增 5（待初审），修改 0" in text
    assert "控制台测试评审" in text and "筹备中" in text and "待初审 5" in text and "评委 3 位" in text

    move(client, "nominating")
    accounts.create_user(db, "unit-a", PASSWORD, "nominator", NOW, unit="海淀区政协")
    nominated = nominations.nominate(db, R, "unit-a", {"title": "海淀的案例", "summary": "说明", "contact": "张老师"},
                                     [Upload("材料 一.pdf", PDF)], NOW)
    page = move(client, "screening")
    text = text_of(page.text)
    assert "初审中" in text and "海淀的案例" in text and "材料 一.pdf" in text
    href = re.search(r'href="(/admin/reviews/console-review/attachments/\d+)"', page.text).group(1)
    got = client.get(href)
    assert got.status_code == 200 and got.content == PDF
    assert got.headers["content-type"] == "application/pdf"
    assert got.headers["content-disposition"].startswith("attachment;")
    assert "filename*=UTF-8''%E6%9D%90%E6%96%99%20%E4%B8%80.pdf" in got.headers["content-disposition"]
    assert got.headers["x-content-type-options"] == "nosniff" and got.headers["cache-control"] == "no-store"

    r = post(client, "screen", case=nominated, verdict="reject", reason="不属于本次评审范围")
    assert r.status_code == 303 and r.headers["location"] == f"/admin/reviews/{R}?done=screen#case-{nominated}"
    assert post(client, "accept-all").headers["location"] == f"/admin/reviews/{R}?done=accept_all"
    page = move(client, "scoring")
    assert "已交评分表 0 / 15 份" in text_of(page.text)

    for juror, marks in {"j1": [(10, 10), (8, 8), (6, 6), (4, 4), (2, 2)],
                         "j2": [(9, 9), (8, 8), (6, 6), (4, 4), (2, 2)],
                         "j3": [(8, 8), (8, 8), (6, 6), (4, 4), (2, 2)]}.items():
        for case, (a, b) in zip(CASES, marks):
            score(db, juror, case, a, b)
    page = client.get(f"/admin/reviews/{R}")
    text = text_of(page.text)
    assert "已交评分表 15 / 15 份" in text and "评委1 （未设密码） 评审组 5 / 5" in text
    assert "results-table" not in page.text and "90.0" not in text and "评委打分偏差" not in text

    page = move(client, "deciding")
    text = text_of(page.text)
    assert "尚未公布，仅供组织方决定等次" in text and "未做标准化" in text
    first = re.search(r'<tbody>\s*<tr class="tally-row--in">(.*?)</tr>', page.text, re.S).group(1)
    assert re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", first)).split() == [
        "1", "案例dongch", "dongcheng区政协", "90.0", "90.0", "3", "优秀"]
    assert "<svg" in page.text and 'stroke="#222"' in page.text and "style=" not in page.text.split("<svg", 1)[1]
    assert "评委1：+2.0（5 个案例）" in page.text and "评委3：-2.0（5 个案例）" in page.text
    assert "没有调整：等次按名次确定" in text

    r = post(client, "decide", case=CASES[2], tier="none", reason="主席会议决定")
    assert r.status_code == 303 and r.headers["location"] == f"/admin/reviews/{R}?done=decide#decide"
    assert post(client, "decide", case=CASES[3], tier="shortlisted", reason="汇报更完整").status_code == 303
    text = text_of(client.get(f"/admin/reviews/{R}").text)
    assert "按名次入围 → 不列入等次。理由：主席会议决定" in text and "按名次不列入 → 入围。理由：汇报更完整" in text
    assert "— 已调整（按名次：入围）" in text and "入围 已调整（按名次：不列入）" in text

    page = move(client, "published")
    assert "已公布" in text_of(page.text) and "已冻结" in text_of(page.text)
    doc = review_results.public_results(db, R, NOW)
    assert [c["tier"] for c in doc["cases"]] == ["excellent", "excellent", None, "shortlisted", None]
    assert 'action="/admin/reviews/console-review/decide"' not in page.text


# ---------------------------------------------------------------- refusals

@pytest.fixture
def deciding(client, db):
    reviews.load_review(db, review_doc(), NOW)
    review_results.set_stage(db, R, "screening", NOW)
    nominations.accept_all(db, R, "", NOW, "test")
    review_results.set_stage(db, R, "scoring", NOW)
    for juror in ("j1", "j2", "j3"):
        for case, m in zip(CASES, (10, 8, 6, 4, 2)):
            score(db, juror, case, m, m)
    return client


def test_a_bad_file_lists_every_problem_and_changes_nothing(client, db):
    before = counts(db)
    doc = review_doc(campaign="no-such-campaign", public_weight=0.3)
    doc["cases"][0]["brand"] = "no-such-brand"
    page = upload(client, doc)
    assert page.status_code == 400
    text = text_of(page.text)
    assert "评审文件有误，未做任何修改：" in text
    assert "campaign：没有网络投票“no-such-campaign”。" in text and "cases[0].brand：目录中没有条目“no-such-brand”。" in text
    broken = upload(client, b'{"slug": ')
    assert broken.status_code == 400 and "不是有效的 JSON（第 1 行第 10 列）" in text_of(broken.text)
    none = client.post("/admin/reviews/load", data={"csrf_token": client.token})
    assert none.status_code == 400 and "请选择要上传的评审文件" in text_of(none.text)
    assert counts(db) == before


def test_a_rejection_without_a_reason_is_refused_and_nothing_changes(client, db):
    reviews.load_review(db, review_doc(), NOW)
    review_results.set_stage(db, R, "screening", NOW)
    before = counts(db)
    r = post(client, "screen", case=CASES[0], verdict="reject", reason="  ")
    assert r.status_code == 422 and "reason：不通过初审须写明理由。" in text_of(r.text)
    assert reviews.case_by_slug(db, reviews.review_by_slug(db, R), CASES[0])["state"] == "nominated"
    assert counts(db) == before


def test_a_move_the_stage_does_not_allow_is_refused_with_what_stands_in_the_way(client, db):
    reviews.load_review(db, review_doc(), NOW)
    review_results.set_stage(db, R, "screening", NOW)
    r = post(client, "stage", stage="scoring", confirm="yes")
    assert r.status_code == 409
    assert "评审阶段未能变更：" in text_of(r.text) and "还有 5 个案例未初审" in text_of(r.text)
    back = post(client, "stage", stage="draft", confirm="yes")
    assert back.status_code == 409 and "阶段只能向后推进" in text_of(back.text)
    assert post(client, "stage", stage="bogus").status_code == 422
    assert reviews.review_by_slug(db, R)["stage"] == "screening"


def test_decisions_before_deciding_and_without_a_reason_or_over_the_seats_are_refused(deciding, db):
    client = deciding
    early = post(client, "decide", case=CASES[3], tier="shortlisted", reason="理由")
    assert early.status_code == 409 and "决定等次只能在待决定阶段进行" in text_of(early.text)
    review_results.set_stage(db, R, "deciding", NOW)
    before = counts(db)
    no_reason = post(client, "decide", case=CASES[3], tier="shortlisted", reason="")
    assert no_reason.status_code == 422 and f"{CASES[3]}：调整名次结果须写明理由。" in text_of(no_reason.text)
    over = post(client, "decide", case=CASES[3], tier="shortlisted", reason="主席会议决定")
    assert over.status_code == 422 and "shortlisted：“入围”有 1 个名额，决定后有 2 个案例。" in text_of(over.text)
    assert '<textarea id="f-reason" name="reason" rows="3" maxlength="2000" required>主席会议决定</textarea>' in over.text
    unknown = post(client, "decide", case=CASES[3], tier="gold", reason="理由")
    assert unknown.status_code == 422 and "本评审没有等次“gold”" in text_of(unknown.text)
    assert counts(db) == before


def test_no_score_before_deciding_even_for_admin_and_publication_waits_for_a_tie(client, db):
    reviews.load_review(db, review_doc(), NOW)
    review_results.set_stage(db, R, "screening", NOW)
    nominations.accept_all(db, R, "", NOW, "test")
    review_results.set_stage(db, R, "scoring", NOW)
    for juror in ("j1", "j2", "j3"):
        for case, m in zip(CASES, (9, 8, 5, 5, 1)):
            score(db, juror, case, m, m)
    accounts.create_user(db, "boss", PASSWORD, "admin", NOW)
    assert login(client, "boss").status_code == 303
    client.token = staff_csrf(client)
    page = client.get(f"/admin/reviews/{R}").text
    assert "results-table" not in page and "90.0" not in page and "已交评分表 15 / 15 份" in text_of(page)
    review_results.set_stage(db, R, "deciding", NOW)
    page = client.get(f"/admin/reviews/{R}").text
    assert "等次边界有并列待决定" in text_of(page) and text_of(page).count("并列待定") == 2
    r = post(client, "stage", stage="published", confirm="yes")
    assert r.status_code == 409 and "等次边界有并列未决定" in text_of(r.text)
    assert reviews.review_by_slug(db, R)["stage"] == "deciding"


def test_an_attachment_of_another_review_or_unknown_is_404_and_editors_are_refused(client, app, db):
    reviews.load_review(db, review_doc(), NOW)
    reviews.load_review(db, review_doc(slug="other-review", jurors=[], cases=[]), NOW)
    review_results.set_stage(db, "other-review", "nominating", NOW)
    accounts.create_user(db, "unit-a", PASSWORD, "nominator", NOW, unit="海淀区政协")
    nominations.nominate(db, "other-review", "unit-a", {"title": "t", "summary": "s", "contact": "c"},
                         [Upload("a.pdf", PDF)], NOW)
    assert client.get("/admin/reviews/other-review/attachments/1").status_code == 200
    assert client.get(f"/admin/reviews/{R}/attachments/1").status_code == 404
    assert client.get(f"/admin/reviews/{R}/attachments/99").status_code == 404
    assert client.get(f"/admin/reviews/{R}/attachments/x").status_code == 404
    assert client.get("/admin/reviews/nope").status_code == 404
    with TestClient(app, base_url="https://testserver") as ed:
        assert login(ed, "ed").status_code == 303
        r = ed.get("/admin/reviews/other-review/attachments/1")
        assert r.status_code == 403 and b"%PDF" not in r.content


def test_publish_at_is_saved_and_a_past_time_refused(client, db):
    reviews.load_review(db, review_doc(), NOW)
    r = post(client, "publish-at", publish_at="2026-12-20T10:00")
    assert r.status_code == 303
    assert reviews.review_by_slug(db, R)["publish_at"] == "2026-12-20T02:00:00+00:00"
    page = client.get(r.headers["location"]).text
    assert 'value="2026-12-20T10:00"' in page and "公布时间已保存" in page
    past = post(client, "publish-at", publish_at="2020-01-01T10:00")
    assert past.status_code == 409 and "公布时间须晚于现在" in text_of(past.text)
    bad = post(client, "publish-at", publish_at="明天")
    assert bad.status_code == 422 and "公布时间格式有误" in text_of(bad.text)
    assert reviews.review_by_slug(db, R)["publish_at"] == "2026-12-20T02:00:00+00:00"
