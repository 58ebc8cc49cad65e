"""The review file (评审文件): one review as JSON, read and checked before anything is stored.

Pure: no database. Checks what the file alone can show; what needs the database (the linked
campaign and the brands exist, a juror's account has the juror role) is the loader's. Every
problem is collected and reported at once, keyed by its field (`criteria[1].weight`), as
campaigns.rule_problems does for the campaign form, so whoever fixes a file fixes it in one go.
Unknown fields are refused too: a misspelt `public_wieght` would otherwise vanish and leave a
review scored by a rule nobody wrote.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .errors import InvalidReview
from .scoring import AGGREGATES, PUBLIC_RULES

SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")  # the catalog's slug (data/brands.schema.json)
SLUG_MAX = 80
KEY_RE = re.compile(r"^[a-z][a-z0-9_]*$")  # a score sheet's CSV column name
KEY_MAX = 32
SHEET_COLUMNS = ("juror", "case", "comment")  # the sheet's own columns; no criterion may take one
USERNAME_MAX = 40  # accounts.create_user
SUMMARY_MAX = 2000
TITLE_MAX = 200
NAME_MAX = 100
INTRO_MAX = 5000
MARK_MAX = 1000  # a score sheet is filled by hand; a max beyond this is a typo

FIELDS = {
    "review": {"slug", "title", "intro", "criteria", "tiers", "aggregate", "campaign", "public_weight",
               "public_score", "jurors", "cases"},
    "criteria": {"key", "name", "weight", "max"},
    "tiers": {"key", "name", "seats"},
    "jurors": {"username", "name", "unit"},
    "cases": {"slug", "title", "unit", "summary", "brand"},
}


@dataclass(frozen=True)
class Criterion:
    key: str
    name: str
    weight: int | float  # as written; scoring.exact reads 0.3 as 3/10
    max: int


@dataclass(frozen=True)
class Tier:
    key: str
    name: str
    seats: int


@dataclass(frozen=True)
class Juror:
    username: str
    name: str
    unit: str


@dataclass(frozen=True)
class Case:
    slug: str
    title: str
    unit: str
    summary: str
    brand: str | None


@dataclass(frozen=True)
class Review:
    slug: str
    title: str
    intro: str
    criteria: tuple[Criterion, ...]
    tiers: tuple[Tier, ...]
    aggregate: str
    campaign: str | None
    public_weight: int | float | None
    public_score: str | None
    jurors: tuple[Juror, ...]
    cases: tuple[Case, ...]


class _Problems(dict):
    """Field → its first problem; later ones on the same field would only repeat the fix."""

    def add(self, field: str, text: str) -> None:
        self.setdefault(field, text)


# ---------------------------------------------------------------- values

def is_number(value) -> bool:
    """JSON numbers only: true is not 1, and NaN or Infinity (which Python's json reads) are
    not numbers a weight can be."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(p: _Problems, obj: dict, name: str, path: str, limit: int, required: bool = True) -> str:
    value = obj.get(name)
    if value is None:
        if required:
            p.add(path, "必填。")
        return ""
    if not isinstance(value, str):
        p.add(path, "应为文字。")
        return ""
    if required and not value.strip():
        p.add(path, "不能为空。")
    elif len(value) > limit:
        p.add(path, f"最多 {limit} 个字符，现有 {len(value)} 个。")
    return value


def _slug(p: _Problems, obj: dict, name: str, path: str, required: bool = True) -> str | None:
    value = obj.get(name)
    if value is None:
        if required:
            p.add(path, "必填。")
        return None
    if not isinstance(value, str) or not SLUG_RE.match(value) or len(value) > SLUG_MAX:
        p.add(path, f"网址标识只能由小写字母、数字和连字符组成（不以连字符开头或结尾），最长 {SLUG_MAX} 个字符。")
        return None
    return value


def _unknown(p: _Problems, obj: dict, kind: str, path: str) -> None:
    for name in obj:
        if name not in FIELDS[kind]:
            p.add(f"{path}{name}", "未知字段（请检查拼写）。")


def _items(p: _Problems, doc: dict, kind: str, required: bool) -> list[tuple[str, dict]]:
    """The objects of a list field, each with its path; a non-object item is reported."""
    value = doc.get(kind)
    if value is None:
        if required:
            p.add(kind, "必填，至少一项。")
        return []
    if not isinstance(value, list):
        p.add(kind, "应为列表。")
        return []
    if required and not value:
        p.add(kind, "至少一项。")
    items = []
    for i, item in enumerate(value):
        path = f"{kind}[{i}]"
        if isinstance(item, dict):
            _unknown(p, item, kind, path + ".")
            items.append((path, item))
        else:
            p.add(path, "应为对象。")
    return items


def _unique(p: _Problems, values: list[tuple[str, str | None]], what: str) -> None:
    seen: set[str] = set()
    for path, value in values:
        if value is None:
            continue
        if value in seen:
            p.add(path, f"{what}“{value}”重复。")
        seen.add(value)


# ---------------------------------------------------------------- parts

def _criterion(p: _Problems, path: str, item: dict) -> Criterion:
    key = item.get("key")
    if not isinstance(key, str) or not KEY_RE.match(key) or len(key) > KEY_MAX:
        p.add(f"{path}.key", f"评分项标识须以小写字母开头，只含小写字母、数字和下划线，最长 {KEY_MAX} 个字符"
                             "（它是评分表的列名）。")
        key = None
    elif key in SHEET_COLUMNS:
        p.add(f"{path}.key", f"“{key}”是评分表自带的列名，请换一个评分项标识。")
    name = _text(p, item, "name", f"{path}.name", NAME_MAX)
    weight = item.get("weight")
    if not is_number(weight) or weight <= 0:
        p.add(f"{path}.weight", "权重须为大于 0 的数。")
    top = item.get("max")
    if not is_count(top) or not 1 <= top <= MARK_MAX:
        p.add(f"{path}.max", f"满分须为 1 到 {MARK_MAX} 之间的整数。")
    return Criterion(key, name, weight, top)


def _tier(p: _Problems, path: str, item: dict, review_slug: str | None) -> Tier:
    key = item.get("key")
    if not isinstance(key, str) or not SLUG_RE.match(key):
        p.add(f"{path}.key", "等次标识只能由小写字母、数字和连字符组成（公布后它是目录列表网址的一部分）。")
        key = None
    elif review_slug and len(review_slug) + 1 + len(key) > SLUG_MAX:
        p.add(f"{path}.key", f"评审标识加等次标识（{review_slug}-{key}）超过 {SLUG_MAX} 个字符。")
    name = _text(p, item, "name", f"{path}.name", NAME_MAX)
    seats = item.get("seats")
    if not is_count(seats) or seats < 1:
        p.add(f"{path}.seats", "名额须为正整数。")
    return Tier(key, name, seats)


def seat_problems(tiers: list[Tier] | tuple[Tier, ...], cases: int) -> dict[str, str]:
    """Seats against the cases there are. The file checks it against the cases it lists; the
    move to scoring must check it again against the accepted cases, which nominations change."""
    problems: dict[str, str] = {}
    if not all(is_count(t.seats) for t in tiers):
        return problems
    for i, tier in enumerate(tiers):
        if tier.seats > cases:
            problems[f"tiers[{i}].seats"] = f"“{tier.name}”有 {tier.seats} 个名额，超过案例数 {cases}。"
    total = sum(t.seats for t in tiers)
    if not problems and total > cases:
        problems["tiers"] = f"各等次名额合计 {total} 个，超过案例数 {cases}。"
    return problems


def _public(p: _Problems, doc: dict) -> tuple[str | None, int | float | None, str | None]:
    """A public weight only means something with a campaign, and a campaign needs one: a
    default would choose the balance between the public and the panel for the organizer."""
    campaign = _slug(p, doc, "campaign", "campaign", required=False)
    weight, rule = doc.get("public_weight"), doc.get("public_score")
    if doc.get("campaign") is None:
        if weight is not None:
            p.add("public_weight", "只有关联了网络投票（campaign）时才能设定网络投票权重。")
        if rule is not None:
            p.add("public_score", "只有关联了网络投票（campaign）时才能设定网络投票得分规则。")
        return None, None, None
    if weight is None:
        p.add("public_weight", "关联了网络投票时须设定网络投票权重（0 到 1 之间，如 0.3）。")
    elif not is_number(weight) or not 0 <= weight <= 1:
        p.add("public_weight", "网络投票权重须为 0 到 1 之间的数（如 0.3 表示 30%）。")
    if rule is None:
        rule = "leader"
    elif rule not in PUBLIC_RULES:
        p.add("public_score", "网络投票得分规则只能是 leader（以最高得票为 100 分）或 share（得票数 ÷ 投票人数）。")
    return campaign, weight, rule


def _juror(p: _Problems, path: str, item: dict) -> Juror:
    username = item.get("username")
    if (not isinstance(username, str) or not username.strip() or username != username.strip()
            or len(username) > USERNAME_MAX or not username.isprintable()):
        p.add(f"{path}.username", f"用户名不能为空，首尾不能有空格，最多 {USERNAME_MAX} 个字符。")
        username = None
    name = _text(p, item, "name", f"{path}.name", NAME_MAX)
    unit = _text(p, item, "unit", f"{path}.unit", NAME_MAX, required=False)
    return Juror(username, name, unit)


def _case(p: _Problems, path: str, item: dict, with_campaign: bool) -> Case:
    """With a campaign every case names its brand: a case without one would get 0 public
    points without anybody having decided so."""
    slug = _slug(p, item, "slug", f"{path}.slug")
    title = _text(p, item, "title", f"{path}.title", TITLE_MAX)
    unit = _text(p, item, "unit", f"{path}.unit", NAME_MAX)
    summary = _text(p, item, "summary", f"{path}.summary", SUMMARY_MAX, required=False)
    brand = _slug(p, item, "brand", f"{path}.brand", required=False)
    if with_campaign and item.get("brand") is None:
        p.add(f"{path}.brand", "关联了网络投票时，每个案例须写明对应的目录条目（brand），网络投票得分由它的得票算出。")
    return Case(slug, title, unit, summary, brand)


# ---------------------------------------------------------------- the file

def parse_review(doc: object) -> Review:
    """The checked review, or InvalidReview listing every problem of the file."""
    if not isinstance(doc, dict):
        raise InvalidReview({"$": "评审文件应是一个 JSON 对象。"})
    p = _Problems()
    _unknown(p, doc, "review", "")
    slug = _slug(p, doc, "slug", "slug")
    title = _text(p, doc, "title", "title", TITLE_MAX)
    intro = _text(p, doc, "intro", "intro", INTRO_MAX, required=False)
    criteria = tuple(_criterion(p, path, item) for path, item in _items(p, doc, "criteria", required=True))
    _unique(p, [(f"criteria[{i}].key", c.key) for i, c in enumerate(criteria)], "评分项标识")
    campaign, weight, rule = _public(p, doc)
    case_items = _items(p, doc, "cases", required=False)
    cases = tuple(_case(p, path, item, doc.get("campaign") is not None) for path, item in case_items)
    _unique(p, [(f"{path}.slug", c.slug) for (path, _), c in zip(case_items, cases)], "案例标识")
    _unique(p, [(f"{path}.brand", c.brand) for (path, _), c in zip(case_items, cases)], "目录条目")
    tier_items = _items(p, doc, "tiers", required=True)
    tiers = tuple(_tier(p, path, item, slug) for path, item in tier_items)
    _unique(p, [(f"{path}.key", t.key) for (path, _), t in zip(tier_items, tiers)], "等次标识")
    if cases:
        for field, text in seat_problems(tiers, len(cases)).items():
            p.add(field, text)
    aggregate = doc.get("aggregate", "trimmed_mean")
    if aggregate not in AGGREGATES:
        p.add("aggregate", "汇总方式只能是 trimmed_mean（5 位及以上评委时去掉最高分和最低分）、mean（平均）或 median（中位数）。")
    juror_items = _items(p, doc, "jurors", required=False)
    jurors = tuple(_juror(p, path, item) for path, item in juror_items)
    _unique(p, [(f"{path}.username", j.username) for (path, _), j in zip(juror_items, jurors)], "评委用户名")
    if p:
        raise InvalidReview(dict(p))
    return Review(slug, title, intro, criteria, tiers, aggregate, campaign, weight, rule, jurors, cases)
