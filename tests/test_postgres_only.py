"""--postgres-only keeps every test that can reach QAPORTAL_TEST_DATABASE_URL's database."""

from __future__ import annotations

from types import SimpleNamespace

from tests.conftest import _reaches_postgres


def _item(tmp_path, fixtures, source="def test_x(): pass\n"):
    path = tmp_path / "test_mod.py"
    path.write_text(source)
    return SimpleNamespace(fixturenames=fixtures, path=path)


def test_a_test_through_postgres_url_is_kept(tmp_path):
    assert _reaches_postgres(_item(tmp_path, ["app", "db_url", "postgres_url", "tmp_path"]))


def test_a_test_reading_the_variable_is_kept(tmp_path):
    src = 'import os\nURL = os.environ.get("QAPORTAL_TEST_DATABASE_URL")\n'
    assert _reaches_postgres(_item(tmp_path, ["tmp_path"], src))
    assert _reaches_postgres(_item(tmp_path, ["tmp_path"], "from tests.conftest import PG_ENV\n"))


def test_a_test_without_either_is_left_to_the_sqlite_pass(tmp_path):
    assert not _reaches_postgres(_item(tmp_path, ["tmp_path"]))


def test_items_pytest_made_otherwise_are_kept():
    assert _reaches_postgres(SimpleNamespace(path=None))


def test_the_app_fixture_asks_for_postgres_url(app, request):
    assert "postgres_url" in request.fixturenames
