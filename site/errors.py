"""Domain errors: every one the rules raise, each with its status, code and Chinese message.

Rules modules raise these; handlers turn them into a status and a page or JSON body, and
branch on the class, never on the text. The code is the API's `{"error": code}` and stays
stable; the message is what people read, so a raise may pass a more precise one (with the
names and numbers of the case) in place of the class's default.
"""

from __future__ import annotations


class BrandvoteError(Exception):
    status = 400
    code = "bad_request"
    message = "请求有误。"

    def __init__(self, message: str | None = None):
        if message is not None:
            self.message = message
        super().__init__(self.message)


# ---------------------------------------------------------------- requests and the catalog

class NotFound(BrandvoteError):
    status = 404
    code = "not_found"
    message = "没有找到这个页面。"


class BadQuery(BrandvoteError):
    status = 400
    code = "bad_query"
    message = "查询参数有误。"


class BadChannel(BrandvoteError):
    status = 400
    code = "bad_channel"
    message = "渠道参数 ch 只能由小写字母、数字、连字符和下划线组成（以字母或数字开头，最长 32 个字符）。"


class BadQrSize(BrandvoteError):
    status = 400
    code = "bad_qr_size"
    message = "二维码尺寸参数 size 有误。"


class QrBusy(BrandvoteError):
    status = 503
    code = "qr_busy"
    message = "二维码生成繁忙，请稍后再试。"


class InvalidCatalog(BrandvoteError):
    """A brands.json that breaks the schema or refers to missing entries; nothing is changed.

    A file refused by a campaign rule keeps that rule's status (a locked campaign is a 409),
    so `status` may be given."""

    status = 422
    code = "invalid_catalog"
    message = "数据文件有误，未做任何修改。"

    def __init__(self, problems: list[str], status: int | None = None):
        self.problems = problems
        if status is not None:
            self.status = status
        super().__init__("数据文件有误，未做任何修改：\n" + "\n".join(problems))


class InvalidBrand(BrandvoteError):
    status = 422
    code = "invalid_brand"
    message = "请修改标出的字段后再保存。"

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__()


class BrandInCampaign(BrandvoteError):
    status = 409
    code = "brand_in_campaign"
    message = "该条目是评选的候选项目，不能删除；可以取消发布。"


# ---------------------------------------------------------------- staff accounts

class SignInFailed(BrandvoteError):
    status = 400
    code = "sign_in_failed"
    message = "用户名或密码不正确。"


class Throttled(BrandvoteError):
    status = 429
    code = "throttled"
    message = "登录失败次数过多，请 15 分钟后再试。"


class WeakPassword(BrandvoteError):
    status = 400
    code = "weak_password"
    message = "这个密码太容易被猜到。"


class BadRole(BrandvoteError):
    status = 400
    code = "bad_role"
    message = "角色无效。"


class BadUsername(BrandvoteError):
    status = 400
    code = "bad_username"
    message = "用户名不能为空，最多 40 个字符。"


class UserExists(BrandvoteError):
    status = 409
    code = "user_exists"
    message = "用户已存在。"


class NoSuchUser(BrandvoteError):
    status = 404
    code = "no_such_user"
    message = "没有这个用户。"


class CannotDisableSelf(BrandvoteError):
    status = 400
    code = "cannot_disable_self"
    message = "不能停用自己的账号。"


class UnknownAction(BrandvoteError):
    status = 400
    code = "unknown_action"
    message = "未知操作。"


# ---------------------------------------------------------------- campaigns

class RulesFrozen(BrandvoteError):
    status = 409
    code = "rules_frozen"
    message = "已有选票，候选项目、选择数量和投票人范围不能再修改。"


class CampaignLocked(BrandvoteError):
    """A change the campaign's state forbids: its window has passed or its results are out."""

    status = 409
    code = "campaign_locked"
    message = "评选当前的状态不允许这项修改。"


class NotOrganizer(BrandvoteError):
    status = 403
    code = "not_organizer"
    message = "评选由组织方管理：编辑不能通过导入新增或修改评选（文件中未改动的评选可以保留）。"


class SlugTaken(BrandvoteError):
    status = 409
    code = "slug_taken"
    message = "这个网址标识已被其他评选使用，请换一个。"


class CampaignClosed(BrandvoteError):
    status = 409
    code = "campaign_closed"
    message = "评选已结束，不能重新开启。"


class ClosesInPast(BrandvoteError):
    status = 409
    code = "closes_in_past"
    message = "截止时间已过，请先修改截止时间。"


class CannotClose(BrandvoteError):
    status = 409
    code = "not_open"
    message = "评选当前不在投票中，不能结束。"


class NotClosed(BrandvoteError):
    status = 409
    code = "not_closed"
    message = "只有投票结束后才能揭晓结果。"


class CodesNotNeeded(BrandvoteError):
    status = 400
    code = "codes_not_needed"
    message = "该评选为公开投票，不需要投票码；请先把投票人范围设为“凭码投票”。"


# ---------------------------------------------------------------- ballots

class BallotRejected(BrandvoteError):
    """A rule was broken; nothing is stored. The page is re-rendered with the ticks kept."""

    status = 422
    code = "invalid_ballot"
    message = "选票不符合本评选的规则。"


class AlreadyVoted(BrandvoteError):
    status = 409
    code = "already_voted"
    message = "您已经投过票，选票提交后不可更改。"


class NotOpen(BrandvoteError):
    status = 403
    code = "campaign_not_open"
    message = "现在不在投票时间内。"


class RateLimited(BrandvoteError):
    status = 429
    code = "rate_limited"
    message = "来自同一网络的选票过多，请稍后再试。"

    def __init__(self, message: str | None, retry_after: int):
        self.retry_after = retry_after
        super().__init__(message)


# The ballot POST's own refusals, before any rule is asked: each re-renders the ballot with
# the voter's ticks kept, so the message says what happened and what to do next.

class BadBallotForm(BrandvoteError):
    status = 400
    code = "bad_form"
    message = "选票未保存：提交的表单格式有误，请重新选择后再点一次提交。"


class BadChoiceFormat(BrandvoteError):
    status = 422
    code = "bad_choice"
    message = "选票未保存：提交的选项格式有误，请刷新页面后重新选择。"


class CrossSiteBallot(BrandvoteError):
    status = 403
    code = "cross_site"
    message = "选票未保存：这次提交来自其他网站。请在本站的投票页面上投票。"


class VoterUnknown(BrandvoteError):
    status = 403
    code = "voter_unknown"
    message = "选票未保存：无法识别您的设备。请允许浏览器保存 Cookie，刷新页面后再投票。"


class FormExpired(BrandvoteError):
    status = 403
    code = "form_expired"
    message = "选票未保存：页面打开太久已过期。您的选择已保留，请再点一次提交。"


class FormTooFast(BrandvoteError):
    status = 403
    code = "form_too_fast"
    message = "选票未保存：页面刚刚打开。您的选择已保留，请确认后再点一次提交。"


class FormInvalid(BrandvoteError):
    status = 403
    code = "form_invalid"
    message = "选票未保存：表单校验失败（页面已失效，或来自其他网站）。您的选择已保留，请再点一次提交。"


class WriterBusy(BrandvoteError):
    status = 503
    code = "busy"
    message = "选票未保存：投票人数较多，服务器繁忙。您的选择已保留，请稍后再点一次提交。"


# ---------------------------------------------------------------- the tally

class NotAnnounced(BrandvoteError):
    status = 403
    code = "not_announced"
    message = "结果尚未揭晓。"


class StillVoting(BrandvoteError):
    status = 409
    code = "voting_not_over"
    message = "投票仍在进行（含截止后的宽限期），不能计票。"


class AlreadyAnnounced(BrandvoteError):
    status = 409
    code = "already_announced"
    message = "结果已揭晓，不能再更改。"


class NoTie(BrandvoteError):
    status = 409
    code = "no_tie"
    message = "入选名额边界没有并列，无需决定。"


class BadTieChoice(BrandvoteError):
    status = 422
    code = "bad_tie_choice"
    message = "请从并列的项目中选出剩余的入选名额。"


class TieUndecided(BrandvoteError):
    """The cut-off tie must be decided before announcing; `tied` names the slugs, so each
    caller can say how to decide it where it is (the CLI's flag, the console's form)."""

    status = 409
    code = "tie_undecided"
    message = "入选名额边界有并列未决定。"

    def __init__(self, tied: list[str], message: str | None = None):
        self.tied = tied
        super().__init__(message)


class BadLedger(BrandvoteError):
    status = 400
    code = "bad_ledger"
    message = "不是有效的选票账本。"


class LedgerMismatch(BrandvoteError):
    status = 500
    code = "ledger_mismatch"
    message = "计票与账本不一致，已停止。请联系技术人员。"


# ---------------------------------------------------------------- reviews (评审)

def _listed(head: str, problems: dict[str, str]) -> str:
    return head + "\n" + "\n".join(f"{field}：{text}" for field, text in problems.items())


class InvalidReview(BrandvoteError):
    """A review file that breaks a rule; nothing is changed. `problems` maps each field (a path
    such as `criteria[0].weight`) to its first problem, so every one is reported at once."""

    status = 400
    code = "invalid_review"
    message = "评审文件有误，未做任何修改。"

    def __init__(self, problems: dict[str, str]):
        self.problems = problems
        super().__init__(_listed("评审文件有误，未做任何修改：", problems))


class BadScore(BrandvoteError):
    """A juror's marks that break the review's criteria; `problems` maps criterion key → problem,
    so the score sheet can mark each field and a paper sheet's row can name each column."""

    status = 422
    code = "bad_score"
    message = "评分不符合本评审的评分项，未保存。"

    def __init__(self, problems: dict[str, str]):
        self.problems = problems
        super().__init__(_listed("评分不符合本评审的评分项，未保存：", problems))


class BadDecision(BrandvoteError):
    """The organizer's placement of cases in tiers that cannot stand (an unknown case or tier, no
    reason, more cases than seats); `problems` maps the case or tier to its problem."""

    status = 422
    code = "bad_decision"
    message = "评审决定有误，未做任何修改。"

    def __init__(self, problems: dict[str, str]):
        self.problems = problems
        super().__init__(_listed("评审决定有误，未做任何修改：", problems))


class Problems(BrandvoteError):
    """An error listing every problem at once (field or line → problem), under `head`."""

    status = 422
    code = "problems"
    message = "有误，未做任何修改。"
    head = "有误，未做任何修改："

    def __init__(self, problems: dict[str, str]):
        self.problems = problems
        super().__init__(_listed(self.head, problems))


class BadUnit(BrandvoteError):
    status = 422
    code = "bad_unit"
    message = "单位名称最多 100 个字符，不能含控制字符。"


class NoSuchReview(NotFound):
    code = "no_such_review"
    message = "没有找到这个评审。"


class NoSuchCase(NotFound):
    code = "no_such_case"
    message = "本评审没有这个案例。"


class WrongStage(BrandvoteError):
    """The review's stage does not allow this (a nomination after nominating, a score after
    scoring, a decision before deciding); the message names the stage and what it allows."""

    status = 409
    code = "wrong_stage"
    message = "评审当前阶段不允许这项操作。"


class StageRefused(Problems):
    """A stage move that cannot be made yet; `problems` lists everything in its way."""

    status = 409
    code = "stage_refused"
    message = "评审阶段未能变更。"

    head = "评审阶段未能变更："


class ReviewLocked(Problems):
    """A review file that changes what the stage has frozen; `problems` lists each change."""

    status = 409
    code = "review_locked"
    message = "评审已进入后续阶段，文件中的改动不能生效，未做任何修改。"

    head = "评审已进入后续阶段，这些改动不能生效，未做任何修改："


class NotJuror(BrandvoteError):
    status = 403
    code = "not_juror"
    message = "您不是本评审的评委。"


class CaseConflict(BrandvoteError):
    """Said to the juror without naming the case's details: a conflicted juror sees nothing of it."""

    status = 403
    code = "case_conflict"
    message = "您与这个案例有利益关系（同一单位或已声明回避），不能评分。"


class NotNominator(BrandvoteError):
    status = 403
    code = "not_nominator"
    message = "只有推荐单位账号才能推荐案例，且只能修改本单位推荐的案例。"


class BadNomination(Problems):
    """A nomination form or file that breaks a rule; `problems` maps each field to its problem."""

    status = 422
    code = "bad_nomination"
    message = "推荐材料有误，未保存。"

    head = "推荐材料有误，未保存："


class BadSheet(Problems):
    """A paper score sheet (CSV) with bad lines; `problems` maps `第 N 行` to what is wrong, every
    line at once, and nothing of the file is stored."""

    status = 422
    code = "bad_sheet"
    message = "评分表有误，未做任何修改。"

    head = "评分表有误，未做任何修改："


class PublicScoreUnavailable(BrandvoteError):
    """A combined score needs the linked campaign's counts, which exist for nobody before its
    announcement: the review waits rather than open the campaign's embargo."""

    status = 409
    code = "public_score_unavailable"
    message = "关联的网络投票尚未揭晓，不能计算综合得分。"


class ReviewNotPublished(BrandvoteError):
    status = 403
    code = "review_not_published"
    message = "评审结果尚未公布。"
