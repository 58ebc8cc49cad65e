"""The audit log in Chinese for the staff page: what each action code means, and its detail
as labelled words instead of raw JSON. The stored codes stay as they are (stable, and what
a script reading the database filters on)."""

from __future__ import annotations

import json
import re

from .. import clock
from ..campaigns import STATUS_LABELS
from ..reviews import STAGE_LABELS

ACTIONS = {
    "login": "登录", "login.failed": "登录失败", "login.throttled": "登录受限（尝试过多）", "logout": "退出登录",
    "user.add": "创建账号", "user.create": "创建账号", "user.disable": "停用账号", "user.enable": "启用账号", "user.passwd": "重设密码",
    "campaign.create": "创建评选", "campaign.times": "修改评选时间", "campaign.schedule_demo": "安排演示评选",
    "campaign.open": "开启投票", "campaign.closed": "结束投票", "campaign.close": "结束投票",
    "campaign.announced": "揭晓结果", "campaign.announce": "揭晓结果", "codes.create": "生成投票码",
    "tally.decide_tie": "决定并列",
    "review.load": "载入评审", "review.stage": "评审进入新阶段", "review.publish_at": "设定评审发布时间",
    "review.nominate": "提交推荐案例", "review.nomination_edit": "修改推荐案例", "review.accept": "初审通过",
    "review.reject": "初审未通过", "review.score": "评委评分", "review.conflict": "评委回避",
    "review.sheets": "录入纸质评分表", "review.decide": "评审决定", "review.publish": "发布评审结果",
}
FIELDS = {
    "was": "原状态", "from": "原阶段", "to": "新阶段", "count": "数量", "format": "格式", "title": "标题",
    "days": "天数", "in": "入选", "out": "未入选", "publish_at": "发布时间", "lines": "行数", "juror": "评委",
    "reason": "理由", "tier": "等次", "lists": "榜单", "opens_at": "开始时间", "closes_at": "截止时间",
    "announce_at": "揭晓时间",
}
VALUES = {**STATUS_LABELS, **{k: v for k, v in STAGE_LABELS.items() if k not in STATUS_LABELS},
          "csv": "CSV 表格", "slips": "纸条", "account": "账号", "address": "网络地址"}


def action(code: str) -> str:
    return ACTIONS.get(code, code)


def detail(text: str | None) -> str:
    """`{"was": "open"}` → `原状态：投票进行中`; anything unexpected is shown as it is stored."""
    try:
        data = json.loads(text or "{}")
    except ValueError:
        return text or ""
    if not isinstance(data, dict):
        return str(data)
    return "；".join(f"{FIELDS.get(k, k)}：{_change(v) if k in TIMES else _value(v)}" for k, v in data.items())


TIMES = ("opens_at", "closes_at", "announce_at", "publish_at")
_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}([+-]\d{2}:\d{2}|Z)?$")


def _change(v) -> str:
    """A time field's [before, after] as `旧 → 新`, in Beijing time."""
    if isinstance(v, list) and len(v) == 2:
        return f"{_value(v[0]) if v[0] else '（空）'} → {_value(v[1]) if v[1] else '（空）'}"
    return _value(v)


def _value(v) -> str:
    if isinstance(v, str) and _ISO_TIME.match(v):
        return clock.local_text(clock.from_db(v))
    if isinstance(v, list):
        return "、".join(_value(x) for x in v)
    if isinstance(v, dict):
        return "，".join(f"{FIELDS.get(k, k)} {_value(x)}" for k, x in v.items())
    if isinstance(v, bool):
        return "是" if v else "否"
    return VALUES.get(v, str(v)) if isinstance(v, str) else str(v)
