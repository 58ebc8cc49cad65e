"""The organizer's review console (评审): the reviews, the review file, the stage moves,
screening with the cases' attachments, scoring progress, and from deciding on the results,
the juror spread, the decisions and the publication.

Every endpoint wears `@requires("organizer")`, which checks the CSRF token of every POST. The
rules live in reviews, nominations, review_progress, review_results and scoring; a handler
parses, calls one of them, and renders or redirects. Nothing score-derived is asked for before
deciding: the page calls review_results.organizer_results only from deciding on (the rule
would refuse anyway), and scoring progress counts sheets, never reads a mark.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from .. import clock, nominations, review_progress, review_results, reviews, scoring
from ..errors import BrandvoteError, InvalidReview, NoSuchCase
from ..web import forms
from .staff import NO_STORE, render, requires

NONE_TIER = "none"
DONE_MESSAGES = {"stage": "阶段已推进，已记入审计日志。", "publish_at": "公布时间已保存。", "screen": "初审结果已保存。",
                 "accept_all": "待初审的案例已全部通过。", "decide": "决定已记录，已记入审计日志。"}
CONFIRM_TEXT = {
    "nominating": "确定开始推荐吗？推荐单位即可提交案例。",
    "screening": "确定结束推荐、开始初审吗？推荐单位将不能再修改材料。",
    "scoring": "确定开始评分吗？开始后评分项、等次和案例不能再改，评委即可评分。",
    "deciding": "确定结束评分吗？评委将不能再修改评分；本页随后显示结果，供决定等次。",
    "published": "确定公布结果吗？公布后结果冻结，各等次成为目录列表，不能撤回。",
}
MOVE_LABELS = {"nominating": "开始推荐", "screening": "开始初审", "scoring": "开始评分", "deciding": "结束评分、进入决定",
               "published": "公布结果"}
CASE_STATES = {"nominated": "待初审", "accepted": "通过初审", "rejected": "未通过初审"}


# ---------------------------------------------------------------- helpers

def _review(request: Request) -> dict:
    db = request.state.store.db()
    return review_results.settle(db, reviews.review_by_slug(db, request.path_params["slug"]), request.state.now())


def _actor(request: Request) -> str:
    return request.state.user["username"]


def _back(request: Request, slug: str, done: str, anchor: str = "") -> Response:
    return RedirectResponse(f"{request.app.url_path_for('reviews:show', slug=slug)}?done={done}{anchor}",
                            status_code=303, headers=NO_STORE)


def _problems(exc: BrandvoteError) -> list[str]:
    """Every problem of a refusal, one line each (a Problems error lists them all)."""
    problems = getattr(exc, "problems", None) or {}
    if isinstance(problems, dict):
        return [f"{field}：{text}" for field, text in problems.items()]
    return [str(p) for p in problems]


def _head(exc: BrandvoteError) -> str:
    return exc.message.split("\n", 1)[0]


def _next_stage(stage: str) -> str | None:
    i = reviews.STAGES.index(stage)
    return reviews.STAGES[i + 1] if i + 1 < len(reviews.STAGES) else None


# ---------------------------------------------------------------- the list and the review file

def _list_page(request: Request, *, message: str | None = None, lines: list[str] | None = None,
               error: bool = False, status: int = 200) -> Response:
    db, now = request.state.store.db(), request.state.now()
    rows = []
    for review in reviews.list_reviews(db, now):
        states = {s: 0 for s in CASE_STATES}
        for case in reviews.cases_of(db, review["id"]):
            states[case["state"]] = states.get(case["state"], 0) + 1
        rows.append({**review, "states": states, "jurors": len(reviews.jurors_of(db, review["id"]))})
    return render(request, "admin/reviews/index.html", {
        "reviews": rows, "stage_labels": reviews.STAGE_LABELS, "case_states": CASE_STATES,
        "message": message, "lines": lines or [], "error": error}, status)


@requires("organizer")
def review_list(request: Request):
    return _list_page(request)


def _read_upload(form) -> object:
    """The uploaded file as JSON, or InvalidReview saying why not (as `review load` does)."""
    upload = form.get("file")
    if upload is None or isinstance(upload, str) or not upload.filename:
        raise InvalidReview({"file": "请选择要上传的评审文件（JSON）。"})
    data = upload.file.read()
    try:
        return json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise InvalidReview({"$": "文件不是 UTF-8 编码的文本。"})
    except json.JSONDecodeError as exc:
        raise InvalidReview({"$": f"不是有效的 JSON（第 {exc.lineno} 行第 {exc.colno} 列）：{exc.msg}"})


@requires("organizer")
def load(request: Request):
    db, now = request.state.store.db(), request.state.now()
    try:
        report = reviews.load_review(db, _read_upload(request.state.form), now, actor=_actor(request))
    except BrandvoteError as exc:
        return _list_page(request, message=_head(exc), lines=_problems(exc), error=True, status=exc.status)
    return _list_page(request, message="评审文件已载入，已记入审计日志。", lines=report.lines())


# ---------------------------------------------------------------- the review page

def _cases_context(db, review: dict) -> list[dict]:
    return [{**case, "attachments": nominations.attachments_of(db, case["id"]),
             "state_label": CASE_STATES.get(case["state"], case["state"])}
            for case in reviews.cases_of(db, review["id"])]


def _spread_plot(spread: list, names: dict[str, str]) -> dict:
    """Geometry of the juror spread plot: one bar per juror from the zero line, scaled to the
    largest offset (at least 5 points), drawn as SVG by the template."""
    width, left, right, row = 340, 140, 12, 28
    values = [float(scoring.display(s.mean_offset)) for s in spread if s.mean_offset is not None]
    span = max([5.0, *map(abs, values)])
    half = (width - left - right) / 2
    zero = left + half
    bars = []
    for i, s in enumerate(spread):
        shown = scoring.display(s.mean_offset)
        value = float(shown) if shown is not None else 0.0
        length = abs(value) / span * half
        bars.append({"name": names.get(s.juror, s.juror), "cases": s.cases, "y": 24 + i * row,
                     "x": zero - length if value < 0 else zero, "w": max(length, 1) if shown is not None else 0,
                     "label": "—" if shown is None else f"{shown:+}", "negative": value < 0})
    return {"width": width, "height": 32 + len(spread) * row, "zero": zero, "span": f"{span:g}",
            "left_x": left, "right_x": width - right, "bars": bars}


def _results_context(db, review: dict, now) -> dict:
    """From deciding on only: the organizer's results and what the decision is made with."""
    empty = {"res": None, "results_error": None}
    if not reviews.at_least(review, "deciding", now):
        return empty
    try:
        res = review_results.organizer_results(db, review["slug"], now)
    except BrandvoteError as exc:
        return {**empty, "results_error": exc.message}
    names = {j["username"]: j["name"] or j["username"] for j in reviews.jurors_of(db, review["id"])}
    tiers = {t["key"]: t["name"] for t in review["tiers"]}
    rows = [{"p": p, "case": res.cases[p.slug], "final": scoring.display(p.score),
             "expert": scoring.display(res.expert[p.slug]),
             "public": scoring.display(res.public[p.slug]) if res.public else None,
             "jurors": len(res.sheets[p.slug]), "by_rank": tiers.get(p.by_rank), "tier": tiers.get(p.tier)}
            for p in res.outcome.placements]
    means = [{"case": res.cases[c], "means": [scoring.display(m[k["key"]]) for k in review["criteria"]]}
             for c, m in res.means.items()]
    return {**empty, "res": res, "rows": rows, "tiers_by_key": tiers, "rule": scoring.rule_text(review),
            "plot": _spread_plot(res.spread, names), "means": means}


def _show(request: Request, review: dict | None = None, *, message: str | None = None, lines: list[str] | None = None,
          error: bool = False, confirm: str | None = None, status: int = 200, form: dict | None = None) -> Response:
    db, now = request.state.store.db(), request.state.now()
    review = review or _review(request)
    stage = reviews.review_stage(review, now)
    scoring_on = reviews.at_least(review, "scoring", now)
    return render(request, "admin/reviews/show.html", {
        "review": review, "stage": stage, "stage_labels": reviews.STAGE_LABELS, "stages": reviews.STAGES,
        "next_stage": _next_stage(stage), "move_labels": MOVE_LABELS, "confirm": confirm,
        "confirm_text": CONFIRM_TEXT.get(confirm or "", ""),
        "cases": _cases_context(db, review), "jurors": reviews.jurors_of(db, review["id"]),
        "progress": review_progress.progress(db, review) if scoring_on else None,
        **_results_context(db, review, now), "none_tier": NONE_TIER,
        "publish_at_input": forms.local_input(review["publish_at"]),
        "message": message or DONE_MESSAGES.get(request.query_params.get("done", "")), "lines": lines or [],
        "error": error, "form": form or {},
        "published_at": json.loads(review["published"])["published_at"] if review["published"] else None,
    }, status)


@requires("organizer")
def show(request: Request):
    return _show(request)


def _failed(request: Request, exc: BrandvoteError, **kw) -> Response:
    return _show(request, message=_head(exc), lines=_problems(exc), error=True, status=exc.status, **kw)


# ---------------------------------------------------------------- stage moves and publish_at

@requires("organizer")
def stage(request: Request):
    form, review = request.state.form, _review(request)
    target = forms.text(form, "stage")
    if target not in reviews.STAGES:
        return _show(request, review, message="未知操作：请用页面上的阶段按钮。", error=True, status=422)
    if forms.text(form, "confirm") != "yes" and target in CONFIRM_TEXT:  # a step back goes to the rule's refusal
        return _show(request, review, confirm=target)
    try:
        review_results.set_stage(request.state.store.db(), review["slug"], target, request.state.now(),
                                 actor=_actor(request))
    except BrandvoteError as exc:
        return _failed(request, exc)
    return _back(request, review["slug"], "stage")


@requires("organizer")
def publish_at(request: Request):
    form, review = request.state.form, _review(request)
    text = forms.text(form, "publish_at")
    try:
        when = clock.parse_input(text) if text else None
    except ValueError:
        return _show(request, review, message="公布时间格式有误，请按“年-月-日 时:分”填写（北京时间）。",
                     error=True, status=422)
    try:
        reviews.set_publish_at(request.state.store.db(), review["slug"], when, request.state.now(),
                               actor=_actor(request))
    except BrandvoteError as exc:
        return _failed(request, exc)
    return _back(request, review["slug"], "publish_at")


# ---------------------------------------------------------------- screening

@requires("organizer")
def screen(request: Request):
    form, review = request.state.form, _review(request)
    verdict, case = forms.text(form, "verdict"), forms.text(form, "case")
    if verdict not in ("accept", "reject") or not case:
        return _show(request, review, message="请用案例旁的“通过”或“不通过”按钮。", error=True, status=422)
    try:
        nominations.screen(request.state.store.db(), review["slug"], case, verdict == "accept",
                           forms.text(form, "reason"), request.state.now(), actor=_actor(request))
    except BrandvoteError as exc:
        return _failed(request, exc, form={"case": case, "reason": forms.text(form, "reason")})
    return _back(request, review["slug"], "screen", f"#case-{case}")


@requires("organizer")
def accept_all(request: Request):
    review = _review(request)
    try:
        nominations.accept_all(request.state.store.db(), review["slug"], "", request.state.now(), _actor(request))
    except BrandvoteError as exc:
        return _failed(request, exc)
    return _back(request, review["slug"], "accept_all")


@requires("organizer")
def attachment(request: Request):
    """A nominated file, served as the type its content showed when stored, never inline."""
    review = _review(request)
    text = request.path_params["attachment"]
    row = nominations.attachment(request.state.store.db(), int(text)) if text.isdigit() and len(text) < 12 else None
    if row is None or row["review_id"] != review["id"]:
        raise NoSuchCase("没有这个附件。")
    ascii_name = "".join(ch if ch.isascii() and ch.isalnum() or ch in "._-" else "_" for ch in row["filename"])
    disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(row['filename'])}"
    return Response(row["bytes"], media_type=row["media_type"], headers={
        **NO_STORE, "Content-Disposition": disposition, "X-Content-Type-Options": "nosniff"})


# ---------------------------------------------------------------- decisions

@requires("organizer")
def decide(request: Request):
    form, review = request.state.form, _review(request)
    case, tier, reason = forms.text(form, "case"), forms.text(form, "tier"), forms.text(form, "reason")
    kept = {"case": case, "tier": tier, "reason": reason}
    if not case or not tier:
        return _show(request, review, message="请选择案例和等次。", error=True, status=422, form=kept)
    try:
        review_results.decide(request.state.store.db(), review["slug"], case, None if tier == NONE_TIER else tier,
                              reason, request.state.now(), actor=_actor(request))
    except BrandvoteError as exc:
        return _failed(request, exc, form=kept)
    return _back(request, review["slug"], "decide", "#decide")


routes = [
    Route("/admin/reviews", review_list, methods=["GET"], name="reviews:list"),
    Route("/admin/reviews/load", load, methods=["POST"], name="reviews:load"),
    Route("/admin/reviews/{slug}", show, methods=["GET"], name="reviews:show"),
    Route("/admin/reviews/{slug}/stage", stage, methods=["POST"], name="reviews:stage"),
    Route("/admin/reviews/{slug}/publish-at", publish_at, methods=["POST"], name="reviews:publish_at"),
    Route("/admin/reviews/{slug}/screen", screen, methods=["POST"], name="reviews:screen"),
    Route("/admin/reviews/{slug}/accept-all", accept_all, methods=["POST"], name="reviews:accept_all"),
    Route("/admin/reviews/{slug}/attachments/{attachment}", attachment, methods=["GET"], name="reviews:attachment"),
    Route("/admin/reviews/{slug}/decide", decide, methods=["POST"], name="reviews:decide"),
]
