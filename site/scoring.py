"""The arithmetic of a review (评审): a juror's weighted score, the panel's aggregate, the public
score, the final score, the ranking, the seats, and the figures the organizer decides with.

Pure rules: no database, no HTTP. Every figure is a Fraction so that equal scores compare equal
(a tie decided by the last bit of a float would be a tie nobody can check by hand), and a score
is rounded only when shown (`display`). Weights written as decimals in a file (0.3) are read as
the decimal they spell, not as the nearest binary float, so 30% + 70% is exactly 100%.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from numbers import Rational

from .errors import BadDecision, BadScore

AGGREGATES = ("trimmed_mean", "mean", "median")
PUBLIC_RULES = ("leader", "share")
TRIM_FROM = 5  # the panel size from which one highest and one lowest score are dropped
HUNDRED = Fraction(100)


# ---------------------------------------------------------------- numbers

def exact(value) -> Fraction:
    """A weight or share as the number its author wrote: a float goes through its shortest repr,
    so 0.3 is 3/10. A bool is refused because JSON's true would otherwise count as 1."""
    if isinstance(value, bool):
        raise TypeError("a bool is not a number here")
    if isinstance(value, float):
        return Fraction(repr(value))
    if isinstance(value, (int, Rational, Decimal)):
        return Fraction(value)
    raise TypeError(f"not a number: {value!r}")


def display(value: Fraction | None) -> Decimal | None:
    """One decimal, half up (84.25 → 84.3, -2.25 → -2.3), as a person rounding by hand would.

    Done in integers: Decimal division works to the context's precision, so a repeating
    expansion just under a half could round up there first and then again here."""
    if value is None:
        return None
    value = Fraction(value)
    tenths = math.floor(abs(value) * 10 + Fraction(1, 2))
    return Decimal(-tenths if value < 0 else tenths).scaleb(-1)


def _get(item, name: str):
    """Criteria, tiers and reviews arrive as dicts (a file, a row) or as review_file's records."""
    return item[name] if isinstance(item, Mapping) else getattr(item, name)


# ---------------------------------------------------------------- one juror, one case

def mark_problems(criteria: Sequence, marks: Mapping[str, object]) -> dict[str, str]:
    """Criterion key → what is wrong with its mark, in Chinese. A mark for no criterion is
    refused too: on a paper sheet it is a misspelt column whose score would be lost."""
    problems: dict[str, str] = {}
    keys = [_get(c, "key") for c in criteria]
    for c in criteria:
        key, top = _get(c, "key"), _get(c, "max")
        if key not in marks:
            problems[key] = f"缺少“{key}”的评分。"
            continue
        mark = marks[key]
        if isinstance(mark, bool) or not isinstance(mark, int):
            problems[key] = f"“{key}”的评分须为整数。"
        elif not 0 <= mark <= top:
            problems[key] = f"“{key}”的评分 {mark} 超出范围，应在 0 到 {top} 之间。"
    for key in marks:
        if key not in keys:
            problems[key] = f"本评审没有评分项“{key}”。"
    return problems


def juror_score(criteria: Sequence, marks: Mapping[str, int]) -> Fraction:
    """Σ weight × score ÷ Σ (weight × max) × 100: every juror's score on the same 0–100 scale,
    whatever each criterion's own maximum, so jurors and criteria can be compared and averaged."""
    problems = mark_problems(criteria, marks)
    if problems:
        raise BadScore(problems)
    got = sum(exact(_get(c, "weight")) * marks[_get(c, "key")] for c in criteria)
    full = sum(exact(_get(c, "weight")) * _get(c, "max") for c in criteria)
    return Fraction(got) / full * HUNDRED


# ---------------------------------------------------------------- the panel

def _mean(values: Sequence[Fraction]) -> Fraction:
    return Fraction(sum(values, Fraction(0))) / len(values)


def _median(values: Sequence[Fraction]) -> Fraction:
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2


def expert_score(juror_scores: Iterable[Fraction], aggregate: str) -> Fraction | None:
    """The case's panel score; None when nobody scored it (not 0: a case every juror was
    conflicted on has not scored badly, it has not been scored).

    `trimmed_mean` drops one instance of the highest and one of the lowest from five jurors
    up; below five it would leave too few scores (three jurors trimmed is just the median)."""
    values = [Fraction(v) for v in juror_scores]
    if not values:
        return None
    if aggregate == "trimmed_mean":
        if len(values) >= TRIM_FROM:
            values = sorted(values)[1:-1]
        return _mean(values)
    if aggregate == "mean":
        return _mean(values)
    if aggregate == "median":
        return _median(values)
    raise ValueError(f"unknown aggregate {aggregate!r}")


# ---------------------------------------------------------------- the public and the final score

def public_score(votes: int, rule: str, most_votes: int, ballots: int) -> Fraction:
    """The linked campaign's votes for the case's brand on 0–100.

    `leader`: the case with the most votes among the review's cases gets 100 (the common
    网络投票 rule); `share`: the share of ballots that chose it, which does not move when
    another case gains votes. 0 when nobody voted, since there is nothing to divide by."""
    if rule == "leader":
        if votes > most_votes:
            raise ValueError("votes above the most votes")
        return Fraction(votes, most_votes) * HUNDRED if most_votes else Fraction(0)
    if rule == "share":
        if votes > ballots:
            raise ValueError("votes above the ballots")
        return Fraction(votes, ballots) * HUNDRED if ballots else Fraction(0)
    raise ValueError(f"unknown public score rule {rule!r}")


def final_score(expert: Fraction | None, public: Fraction | None = None,
                public_weight=None) -> Fraction | None:
    """public_weight × public + (1 − public_weight) × expert; the expert score alone without a
    campaign. A case with no expert score has no final score: its votes alone would rank it
    on a different scale from the cases the panel scored."""
    if expert is None:
        return None
    if public_weight is None:
        return expert
    if public is None:
        raise ValueError("a public weight without a public score")
    weight = exact(public_weight)
    return weight * public + (1 - weight) * expert


# ---------------------------------------------------------------- ranking

@dataclass(frozen=True)
class Ranked:
    slug: str
    score: Fraction | None
    rank: int | None  # None: unranked, nobody scored the case
    tied: bool


def rank(scores: Mapping[str, Fraction | None]) -> list[Ranked]:
    """Competition ranking (1, 2, 2, 4) by final score; equal scores share a rank and say so.

    `scores` is slug → final score in the review's own case order, which orders a tie (never
    the slug or anything vote-derived). Cases without a score come last and UNRANKED (rank
    None), not ranked last: a number after the scored cases would publish a place nobody
    earned and read as the worst score, when the case was not scored at all (every juror
    conflicted, or scoring unfinished). They fill no seat unless the organizer places them."""
    order = {slug: i for i, slug in enumerate(scores)}
    scored = sorted((s for s in scores if scores[s] is not None), key=lambda s: (-scores[s], order[s]))
    counts: dict[Fraction, int] = {}
    for slug in scored:
        counts[scores[slug]] = counts.get(scores[slug], 0) + 1
    rows: list[Ranked] = []
    for i, slug in enumerate(scored):
        same = rows and rows[-1].score == scores[slug]
        rows.append(Ranked(slug, scores[slug], rows[-1].rank if same else i + 1, counts[scores[slug]] > 1))
    rows += [Ranked(s, None, None, False) for s in scores if scores[s] is None]
    return rows


# ---------------------------------------------------------------- seats

@dataclass(frozen=True)
class Decision:
    """The organizer's placement of one case, departing from the rank order or deciding a tie
    at a tier boundary; `tier` None takes the case out of every tier."""

    tier: str | None
    reason: str


@dataclass(frozen=True)
class Straddle:
    """Cases tied across a tier boundary: the rank order cannot say which tier each gets.
    `spans` is (tier key or None for no tier, seats of it the group covers), top tier first."""

    rank: int
    cases: tuple[str, ...]
    spans: tuple[tuple[str | None, int], ...]


@dataclass(frozen=True)
class Placement:
    slug: str
    score: Fraction | None
    rank: int | None
    tied: bool
    by_rank: str | None  # the tier the rank order gives (None: no tier, or undecided)
    tier: str | None  # the tier it ends in
    decided: bool  # False: tied across a boundary and not yet decided


@dataclass(frozen=True)
class Departure:
    """A recorded decision, shown with the published results. `tie` says it decided a tie at a
    boundary rather than overriding a placement the rank order made."""

    case: str
    rank: int | None
    by_rank: str | None
    tier: str | None
    reason: str
    tie: bool


@dataclass(frozen=True)
class Outcome:
    placements: tuple[Placement, ...]
    straddles: tuple[Straddle, ...]
    departures: tuple[Departure, ...]

    @property
    def undecided(self) -> list[str]:
        return [p.slug for p in self.placements if not p.decided]

    @property
    def complete(self) -> bool:
        """Publishing waits for this: every tie at a boundary decided."""
        return not self.undecided


def _tier_at(position: int, tiers: Sequence) -> str | None:
    """The tier that seat number `position` (1-based, in rank order) belongs to."""
    end = 0
    for tier in tiers:
        end += _get(tier, "seats")
        if position <= end:
            return _get(tier, "key")
    return None


def _spans(first: int, last: int, tiers: Sequence) -> tuple[tuple[str | None, int], ...]:
    spans: dict[str | None, int] = {}
    for position in range(first, last + 1):
        key = _tier_at(position, tiers)
        spans[key] = spans.get(key, 0) + 1
    return tuple(spans.items())


def _by_rank(rows: list[Ranked], tiers: Sequence) -> tuple[dict[str, str | None], list[Straddle]]:
    """Seats in rank order: slug → tier, and the ties no rank order can place (left out)."""
    placed: dict[str, str | None] = {}
    straddles: list[Straddle] = []
    groups: dict[int, list[str]] = {}
    for row in rows:
        if row.rank is None:
            placed[row.slug] = None
        else:
            groups.setdefault(row.rank, []).append(row.slug)
    for first, slugs in groups.items():
        spans = _spans(first, first + len(slugs) - 1, tiers)
        if len(spans) > 1:
            straddles.append(Straddle(first, tuple(slugs), spans))
        else:
            placed.update({s: spans[0][0] for s in slugs})
    return placed, straddles


def _decision_problems(decisions: Mapping[str, Decision], rows: list[Ranked], tiers: Sequence,
                       placed: dict[str, str | None]) -> dict[str, str]:
    slugs = {r.slug for r in rows}
    keys = {_get(t, "key") for t in tiers}
    problems: dict[str, str] = {}
    for case, decision in decisions.items():
        if case not in slugs:
            problems[case] = f"本评审没有案例“{case}”。"
        elif decision.tier is not None and decision.tier not in keys:
            problems[case] = f"本评审没有等次“{decision.tier}”。"
        elif not (decision.reason or "").strip():
            problems[case] = "调整名次结果须写明理由。"
        elif case in placed and placed[case] == decision.tier:
            problems[case] = "按名次已是这个结果，无需调整。"
    return problems


def _seat_problems(final: dict[str, str | None], tiers: Sequence) -> dict[str, str]:
    problems: dict[str, str] = {}
    for tier in tiers:
        key, seats = _get(tier, "key"), _get(tier, "seats")
        n = sum(1 for t in final.values() if t == key)
        if n > seats:
            problems[key] = f"“{_get(tier, 'name')}”有 {seats} 个名额，决定后有 {n} 个案例。"
    return problems


def fill_seats(rows: list[Ranked], tiers: Sequence,
               decisions: Mapping[str, Decision] | None = None) -> Outcome:
    """Tiers filled in rank order (the first tier takes the first `seats` places, then the
    next), overridden by the organizer's decisions, each kept with its reason.

    A tie across a boundary is left undecided and reported, never cut by case order: which of
    two equal cases is 优秀 is the chairs' decision, not the file's order. Decisions are refused
    whole (unknown case or tier, no reason, one that changes nothing, a tier over its seats),
    so a refused decision leaves the previous outcome standing. Seats left empty are allowed:
    the chairs may leave a place unfilled."""
    decisions = decisions or {}
    placed, straddles = _by_rank(rows, tiers)
    problems = _decision_problems(decisions, rows, tiers, placed)
    final = {**placed, **{c: d.tier for c, d in decisions.items()}}
    if not problems:
        problems = _seat_problems(final, tiers)
    if problems:
        raise BadDecision(problems)
    placements = tuple(
        Placement(r.slug, r.score, r.rank, r.tied, placed.get(r.slug), final.get(r.slug),
                  r.slug in placed or r.slug in decisions)
        for r in rows)
    departures = tuple(
        Departure(r.slug, r.rank, placed.get(r.slug), decisions[r.slug].tier, decisions[r.slug].reason.strip(),
                  r.slug not in placed)
        for r in rows if r.slug in decisions)
    return Outcome(placements, tuple(straddles), departures)


# ---------------------------------------------------------------- what the organizer decides with

@dataclass(frozen=True)
class Spread:
    juror: str
    cases: int
    mean_offset: Fraction | None  # mean of (their score − the case's expert score)


def juror_spread(scores: Mapping[str, Mapping[str, Fraction]],
                 expert: Mapping[str, Fraction | None]) -> list[Spread]:
    """How far each juror sits above (+) or below (−) the panel, over the cases they scored.

    `scores` is case → juror → that juror's score; jurors come in the order first met. Shown
    as it is, not used to adjust anything: a juror who drew the strong cases would be pulled
    down by a normalisation, and the chairs can see an outlier and decide for themselves."""
    offsets: dict[str, list[Fraction]] = {}
    for case, by_juror in scores.items():
        for juror, score in by_juror.items():
            offsets.setdefault(juror, [])
            if expert.get(case) is not None:
                offsets[juror].append(Fraction(score) - expert[case])
    return [Spread(j, len(o), _mean(o) if o else None) for j, o in offsets.items()]


def criterion_means(criteria: Sequence, sheets: Mapping[str, Sequence[Mapping[str, int]]]
                    ) -> dict[str, dict[str, Fraction | None]]:
    """Case → criterion key → the jurors' mean mark as a percentage of that criterion's max,
    for the results chart. A plain mean over every juror, untrimmed: trimming per criterion
    would drop different jurors on each bar, and the chart shows where a case is strong, not
    its score (which the rule text states)."""
    out: dict[str, dict[str, Fraction | None]] = {}
    for case, marks in sheets.items():
        out[case] = {}
        for c in criteria:
            key = _get(c, "key")
            values = [Fraction(m[key], _get(c, "max")) * HUNDRED for m in marks if key in m]
            out[case][key] = _mean(values) if values else None
    return out


# ---------------------------------------------------------------- the printed rule

def _percent(value: Fraction) -> str:
    shown = display(value * HUNDRED)
    return f"{shown.normalize():f}%"


_AGGREGATE_TEXT = {
    "trimmed_mean": f"{TRIM_FROM} 位及以上评委时去掉一个最高分和一个最低分后取平均（不足 {TRIM_FROM} 位时取平均）",
    "mean": "取全部评委的平均分",
    "median": "取全部评委的中位数（评委人数为偶数时取中间两个分数的平均）",
}

_PUBLIC_TEXT = {
    "leader": "网络投票得分：参评案例中得票最多者为 100 分，其余为得票数 ÷ 最高得票数 × 100",
    "share": "网络投票得分：得票数 ÷ 投票人数 × 100",
}


def _criteria_text(criteria: Sequence) -> str:
    parts = [f"{_get(c, 'name')}（权重 {_number(_get(c, 'weight'))}，满分 {_get(c, 'max')}）" for c in criteria]
    return "评分项：" + "、".join(parts) + "。"


def _number(value) -> str:
    """A weight as its author wrote it: 3, 0.25."""
    value = exact(value)
    if value.denominator == 1:
        return str(value.numerator)
    return f"{(Decimal(value.numerator) / value.denominator).normalize():f}"


def _tiers_text(tiers: Sequence) -> str:
    parts = [f"{_get(t, 'name')} {_get(t, 'seats')} 名" for t in tiers]
    return ("名额按名次依次确定：" + "、".join(parts) + "；等次边界出现并列，或组织方调整按名次的结果时，"
            "由组织方决定并写明理由，随结果公布。")


def rule_text(review) -> str:
    """The rule as printed with the results, in Chinese, from the review's own settings, so the
    page can never state one rule while the code applies another."""
    aggregate = _get(review, "aggregate")
    text = f"专家评分：每位评委按权重折算为百分制，{_AGGREGATE_TEXT[aggregate]}；"
    weight = _get(review, "public_weight") if _get(review, "campaign") else None
    if weight is None:
        text += "按专家评分排名，同分并列。"
    else:
        share = exact(weight)
        text += (f"{_PUBLIC_TEXT[_get(review, 'public_score') or 'leader']}；"
                 f"最终得分 = 网络投票得分 × {_percent(share)} + 专家评分 × {_percent(1 - share)}；"
                 "按最终得分排名，同分并列。")
    if _get(review, "criteria"):
        text += _criteria_text(_get(review, "criteria"))
    if _get(review, "tiers"):
        text += _tiers_text(_get(review, "tiers"))
    return text
