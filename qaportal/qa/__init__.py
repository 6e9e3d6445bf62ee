"""Quality assurance, QA manager side: sampling, adjudication, peer learning, statistics."""

import click
from flask import Blueprint

bp = Blueprint("qa", __name__, url_prefix="/qa")


@bp.cli.command("import-legacy")
@click.argument("csv_path", type=click.Path(exists=True, dir_okay=False))
def import_legacy_command(csv_path: str) -> None:
    """Import reviews scored on the 2009 RADPEER scale from a CSV file."""
    from qaportal.extensions import db
    from qaportal.qa.legacy import import_legacy_reviews

    result = import_legacy_reviews(csv_path)
    db.session.commit()
    click.echo(f"imported {result.imported}, duplicates skipped {result.duplicates}, "
               f"errors {len(result.errors)}")
    for line, problem in result.errors:
        click.echo(f"  line {line}: {problem}", err=True)


from qaportal.qa import (  # noqa: E402,F401
    demo,
    panels,
    routes,
    routes_cases,
    routes_learning,
    routes_rules,
)
