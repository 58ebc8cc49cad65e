"""The arithmetic of a review and the review file, as plain functions. Every expected figure is
worked by hand in the comment beside it, never taken from the code under test."""

from __future__ import annotations

import copy
import math
from decimal import Decimal
from fractions import Fraction as F

import pytest

from brandvote import errors, review_file, scoring
from brandvote.scoring import Decision

CRITERIA = [  # weight × max: 3 × 10 + 2 × 20 = 70
    {"key": "innov", "name": "创新性", "weight": 3, "max": 10},
    {"key": "effect", "name": "实效性", "weight": 2, "max": 20},
]

TIERS = [{"key": "excellent", "name": "优秀", "seats": 2}, {"key": "shortlist", "name": "入围", "seats": 2}]


# ------------------------------------------------------------ one juror

def test_a_jurors_score_is_weighted_and_out_of_100():
    # (3 × 8 + 2 × 15) ÷ 70 × 100 = 54 ÷ 70 × 100 = 540/7 ≈ 77.14
    assert scoring.juror_score(CRITERIA, {"innov": 8, "effect": 15}) == F(540, 7)
    assert scoring.display(F(540, 7)) == Decimal("77.1")
    assert scoring.juror_score(CRITERIA, {"innov": 10, "effect": 20}) == 100
    assert scoring.juror_score(CRITERIA, {"innov": 0, "effect": 0}) == 0


def test_decimal_weights_are_the_decimals_written():
    # 0.1, 0.2, 0.3 with max 10: full = 6; innov and effect at 10 = 1 + 2 = 3 → exactly 50,
    # the same as the third criterion alone at 10 (0.3 × 10 = 3), so the two sheets tie.
    criteria = [{"key": k, "weight": w, "max": 10} for k, w in (("a", 0.1), ("b", 0.2), ("c", 0.3))]
    first = scoring.juror_score(criteria, {"a": 10, "b": 10, "c": 0})
    second = scoring.juror_score(criteria, {"a": 0, "b": 0, "c": 10})
    assert first == second == 50


@pytest.mark.parametrize("marks, key, words", [
    ({"innov": 8}, "effect", "缺少"),
    ({"innov": 11, "effect": 0}, "innov", "超出范围"),
    ({"innov": -1, "effect": 0}, "innov", "超出范围"),
    ({"innov": 8, "effect": 21}, "effect", "0 到 20"),
    ({"innov": 7.5, "effect": 0}, "innov", "整数"),
    ({"innov": 8.0, "effect": 0}, "innov", "整数"),
    ({"innov": "8", "effect": 0}, "innov", "整数"),
    ({"innov": True, "effect": 0}, "innov", "整数"),
    ({"innov": 8, "effect": 0, "innovation": 9}, "innovation", "没有评分项"),
])
def test_bad_marks_are_refused_by_criterion(marks, key, words):
    with pytest.raises(errors.BadScore) as caught:
        scoring.juror_score(CRITERIA, marks)
    assert words in caught.value.problems[key]
    assert caught.value.status == 422 and caught.value.code == "bad_score"


def test_every_bad_mark_is_reported_at_once():
    with pytest.raises(errors.BadScore) as caught:
        scoring.juror_score(CRITERIA, {"innov": 99})
    assert set(caught.value.problems) == {"innov", "effect"}


# ------------------------------------------------------------ the panel

def test_four_jurors_give_the_plain_mean():
    # (40 + 70 + 80 + 100) ÷ 4 = 72.5; trimming would have given (70 + 80) ÷ 2 = 75
    assert scoring.expert_score([40, 70, 80, 100], "trimmed_mean") == F(145, 2)


def test_five_jurors_drop_one_highest_and_one_lowest():
    # drop 50 and 100: (70 + 80 + 90) ÷ 3 = 80; the plain mean would be 390 ÷ 5 = 78
    assert scoring.expert_score([100, 50, 80, 90, 70], "trimmed_mean") == 80
    assert scoring.expert_score([100, 50, 80, 90, 70], "mean") == 78


def test_equal_extremes_drop_one_instance_each():
    # 60, 60, 80, 90, 90 → drop one 60 and one 90: (60 + 80 + 90) ÷ 3 = 230/3 ≈ 76.7
    assert scoring.expert_score([60, 90, 60, 80, 90], "trimmed_mean") == F(230, 3)
    assert scoring.display(F(230, 3)) == Decimal("76.7")


def test_median_odd_and_even():
    assert scoring.expert_score([10, 99, 50, 95, 90], "median") == 90
    # even: the mean of the middle two, (70 + 80) ÷ 2 = 75 (the mean would be 77.5)
    assert scoring.expert_score([100, 60, 80, 70], "median") == 75


def test_nobody_scored_is_no_score_not_zero():
    for aggregate in scoring.AGGREGATES:
        assert scoring.expert_score([], aggregate) is None


def test_display_rounds_half_up():
    assert scoring.display(F(8425, 100)) == Decimal("84.3")  # round() would give 84.2
    assert scoring.display(F(8435, 100)) == Decimal("84.4")
    assert scoring.display(F(8424, 100)) == Decimal("84.2")
    assert scoring.display(F(-225, 100)) == Decimal("-2.3")
    assert scoring.display(F(1, 3) * 100 - F(1, 10**40)) == Decimal("33.3")
    assert scoring.display(None) is None


# ------------------------------------------------------------ public and final

def test_leader_rule_30_70():
    # 150 000 of the leader's 200 000 votes → 75; 0.3 × 75 + 0.7 × 80 = 22.5 + 56 = 78.5
    public = scoring.public_score(150_000, "leader", most_votes=200_000, ballots=400_000)
    assert public == 75
    assert scoring.public_score(200_000, "leader", most_votes=200_000, ballots=400_000) == 100
    assert scoring.final_score(F(80), public, 0.3) == F(785, 10)


def test_share_rule_30_70():
    # 150 of 600 ballots → 25; 0.3 × 25 + 0.7 × 80 = 7.5 + 56 = 63.5
    public = scoring.public_score(150, "share", most_votes=200, ballots=600)
    assert public == 25
    assert scoring.final_score(F(80), public, 0.3) == F(635, 10)


def test_no_votes_give_zero_not_a_division_by_zero():
    assert scoring.public_score(0, "leader", most_votes=0, ballots=0) == 0
    assert scoring.public_score(0, "share", most_votes=0, ballots=0) == 0


def test_without_a_campaign_the_expert_score_is_final():
    assert scoring.final_score(F(161, 2)) == F(161, 2)
    assert scoring.final_score(None, F(100), 0.3) is None  # votes alone do not make a score


# ------------------------------------------------------------ ranking

def test_competition_ranking_with_ties_shown():
    rows = scoring.rank({"a": F(90), "b": F(85), "c": F(85), "d": F(70)})
    assert [(r.slug, r.rank, r.tied) for r in rows] == [
        ("a", 1, False), ("b", 2, True), ("c", 2, True), ("d", 4, False)]


def test_a_tie_keeps_the_reviews_case_order_and_unscored_cases_are_unranked_last():
    rows = scoring.rank({"z": None, "c": F(85), "b": F(85), "a": F(90), "y": None})
    assert [(r.slug, r.rank) for r in rows] == [("a", 1), ("c", 2), ("b", 2), ("z", None), ("y", None)]
    assert not rows[3].tied and not rows[4].tied


def test_equal_fractions_tie():
    # (100 + 0 + 0) ÷ 3 and (50 + 50 + 0) ÷ 3 are both 100/3
    one = scoring.expert_score([100, 0, 0], "mean")
    other = scoring.expert_score([F(50), F(50), 0], "mean")
    rows = scoring.rank({"one": one, "other": other})
    assert [r.rank for r in rows] == [1, 1] and all(r.tied for r in rows)


# ------------------------------------------------------------ seats

SCORES = {"a": F(90), "b": F(85), "c": F(85), "d": F(80), "e": F(70)}


def outcome(decisions=None, scores=SCORES, tiers=TIERS):
    return scoring.fill_seats(scoring.rank(scores), tiers, decisions)


def tiers_of(result):
    return {p.slug: p.tier for p in result.placements}


def test_seats_fill_in_rank_order():
    scores = {"a": F(90), "b": F(85), "c": F(80), "d": F(75), "e": F(70)}
    result = outcome(scores=scores)
    assert tiers_of(result) == {"a": "excellent", "b": "excellent", "c": "shortlist", "d": "shortlist", "e": None}
    assert result.complete and result.straddles == () and result.departures == ()


def test_a_tie_across_a_tier_boundary_is_reported_not_cut():
    # a takes seat 1; b and c tie for seats 2 and 3: one of 优秀, one of 入围; d takes seat 4
    result = outcome()
    assert result.straddles == (scoring.Straddle(2, ("b", "c"), (("excellent", 1), ("shortlist", 1))),)
    assert result.undecided == ["b", "c"] and not result.complete
    assert tiers_of(result) == {"a": "excellent", "b": None, "c": None, "d": "shortlist", "e": None}


def test_a_tie_across_the_last_boundary_spans_no_tier():
    scores = {"a": F(90), "b": F(85), "c": F(80), "d": F(70), "e": F(70)}
    result = outcome(scores=scores)
    assert result.straddles == (scoring.Straddle(4, ("d", "e"), (("shortlist", 1), (None, 1))),)


def test_the_organizer_decides_the_tie_with_reasons():
    result = outcome({"b": Decision("excellent", "主席会议 3 月 5 日：推广性更强"),
                      "c": Decision("shortlist", "主席会议 3 月 5 日")})
    assert result.complete
    assert tiers_of(result) == {"a": "excellent", "b": "excellent", "c": "shortlist", "d": "shortlist", "e": None}
    assert [(d.case, d.tier, d.tie, d.reason) for d in result.departures] == [
        ("b", "excellent", True, "主席会议 3 月 5 日：推广性更强"), ("c", "shortlist", True, "主席会议 3 月 5 日")]


def test_a_departure_from_the_rank_order_is_listed_with_its_reason():
    scores = {"a": F(90), "b": F(85), "c": F(80), "d": F(75), "e": F(70)}
    result = outcome({"e": Decision("shortlist", "现场答辩补充材料"), "d": Decision(None, "材料与事实不符")}, scores)
    assert tiers_of(result) == {"a": "excellent", "b": "excellent", "c": "shortlist", "d": None, "e": "shortlist"}
    assert [(d.case, d.rank, d.by_rank, d.tier, d.tie) for d in result.departures] == [
        ("d", 4, "shortlist", None, False), ("e", 5, None, "shortlist", False)]


@pytest.mark.parametrize("decisions, field, words", [
    ({"e": Decision("shortlist", "")}, "e", "理由"),
    ({"e": Decision("shortlist", "   ")}, "e", "理由"),
    ({"zz": Decision("shortlist", "理由")}, "zz", "没有案例"),
    ({"e": Decision("gold", "理由")}, "e", "没有等次"),
    ({"a": Decision("excellent", "理由")}, "a", "无需调整"),
    ({"c": Decision("shortlist", "理由"), "e": Decision("shortlist", "理由")}, "shortlist", "2 个名额"),  # c, d, e
    ({"b": Decision("excellent", "理由"), "c": Decision("excellent", "理由")}, "excellent", "2 个名额"),
])
def test_decisions_that_cannot_stand_are_refused(decisions, field, words):
    with pytest.raises(errors.BadDecision) as caught:
        outcome(decisions)
    assert words in caught.value.problems[field]


def test_an_unscored_case_is_seated_only_by_a_decision():
    scores = {"a": F(90), "b": F(85), "c": F(80), "d": F(75), "e": None}
    assert tiers_of(outcome(scores=scores))["e"] is None
    result = outcome({"d": Decision(None, "撤回"), "e": Decision("shortlist", "全体评委回避，主席会议审定")}, scores)
    assert tiers_of(result)["e"] == "shortlist"


# ------------------------------------------------------------ what the organizer decides with

def test_juror_spread_shows_who_scores_high_or_low():
    # a: 90, 80, 70 → mean 80; b: 60, 50 (j3 conflicted) → 55
    # j1: (+10 + 5) ÷ 2 = +7.5 over 2; j2: (0 − 5) ÷ 2 = −2.5 over 2; j3: −10 over 1
    scores = {"a": {"j1": F(90), "j2": F(80), "j3": F(70)}, "b": {"j1": F(60), "j2": F(50)}}
    expert = {"a": F(80), "b": F(55)}
    assert scoring.juror_spread(scores, expert) == [
        scoring.Spread("j1", 2, F(15, 2)), scoring.Spread("j2", 2, F(-5, 2)), scoring.Spread("j3", 1, F(-10))]


def test_criterion_means_are_percentages_of_each_max():
    # innov 8 and 6 of 10 → 70%; effect 10 and 20 of 20 → 75%; nobody scored case b
    sheets = {"a": [{"innov": 8, "effect": 10}, {"innov": 6, "effect": 20}], "b": []}
    assert scoring.criterion_means(CRITERIA, sheets) == {
        "a": {"innov": 70, "effect": 75}, "b": {"innov": None, "effect": None}}


# ------------------------------------------------------------ the printed rule

def good_doc() -> dict:
    return {
        "slug": "district-cases-2023",
        "title": "区政协履职创新案例评审",
        "intro": "由各区政协推荐。",
        "criteria": [
            {"key": "innov", "name": "创新性", "weight": 3, "max": 10},
            {"key": "effect", "name": "实效性", "weight": 0.5, "max": 20},
        ],
        "tiers": [{"key": "excellent", "name": "优秀", "seats": 1}, {"key": "shortlist", "name": "入围", "seats": 1}],
        "aggregate": "trimmed_mean",
        "campaign": "shanghai-2022",
        "public_weight": 0.3,
        "public_score": "share",
        "jurors": [{"username": "judge1", "name": "张三", "unit": "东城区政协"},
                   {"username": "李 四", "name": "李四", "unit": ""}],
        "cases": [
            {"slug": "case-a", "title": "案例甲", "unit": "西城区政协", "summary": "摘要", "brand": "brand-a"},
            {"slug": "case-b", "title": "案例乙", "unit": "东城区政协", "summary": "", "brand": "brand-b"},
        ],
    }


def test_rule_text_with_a_campaign():
    assert scoring.rule_text(review_file.parse_review(good_doc())) == (
        "专家评分：每位评委按权重折算为百分制，5 位及以上评委时去掉一个最高分和一个最低分后取平均（不足 5 位时取平均）；"
        "网络投票得分：得票数 ÷ 投票人数 × 100；"
        "最终得分 = 网络投票得分 × 30% + 专家评分 × 70%；按最终得分排名，同分并列。"
        "评分项：创新性（权重 3，满分 10）、实效性（权重 0.5，满分 20）。"
        "名额按名次依次确定：优秀 1 名、入围 1 名；等次边界出现并列，或组织方调整按名次的结果时，"
        "由组织方决定并写明理由，随结果公布。")


def test_rule_text_without_a_campaign():
    doc = good_doc()
    for key in ("campaign", "public_weight", "public_score"):
        del doc[key]
    doc["aggregate"] = "median"
    text = scoring.rule_text(review_file.parse_review(doc))
    assert text.startswith("专家评分：每位评委按权重折算为百分制，取全部评委的中位数（评委人数为偶数时取中间两个分数的平均）；"
                           "按专家评分排名，同分并列。")
    assert "网络投票" not in text


# ------------------------------------------------------------ the review file

def test_a_good_file():
    review = review_file.parse_review(good_doc())
    assert review.slug == "district-cases-2023" and review.aggregate == "trimmed_mean"
    assert review.criteria[1] == review_file.Criterion("effect", "实效性", 0.5, 20)
    assert review.tiers[0] == review_file.Tier("excellent", "优秀", 1)
    assert review.campaign == "shanghai-2022" and review.public_weight == 0.3 and review.public_score == "share"
    assert review.jurors[1] == review_file.Juror("李 四", "李四", "")
    assert review.cases[0] == review_file.Case("case-a", "案例甲", "西城区政协", "摘要", "brand-a")
    with pytest.raises(Exception):
        review.slug = "other"  # frozen


def test_defaults_trimmed_mean_leader_no_jurors_no_cases():
    doc = good_doc()
    for key in ("aggregate", "public_score", "jurors", "cases", "intro"):
        del doc[key]
    review = review_file.parse_review(doc)
    assert (review.aggregate, review.public_score, review.jurors, review.cases, review.intro) == (
        "trimmed_mean", "leader", (), (), "")


def test_a_review_without_a_campaign_has_no_public_part():
    doc = good_doc()
    for key in ("campaign", "public_weight", "public_score"):
        del doc[key]
    for case in doc["cases"]:
        del case["brand"]
    review = review_file.parse_review(doc)
    assert (review.campaign, review.public_weight, review.public_score) == (None, None, None)


def _set(path, value):
    def change(doc):
        *head, last = path
        target = doc
        for step in head:
            target = target[step]
        if value is _DELETE:
            del target[last]
        else:
            target[last] = value
    return change


_DELETE = object()


def _no_campaign_but(key, value):
    def change(doc):
        del doc["campaign"], doc["public_weight"], doc["public_score"]
        doc[key] = value
    return change


REFUSALS = [
    ("slug missing", _set(["slug"], _DELETE), "slug"),
    ("slug uppercase", _set(["slug"], "District-Cases"), "slug"),
    ("slug underscore", _set(["slug"], "district_cases"), "slug"),
    ("slug trailing hyphen", _set(["slug"], "cases-"), "slug"),
    ("slug too long", _set(["slug"], "a" * 81), "slug"),
    ("title blank", _set(["title"], "  "), "title"),
    ("title not text", _set(["title"], 7), "title"),
    ("unknown field", _set(["public_wieght"], 0.3), "public_wieght"),
    ("no criteria", _set(["criteria"], []), "criteria"),
    ("criteria not a list", _set(["criteria"], {"key": "innov"}), "criteria"),
    ("criterion not an object", _set(["criteria", 0], "innov"), "criteria[0]"),
    ("criterion unknown field", _set(["criteria", 0, "weigth"], 1), "criteria[0].weigth"),
    ("weight zero", _set(["criteria", 0, "weight"], 0), "criteria[0].weight"),
    ("weight negative", _set(["criteria", 0, "weight"], -1), "criteria[0].weight"),
    ("weight text", _set(["criteria", 0, "weight"], "3"), "criteria[0].weight"),
    ("weight bool", _set(["criteria", 0, "weight"], True), "criteria[0].weight"),
    ("weight NaN", _set(["criteria", 0, "weight"], math.nan), "criteria[0].weight"),
    ("weight Infinity", _set(["criteria", 0, "weight"], math.inf), "criteria[0].weight"),
    ("max zero", _set(["criteria", 0, "max"], 0), "criteria[0].max"),
    ("max float", _set(["criteria", 0, "max"], 10.0), "criteria[0].max"),
    ("max bool", _set(["criteria", 0, "max"], True), "criteria[0].max"),
    ("max missing", _set(["criteria", 0, "max"], _DELETE), "criteria[0].max"),
    ("key duplicate", _set(["criteria", 1, "key"], "innov"), "criteria[1].key"),
    ("key uppercase", _set(["criteria", 0, "key"], "Innov"), "criteria[0].key"),
    ("key starts with a digit", _set(["criteria", 0, "key"], "1st"), "criteria[0].key"),
    ("key with a comma", _set(["criteria", 0, "key"], "a,b"), "criteria[0].key"),
    ("key Chinese", _set(["criteria", 0, "key"], "创新性"), "criteria[0].key"),
    ("key is a sheet column", _set(["criteria", 0, "key"], "comment"), "criteria[0].key"),
    ("criterion name missing", _set(["criteria", 0, "name"], _DELETE), "criteria[0].name"),
    ("no tiers", _set(["tiers"], []), "tiers"),
    ("tier key duplicate", _set(["tiers", 1, "key"], "excellent"), "tiers[1].key"),
    ("tier key not a slug", _set(["tiers", 0, "key"], "Top_Tier"), "tiers[0].key"),
    ("seats zero", _set(["tiers", 0, "seats"], 0), "tiers[0].seats"),
    ("seats float", _set(["tiers", 0, "seats"], 1.5), "tiers[0].seats"),
    ("seats bool", _set(["tiers", 0, "seats"], True), "tiers[0].seats"),
    ("a tier with more seats than cases", _set(["tiers", 0, "seats"], 3), "tiers[0].seats"),
    ("seats together beyond the cases", _set(["tiers", 1, "seats"], 2), "tiers"),
    ("aggregate unknown", _set(["aggregate"], "average"), "aggregate"),
    ("public weight above 1", _set(["public_weight"], 1.5), "public_weight"),
    ("public weight below 0", _set(["public_weight"], -0.1), "public_weight"),
    ("public weight as a percent", _set(["public_weight"], "30%"), "public_weight"),
    ("public weight bool", _set(["public_weight"], False), "public_weight"),
    ("public weight NaN", _set(["public_weight"], math.nan), "public_weight"),
    ("campaign without a public weight", _set(["public_weight"], _DELETE), "public_weight"),
    ("public weight without a campaign", _no_campaign_but("public_weight", 0.3), "public_weight"),
    ("public score without a campaign", _no_campaign_but("public_score", "leader"), "public_score"),
    ("public score unknown", _set(["public_score"], "ratio"), "public_score"),
    ("campaign not a slug", _set(["campaign"], "Shanghai 2022"), "campaign"),
    ("case without a brand under a campaign", _set(["cases", 0, "brand"], _DELETE), "cases[0].brand"),
    ("case slug duplicate", _set(["cases", 1, "slug"], "case-a"), "cases[1].slug"),
    ("case slug not a slug", _set(["cases", 0, "slug"], "案例甲"), "cases[0].slug"),
    ("case brand duplicate", _set(["cases", 1, "brand"], "brand-a"), "cases[1].brand"),
    ("case brand not a slug", _set(["cases", 0, "brand"], "Brand A"), "cases[0].brand"),
    ("case title missing", _set(["cases", 0, "title"], _DELETE), "cases[0].title"),
    ("case unit blank", _set(["cases", 0, "unit"], ""), "cases[0].unit"),
    ("summary over 2000", _set(["cases", 0, "summary"], "字" * 2001), "cases[0].summary"),
    ("case unknown field", _set(["cases", 0, "contact"], "x"), "cases[0].contact"),
    ("username blank", _set(["jurors", 0, "username"], " "), "jurors[0].username"),
    ("username padded", _set(["jurors", 0, "username"], " judge1"), "jurors[0].username"),
    ("username over 40", _set(["jurors", 0, "username"], "j" * 41), "jurors[0].username"),
    ("username with a newline", _set(["jurors", 0, "username"], "judge\n1"), "jurors[0].username"),
    ("username not text", _set(["jurors", 0, "username"], 1), "jurors[0].username"),
    ("username duplicate", _set(["jurors", 1, "username"], "judge1"), "jurors[1].username"),
    ("juror name missing", _set(["jurors", 0, "name"], _DELETE), "jurors[0].name"),
    ("jurors not a list", _set(["jurors"], "judge1"), "jurors"),
]


@pytest.mark.parametrize("change, field", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_every_refusal(change, field):
    doc = copy.deepcopy(good_doc())
    change(doc)
    with pytest.raises(errors.InvalidReview) as caught:
        review_file.parse_review(doc)
    assert list(caught.value.problems) == [field], caught.value.problems
    assert any("\u4e00" <= ch <= "\u9fff" for ch in caught.value.problems[field])
    assert caught.value.status == 400 and caught.value.code == "invalid_review"


def test_the_boundaries_that_pass():
    doc = good_doc()
    doc["cases"][0]["summary"] = "字" * 2000
    doc["public_weight"] = 0
    doc["jurors"][0]["username"] = "j" * 40
    doc["tiers"] = [{"key": "excellent", "name": "优秀", "seats": 2}]
    review = review_file.parse_review(doc)
    assert review.public_weight == 0 and review.tiers[0].seats == 2


def test_every_problem_is_reported_at_once():
    doc = good_doc()
    doc["slug"] = "Bad Slug"
    doc["criteria"][0]["weight"] = 0
    doc["cases"][1]["summary"] = "字" * 2001
    doc["aggregate"] = "mode"
    with pytest.raises(errors.InvalidReview) as caught:
        review_file.parse_review(doc)
    assert set(caught.value.problems) == {"slug", "criteria[0].weight", "cases[1].summary", "aggregate"}
    assert "cases[1].summary" in str(caught.value)


def test_a_file_that_is_not_an_object():
    for doc in ([], "review", None, 3):
        with pytest.raises(errors.InvalidReview):
            review_file.parse_review(doc)


def test_a_file_without_cases_waits_for_nominations_to_check_the_seats():
    doc = good_doc()
    doc["cases"] = []
    assert review_file.parse_review(doc).tiers[0].seats == 1
    tiers = review_file.parse_review(doc).tiers
    assert review_file.seat_problems(tiers, 1) == {"tiers": "各等次名额合计 2 个，超过案例数 1。"}
    assert review_file.seat_problems(tiers, 2) == {}
