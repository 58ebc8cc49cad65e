"""Staff sign-in and the guard every /admin endpoint wears.

`requires(*roles)` is the only way into an admin handler: it finds the session's user,
refuses the wrong role, and checks the CSRF token on every POST before the handler
runs. The roles are kept on the endpoint so a test can read them off the route table.
"""

from __future__ import annotations

import functools
import inspect

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from .. import accounts
from ..errors import BrandvoteError, CannotDisableSelf, NoSuchUser, SignInFailed, Throttled, UnknownAction
from ..addresses import client_address
from ..security import cross_site, new_csrf_secret, same_secret
from ..web import audit_text
from .errors import error_response

NO_STORE = {"Cache-Control": "no-store"}
# Where the staff session exists at all (app.py runs SessionMiddleware under these only).
STAFF_PREFIXES = ("/admin", "/login", "/logout")
ADMIN_FORM_LIMITS = {"max_fields": 1000, "max_files": 1, "max_part_size": 1024 * 1024}


def current_user(request: Request) -> dict | None:
    return accounts.session_user(request.state.store.db(), request.session.get("sid"), request.state.now())


async def staff_form(request: Request):
    return await request.form(**ADMIN_FORM_LIMITS)


def requires(*roles: str):
    """Admin may do everything; others only what their role names."""

    def decorate(endpoint):
        is_async = inspect.iscoroutinefunction(endpoint)

        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            user = await run_in_threadpool(current_user, request)
            if user is None:
                if request.method == "GET":
                    return RedirectResponse(f"{request.app.url_path_for('staff:login')}?next={request.url.path}",
                                            status_code=303, headers=NO_STORE)
                return error_response(request.state.templates, request, 403, "请先登录。")
            if user["role"] != "admin" and user["role"] not in roles:
                return error_response(request.state.templates, request, 403, "您的账号没有这项操作的权限。")
            request.state.user = user
            if request.method == "POST":
                if cross_site(request.headers, request.state.settings.base_url):
                    return error_response(request.state.templates, request, 403, "这次提交来自其他网站，未被接受。")
                try:
                    form = await staff_form(request)
                except Exception:
                    return error_response(request.state.templates, request, 400, "提交的表单格式有误。")
                if not same_secret(form.get("csrf_token"), user["csrf"]):
                    return error_response(request.state.templates, request, 403,
                                          "表单校验失败（页面已过期或来自其他网站），请返回重新提交。")
                request.state.form = form  # handlers read the checked form from here
            response = await endpoint(request) if is_async else await run_in_threadpool(endpoint, request)
            response.headers.setdefault("Cache-Control", "no-store")
            return response

        guarded.required_roles = roles
        return guarded

    return decorate


def in_thread(request: Request, rule, *args):
    """Runs a rules function in the threadpool on that thread's own connection.

    Store keeps one connection per thread; a connection taken on the event loop and handed
    to the threadpool was used by several threads at once, and a burst of sign-ins got
    "cannot start a transaction within a transaction" (500s)."""
    return run_in_threadpool(lambda: rule(request.state.store.db(), *args))


def render(request: Request, name: str, context: dict, status_code: int = 200) -> Response:
    context = {"user": getattr(request.state, "user", None), "role_labels": accounts.ROLE_LABELS, **context}
    return request.state.templates.TemplateResponse(request, name, context, status_code=status_code,
                                                    headers=NO_STORE)


# ---------------------------------------------------------------- sign-in / sign-out

def _safe_next(value: str | None) -> str:
    return value if value and value.startswith("/admin") and "//" not in value and "\\" not in value else "/admin"


def _login_csrf(request: Request) -> str:
    token = request.session.get("login_csrf")
    if not isinstance(token, str):
        token = new_csrf_secret()
        request.session["login_csrf"] = token
    return token


def login_page(request: Request):
    return render(request, "admin/login.html", {"csrf_token": _login_csrf(request), "username": "", "message": None,
                                                "next": _safe_next(request.query_params.get("next"))})


async def login(request: Request):
    try:
        form = await request.form(max_fields=10, max_files=0, max_part_size=4096)
    except Exception:
        form = {}
    username = form.get("username") if isinstance(form.get("username"), str) else ""
    password = form.get("password") if isinstance(form.get("password"), str) else ""
    target = _safe_next(form.get("next") if isinstance(form.get("next"), str) else None)
    expected = request.session.get("login_csrf")
    token = form.get("csrf_token") if not cross_site(request.headers, request.state.settings.base_url) else None

    def again(message: str, status: int) -> Response:
        return render(request, "admin/login.html", {"csrf_token": _login_csrf(request), "username": username[:40],
                                                    "message": message, "next": target}, status)

    if not same_secret(token, expected):
        return again("表单校验失败，请重新登录。", 403)
    settings = request.state.settings
    ip = client_address(request.scope, settings.trusted_proxies)
    try:
        session = await in_thread(request, accounts.sign_in, username, password,
                                  request.state.tokens.ip_key(ip), request.state.now())
    except Throttled as exc:
        response = again(exc.message, 429)
        response.headers["Retry-After"] = str(int(accounts.THROTTLE_WINDOW.total_seconds()))
        return response
    except SignInFailed as exc:
        return again(exc.message, exc.status)
    request.session.clear()  # a new session: nothing from before sign-in carries over
    request.session["sid"] = session["id"]
    return RedirectResponse(target, status_code=303, headers=NO_STORE)


@requires("editor", "organizer")
def logout_page(request: Request):
    return render(request, "admin/logout.html", {})


@requires("editor", "organizer")
def logout(request: Request):
    accounts.end_session(request.state.store.db(), request.state.user["session_id"], request.state.now(),
                         actor=request.state.user["username"])
    request.session.clear()
    return RedirectResponse(request.app.url_path_for("staff:login"), status_code=303, headers=NO_STORE)


# ---------------------------------------------------------------- dashboard, users, audit

@requires("editor", "organizer")
def dashboard(request: Request):
    return render(request, "admin/index.html", {})


@requires()
def users(request: Request):
    return render(request, "admin/users.html", {"users": accounts.list_users(request.state.store.db()),
                                                "roles": accounts.ROLES, "message": None,
                                                "password_rule": accounts.PASSWORD_RULE})


@requires()
def users_post(request: Request):
    """Runs in the threadpool (requires does that for plain functions), on its own connection."""
    form = request.state.form
    db, now = request.state.store.db(), request.state.now()
    action = form.get("action")
    username = str(form.get("username") or "")
    actor = request.state.user["username"]  # the accounts rules write the audit entry with the change
    try:
        if action == "add":
            accounts.create_user(db, username, str(form.get("password") or ""), str(form.get("role") or ""), now,
                                 unit=str(form.get("unit") or ""), actor=actor)
            done = f"已创建用户 {username}。"
        elif action in ("disable", "enable"):
            if username == request.state.user["username"]:
                raise CannotDisableSelf()
            accounts.set_disabled(db, username, action == "disable", now, actor=actor)
            done = f"已{'停用' if action == 'disable' else '启用'} {username}。"
        elif action == "passwd":
            accounts.set_password(db, username, str(form.get("password") or ""), now, actor=actor)
            done = f"已重设 {username} 的密码。"
        else:
            raise UnknownAction()
        status = 200
    except NoSuchUser as exc:  # the page is there; the name in the form is what is wrong
        done, status = exc.message, 422
    except BrandvoteError as exc:
        done, status = exc.message, exc.status
    return render(request, "admin/users.html", {"users": accounts.list_users(db), "roles": accounts.ROLES,
                                                "message": done, "failed": status != 200,
                                                "password_rule": accounts.PASSWORD_RULE}, status)


@requires()
def audit_log(request: Request):
    page_text = request.query_params.get("page", "1")
    page = int(page_text) if page_text.isdigit() and 0 < int(page_text) < 100000 else 1
    entries = accounts.audit_entries(request.state.store.db(), limit=100, offset=(page - 1) * 100)
    return render(request, "admin/audit.html", {"entries": entries, "page": page,
                                                "audit_action": audit_text.action, "audit_detail": audit_text.detail})


routes = [
    Route("/login", login_page, methods=["GET"], name="staff:login"),
    Route("/login", login, methods=["POST"], name="staff:login_post"),
    Route("/logout", logout_page, methods=["GET"], name="staff:logout_page"),
    Route("/logout", logout, methods=["POST"], name="staff:logout"),
    Route("/admin", dashboard, name="staff:dashboard"),
    Route("/admin/users", users, methods=["GET"], name="staff:users"),
    Route("/admin/users", users_post, methods=["POST"], name="staff:users_post"),
    Route("/admin/audit", audit_log, name="staff:audit"),
]
