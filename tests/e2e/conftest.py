"""Browser tests: the real app served on a free localhost port, driven in Debian's Chromium."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import make_test_app
from tests.live import LiveServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def pytest_collection_modifyitems(items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"],
    }


@pytest.fixture
def live_app(tmp_path):
    """An app on a SQLite file with CSRF protection on, as in production."""
    return make_test_app(tmp_path, f"sqlite:///{tmp_path / 'e2e.sqlite'}",
                         WTF_CSRF_ENABLED=True, TESTING=False)


@pytest.fixture
def live_server(live_app):
    server = LiveServer(live_app).start()
    yield server
    server.stop()
