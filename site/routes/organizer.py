"""The organizer's console: campaigns, their rules and times, voter codes, posters,
turnout while voting runs (never counts), the tally after closing, ties and the announcement.

Every endpoint wears `@requires("organizer")`, which also checks the CSRF token of every
POST. Handlers read only the named form fields (forms.py); the rules themselves live in
campaigns.py, ballots.py, voter_codes.py and tally.py, and every domain error comes back as this console's page with
its Chinese message and status.
"""

from __future__ import annotations

import io
from datetime import datetime, timezone

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from .. import audit, ballots, campaigns, catalog, clock, qr, spreadsheet, tally, voter_codes
from ..db import immediate
from ..errors import BrandvoteError, SlugTaken, TieUndecided
from ..web import forms
from .staff import NO_STORE, render, requires, staff_form

MAX_CODES, MAX_SLIPS = 100_000, 10_000
ANOMALY_THRESHOLD = 20  # ballots from one address in one hour worth a second look
SEARCH_PAGE = 100
DONE_MESSAGES = {"created": "评选已创建。", "saved": "已保存。", "open": "投票已开启。", "close": "投票已结束。",
                 "tie": "并列已决定，已记入审计日志。", "announce": "结果已揭晓。"}
CONFIRM_TEXT = {
    "open": "确定现在开启投票吗？开启后公众即可投票；第一张选票之后，候选项目和规则不能再修改。",
    "close": "确定现在结束投票吗？结束后不能重新开启；已打开投票页的人还有 10 分钟宽限期可以提交。",
    "announce": "确定现在揭晓结果吗？揭晓后结果、账本和回执查询立即对公众公开，不能撤回。",
}


# ---------------------------------------------------------------- helpers

def _hour_label(hour: str) -> str:
    try:
        start = datetime.fromisoformat(hour + ":00:00").replace(tzinfo=timezone.utc)
    except ValueError:
        return hour
    return clock.local_text(start) + " 起"


def _campaign(request: Request) -> dict:
    db = request.state.store.db()
    return tally.settle(db, campaigns.campaign_by_slug(db, request.path_params["slug"]), request.state.now())


def _actor(request: Request) -> str:
    return request.state.user["username"]


# ---------------------------------------------------------------- list

@requires("organizer")
def campaign_list(request: Request):
    db, now = request.state.store.db(), request.state.now()
    camps = tally.settled_campaigns(db, now)
    totals = ballots.ballots_per_campaign(db)
    for camp in camps:
        camp["ballots"] = totals.get(camp["id"], 0)
    return render(request, "admin/campaigns/index.html", {"campaigns": camps})


# ---------------------------------------------------------------- create and edit

def _choices(db, data: dict, q: str, old: dict | None) -> tuple[list[dict], int]:
    """The entries to tick: the chosen ones first (kept whatever the search), then matches."""
    chosen = data["candidates"]
    by_slug = catalog.brands_with_slugs(db, chosen)
    page = catalog.search_brands(db, catalog.Filters(q=q), page_size=SEARCH_PAGE)
    entries = []
    for slug in chosen:
        brand = by_slug.get(slug, {"slug": slug, "name": slug, "organizer": "", "kind_label": ""})
        entries.append({**brand, "checked": True, "position": data["positions"].get(slug, "")})
    for brand in page.items:
        if brand["slug"] not in data["positions"]:
            entries.append({**brand, "checked": False, "position": ""})
    return entries, page.total


def _form_page(request: Request, data: dict, *, creating: bool, errors: dict | None = None, status: int = 200,
               q: str = "", message: str | None = None, camp: dict | None = None) -> Response:
    db = request.state.store.db()
    entries, matches = _choices(db, data, q, camp)
    return render(request, "admin/campaigns/form.html", {
        "creating": creating, "form": data, "errors": errors or {}, "q": q, "entries": entries,
        "matches": matches, "message": message, "campaign": camp, "electorates": forms.ELECTORATES,
        "frozen": bool(camp and camp["frozen_at"]), "default_ip_limit": request.state.settings.ip_limit,
        # a value a datetime-local input cannot hold is kept, in a plain text input
        "text_times": [k for k in campaigns.TIME_FIELDS if data[k] and not forms.LOCAL_INPUT_RE.match(data[k])],
    }, status)


def _query(request: Request) -> str:
    q = " ".join((request.query_params.get("q") or "").split())
    return q[:catalog.MAX_QUERY_CHARS]


@requires("organizer")
def new_form(request: Request):
    return _form_page(request, forms.empty(), creating=True, q=_query(request))


@requires("organizer")
def edit_form(request: Request):
    camp = _campaign(request)
    return _form_page(request, forms.from_campaign(request.state.store.db(), camp), creating=False,
                      q=_query(request), camp=camp)


def _save(request: Request, form, creating: bool) -> Response:
    db, now = request.state.store.db(), request.state.now()
    old = None if creating else _campaign(request)
    data = forms.from_post(form, creating, old["slug"] if old else None)
    q = " ".join(forms.text(form, "q").split())[:catalog.MAX_QUERY_CHARS]
    if forms.text(form, "action") == "search":
        return _form_page(request, data, creating=creating, q=q, camp=old)
    errors, camp, ids = forms.check(db, data, creating, old)
    if errors:
        return _form_page(request, data, creating=creating, errors=errors, status=422, q=q, camp=old,
                          message="有些内容需要修改，请看标出的地方。")
    try:
        with immediate(db):
            if creating and campaigns.slug_taken(db, camp["slug"]):
                raise SlugTaken()
            campaigns.upsert_campaign(db, camp, ids, now, actor=_actor(request))  # campaigns.check_change
            if creating:
                audit.record(db, now, _actor(request), "campaign.create", camp["slug"], {"title": camp["title"]})
    except BrandvoteError as exc:
        return _form_page(request, data, creating=creating, status=exc.status, q=q, camp=old, message=exc.message)
    done = "created" if creating else "saved"
    return RedirectResponse(f"{request.app.url_path_for('organizer:show', slug=camp['slug'])}?done={done}",
                            status_code=303, headers=NO_STORE)


@requires("organizer")
async def create(request: Request):
    form = await staff_form(request)
    return await run_in_threadpool(_save, request, form, True)


@requires("organizer")
async def edit(request: Request):
    form = await staff_form(request)
    return await run_in_threadpool(_save, request, form, False)


# ---------------------------------------------------------------- the campaign page

def _show(request: Request, camp: dict | None = None, *, message: str | None = None, error: bool = False,
          confirm: str | None = None, status: int = 200, chosen: list[str] | None = None) -> Response:
    db, now = request.state.store.db(), request.state.now()
    camp = camp or _campaign(request)
    state = campaigns.status(camp, now)
    channel = request.query_params.get("ch", "").strip()
    channel_error = None
    if channel and not campaigns.CHANNEL_RE.match(channel):
        channel_error = "渠道名只能由小写字母、数字、连字符和下划线组成（以字母或数字开头，最长 32 个字符）。"
    threshold = forms.int_in(request.query_params.get("threshold", ""), 2, 1_000_000) or ANOMALY_THRESHOLD
    over = tally.voting_over(camp, now)
    done = DONE_MESSAGES.get(request.query_params.get("done", ""))
    closes = clock.from_db(camp["closes_at"])
    return render(request, "admin/campaigns/show.html", {
        "campaign": camp, "state": state, "candidates": campaigns.candidates_of(db, camp["id"]),
        **_turnout_context(db, camp, threshold), **_tally_context(db, camp, now, over, chosen),
        "voting_over": over, "grace_ends": closes + campaigns.GRACE if closes else None,
        "announced": tally.is_announced(camp, now),
        "message": message or done, "error": error, "confirm": confirm,
        "confirm_text": CONFIRM_TEXT.get(confirm or "", ""),
        "channel": channel if channel and not channel_error else "", "channel_input": channel[:40],
        "channel_error": channel_error,
        "electorates": forms.ELECTORATES, "max_codes": MAX_CODES, "max_slips": MAX_SLIPS,
        "loopback": request.state.settings.loopback,
    }, status)


def _turnout_context(db, camp: dict, threshold: int) -> dict:
    """Ballots per hour and channel, and bursts from one network: never per-candidate counts."""
    turnout = ballots.turnout(db, camp["id"])
    bursts = ballots.anomalies(db, camp["id"], threshold)
    for row in turnout["per_hour"] + bursts:
        row["label"] = _hour_label(row["hour"])
    return {"turnout": turnout, "anomalies": bursts, "threshold": threshold}


def _tally_context(db, camp: dict, now, over: bool, chosen: list[str] | None) -> dict:
    """The tally, for organizers only after closing and the grace period, and any tie at the
    cut-off (decided or not: a decision may change until the announcement)."""
    res, tally_error, seats_left, tie_rows = None, None, 0, []
    if over:
        try:
            res = tally.results(db, camp, now)
        except BrandvoteError as exc:
            tally_error = exc.message
    if res is not None:
        tied, seats_left = tally.tie_at_cut_off(db, camp, now)
        winner = {r.slug: r.winner for r in res["rows"]}
        tie_rows = [{"slug": r.slug, "name": r.name, "votes": r.votes,
                     "checked": r.slug in chosen if chosen is not None else winner.get(r.slug) is True}
                    for r in tied]
    return {"res": res, "tally_error": tally_error, "seats_left": seats_left, "tie_rows": tie_rows}


@requires("organizer")
def show(request: Request):
    return _show(request)


def _failed(request: Request, exc: BrandvoteError, **kw) -> Response:
    return _show(request, message=exc.message, error=True, status=exc.status, **kw)


def _set_state(request: Request, form) -> Response:
    camp = _campaign(request)
    action = forms.text(form, "action")
    if action not in ("open", "close"):
        return _show(request, camp, message="未知操作：请用页面上的“开启投票”或“结束投票”按钮。", error=True, status=422)
    if forms.text(form, "confirm") != "yes":
        return _show(request, camp, confirm=action)
    db, now = request.state.store.db(), request.state.now()
    try:
        campaigns.set_manual_state(db, camp["slug"], "open" if action == "open" else "closed", now,
                                actor=_actor(request))
    except BrandvoteError as exc:
        return _failed(request, exc)
    return RedirectResponse(f"{request.app.url_path_for('organizer:show', slug=camp['slug'])}?done={action}",
                            status_code=303, headers=NO_STORE)


@requires("organizer")
async def set_state(request: Request):
    form = await staff_form(request)
    return await run_in_threadpool(_set_state, request, form)


# ---------------------------------------------------------------- voter codes

def _codes(request: Request, form) -> Response:
    db, now = request.state.store.db(), request.state.now()
    camp = _campaign(request)
    if camp["electorate"] != "codes":
        return _show(request, camp, message="本评选是公开投票，不需要投票码。如需凭码投票，请在第一张选票之前把“投票人范围”改为“凭码投票”。",
                     error=True, status=409)
    fmt = forms.text(form, "format") or "csv"
    count = forms.int_in(forms.text(form, "count"), 1, MAX_CODES)
    if fmt not in ("csv", "slips"):
        return _show(request, camp, message="请选择下载格式：CSV 表格或可打印的纸条。", error=True, status=422)
    if count is None:
        return _show(request, camp, message=f"数量须为 1 到 {MAX_CODES} 之间的整数。", error=True, status=422)
    if fmt == "slips" and count > MAX_SLIPS:
        return _show(request, camp, message=f"纸条一次最多生成 {MAX_SLIPS} 张，请分批生成，或用 CSV 格式。",
                     error=True, status=422)
    if campaigns.status(camp, now) in ("closed", "announced"):
        return _show(request, camp, message="投票已经结束，不再生成投票码。", error=True, status=409)
    try:
        codes = voter_codes.create_codes(db, camp["id"], count, now)
    except BrandvoteError as exc:
        return _failed(request, exc)
    with immediate(db):
        audit.record(db, now, _actor(request), "codes.create", camp["slug"], {"count": count, "format": fmt})
    return _codes_download(request, camp, codes, fmt, now)


def _redeem_url(request: Request):
    return lambda code: request.state.links.url("vote:redeem", code=code)


def _codes_download(request: Request, camp: dict, codes: list[str], fmt: str, now) -> Response:
    """The codes as printable A4 slips or as a CSV, named by campaign and time; never cached."""
    stamp = now.astimezone(clock.LOCAL).strftime("%Y%m%d-%H%M%S")
    if fmt == "slips":
        out = io.StringIO()
        qr.write_slips(request.state.templates.env, camp, codes, _redeem_url(request), out)
        return Response(out.getvalue(), media_type="text/html; charset=utf-8", headers={
            **NO_STORE, "Content-Disposition": f'attachment; filename="{camp["slug"]}-slips-{stamp}.html"'})
    out = io.StringIO()
    spreadsheet.write_codes(out, codes, _redeem_url(request))
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers={
        **NO_STORE, "Content-Disposition": f'attachment; filename="{camp["slug"]}-codes-{stamp}.csv"'})


@requires("organizer")
async def codes(request: Request):
    form = await staff_form(request)
    return await run_in_threadpool(_codes, request, form)


# ---------------------------------------------------------------- ties and the announcement

def _tie(request: Request, form) -> Response:
    db, now = request.state.store.db(), request.state.now()
    camp = _campaign(request)
    chosen = [v for v in form.getlist("in")[:1000] if isinstance(v, str)]
    if not chosen:  # tally.decide_tie would take an empty choice once a tie is decided, leaving a seat empty
        return _show(request, camp, message="请勾选要入选的并列项目。", error=True, status=422, chosen=chosen)
    try:
        tally.decide_tie(db, camp, chosen, now, actor=_actor(request))
    except BrandvoteError as exc:
        return _failed(request, exc, chosen=chosen)
    return RedirectResponse(f"{request.app.url_path_for('organizer:show', slug=camp['slug'])}?done=tie#tally",
                            status_code=303, headers=NO_STORE)


@requires("organizer")
async def decide_tie(request: Request):
    form = await staff_form(request)
    return await run_in_threadpool(_tie, request, form)


def _announce(request: Request, form) -> Response:
    db, now = request.state.store.db(), request.state.now()
    camp = _campaign(request)
    if forms.text(form, "confirm") != "yes":
        return _show(request, camp, confirm="announce")
    try:
        tally.announce(db, camp["slug"], now, actor=_actor(request))
    except TieUndecided as exc:  # the rule's message names the CLI's flag; this page has the form
        return _failed(request, TieUndecided(exc.tied, "入选名额边界有并列尚未决定，请先在下方“决定并列”中选出入选项目。"))
    except BrandvoteError as exc:
        return _failed(request, exc)
    return RedirectResponse(f"{request.app.url_path_for('organizer:show', slug=camp['slug'])}?done=announce",
                            status_code=303, headers=NO_STORE)


@requires("organizer")
async def announce(request: Request):
    form = await staff_form(request)
    return await run_in_threadpool(_announce, request, form)


routes = [
    Route("/admin/campaigns", campaign_list, methods=["GET"], name="organizer:list"),
    Route("/admin/campaigns/new", new_form, methods=["GET"], name="organizer:new"),
    Route("/admin/campaigns/new", create, methods=["POST"], name="organizer:create"),
    Route("/admin/campaigns/{slug}", show, methods=["GET"], name="organizer:show"),
    Route("/admin/campaigns/{slug}/edit", edit_form, methods=["GET"], name="organizer:edit_form"),
    Route("/admin/campaigns/{slug}/edit", edit, methods=["POST"], name="organizer:edit"),
    Route("/admin/campaigns/{slug}/state", set_state, methods=["POST"], name="organizer:state"),
    Route("/admin/campaigns/{slug}/codes", codes, methods=["POST"], name="organizer:codes"),
    Route("/admin/campaigns/{slug}/tie", decide_tie, methods=["POST"], name="organizer:tie"),
    Route("/admin/campaigns/{slug}/announce", announce, methods=["POST"], name="organizer:announce"),
]
