#!/bin/sh
# `make audit`: the wapiti web scanner against a throw-away demo on 127.0.0.1.
#
# Starts `brandvote serve` on a free loopback port with a temporary database, waits for
# /healthz, scans it signed in as an admin (the staff console: stored XSS through the editor
# forms reaches public pages), then anonymously (the public site, as an attacker sees it),
# stops the server and prints a summary. Reports land in .artifacts/audit/.
#
# Only modules that stay on this host. Never ssrf, xxe, wapp or nikto (they reach outside
# hosts or download data); --no-bugreport stops wapiti from uploading crash reports, and the
# "external endpoint" written into some XSS payloads points at a closed loopback port.
# wapiti lives in its own venv (tools/wapiti-venv), apart from the project's dependencies.
set -euf  # -f: the wapiti exclusions below carry literal * wildcards

cd "$(dirname "$0")/.."
PY=.venv/bin/python
WAPITI_VENV=tools/wapiti-venv
WAPITI_VERSION=3.2.3
MODULES=cookieflags,csp,csrf,exec,file,http_headers,permanentxss,redirect,sql,xss,methods,crlf
SCAN_SECONDS=${AUDIT_SCAN_SECONDS:-180}      # wapiti 3.2's --max-scan-time bounds the crawl only
ATTACK_SECONDS=${AUDIT_ATTACK_SECONDS:-60}   # ... so each module's attack phase gets its own bound
OUT=.artifacts/audit

[ -x "$PY" ] || { echo "no $PY: run \`make audit\` (it installs the project first)"; exit 1; }
if [ ! -x "$WAPITI_VENV/bin/wapiti" ]; then
    echo "installing wapiti3==$WAPITI_VERSION into $WAPITI_VENV"
    python3 -m venv "$WAPITI_VENV"
    "$WAPITI_VENV/bin/pip" install -q --upgrade pip
    "$WAPITI_VENV/bin/pip" install -q "wapiti3==$WAPITI_VERSION"
fi

mkdir -p "$OUT"
TMP=$(mktemp -d)
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$PORT"
PASSWORD=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(18))')

"$PY" -m brandvote migrate --db "$TMP/audit.db" >/dev/null
printf '%s\n' "$PASSWORD" | "$PY" -m brandvote user add auditor --role admin --db "$TMP/audit.db" >/dev/null

env -u BRANDVOTE_DB -u BRANDVOTE_TRUSTED_PROXIES BRANDVOTE_BASE_URL="$URL" \
    "$PY" -m brandvote serve --db "$TMP/audit.db" --host 127.0.0.1 --port "$PORT" >"$OUT/server.log" 2>&1 &
SERVER=$!
stop() {
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    rm -rf "$TMP"
}
trap stop EXIT
trap 'exit 130' INT TERM

"$PY" - "$URL" <<'EOF'
import sys, time, urllib.request
deadline = time.monotonic() + 60
while True:
    try:
        with urllib.request.urlopen(sys.argv[1] + "/healthz", timeout=1) as r:
            if r.status == 200:
                break
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit("the demo server did not answer /healthz within 60 s; see .artifacts/audit/server.log")
    time.sleep(0.3)
EOF
echo "demo server on $URL (pid $SERVER)"

wapiti() {
    # $1: report name, $2: base URL (its folder is the scope); the rest: extra options
    name=$1 base=$2
    shift 2
    echo "wapiti: $name scan of $base (at most $SCAN_SECONDS s)"
    "$WAPITI_VENV/bin/wapiti" -u "$base" --scope folder -m "$MODULES" \
        --flush-session --max-scan-time "$SCAN_SECONDS" --max-attack-time "$ATTACK_SECONDS" --no-bugreport \
        --external-endpoint "http://127.0.0.1:9/" --dns-endpoint 127.0.0.1 --store-session "$TMP/wapiti-session" --store-config "$TMP/wapiti-config" \
        -f json -o "$OUT/wapiti-$name.json" "$@" >"$OUT/wapiti-$name.log" 2>&1 \
        || { echo "wapiti ($name) failed; last lines of $OUT/wapiti-$name.log:"; tail -20 "$OUT/wapiti-$name.log"; exit 1; }
}

# The editor's per-entry forms are the same handler 60 times over: attack a sample (slugs
# starting a-c, about six entries) instead of all of them.
SAMPLE=""
for letter in d e f g h i j k l m n o p q r s t u v w x y z; do
    SAMPLE="$SAMPLE -x $URL/admin/brands/$letter*/*"
done

# Signed in first (the public scan's failed sign-ins would throttle this address), scoped to
# every /admin URL (folder scope is a plain prefix in wapiti 3.2). wapiti's "Login failed" line is its English-only check for a sign-out
# link (ours reads 退出); the session cookie is kept either way and the console is crawled.
# shellcheck disable=SC2086
wapiti staff "$URL/admin" --form-url "$URL/login" --form-user auditor --form-password "$PASSWORD" \
    -s "$URL/admin/campaigns" -s "$URL/admin/users" -s "$URL/admin/audit" -s "$URL/admin/import" \
    -x "$URL/logout" $SAMPLE
# Then the public site as anyone sees it, the sign-in form included.
wapiti public "$URL/" -s "$URL/login" -x "$URL/logout"

"$PY" - "$OUT/wapiti-staff.json" "$OUT/wapiti-public.json" <<'EOF'
import json, sys
from collections import defaultdict
total = 0
for path in sys.argv[1:]:
    report = json.load(open(path, encoding="utf-8"))
    info = report.get("infos", {})
    print(f"\n== {path}: {info.get('target')}, {info.get('crawled_pages_nbr', '?')} URLs crawled")
    for section in ("vulnerabilities", "anomalies", "additionals"):
        groups = defaultdict(list)
        for category, items in report.get(section, {}).items():
            for item in items:
                what = f"{item.get('method', '')} {item.get('parameter') or ''}: {item.get('info', '')}"
                where = item.get("path", "") or ""
                groups[category, what.replace(where, "<url>") if len(where) > 1 else what].append(where)
        for (category, what), paths in sorted(groups.items()):
            total += section != "additionals"
            label = section if section != "additionals" else "informational"
            examples = ", ".join(sorted(set(paths))[:3]) + (" ..." if len(set(paths)) > 3 else "")
            print(f"  [{label}] {category} x{len(paths)}: {what}\n      at {examples}")
print(f"\n{total} distinct vulnerabilities and anomalies (full reports in .artifacts/audit/)")
EOF
