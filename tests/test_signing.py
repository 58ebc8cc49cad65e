"""Signing purposes cannot stand in for each other."""

import base64
import hashlib
import hmac
import itertools
import json

import pytest
from itsdangerous import BadSignature, TimestampSigner, URLSafeSerializer
from starlette.testclient import TestClient

from brandvote import accounts
from brandvote.app import create_app
from brandvote.security import (PURPOSES, SALT_PREFIX, SESSION_COOKIE, TokenInvalid, Tokens, derived_key, salt,
                                serializer)

from helpers import NOW, PASSWORD, login

SECRET = "s"
TOKEN_PURPOSES = ("device", "voter-code", "csrf")


def test_every_purpose_has_its_own_salt():
    assert [salt(p) for p in PURPOSES] == [SALT_PREFIX + p for p in PURPOSES]
    assert len({salt(p) for p in PURPOSES}) == len(PURPOSES)
    with pytest.raises(ValueError):
        salt("receipt")  # a purpose nobody listed gets no salt


@pytest.mark.parametrize("minted_for, read_as", list(itertools.permutations(TOKEN_PURPOSES, 2)))
def test_a_token_for_one_purpose_is_refused_by_every_other(minted_for, read_as):
    token = serializer(SECRET, minted_for).dumps({"d": "x", "c": 1, "h": "x", "v": "x", "t": 0})
    assert serializer(SECRET, minted_for).loads(token)["d"] == "x"
    with pytest.raises(BadSignature):
        serializer(SECRET, read_as).loads(token)


def test_voter_tokens_refuse_each_other_and_the_bare_secret():
    """Each payload shaped for the reader, so only the purpose's signature can refuse it."""
    tokens = Tokens(SECRET)
    device_shaped = {"d": "a-device"}
    code_shaped = {"c": 1, "h": "a-hash"}
    for token in (serializer(SECRET, "csrf").dumps(device_shaped),
                  serializer(SECRET, "voter-code").dumps(device_shaped),
                  URLSafeSerializer(SECRET).dumps(device_shaped)):  # the bare secret, itsdangerous' salt
        with pytest.raises(TokenInvalid):
            tokens.device(token)
    for token in (serializer(SECRET, "device").dumps(code_shaped), serializer(SECRET, "csrf").dumps(code_shaped),
                  URLSafeSerializer(SECRET).dumps(code_shaped)):
        with pytest.raises(TokenInvalid):
            tokens.code(token, 1)
    device, cookie = tokens.new_device()
    with pytest.raises(TokenInvalid):  # a device cookie is not a CSRF token
        tokens.check_csrf(cookie, tokens.voter_key("device", device), 1, NOW)
    assert tokens.code(tokens.code_cookie(1, "a-hash"), 1) == "a-hash"


def test_the_session_key_is_its_purposes_own():
    key = derived_key(SECRET, "staff-session")
    assert key == hmac.new(SECRET.encode(), b"brandvote.staff-session", hashlib.sha256).hexdigest()
    assert key not in (SECRET, SECRET + ":staff-session")
    assert key != derived_key("t", "staff-session") and key != derived_key(SECRET, "csrf")


def test_stored_keyed_hashes_cannot_equal_the_session_key():
    """voter_key and ip_key are HMAC-SHA256 under the bare secret, as the session key is; their
    messages start with their kind, never with a salt's prefix."""
    tokens = Tokens(SECRET)
    key = derived_key(SECRET, "staff-session")
    assert not tokens.voter_key("device", "x").startswith(SALT_PREFIX)
    assert tokens.voter_key("device", "brandvote.staff-session") != "device:" + key
    assert tokens.ip_key("brandvote.staff-session") != key[:32]


# ------------------------------------------------------------ the staff session cookie, through HTTP

@pytest.fixture
def client(seeded_settings, db):
    accounts.create_user(db, "editor", PASSWORD, "editor", NOW)
    with TestClient(create_app(seeded_settings, now=lambda: NOW), base_url="https://testserver") as c:
        yield c


def resigned(cookie: str, secret_key: str) -> str:
    """The same session data, signed the way Starlette signs it but with the given key."""
    return TimestampSigner(secret_key).sign(cookie.rsplit(".", 2)[0]).decode()


def test_a_session_cookie_signed_with_anything_but_the_session_key_is_refused(client, seeded_settings):
    """Changing the key once logged every staff session out; the old key's cookies stay refused."""
    assert login(client, "editor").status_code == 303
    cookie = client.cookies.get(SESSION_COOKIE)
    secret = seeded_settings.secret
    session_key = derived_key(secret, "staff-session")
    assert set(json.loads(base64.b64decode(TimestampSigner(session_key).unsign(cookie)))) == {"sid"}
    client.cookies.clear()  # from here on the only cookie sent is the one set below
    client.cookies.set(SESSION_COOKIE, resigned(cookie, session_key))
    assert client.get("/admin", follow_redirects=False).status_code == 200
    for name, key in [("the bare secret", secret), ("the old concatenated key", secret + ":staff-session"),
                      ("another purpose's key", derived_key(secret, "csrf"))]:
        client.cookies.clear()
        client.cookies.set(SESSION_COOKIE, resigned(cookie, key))
        r = client.get("/admin", follow_redirects=False)
        assert (r.status_code, r.headers["location"]) == (303, "/login?next=/admin"), name


def test_a_signed_voter_token_is_no_staff_form_token(client, seeded_settings):
    """Staff forms take only their session's random secret, whatever else the server signed."""
    assert login(client, "editor").status_code == 303
    tokens = Tokens(seeded_settings.secret)
    device, cookie = tokens.new_device()
    for token in (cookie, tokens.csrf(tokens.voter_key("device", device), 1, NOW), tokens.code_cookie(1, "h")):
        r = client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
        assert r.status_code == 403, token
    assert client.get("/admin", follow_redirects=False).status_code == 200  # still signed in
