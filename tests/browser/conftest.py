"""Fixtures: a real server and Debian's chromium driven by playwright at phone size."""

from __future__ import annotations

from pathlib import Path

import pytest

from browser_support import CHROMIUM, CHROMIUM_ARGS, phone_page
from helpers import LiveServer


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("live"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: `make test` installs it as root"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def phone(browser):
    page = phone_page(browser)
    yield page
    page.context.close()


@pytest.fixture
def phone_no_js(browser):
    page = phone_page(browser, java_script_enabled=False)
    yield page
    page.context.close()


