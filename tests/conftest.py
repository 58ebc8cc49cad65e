"""Every test builds its own app on its own SQLite file; nothing is shared but a seeded copy."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from brandvote import campaigns, db as dbmod, seed
from brandvote.app import create_app
from brandvote.settings import Settings

from helpers import ANNOUNCE, BASE_URL, CLOSES, NOW, OPENS, SLUG, FakeClock, copy_db, open_campaign


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory) -> Path:
    """The bundled catalog migrated and loaded once; tests get a copy of it."""
    path = tmp_path_factory.mktemp("seed") / "seed.db"
    dbmod.migrate(path)
    db = dbmod.connect(path)
    seed.load_file(db, seed.bundled_catalog_path(), NOW)
    db.close()
    return path


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(db_path=tmp_path / "test.db", secret="test-secret-not-for-production",
                    base_url=BASE_URL, ip_limit=1000)


@pytest.fixture
def seeded_settings(settings, seeded_template) -> Settings:
    copy_db(seeded_template, settings.db_path)
    return settings


def _migrated(settings):
    dbmod.migrate(settings.db_path)
    conn = dbmod.connect(settings.db_path)
    yield conn
    conn.close()


@pytest.fixture
def db(seeded_settings):
    yield from _migrated(seeded_settings)


@pytest.fixture
def empty_db(settings):
    yield from _migrated(settings)


@pytest.fixture
def clock() -> FakeClock:
    """An hour into the demo campaign's window; only the test moves it."""
    return FakeClock(OPENS + timedelta(hours=1))


@pytest.fixture
def client(seeded_settings, clock):
    """The app on the fake clock (tests that vote ask for `campaign` too, to open the demo)."""
    with TestClient(create_app(seeded_settings, now=clock), base_url="https://testserver") as test_client:
        yield test_client


@pytest.fixture(scope="session")
def bundled() -> dict:
    return seed.read_document(seed.bundled_catalog_path())


def pytest_collection_modifyitems(config, items):
    """BRANDVOTE_QUICK=1 deselects tests marked slow (long crash rounds); CI runs everything."""
    import os

    if os.environ.get("BRANDVOTE_QUICK", "") not in ("1", "true", "yes"):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


@pytest.fixture
def campaign(db):
    """The demo campaign, open from OPENS to CLOSES, announced at ANNOUNCE."""
    return open_campaign(db, SLUG, OPENS, CLOSES, ANNOUNCE)


@pytest.fixture
def candidates(db, campaign):
    return [b["slug"] for b in campaigns.candidates_of(db, campaign["id"])]
