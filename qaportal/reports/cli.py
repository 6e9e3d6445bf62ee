"""`qaportal report KIND ... -o FILE.pdf`: export a report from the command line.

Each report kind adds a subcommand to `report_group` that gathers its options into the
same parameters the web form takes and calls `run_export(kind, params, output)`, e.g.

    @report_group.command("oppe")
    @click.option("--radiologist", required=True, metavar="EMAIL")
    @date_range_options
    @confidential_option
    @output_option
    def oppe_report(output, **params):
        run_export("oppe", params, output)

Command-line exports are recorded and audited like web ones, as "command line (USER)".
"""

from __future__ import annotations

import getpass
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import click
from werkzeug.datastructures import MultiDict

output_option = click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the PDF.",
)
confidential_option = click.option(
    "--confidential/--no-confidential", default=None,
    help="Print the peer-review confidentiality statement on every page "
         "(default: the report's own default).",
)


def date_range_options(fn):
    """Add the --from and --to options (YYYY-MM-DD, inclusive)."""
    fn = click.option("--to", "date_to", required=True, metavar="YYYY-MM-DD",
                      help="Last day of the period (inclusive).")(fn)
    return click.option("--from", "date_from", required=True, metavar="YYYY-MM-DD",
                        help="First day of the period.")(fn)


@click.group("report")
def report_group() -> None:
    """Export a PDF report (recorded and verifiable like the web's exports)."""


def _formdata(params: dict[str, Any]) -> MultiDict:
    data = MultiDict()
    for key, value in params.items():
        if value is None or value is False:
            continue
        data.add(key, "y" if value is True else str(value))
    return data


def _write_atomic(path: Path, data: bytes) -> None:
    path = path.resolve()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o640)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run_export(kind: str, params: dict[str, Any], output: Path) -> None:
    """Validate the parameters with the report's form, export, and write the PDF."""
    from qaportal.extensions import db
    from qaportal.pdf import PdfError
    from qaportal.reports.registry import REPORTS
    from qaportal.reports.service import bind_form, create_export

    definition = REPORTS[kind]
    if params.get("confidential") is None:
        params = {**params, "confidential": definition.confidential_default}
    form = bind_form(definition, _formdata(params))
    if not form.validate():
        for name, errors in form.errors.items():
            for error in errors:
                click.echo(f"error: {name}: {error}", err=True)
        sys.exit(2)
    if not output.resolve().parent.is_dir():
        click.echo(f"error: folder {output.parent} does not exist", err=True)
        sys.exit(2)
    label = f"command line ({getpass.getuser()})"
    try:
        export, pdf = create_export(kind, form.params(), None, label=label)
    except PdfError as exc:
        db.session.rollback()
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    db.session.commit()
    _write_atomic(output, pdf.data)
    click.echo(f"{export.document_id}: {export.title}, {export.page_count} pages, "
               f"{export.size_bytes:,} bytes, {pdf.seconds:.1f} s -> {output}")
    click.echo(f"sha256 {export.sha256}")


@report_group.command("audit")
@date_range_options
@click.option("--actor", help="Only entries whose actor e-mail contains this.")
@click.option("--action", help="Only actions starting with this, e.g. auth.")
@click.option("--object-type", help="Only entries about this object type, e.g. studies.")
@click.option("--object-id", help="Only entries about this object id.")
@confidential_option
@output_option
def audit_report(output: Path, **params: Any) -> None:
    """The audit trail of a period, with the hash chain verified."""
    run_export("audit", params, output)


@report_group.command("credentials")
@click.option("--as-of", metavar="YYYY-MM-DD", help="Day to check expiry against (today).")
@click.option("--include-inactive", is_flag=True, help="Include deactivated accounts.")
@confidential_option
@output_option
def credentials_report(output: Path, **params: Any) -> None:
    """All radiologists' licences, certifications and subspecialties, with expiry marks."""
    from datetime import date

    params["as_of"] = params["as_of"] or date.today().isoformat()
    run_export("credentials", params, output)


@report_group.command("case")
@click.option("--request", "request", required=True, type=int, metavar="ID",
              help="The second-opinion request's number.")
@click.option("--deidentified/--identified", default=None,
              help="Pseudonym and shifted dates, or the patient's identity (default: as the "
                   "request was shared).")
@confidential_option
@output_option
def case_report(output: Path, **params: Any) -> None:
    """The case packet of one second-opinion request (for a coverage review)."""
    from qaportal.extensions import db
    from qaportal.models import OpinionRequest

    req = db.session.get(OpinionRequest, params["request"])
    if req is None:
        click.echo(f"error: request: no second-opinion request #{params['request']}", err=True)
        sys.exit(2)
    if params["deidentified"] is None:
        params["deidentified"] = req.deidentified
    run_export("case", params, output)


@report_group.command("committee")
@click.option("--case", "case", required=True, type=int, metavar="ID",
              help="The discrepancy case's number.")
@output_option
def committee_report(output: Path, **params: Any) -> None:
    """The committee record of one discrepancy case (always marked confidential)."""
    from qaportal.extensions import db
    from qaportal.models import DiscrepancyCase

    if db.session.get(DiscrepancyCase, params["case"]) is None:
        click.echo(f"error: case: no discrepancy case #{params['case']}", err=True)
        sys.exit(2)
    run_export("committee", {**params, "confidential": True}, output)


# --- Peer-review reports -------------------------------------------------------

def _radiologist_option(fn):
    return click.option("--radiologist", required=True, metavar="EMAIL",
                        help="The radiologist's e-mail address.")(fn)


@report_group.command("oppe")
@_radiologist_option
@date_range_options
@output_option
def oppe_report(output: Path, **params: Any) -> None:
    """One radiologist's OPPE packet: credentials, volume, peer review, turnaround."""
    run_export("oppe", params, output)


@report_group.command("fppe")
@_radiologist_option
@date_range_options
@click.option("--fppe-trigger", required=True, help="Why the focused evaluation was started.")
@click.option("--fppe-criteria", required=True, help="What is evaluated and what counts.")
@click.option("--fppe-conclusion", help="The conclusion (leave out while ongoing).")
@output_option
def fppe_report(output: Path, **params: Any) -> None:
    """One radiologist's FPPE packet: the OPPE packet plus trigger, criteria, conclusion."""
    run_export("fppe", params, output)


@report_group.command("department")
@date_range_options
@click.option("--show-names", is_flag=True,
              help="Name readers and reviewers (default: coded R01…, V01…).")
@output_option
def department_report(output: Path, **params: Any) -> None:
    """The department QA summary: coded readers' rates, funnel plot, cases, turnaround."""
    run_export("department", params, output)
