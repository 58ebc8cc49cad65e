"""Signing and CSRF: one secret, one salt per purpose, and the two kinds of form token.

One secret (settings.secret) signs everything, never bare: each purpose signs under its own
salt, so a token minted for one purpose is refused by every other (a device cookie is not a
form token, a form token is not a session cookie). `serializer(secret, purpose)` is the one
way to make a signer; `derived_key(secret, purpose)` gives the key for the one signer this
module does not build, Starlette's session cookie.

| purpose         | salt                      | what it signs                                         |
| --------------- | ------------------------- | ----------------------------------------------------- |
| `device`        | `brandvote.device`        | the device cookie `bv_device` (open electorate)       |
| `voter-code`    | `brandvote.voter-code`    | the redeemed-code cookie `bv_code` (closed electorate) |
| `csrf`          | `brandvote.csrf`          | the ballot form's CSRF token                          |
| `staff-session` | `brandvote.staff-session` | the staff session cookie `bv_session`, via derived_key |

The first three are itsdangerous URLSafeSerializer tokens (HMAC-SHA1 under itsdangerous' own
key derivation from the salt), byte for byte, so cookies already on phones keep loading.
The session key is HMAC-SHA256(secret, salt): Starlette signs with whatever key it is given,
and a key of its own means a cookie signed with the bare secret, or with any other
purpose's key, is refused.

Two keyed hashes are stored rather than sent: `Tokens.voter_key` (HMAC-SHA256 of
`device:<id>`) and `Tokens.ip_key` (of `ip:<network>`), under the bare secret. Their stored
form cannot change (a device that voted before an upgrade must not vote again after it);
their prefixes keep them apart from each other, and neither starts like a salt
(`brandvote.`), so no stored hash can equal the session key.

CSRF has one design with two kinds of token; see the CSRF section below.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from datetime import datetime, timezone

from itsdangerous import BadData, Serializer, URLSafeSerializer
from itsdangerous.encoding import base64_encode
from itsdangerous.signer import HMACAlgorithm, Signer as ItsSigner

from .addresses import network_of


class TokenInvalid(Exception):
    pass


class TokenExpired(TokenInvalid):
    pass


class TokenTooFast(TokenInvalid):
    """A form sent sooner after loading than a person could: its own class, so the page can
    say so without reading the text."""


# ---------------------------------------------------------------- signing: one salt per purpose

PURPOSES = ("device", "voter-code", "csrf", "staff-session")
SALT_PREFIX = "brandvote."
DEVICE_COOKIE = "bv_device"
CODE_COOKIE = "bv_code"
SESSION_COOKIE = "bv_session"


def salt(purpose: str) -> str:
    """A purpose's salt; an unlisted purpose is a programming error, not a new salt made up
    on the spot (which would sign tokens no reader checks for)."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown signing purpose {purpose!r}")
    return SALT_PREFIX + purpose


def serializer(secret: str, purpose: str) -> SmallTokenSerializer:
    return SmallTokenSerializer(secret, salt=salt(purpose))


def derived_key(secret: str, purpose: str) -> str:
    """The key for a signer built elsewhere (Starlette's SessionMiddleware takes a key, not a
    signer): HMAC-SHA256 of the purpose's salt under the secret, itsdangerous' "hmac" key
    derivation, in hex because Starlette takes a str."""
    signer = ItsSigner(secret, salt=salt(purpose), key_derivation="hmac", digest_method=hashlib.sha256)
    return signer.derive_key().hex()


class CompactJSON:
    """itsdangerous' compact JSON with the encoder built once: json.dumps with non-default
    options constructs a JSONEncoder on every call, half the cost of a small payload."""

    _encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
    loads = staticmethod(json.loads)

    @classmethod
    def dumps(cls, obj, **_) -> str:
        return cls._encoder.encode(obj)


class KeyedHMAC(HMACAlgorithm):
    """HMAC-SHA1 like itsdangerous' default, from a keyed state made once per key and copied
    per token. Not hmac.digest's one-shot path: it drops the GIL for the hash, and on a worker
    whose writer thread is busy the ballot thread then waits far longer to get it back than
    the hash took (bench/profile_ballot.py shows it)."""

    def __init__(self):
        super().__init__(hashlib.sha1)
        self._keyed: dict[bytes, hmac.HMAC] = {}

    def get_signature(self, key: bytes, value: bytes) -> bytes:
        keyed = self._keyed.get(key)
        if keyed is None:
            keyed = self._keyed[key] = hmac.new(key, digestmod=hashlib.sha1)
        mac = keyed.copy()
        mac.update(value)
        return mac.digest()


class KeyedSigner(ItsSigner):
    """Derives its key once per secret; itsdangerous re-derives it (a hash) on every sign
    and verify. Same keys, same signatures."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._derived: dict = {}

    def derive_key(self, secret_key=None) -> bytes:
        key = self._derived.get(secret_key)
        if key is None:
            key = self._derived[secret_key] = super().derive_key(secret_key)
        return key


class SmallTokenSerializer(URLSafeSerializer):
    """URLSafeSerializer made cheap for tokens minted per request (a ballot page mints two).

    The tokens are byte for byte what URLSafeSerializer makes, and its tokens load here:
    - no zlib attempt: ~60 bytes of JSON that deflate never shortens, while zlib.compress
      sets up ~256 KB of state on every call;
    - one signer, its key derived once, HMAC-SHA1 from a keyed state (KeyedHMAC), where
      itsdangerous builds a signer and derives its key per token;
    - the JSON encoder built once.
    """

    def __init__(self, secret: str, salt: str):
        super().__init__(secret, salt=salt, serializer=CompactJSON, signer=KeyedSigner,
                         signer_kwargs={"digest_method": hashlib.sha1, "algorithm": KeyedHMAC()})
        self._signer = super().make_signer()

    def make_signer(self, salt=None):
        return self._signer if salt is None or salt == self.salt else super().make_signer(salt)

    def dump_payload(self, obj) -> bytes:
        return base64_encode(Serializer.dump_payload(self, obj))


class Tokens:
    """The voter-facing tokens, each signed for its own purpose, and the stored keyed hashes.

    They carry their issue time as data (not itsdangerous' timestamp) so that age rules
    are checked against the `now` a handler passes, which keeps them testable.
    """

    def __init__(self, secret: str):
        self._device = serializer(secret, "device")
        self._csrf = serializer(secret, "csrf")
        self._code = serializer(secret, "voter-code")
        self._keyed_sha256 = hmac.new(secret.encode(), digestmod=hashlib.sha256)

    def _load(self, signed, token: str | None):
        if not token or len(token) > 512:
            raise TokenInvalid("missing")
        try:
            return signed.loads(token)
        except BadData as exc:
            raise TokenInvalid(str(exc)) from exc

    # the device a ballot page was opened on (open electorate)
    def new_device(self, now: datetime | None = None) -> tuple[str, str]:
        """A new device id, and its cookie carrying when it was first given a ballot page (the
        minimum-age rule counts from then, so going back to the ballot does not restart it)."""
        device = secrets.token_urlsafe(18)
        data = {"d": device} if now is None else {"d": device, "t": int(now.timestamp())}
        return device, self._device.dumps(data)

    def device(self, token: str | None) -> str:
        return self.device_and_since(token)[0]

    def device_and_since(self, token: str | None) -> tuple[str, int | None]:
        """The device id and when its cookie was issued (None for a cookie from before that
        was recorded: its age is unknown, so only the form token's own age counts)."""
        data = self._load(self._device, token)
        if not isinstance(data, dict) or not isinstance(data.get("d"), str):
            raise TokenInvalid("shape")
        since = data.get("t")
        return data["d"], since if isinstance(since, int) and not isinstance(since, bool) else None

    # a redeemed one-time voter code (closed electorate)
    def code_cookie(self, campaign_id: int, code_hash: str) -> str:
        return self._code.dumps({"c": campaign_id, "h": code_hash})

    def code(self, token: str | None, campaign_id: int) -> str:
        data = self._load(self._code, token)
        if not isinstance(data, dict) or data.get("c") != campaign_id or not isinstance(data.get("h"), str):
            raise TokenInvalid("other campaign")
        return data["h"]

    # the ballot form's CSRF token (see the CSRF section for why it is signed)
    def csrf(self, voter_key: str, campaign_id: int, now: datetime, channel: str | None = None) -> str:
        return self._csrf.dumps({"v": voter_key[-16:], "c": campaign_id, "t": int(now.timestamp()),
                                 "ch": channel})

    def check_csrf(self, token: str | None, voter_key: str, campaign_id: int, now: datetime,
                   shown_since: int | None = None) -> dict:
        """Returns the token's data (issue time, channel); raises TokenInvalid/TokenExpired/TokenTooFast.

        `shown_since` is when this device was first given a ballot page (its cookie's time):
        the page re-fetched by going back or reloading carries a new token, but the person
        has had the ballot in front of them since the first one."""
        data = self._load(self._csrf, token)
        if (not isinstance(data, dict) or data.get("v") != voter_key[-16:] or data.get("c") != campaign_id
                or not isinstance(data.get("t"), int)):
            raise TokenInvalid("bound to another voter or campaign")
        age = now.timestamp() - data["t"]
        shown_for = now.timestamp() - min(data["t"], shown_since if shown_since is not None else data["t"])
        if shown_for < CSRF_MIN_AGE_S:
            raise TokenTooFast("too fast")
        if age > CSRF_MAX_AGE_S:
            raise TokenExpired("old page")
        data["issued_at"] = datetime.fromtimestamp(data["t"], timezone.utc)
        return data

    def voter_key(self, kind: str, value: str) -> str:
        """What the ballot row stores: an HMAC, never the raw device id or code."""
        return f"{kind}:{self._hmac_hex(f'{kind}:{value}')}" if kind != "code" else f"code:{value}"

    def ip_key(self, ip: str) -> str:
        """What the ballot limit and the sign-in throttle count by: the client's network
        (network_of), keyed so that no address is stored."""
        return self._hmac_hex(f"ip:{network_of(ip)}")[:32]

    def _hmac_hex(self, text: str) -> str:
        """HMAC-SHA256 under the secret, from a keyed state copied per call (see KeyedHMAC)."""
        mac = self._keyed_sha256.copy()
        mac.update(text.encode())
        return mac.hexdigest()


# ---------------------------------------------------------------- CSRF
#
# Every state-changing POST passes two checks: `cross_site` (what the browser says about
# where the form came from), then the form's token. The token takes one of two forms:
#
# - The ballot's is signed (Tokens.csrf, purpose `csrf`) and bound to the voter key, the
#   campaign and its issue time. A voter has no server-side session to keep a secret in,
#   the token has to carry when it was issued, and checking it reads nothing on the ballot
#   path. A ballot posted within CSRF_MIN_AGE_S of the device's FIRST ballot page (the device
#   cookie's time, or the token's when the cookie predates it) is a script: a person who went
#   back to the page or reloaded it got a new token but has had the ballot for longer. Its signature is compared in
#   constant time by itsdangerous.
# - Staff forms carry a random secret (new_csrf_secret) kept in the session's row, and the
#   sign-in form one kept in the signed session cookie. Staff already have a server-side
#   session, so its secret ends with it (sign-out, timeouts, a new password) with no age
#   rule or binding to check, and it does not depend on the signing secret. It is compared
#   by same_secret, the one comparison of a submitted secret.

CSRF_MIN_AGE_S = 2  # a form posted faster than a person can read it is a script
CSRF_MAX_AGE_S = 6 * 3600


def new_csrf_secret() -> str:
    """A staff form token: 256 bits, kept server-side with the session it protects."""
    return secrets.token_urlsafe(32)


def same_secret(given, expected) -> bool:
    """Constant-time equality for a submitted token; any other type or a non-ASCII string is
    simply unequal (hmac.compare_digest raises TypeError on non-ASCII str)."""
    if not isinstance(given, str) or not isinstance(expected, str):
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


def cross_site(headers, base_url: str) -> bool:
    """The first CSRF layer for state-changing POSTs: the browser says where the form came from.

    Sec-Fetch-Site 'cross-site' is refused; so is an Origin that is neither this request's
    own host nor the configured public origin. Browsers and WebViews that send neither
    header (older WeChat builds) fall back on the form token alone.
    """
    if headers.get("sec-fetch-site") == "cross-site":
        return True
    origin = headers.get("origin")
    if not origin:
        return False
    if origin == "null":
        return True
    own = {base_url.rstrip("/")}
    host = headers.get("host")
    if host:
        own |= {f"http://{host}", f"https://{host}"}
    return origin.rstrip("/") not in own


def json_dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
