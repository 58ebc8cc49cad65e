"""The ballot: page, submission, receipt, and one-time voter codes. Parse, call ballots, render."""

from __future__ import annotations

import functools
import sqlite3
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from .. import ballots, campaigns, voter_codes
from ..addresses import client_address
from ..errors import (AlreadyVoted, BadBallotForm, BadChoiceFormat, BrandvoteError, CrossSiteBallot, FormExpired,
                      FormInvalid, FormTooFast, NotFound, RateLimited, VoterUnknown, WriterBusy)
from ..security import CODE_COOKIE, DEVICE_COOKIE, TokenExpired, TokenInvalid, TokenTooFast, cross_site
from ..web.pagecache import Fragments
from .common import NO_STORE, public_campaign
from .results import receipt_lookup

FORM_LIMITS = {"max_fields": 64, "max_files": 0, "max_part_size": 4096}


def channel_of(request: Request) -> str | None:
    if not request.scope["query_string"]:  # the crowd's URL: skip parsing an empty query
        return None
    ch = request.query_params.get("ch", "")
    return ch if campaigns.CHANNEL_RE.match(ch) else None


class Voter:
    """Who is asking, from the cookies: a device (open electorate) or a redeemed code."""

    def __init__(self, request: Request, camp: dict):
        tokens = request.state.tokens
        self.new_device_cookie = None
        self.key = None
        self.shown_since = None  # when the device cookie was first issued (security.check_csrf)
        if camp["electorate"] == "codes":
            try:
                self.key = "code:" + tokens.code(request.cookies.get(CODE_COOKIE), camp["id"])
            except TokenInvalid:
                self.key = None
            return
        try:
            device, self.shown_since = tokens.device_and_since(request.cookies.get(DEVICE_COOKIE))
        except TokenInvalid:
            if request.method != "GET":
                return
            device, self.new_device_cookie = tokens.new_device(request.state.now())
        self.key = tokens.voter_key("device", device)

    def attach(self, response: Response, request: Request) -> Response:
        if self.new_device_cookie:
            before, after = device_cookie_parts(request.state.settings.https)
            response.raw_headers.append((b"set-cookie", before + self.new_device_cookie.encode("ascii") + after))
        return response


@functools.lru_cache(maxsize=2)
def device_cookie_parts(https: bool) -> tuple[bytes, bytes]:
    """Starlette's Set-Cookie for the device, made once around a placeholder value: set_cookie
    goes through http.cookies on every first visit of the crowd. A device token is
    URL-safe base64 and dots, which a cookie value carries unquoted, as set_cookie would."""
    response = Response()
    response.set_cookie(DEVICE_COOKIE, "VALUE", max_age=365 * 86400, httponly=True, samesite="lax",
                        secure=https, path="/")
    before, after = response.headers["set-cookie"].split("VALUE", 1)
    return before.encode("latin-1"), after.encode("latin-1")


def _candidates(request: Request, camp: dict) -> list[dict]:
    return campaigns.candidates_of(request.state.store.db(), camp["id"])


def _ballot_context(request: Request, camp: dict, state: str, needs_code: bool, selected=(), message=None) -> dict:
    return {
        "campaign": camp,
        "state": state,
        "candidates": _candidates(request, camp),
        "selected": set(selected),
        "message": message,
        "csrf_token": None,
        "needs_code": needs_code,
        "ip_limit": camp["ip_limit"] if camp["ip_limit"] is not None else request.state.settings.ip_limit,
        "grace_minutes": int(campaigns.GRACE.total_seconds() // 60),
    }


def render_ballot(request: Request, camp: dict, voter: Voter, *, selected=(), message=None,
                  status_code=200, channel=None) -> Response:
    now = request.state.now()
    state = campaigns.status(camp, now)
    context = _ballot_context(request, camp, state, camp["electorate"] == "codes" and voter.key is None,
                              selected, message)
    if state == "open" and voter.key:
        context["csrf_token"] = request.state.tokens.csrf(voter.key, camp["id"], now, channel)
    response = request.state.templates.TemplateResponse(request, "vote/ballot.html", context,
                                                        status_code=status_code, headers=NO_STORE)
    return voter.attach(response, request)


def render_receipt(request: Request, camp: dict, ballot: dict, *, message=None, status_code=200) -> Response:
    names = campaigns.candidate_names(request.state.store.db(), camp["id"])
    return request.state.templates.TemplateResponse(request, "vote/receipt.html", {
        "campaign": camp,
        "ballot": ballot,
        "chosen": [{"slug": s, "name": names[s]} for s in ballot["choices"]],
        "message": message,
    }, status_code=status_code, headers=NO_STORE)


RECEIPT_SLOT = "__BRANDVOTE_RECEIPT__"


def crowd_receipt_page(request: Request) -> Response | None:
    """The receipt each voter's phone opens right after the 303, answered by CacheFront like
    the crowd's ballot page: the page around the voter's own part is rendered once per
    campaign state, and only that part (code, time, choices) per voter, from the ballot's
    row alone. None for anything else (a receipt lookup, no ballot, a draft): the router
    answers it, with the same page."""
    if request.scope["query_string"]:  # ?code=… is the public receipt lookup
        return None
    cache = request.state.page_cache
    key = cache.key(request)
    camp = cache.campaign(request.path_params["slug"])
    if camp is None or campaigns.status(camp, request.state.now()) == "draft":
        return None
    voter = Voter(request, camp)
    if voter.key is None or voter.new_device_cookie:  # no cookie yet, so no ballot: the router redirects
        return None
    ballot = ballots.receipt_of(cache.read_db(), camp["id"], voter.key)
    if ballot is None:
        return None
    templates = request.state.templates

    def build():
        html = templates.get_template("vote/receipt.html").render(
            {"request": request, "campaign": camp, "message": None, "receipt_slot": RECEIPT_SLOT})
        return Fragments(*split_at(html, RECEIPT_SLOT)), campaigns.candidate_names(cache.read_db(), camp["id"])

    page, names = cache.kept(("receipt", camp["id"]) + key[2:], build)
    chosen = [{"slug": slug, "name": name} for slug, name in names.items() if slug in ballot["choice_set"]]
    slot = templates.get_template("_partials/receipt.html").render(
        {"request": request, "campaign": camp, "ballot": ballot, "chosen": chosen})
    return spliced(request, page, slot.encode())


def split_at(html: str, slot: str) -> tuple[bytes, bytes]:
    """A page rendered around a placeholder, as the two parts Fragments keeps."""
    before, after = html.split(slot)
    return before.encode(), after.encode()


def spliced(request: Request, page: Fragments, slot: bytes) -> Response:
    """The page with the visitor's part in its slot, gzipped for clients that ask."""
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(page.gzipped(slot), media_type="text/html", headers=CROWD_GZIPPED)
    return Response(page.body(slot), media_type="text/html", headers=CROWD_PLAIN)


def ballot_page_rendered(request: Request):
    camp = public_campaign(request)
    voter = Voter(request, camp)
    if voter.key:
        existing = ballots.ballot_of(request.state.store.db(), camp["id"], voter.key)
        if existing:
            return render_receipt(request, camp, existing)
    return render_ballot(request, camp, voter, channel=channel_of(request))


TOKEN_SLOT = "__BRANDVOTE_CSRF_TOKEN__"
CROWD_PLAIN = {**NO_STORE, "Vary": "Accept-Encoding"}  # as GZipMiddleware would mark it
CROWD_GZIPPED = {**CROWD_PLAIN, "Content-Encoding": "gzip"}


async def ballot_page(request: Request):
    return await run_in_threadpool(ballot_page_rendered, request)


def crowd_ballot_page(request: Request) -> Response | None:
    """The page the crowd opens, answered by pagecache.CacheFront before the middleware and
    the router (perf: the ballot GET is the one uncacheable page a newspaper crowd hits).

    Everything but the CSRF token is the same for every voter of an open campaign, so the
    page is rendered once per campaign state and each visitor's token is spliced in. None
    for anything else (a draft, a closed campaign, voter codes, a voter who has voted):
    the router then answers it the plain way, with the same page."""
    cache = request.state.page_cache
    key = cache.key(request)
    camp = cache.campaign(request.path_params["slug"])
    now = request.state.now()
    if camp is None or campaigns.status(camp, now) != "open" or camp["electorate"] != "open":
        return None
    voter = Voter(request, camp)
    if voter.new_device_cookie is None and ballots.receipt_of(cache.read_db(), camp["id"], voter.key):
        return None  # the receipt

    page = cache.fragments((camp["id"],) + key[2:],
                           lambda: split_at(render_ballot_html(request, camp, TOKEN_SLOT), TOKEN_SLOT))
    token = request.state.tokens.csrf(voter.key, camp["id"], now, channel_of(request))
    return voter.attach(spliced(request, page, token.encode()), request)


FRONT_PAGES = [("/c/{slug}", crowd_ballot_page), ("/c/{slug}/receipt", crowd_receipt_page)]


async def ballot_form(request: Request) -> FormData:
    """The ballot as the browser posts it (urlencoded) is split by the standard library's
    parse_qsl, decoded as Starlette's form parser does (latin-1 bytes, UTF-8 escapes) and
    held to the same limits: a third of the cost of request.form(), on the event loop for
    every ballot. Anything else (multipart) goes through request.form()."""
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return await request.form(**FORM_LIMITS)
    fields = parse_qsl((await request.body()).decode("latin-1"), keep_blank_values=True,
                       max_num_fields=FORM_LIMITS["max_fields"])  # ValueError beyond it
    if any(len(name) + len(value) > FORM_LIMITS["max_part_size"] for name, value in fields):
        raise ValueError("a field over the size limit")
    return FormData(fields)


def render_ballot_html(request: Request, camp: dict, token: str) -> str:
    context = _ballot_context(request, camp, campaigns.status(camp, request.state.now()), needs_code=False)
    context["csrf_token"] = token
    return request.state.templates.get_template("vote/ballot.html").render({"request": request, **context})


async def submit(request: Request):
    """Parse and check on the event loop, store through the writer; every refusal is rendered
    (in the threadpool) with the voter's ticks kept."""
    camp = await _campaign_to_post_to(request)
    voter = Voter(request, camp)
    choices: list = []
    try:
        form = await _read_form(request)
        choices = list(form.getlist("choice"))
        ballot = _ballot_request(request, camp, voter, form, choices)
        if form.get("step") in REVIEW_STEPS:
            return await run_in_threadpool(_review, request, camp, voter, ballot, form)
        await request.state.writer.submit_together(ballots.cast_ballots, ballot)
    except AlreadyVoted as exc:
        return await run_in_threadpool(_already_voted, request, camp, voter, exc.message)
    except sqlite3.OperationalError:
        return await _refuse(request, camp, voter, choices, WriterBusy())
    except BrandvoteError as exc:
        return await _refuse(request, camp, voter, choices, exc)
    return RedirectResponse(request.app.url_path_for("vote:receipt", slug=camp["slug"]), status_code=303,
                            headers=NO_STORE)


async def _campaign_to_post_to(request: Request) -> dict:
    cache = request.state.page_cache
    if cache is None:
        return await run_in_threadpool(public_campaign, request)
    cache.key(request)
    camp = cache.campaign(request.path_params["slug"])
    if camp is None or campaigns.status(camp, request.state.now()) == "draft":
        raise NotFound("没有找到这个评选。")
    return camp


async def _read_form(request: Request) -> FormData:
    try:
        return await ballot_form(request)
    except HTTPException as exc:
        if exc.status_code == 413:  # the body limit, hit while streaming
            raise
        raise BadBallotForm() from exc
    except Exception as exc:  # too many fields, a file, a part too large
        raise BadBallotForm() from exc


def _ballot_request(request: Request, camp: dict, voter: Voter, form: FormData,
                    choices: list) -> ballots.BallotRequest:
    """The checks that need the request (its form, origin, cookies and address), in the order
    a voter's mistake is most likely to be the reason; the ballot rules come after, in the writer."""
    if not all(isinstance(c, str) and len(c) <= 80 for c in choices):
        raise BadChoiceFormat()
    settings, tokens, now = request.state.settings, request.state.tokens, request.state.now()
    if cross_site(request.headers, settings.base_url):
        raise CrossSiteBallot()
    if voter.key is None:
        raise VoterUnknown("本评选需凭投票码参加，请扫描您收到的投票码。" if camp["electorate"] == "codes" else None)
    try:
        token = tokens.check_csrf(form.get("csrf_token"), voter.key, camp["id"], now, voter.shown_since)
    except TokenExpired as exc:
        raise FormExpired() from exc
    except TokenTooFast as exc:
        raise FormTooFast() from exc
    except TokenInvalid as exc:
        raise FormInvalid() from exc
    ip_key = None
    if settings.ip_limit or camp["ip_limit"]:
        ip_key = tokens.ip_key(client_address(request.scope, settings.trusted_proxies))
    return ballots.BallotRequest(camp["id"], voter.key, choices, now, channel=token.get("ch"), ip_key=ip_key,
                                 ip_limit=settings.ip_limit, page_loaded_at=token["issued_at"])


NOT_STORED = "选票未保存："
# The form's 提交选票 button posts step=review: the voter sees what they chose before the final
# act (a page without JS, a sheet with it). step=edit goes back to the ballot, ticks kept; a
# post with no step (the confirm page's button, or the sheet's) stores the ballot.
REVIEW_STEPS = ("review", "edit")


def _review(request: Request, camp: dict, voter: Voter, ballot: ballots.BallotRequest, form) -> Response:
    """The confirm page, or back to the ballot; nothing is stored. The rules are checked
    first, so a ballot the writer would refuse is refused here, with the ticks kept."""
    if form.get("step") == "edit":
        return render_ballot(request, camp, voter, selected=ballot.choices)
    names = campaigns.candidate_names(request.state.store.db(), camp["id"])
    ordered = ballots.check_choices(camp, list(names), ballot.choices)
    return request.state.templates.TemplateResponse(request, "vote/confirm.html", {
        "campaign": camp, "chosen": [{"slug": s, "name": names[s]} for s in ordered],
        "csrf_token": form.get("csrf_token"),
    }, headers=NO_STORE)


async def _refuse(request: Request, camp: dict, voter: Voter, choices: list, exc: BrandvoteError) -> Response:
    """Every refusal starts by saying the ballot was not stored, then what happened and what to do."""
    message = exc.message if exc.message.startswith(NOT_STORED) else NOT_STORED + exc.message

    def render():
        known = campaigns.candidate_names(request.state.store.db(), camp["id"])
        kept = [c for c in choices if isinstance(c, str) and c in known]
        return render_ballot(request, camp, voter, selected=kept, message=message, status_code=exc.status)

    response = await run_in_threadpool(render)
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _already_voted(request: Request, camp: dict, voter: Voter, message: str) -> Response:
    existing = ballots.ballot_of(request.state.store.db(), camp["id"], voter.key)
    return render_receipt(request, camp, existing, message=message, status_code=409)


def receipt(request: Request):
    if "code" in request.query_params:  # anyone checking a receipt code, after the announcement
        return receipt_lookup(request)
    camp = public_campaign(request)
    voter = Voter(request, camp)
    ballot = ballots.ballot_of(request.state.store.db(), camp["id"], voter.key) if voter.key else None
    if ballot is None:
        ballot_path = request.app.url_path_for("vote:ballot", slug=camp["slug"])
        return voter.attach(RedirectResponse(ballot_path, status_code=303, headers=NO_STORE), request)
    return render_receipt(request, camp, ballot)


def redeem_code(request: Request):
    """/v/{code}: swap the code in the URL for a signed cookie, then go to the clean URL,
    so the code does not stay in history or leak through Referer."""
    camp = voter_codes.code_campaign(request.state.store.db(), request.path_params["code"])
    response = RedirectResponse(request.app.url_path_for("vote:ballot", slug=camp["slug"]), status_code=303,
                                headers={**NO_STORE, "Referrer-Policy": "no-referrer"})
    response.set_cookie(CODE_COOKIE, request.state.tokens.code_cookie(camp["id"], camp["code_hash"]),
                        max_age=30 * 86400, httponly=True, samesite="lax",
                        secure=request.state.settings.https, path="/")
    return response


routes = [
    Route("/c/{slug}", ballot_page, name="vote:ballot"),
    Route("/c/{slug}/ballot", submit, methods=["POST"], name="vote:submit"),
    Route("/c/{slug}/receipt", receipt, name="vote:receipt"),
    Route("/v/{code}", redeem_code, name="vote:redeem"),
]
