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
