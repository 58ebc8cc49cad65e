"""Reviews over a temporary database: the file, the stages, nominations, scores, results."""

from __future__ import annotations

import copy
import json
from datetime import timedelta

import pytest

from brandvote import accounts, ballots, db as dbmod, errors, nominations, review_results, review_scores, reviews
from brandvote.nominations import Upload

from helpers import ANNOUNCE, CLOSES, NOW, OPENS, SLUG, open_campaign

PDF = b"%PDF-1.4\n%test\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16
R = "demo-review"
CASES = ["dongcheng-sanzhu-gongcheng", "dongcheng-zijin-yishiting", "shunyi-yuedu-shuwu", "fengtai-yuanzhuo-xiawucha",
         "tongzhou-kuomian-xieshang"]


def review_doc(**extra) -> dict:
    doc = {
        "slug": R, "title": "测试评审", "intro": "",
        "criteria": [{"key": "innovation", "name": "创新性", "weight": 3, "max": 10},
                     {"key": "effect", "name": "实效性", "weight": 1, "max": 10}],
        "tiers": [{"key": "excellent", "name": "优秀", "seats": 2}, {"key": "shortlisted", "name": "入围", "seats": 1}],
        "jurors": [{"username": f"j{i}", "name": f"评委{i}", "unit": "评审组"} for i in range(1, 4)],
        "cases": [{"slug": s, "title": s, "unit": f"{s.split('-')[0]}区政协", "summary": "", "brand": s} for s in CASES],
    }
    doc.update(extra)
    return doc


def to(db, stage, at=NOW):
    return review_results.set_stage(db, R, stage, at)


@pytest.fixture
def loaded(db):
    reviews.load_review(db, review_doc(), NOW)
    return db


@pytest.fixture
def scoring(loaded):
    to(loaded, "screening")
    nominations.accept_all(loaded, R, "", NOW, "test")
    to(loaded, "scoring")
    return loaded


def score(db, juror, case, a, b, comment=""):
    return review_scores.save_score(db, R, case, juror, {"innovation": a, "effect": b}, comment, NOW)


def counts(db):
    return {t: db.execute(f"select count(*) from {t}").fetchone()[0]
            for t in ("reviews", "cases", "users", "review_jurors", "scores", "decisions", "lists", "audit_log")}


# ---------------------------------------------------------------- the file

def test_load_creates_the_review_its_cases_as_nominations_and_jurors_without_password(db):
    report = reviews.load_review(db, review_doc(), NOW)
    assert report.review == "added" and report.cases_added == CASES and report.jurors_created == ["j1", "j2", "j3"]
    review = reviews.review_by_slug(db, R)
    assert review["stage"] == "draft"
    assert {c["state"] for c in reviews.cases_of(db, review["id"])} == {"nominated"}
    with pytest.raises(errors.SignInFailed):
        accounts.sign_in(db, "j1", "", "ip", NOW)
    again = reviews.load_review(db, review_doc(), NOW)
    assert again.review == "unchanged" and not again.cases_added and not again.jurors_joined
    assert db.execute("select count(*) from audit_log where action = 'review.load'").fetchone()[0] == 2


def test_a_juror_without_password_signs_in_after_user_passwd(loaded):
    accounts.set_password(loaded, "j1", "correct horse battery", NOW)
    assert accounts.sign_in(loaded, "j1", "correct horse battery", "ip", NOW)["user_id"]


def test_load_refuses_missing_references_listing_every_problem_and_changes_nothing(db):
    accounts.create_user(db, "ed", "correct horse battery", "editor", NOW)
    before = counts(db)
    doc = review_doc(campaign="no-such-campaign", public_weight=0.3)
    doc["cases"][0]["brand"] = "no-such-brand"
    doc["jurors"][0]["username"] = "ed"
    with pytest.raises(errors.InvalidReview) as exc:
        reviews.load_review(db, doc, NOW)
    assert set(exc.value.problems) == {"campaign", "cases[0].brand", "jurors[0].username"}
    assert "不是评委" in exc.value.problems["jurors[0].username"]
    assert counts(db) == before


def test_criteria_and_tiers_freeze_from_scoring_on_and_the_file_is_refused_whole(scoring):
    before = counts(scoring)
    doc = review_doc(title="新标题")
    doc["criteria"][0]["weight"] = 2
    doc["cases"].append({"slug": "late", "title": "迟到", "unit": "某区", "summary": ""})
    with pytest.raises(errors.ReviewLocked) as exc:
        reviews.load_review(scoring, doc, NOW)
    assert {"criteria", "cases[5]"} <= set(exc.value.problems)
    assert reviews.review_by_slug(scoring, R)["title"] == "测试评审" and counts(scoring) == before
    ok = reviews.load_review(scoring, review_doc(title="新标题"), NOW)
    assert ok.review == "changed"


def test_jurors_may_join_but_not_leave_once_scoring(scoring):
    doc = review_doc()
    doc["jurors"] = doc["jurors"][:2]
    with pytest.raises(errors.ReviewLocked):
        reviews.load_review(scoring, doc, NOW)
    doc = review_doc()
    doc["jurors"].append({"username": "j4", "name": "评委4", "unit": ""})
    assert reviews.load_review(scoring, doc, NOW).jurors_joined == ["j4"]


# ---------------------------------------------------------------- stages

def test_stages_move_forward_only_and_are_audited(loaded):
    to(loaded, "nominating")
    with pytest.raises(errors.StageRefused):
        to(loaded, "draft")
    with pytest.raises(errors.StageRefused):
        to(loaded, "nominating")
    assert loaded.execute("select count(*) from audit_log where action = 'review.stage'").fetchone()[0] == 1


def test_scoring_needs_every_case_screened_and_seats_within_the_accepted(loaded):
    to(loaded, "screening")
    with pytest.raises(errors.StageRefused) as exc:
        to(loaded, "scoring")
    assert "未初审" in exc.value.problems["cases"]
    nominations.screen(loaded, R, CASES[0], True, "", NOW)
    nominations.screen(loaded, R, CASES[1], True, "", NOW)
    for case in CASES[2:]:
        nominations.screen(loaded, R, case, False, "材料不全", NOW)
    with pytest.raises(errors.StageRefused) as exc:
        to(loaded, "scoring")
    assert "超过案例数 2" in exc.value.message
    nominations.screen(loaded, R, CASES[2], True, "", NOW)
    assert to(loaded, "scoring")["stage"] == "scoring"


def test_a_rejection_needs_a_reason(loaded):
    to(loaded, "screening")
    with pytest.raises(errors.BadNomination):
        nominations.screen(loaded, R, CASES[0], False, "  ", NOW)
    with pytest.raises(errors.NoSuchCase):
        nominations.screen(loaded, R, "nope", True, "", NOW)


# ---------------------------------------------------------------- nominations

@pytest.fixture
def nominating(loaded):
    accounts.create_user(loaded, "unit-a", "correct horse battery", "nominator", NOW, unit="海淀区政协")
    accounts.create_user(loaded, "unit-b", "correct horse battery", "nominator", NOW, unit="西城区政协")
    to(loaded, "nominating")
    return loaded


FIELDS = {"title": "社情民意信息工作", "summary": "说明", "contact": "张老师 010-0000"}


def test_a_nominator_submits_with_attachments_checked_by_content(nominating):
    slug = nominations.nominate(nominating, R, "unit-a", FIELDS, [Upload("a.pdf", PDF), Upload("b.png", PNG)], NOW)
    case = reviews.case_by_slug(nominating, reviews.review_by_slug(nominating, R), slug)
    assert case["unit"] == "海淀区政协" and case["state"] == "nominated"
    files = nominations.attachments_of(nominating, case["id"])
    assert [f["media_type"] for f in files] == ["application/pdf", "image/png"]
    assert nominations.attachment(nominating, files[0]["id"])["bytes"] == PDF


def test_a_forged_type_too_many_files_and_a_long_summary_are_refused_together(nominating):
    before = counts(nominating)
    uploads = [Upload("evil.pdf", b"<script>alert(1)</script>")] + [Upload(f"{i}.pdf", PDF) for i in range(5)]
    with pytest.raises(errors.BadNomination) as exc:
        nominations.nominate(nominating, R, "unit-a", {**FIELDS, "summary": "字" * 2001}, uploads, NOW)
    assert {"summary", "attachments", "attachments[0]"} <= set(exc.value.problems)
    assert "按文件内容判断" in exc.value.problems["attachments[0]"]
    assert counts(nominating) == before


def test_only_nominators_of_the_unit_edit_and_only_while_nominating(nominating):
    slug = nominations.nominate(nominating, R, "unit-a", FIELDS, [], NOW)
    with pytest.raises(errors.NotNominator):
        nominations.edit_nomination(nominating, R, slug, "unit-b", FIELDS, [], [], NOW)
    with pytest.raises(errors.NotNominator):
        nominations.nominate(nominating, R, "j1", FIELDS, [], NOW)
    nominations.edit_nomination(nominating, R, slug, "unit-a", {**FIELDS, "title": "新"}, [Upload("x.jpg", b"\xff\xd8\xff\xe0")], [], NOW)
    to(nominating, "screening")
    with pytest.raises(errors.WrongStage):
        nominations.edit_nomination(nominating, R, slug, "unit-a", FIELDS, [], [], NOW)
    nominations.screen(nominating, R, slug, False, "不符合条件", NOW)
    assert nominations.unit_cases(nominating, R, "unit-a", NOW)[0]["state"] == "nominated"  # not yet told
    assert nominations.unit_cases(nominating, R, "unit-b", NOW) == []


def test_a_nominator_needs_a_unit():
    with pytest.raises(errors.BadUnit):
        accounts._check_new_user("x", "nominator", "  ")


# ---------------------------------------------------------------- scores

def test_a_juror_sees_accepted_cases_minus_conflicts_and_only_their_own_marks(scoring):
    scoring.execute("update users set unit = ? where username = 'j2'", [f"{CASES[0].split('-')[0]}区政协"])
    scoring.conn.commit()
    score(scoring, "j1", CASES[0], 7, 8)
    mine = review_scores.juror_cases(scoring, R, "j2", NOW)
    assert CASES[0] not in [c["slug"] for c in mine] and all(c["marks"] is None for c in mine)
    with pytest.raises(errors.CaseConflict):
        score(scoring, "j2", CASES[0], 5, 5)
    review_scores.declare_conflict(scoring, R, CASES[1], "j1", "亲属", NOW)
    assert CASES[1] not in [c["slug"] for c in review_scores.juror_cases(scoring, R, "j1", NOW)]


def test_marks_out_of_range_and_strangers_are_refused(scoring):
    with pytest.raises(errors.BadScore) as exc:
        score(scoring, "j1", CASES[0], 11, 2)
    assert "innovation" in exc.value.problems
    with pytest.raises(errors.NotJuror):
        score(scoring, "nobody", CASES[0], 1, 1)
    assert scoring.execute("select count(*) from scores").fetchone()[0] == 0


SHEET = "juror,case,innovation,effect,comment\n"


def test_paper_sheets_whole_file_or_nothing_every_bad_line_named(scoring):
    bad = SHEET + f"j1,{CASES[0]},7,8,好\nj1,{CASES[1]},x,8,\nj9,{CASES[0]},1,1,\nj1,{CASES[0]},7,8,\n"
    with pytest.raises(errors.BadSheet) as exc:
        review_scores.load_sheets(scoring, R, bad, NOW)
    assert set(exc.value.problems) == {"第 3 行", "第 4 行", "第 5 行"}
    assert scoring.execute("select count(*) from scores").fetchone()[0] == 0
    with pytest.raises(errors.BadSheet):
        review_scores.load_sheets(scoring, R, "juror,case,innovation\n", NOW)
    ok = review_scores.load_sheets(scoring, R, "\ufeff" + SHEET + f"j1,{CASES[0]},7,8,好\n", NOW)
    assert ok["added"] == 1


def test_scores_are_refused_before_deciding_and_frozen_after(scoring):
    with pytest.raises(errors.WrongStage):
        review_results.organizer_results(scoring, R, NOW)
    to(scoring, "deciding")
    with pytest.raises(errors.WrongStage):
        score(scoring, "j1", CASES[0], 1, 1)


# ---------------------------------------------------------------- results

def fill(db, table):
    for juror, marks in table.items():
        for case, (a, b) in zip(CASES, marks):
            score(db, juror, case, a, b)


def test_results_rank_fill_seats_decide_and_publish_frozen(scoring):
    fill(scoring, {"j1": [(10, 10), (8, 8), (6, 6), (4, 4), (2, 2)],
                   "j2": [(9, 9), (8, 8), (6, 6), (4, 4), (2, 2)],
                   "j3": [(8, 8), (8, 8), (6, 6), (4, 4), (2, 2)]})
    to(scoring, "deciding")
    res = review_results.organizer_results(scoring, R, NOW)
    tiers = {p.slug: p.tier for p in res.outcome.placements}
    assert tiers == {CASES[0]: "excellent", CASES[1]: "excellent", CASES[2]: "shortlisted", CASES[3]: None, CASES[4]: None}
    with pytest.raises(errors.BadDecision):
        review_results.decide(scoring, R, CASES[3], "shortlisted", " ", NOW)
    with pytest.raises(errors.BadDecision):  # the seat is taken: take a case out first
        review_results.decide(scoring, R, CASES[3], "shortlisted", "主席会议决定", NOW)
    review_results.decide(scoring, R, CASES[2], None, "主席会议决定", NOW)
    review_results.decide(scoring, R, CASES[3], "shortlisted", "主席会议决定", NOW)
    with pytest.raises(errors.ReviewNotPublished):
        review_results.public_results(scoring, R, NOW)
    review_results.set_stage(scoring, R, "published", NOW)
    doc = review_results.public_results(scoring, R, NOW)
    assert doc["cases"][0]["score"] == 90.0 and doc["cases"][0]["jurors"] == 3
    assert [d["case"] for d in doc["departures"]] == [CASES[2], CASES[3]]
    items = scoring.execute("select b.slug from list_items i join lists l on l.id = i.list_id join brands b"
                            " on b.id = i.brand_id where l.slug = ? order by i.position", [f"{R}-shortlisted"]).fetchall()
    assert [r[0] for r in items] == [CASES[3]]
    scoring.execute("update scores set marks = ?", [json.dumps({"innovation": 0, "effect": 0})])
    assert review_results.public_results(scoring, R, NOW) == doc  # frozen


def test_a_tie_at_a_boundary_holds_publication_until_decided(scoring):
    fill(scoring, {j: [(9, 9), (8, 8), (5, 5), (5, 5), (1, 1)] for j in ("j1", "j2", "j3")})
    to(scoring, "deciding")
    with pytest.raises(errors.StageRefused) as exc:
        to(scoring, "published")
    assert "并列" in exc.value.message
    review_results.decide(scoring, R, CASES[2], "shortlisted", "汇报更完整", NOW)
    review_results.decide(scoring, R, CASES[3], None, "汇报更完整", NOW)
    assert to(scoring, "published")["stage"] == "published"


def test_publish_at_publishes_once_decided_and_not_before(scoring):
    fill(scoring, {j: [(9, 9), (8, 8), (7, 7), (5, 5), (1, 1)] for j in ("j1", "j2", "j3")})
    to(scoring, "deciding")
    reviews.set_publish_at(scoring, R, NOW + timedelta(days=1), NOW)
    with pytest.raises(errors.ReviewNotPublished):
        review_results.public_results(scoring, R, NOW + timedelta(hours=23))
    doc = review_results.public_results(scoring, R, NOW + timedelta(days=1))
    assert doc["cases"][0]["tier"] == "excellent"
    assert reviews.review_by_slug(scoring, R)["stage"] == "published"


def test_the_public_view_has_no_score_before_publication(scoring):
    score(scoring, "j1", CASES[0], 9, 9)
    view = review_results.public_review(scoring, R, NOW)
    assert "score" not in json.dumps(view["cases"]) and view["stage"] == "scoring"


# ---------------------------------------------------------------- with a campaign

def linked_doc():
    doc = review_doc(campaign=SLUG, public_weight=0.3)
    return doc


def test_a_combined_score_waits_for_the_campaign_and_then_weighs_it(db):
    camp = open_campaign(db, SLUG, OPENS, CLOSES, ANNOUNCE)
    candidates = [r[0] for r in db.execute("select b.slug from candidates k join brands b on b.id = k.brand_id"
                                           " where k.campaign_id = ?", [camp["id"]]).fetchall()]
    doc = copy.deepcopy(linked_doc())
    doc["cases"] = [{"slug": s, "title": s, "unit": "某区", "summary": "", "brand": s} for s in candidates[:3]]
    doc["tiers"] = [{"key": "excellent", "name": "优秀", "seats": 1}]
    reviews.load_review(db, doc, OPENS)
    with dbmod.immediate(db):
        # one winner and one ballot: a clear cut-off, so the announcement by time is not held by a tie
        db.execute("update campaigns set winners = 1 where id = ?", [camp["id"]])
        ballots.cast_ballot(db, camp["id"], "device:1", candidates[1:2], OPENS + timedelta(hours=1))
    review_results.set_stage(db, R, "screening", OPENS)
    nominations.accept_all(db, R, "", OPENS, "test")
    review_results.set_stage(db, R, "scoring", OPENS)
    for juror in ("j1", "j2"):
        for case in candidates[:3]:
            review_scores.save_score(db, R, case, juror, {"innovation": 5, "effect": 5}, "", OPENS)
    with pytest.raises(errors.StageRefused) as exc:
        review_results.set_stage(db, R, "deciding", OPENS + timedelta(days=1))
    assert "尚未揭晓" in exc.value.message
    after = ANNOUNCE + timedelta(hours=1)
    review_results.set_stage(db, R, "deciding", after)
    res = review_results.organizer_results(db, R, after)
    doc = review_results.results_json(res)
    by = {c["slug"]: c for c in doc["cases"]}
    assert by[candidates[1]]["public"] == 100.0 and by[candidates[1]]["score"] == 65.0  # 0.3×100 + 0.7×50
    assert by[candidates[0]]["score"] == 35.0 and doc["cases"][0]["slug"] == candidates[1]
