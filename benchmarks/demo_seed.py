"""How long `qaportal demo` (run by `make run` on a new instance) takes, step by step.

Run: .venv/bin/python benchmarks/demo_seed.py   (a fresh SQLite instance in a temp folder)
Prints each demo step's seconds and the total; the step that seeds the QA history (a year
of sampled reads, each with a stored image and an audited access grant) dominates.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    from qaportal import create_app
    from qaportal.demo import STEPS
    from qaportal.demo.accounts import demo_password, seed_accounts
    from qaportal.extensions import db

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        app = create_app({
            "INSTANCE_PATH": str(root / "instance"), "SECRET_KEY": "bench-secret-key",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{root / 'bench.sqlite'}", "LOCAL": True,
        })
        with app.app_context():
            db.create_all()
            started = time.perf_counter()
            accounts = seed_accounts(demo_password())
            db.session.commit()
            print(f"accounts: {time.perf_counter() - started:.2f} s")
            for order, step in sorted(STEPS, key=lambda s: s[0]):
                t0 = time.perf_counter()
                summary = step(accounts)
                db.session.commit()
                print(f"step {order} ({step.__module__}): {time.perf_counter() - t0:.2f} s"
                      f" — {summary or 'nothing to do'}")
            print(f"demo seed total: {time.perf_counter() - started:.2f} s")
            db.session.remove()
            db.engine.dispose()


if __name__ == "__main__":
    main()
