"""The wheel carries the templates, migrations and static files, and works installed."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SKIP = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "instance",
                              "__pycache__", ".pytest_cache", ".ruff_cache", "test-artifacts",
                              "tests", "docs", "benchmarks")

CHECK_INSTALLED = """
import sys
sys.path.insert(0, sys.argv[1])
import qaportal
from pathlib import Path
assert qaportal.__file__.startswith(sys.argv[1]), qaportal.__file__
from qaportal import create_app
app = create_app({"INSTANCE_PATH": sys.argv[2], "TESTING": True})
with app.app_context():
    from qaportal.extensions import db
    db.create_all()
assert app.template_folder.startswith(sys.argv[1]), app.template_folder
assert (Path(app.extensions["migrate"].directory) / "versions").is_dir()
page = app.test_client().get("/login")
assert page.status_code == 200 and b'name="password"' in page.data, page.status_code
assert app.test_client().get("/static/css/app.css").status_code == 200
print("installed wheel works")
"""


@pytest.mark.packaging
def test_wheel_contains_templates_migrations_and_static_files(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=SKIP)
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(src)],
                   check=True, capture_output=True, timeout=60)
    wheel = next(dist.glob("qaportal-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for template in (ROOT / "templates").rglob("*.html"):
        assert f"qaportal/templates/{template.relative_to(ROOT / 'templates')}" in names
    for migration in (ROOT / "migrations").rglob("*.py"):
        assert f"qaportal/migrations/{migration.relative_to(ROOT / 'migrations')}" in names
    for static in (ROOT / "qaportal" / "static").rglob("*.*"):
        assert f"qaportal/{static.relative_to(ROOT / 'qaportal')}" in names
    assert {"qaportal/migrations/alembic.ini", "qaportal/migrations/script.py.mako",
            "qaportal/data/common-passwords.txt"} <= names
    assert not any(n.startswith(("tests/", "templates/", "migrations/")) for n in names)

    # Installed (a pure-Python wheel unpacked is what pip installs), the app finds them.
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    result = subprocess.run(
        [sys.executable, "-c", CHECK_INSTALLED, str(target), str(tmp_path / "instance")],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "installed wheel works" in result.stdout
