"""Run the real `qaportal` console script (its main()) in a subprocess, on a temp instance."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def console_env(instance: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without QAPORTAL_* settings, on the given instance folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QAPORTAL_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["QAPORTAL_INSTANCE_PATH"] = str(instance)
    env.update(extra)
    return env


def qaportal(env: dict[str, str], *args: str, stdin: str | None = None,
             timeout: float = 60) -> subprocess.CompletedProcess:
    """Run `qaportal ARGS` through the console script's entry point, qaportal.cli:main."""
    return subprocess.run(
        [sys.executable, "-c", "import sys; from qaportal.cli import main; sys.argv[0] = "
         "'qaportal'; main()", *args],
        env=env, input=stdin, capture_output=True, text=True, timeout=timeout,
        cwd=env["QAPORTAL_INSTANCE_PATH"],
    )
