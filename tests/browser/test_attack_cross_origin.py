"""A4: a page on another origin auto-submits the ballot form with the victim's cookies."""

import http.server
import re
import sqlite3
import threading
import time

import httpx2
import pytest

from helpers import free_port

pytestmark = pytest.mark.browser
SLUG = "shanghai-2022-highlights"


def serve_attack_page(html: str):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = html.encode()
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_cross_origin_auto_submitted_ballot_stores_nothing(live_server, browser):
    # the attacker holds a real token of its own (from its own visit) and the candidate slugs
    with httpx2.Client(base_url=live_server.url) as attacker:
        page = attacker.get(f"/c/{SLUG}").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    slugs = re.findall(r'name="choice" value="([^"]+)"', page)[:3]
    inputs = "".join(f'<input name="choice" value="{s}">' for s in slugs)
    evil = serve_attack_page(
        f'<!doctype html><form method="post" action="{live_server.url}/c/{SLUG}/ballot">'
        f'<input name="csrf_token" value="{token}">{inputs}</form>'
        '<script>setTimeout(function(){document.forms[0].submit()}, 2500)</script>')
    conn = sqlite3.connect(live_server.db_path)
    before = conn.execute("select count(*) from ballots").fetchone()[0]
    try:
        context = browser.new_context()
        victim = context.new_page()
        victim.goto(f"{live_server.url}/c/{SLUG}")  # the victim has a device cookie for the site
        assert any(c["name"] == "bv_device" for c in context.cookies())
        # "localhost" is another site than "127.0.0.1": the attack page is cross-site
        with victim.expect_navigation(url=re.compile(r".*/ballot$"), timeout=15000) as nav:
            victim.goto(f"http://localhost:{evil.server_address[1]}/")
        response = nav.value
        assert response.status == 403
        assert "其他网站" in victim.content() or "表单校验失败" in victim.content()
        context.close()
    finally:
        evil.shutdown()
    time.sleep(0.2)
    assert conn.execute("select count(*) from ballots").fetchone()[0] == before
    conn.close()
