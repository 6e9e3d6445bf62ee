"""E-mail links point where the portal is served, never at a hard-coded port."""

from __future__ import annotations

from email import message_from_bytes
from pathlib import Path

import pytest

from qaportal.config import ConfigError
from qaportal.extensions import db
from qaportal.notify import notify
from tests.conftest import make_test_app
from tests.console import ROOT
from tests.factories import make_user


def _mailed_link(app) -> str:
    outbox = Path(app.config["OUTBOX_DIR"])
    (mail,) = sorted(outbox.glob("*.eml"))
    body = message_from_bytes(mail.read_bytes()).get_payload(decode=True).decode()
    mail.unlink()
    return body.split("Open it in qaportal: ", 1)[1].split("\n", 1)[0]


def _notify_in_request(app, host: str) -> str:
    with app.test_request_context("/", base_url=f"http://{host}"):
        user = make_user(roles=("radiologist",))
        notify(user, "test", "Something happened.", "/opinions/7")
        db.session.commit()
    return _mailed_link(app)


def test_local_links_use_the_address_the_request_came_to(app):
    assert app.config["LOCAL"] and not app.config["BASE_URL"]
    assert _notify_in_request(app, "127.0.0.1:8123") == "http://127.0.0.1:8123/opinions/7"


def test_local_links_outside_a_request_use_the_served_address(app):
    app.config["SERVED_URL"] = "http://127.0.0.1:8124"
    user = make_user(roles=("radiologist",))
    notify(user, "test", "Something happened.", "/reviews/")
    db.session.commit()
    assert _mailed_link(app) == "http://127.0.0.1:8124/reviews/"


def test_a_set_base_url_wins_everywhere(app):
    app.config["BASE_URL"] = "https://qa.example.test/"
    assert _notify_in_request(app, "127.0.0.1:8123") == "https://qa.example.test/opinions/7"


def test_outside_local_mode_a_host_header_is_never_trusted(tmp_path, db_url):
    app = make_test_app(tmp_path, db_url, LOCAL=False)
    with app.app_context():
        try:
            assert _notify_in_request(app, "evil.example") == "/opinions/7"
        finally:
            db.session.remove()
            db.engine.dispose()


def test_base_url_must_be_absolute(tmp_path):
    with pytest.raises(ConfigError, match="QAPORTAL_BASE_URL"):
        make_test_app(tmp_path, "sqlite://", BASE_URL="qa.example.test")


def test_make_run_passes_the_address_it_serves_on():
    makefile = (ROOT / "Makefile").read_text()
    assert "run: export QAPORTAL_SERVED_URL = http://$(HOST):$(PORT)" in makefile
    assert "scripts/serve.sh $(VENV) $(HOST):$(PORT)" in makefile  # serve.sh binds gunicorn there
    assert '--bind "$BIND"' in (ROOT / "scripts" / "serve.sh").read_text()
