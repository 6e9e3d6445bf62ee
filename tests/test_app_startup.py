"""What create_app does ahead of the first request, so no worker pays it there."""

from __future__ import annotations

import os
import subprocess
import sys


def test_create_app_sets_up_the_orm_mappers(tmp_path):
    # A fresh interpreter: in this one, earlier tests' requests have set them up already.
    code = (
        "from qaportal import create_app\n"
        "from qaportal.extensions import db\n"
        "create_app()\n"
        "mappers = list(db.Model.registry.mappers)\n"
        "assert mappers and all(m.configured for m in mappers), 'not configured'\n")
    env = {**os.environ, "QAPORTAL_INSTANCE_PATH": str(tmp_path), "QAPORTAL_LOCAL": "1"}
    env.pop("QAPORTAL_DATABASE_URL", None)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_app_and_the_cli_do_not_import_weasyprint(tmp_path):
    # PDFs are rendered in a child process (qaportal.pdf.worker): the web workers and every
    # CLI command would otherwise pay WeasyPrint's import (0.3 s and its memory) at start-up.
    code = (
        "import sys\n"
        "from qaportal import create_app\n"
        "import qaportal.cli, qaportal.reports.service, qaportal.reports.routes, qaportal.pdf\n"
        "create_app()\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'weasyprint')\n"
        "assert not loaded, loaded[:5]\n"
        "from qaportal.pdf import AssetFetcher, RefusedURL\n"  # still there when asked for
        "assert issubclass(RefusedURL, ValueError) and AssetFetcher.__name__ == 'AssetFetcher'\n")
    env = {**os.environ, "QAPORTAL_INSTANCE_PATH": str(tmp_path), "QAPORTAL_LOCAL": "1"}
    env.pop("QAPORTAL_DATABASE_URL", None)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_every_package_imports_first_without_an_import_cycle():
    # Each package imported first in a fresh interpreter: `import qaportal.qa` used to fail
    # (qa.demo -> demo -> accounts -> admin -> feeds -> studies -> studies.demo -> demo).
    import qaportal

    root = os.path.dirname(qaportal.__file__)
    packages = sorted(name for name in os.listdir(root)
                      if os.path.isfile(os.path.join(root, name, "__init__.py")))
    assert "qa" in packages and "demo" in packages
    failures = {}
    for name in packages:
        result = subprocess.run([sys.executable, "-c", f"import qaportal.{name}"],
                                capture_output=True, text=True, timeout=120)
        if result.returncode:
            failures[name] = result.stderr.strip().splitlines()[-1]
    assert not failures, failures


def _frozen_after_create_app(tmp_path, **env_extra) -> int:
    code = ("import gc\n"
            "from qaportal import create_app\n"
            "create_app()\n"
            "print(gc.get_freeze_count())\n")
    env = {**os.environ, "QAPORTAL_INSTANCE_PATH": str(tmp_path), "QAPORTAL_LOCAL": "1"}
    env.pop("QAPORTAL_DATABASE_URL", None)
    env.pop("QAPORTAL_GC_FREEZE", None)  # tests/conftest.py turns it off for the test run
    env.update(env_extra)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return int(result.stdout.split()[-1])


def test_start_up_objects_are_out_of_the_garbage_collectors_reach(tmp_path):
    # gc.freeze (qaportal/gc_settle.py): a full collection in a web worker walks what the
    # requests left, not the ~200,000 objects of the app itself.
    assert _frozen_after_create_app(tmp_path) > 50_000


def test_the_freeze_can_be_turned_off(tmp_path):
    assert _frozen_after_create_app(tmp_path, QAPORTAL_GC_FREEZE="0") == 0
