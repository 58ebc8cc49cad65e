"""Every domain error lives in errors.py with its own code, a real status and a Chinese message,
and the API answers each with that code."""

from __future__ import annotations

import importlib
import pkgutil

from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import brandvote
from brandvote import accounts, errors
from brandvote.app import create_app

from helpers import PASSWORD


def _subclasses(cls) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


def _is_chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def test_every_error_has_its_own_code_a_status_and_a_chinese_message():
    classes = [errors.BrandvoteError, *_subclasses(errors.BrandvoteError)]
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes)), sorted(c for c in codes if codes.count(c) > 1)
    for cls in classes:
        assert cls.code.isascii() and cls.code.replace("_", "").isalpha() and cls.code.islower(), cls
        assert 400 <= cls.status <= 599, cls
        assert _is_chinese(cls.message), cls


def test_no_module_but_errors_defines_a_domain_error():
    for info in pkgutil.walk_packages(brandvote.__path__, "brandvote."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    outside = {f"{cls.__module__}.{cls.__name__}" for cls in _subclasses(errors.BrandvoteError)
               if cls.__module__ != errors.__name__}
    assert outside == set()


def test_an_api_conflict_answers_its_own_code(seeded_settings, clock):
    """A second account of the same name is a 409 with code user_exists (it was bad_request)."""
    def add_user(request):
        db, now = request.state.store.db(), request.state.now()
        accounts.create_user(db, "ed", PASSWORD, "editor", now)
        return JSONResponse({"ok": True})

    app = create_app(seeded_settings, now=clock)
    app.router.routes.insert(0, Route("/api/probe/users", add_user, methods=["POST"]))
    with TestClient(app, base_url="https://testserver") as client:
        assert client.post("/api/probe/users").status_code == 200
        r = client.post("/api/probe/users")
    assert r.status_code == 409
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {"error": "user_exists", "message": "用户 ed 已存在。"}
