"""Where a PDF report's time and memory go: data gathering, HTML, PDF rendering.

Runs one report in this process against the database of the environment (the
QAPORTAL_* variables the CLI reads, e.g. a stage-B database of benchmarks/scale.py),
as qaportal.reports.service.create_export does it, in three timed steps:
- data: the report's build_context (SQL statements counted and timed apart);
- html: the Jinja template;
- pdf: qaportal.pdf.render_pdf (the `python -m qaportal.pdf.worker` child process).
Prints seconds per step, the SQL figures, this process's peak RSS (RUSAGE_SELF, which
includes the interpreter and the app: see `qaportal routes` in benchmarks/scale.py for
that part alone) and the render worker's (RUSAGE_CHILDREN). --profile N prints the N
costliest functions of the data step (cProfile, cumulative time); --sql prints every
statement of the data step with its time.
Nothing is written to the database or the report store.

  python benchmarks/report_split.py oppe --radiologist reader2@scale.test --days 365
  python benchmarks/report_split.py department --days 730
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import sys
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=("oppe", "department"))
    ap.add_argument("--radiologist", default="reader2@scale.test")
    ap.add_argument("--days", type=int, default=365, help="period length, ending today")
    ap.add_argument("--profile", type=int, default=0, metavar="N")
    ap.add_argument("--save-html", metavar="FILE", help="also write the report's HTML there")
    ap.add_argument("--sql", action="store_true", help="print each statement and its time")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    import sqlalchemy as sa

    from qaportal import create_app
    from qaportal.extensions import db
    from qaportal.pdf import render_pdf
    from qaportal.reports.registry import REPORTS
    from qaportal.reports.service import new_document_id, render_html, render_options

    app = create_app()
    startup = time.perf_counter() - t0
    end = date.today()
    params = {"date_from": end - timedelta(days=args.days - 1), "date_to": end,
              "confidential": True}
    if args.kind == "oppe":
        params["radiologist"] = args.radiologist
    with app.app_context():
        sql = {"n": 0, "s": 0.0}

        def before(conn, cursor, statement, parameters, context, executemany):
            conn.info["t"] = time.perf_counter()

        def after(conn, cursor, statement, parameters, context, executemany):
            took = time.perf_counter() - conn.info.pop("t")
            sql["n"] += 1
            sql["s"] += took
            if args.sql:
                print(f"  SQL {took * 1000:7.1f} ms  {' '.join(statement.split())[:150]}")

        engine = db.engine
        sa.event.listen(engine, "before_cursor_execute", before)
        sa.event.listen(engine, "after_cursor_execute", after)
        definition = REPORTS[args.kind]
        profiler = cProfile.Profile() if args.profile else None
        t = time.perf_counter()
        if profiler:
            profiler.enable()
        context = definition.build_context(params, None)
        if profiler:
            profiler.disable()
        data_s = time.perf_counter() - t
        sql_n, sql_s = sql["n"], sql["s"]
        doc_id = new_document_id()

        # the HTML step alone: the template over the context just built
        original = definition.build_context
        t = time.perf_counter()
        object.__setattr__(definition, "build_context", lambda p, u: dict(context))
        try:
            html, _ = render_html(args.kind, params, None, document_id=doc_id,
                                  generated_by="benchmark")
        finally:
            object.__setattr__(definition, "build_context", original)
        html_s = time.perf_counter() - t
        if args.save_html:
            Path(args.save_html).write_text(html, encoding="utf-8")
        self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t = time.perf_counter()
        pdf = render_pdf(html, render_options(doc_id))
        pdf_s = time.perf_counter() - t
        worker_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        db.session.rollback()
    print(f"{args.kind} {params['date_from']}..{params['date_to']}: "
          f"start-up {startup:.2f} s | data {data_s:.2f} s ({sql_n} SQL, {sql_s:.2f} s) | "
          f"html {html_s:.2f} s ({len(html) / 1024:.0f} KiB) | "
          f"pdf {pdf_s:.2f} s ({pdf.page_count} pages, {len(pdf.data) / 1024:.0f} KiB) | "
          f"peak RSS: this process {self_mb:.0f} MB, render worker {worker_mb:.0f} MB")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile)


if __name__ == "__main__":
    main()
