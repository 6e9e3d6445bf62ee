"""Study list and study page."""

from __future__ import annotations

from flask import (
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_login import current_user

from qaportal import audit
from qaportal.access_prefetch import prefetched
from qaportal.dicom import StoredFileCorrupt, StoredFileMissing
from qaportal.extensions import db
from qaportal.forms_choices import choices
from qaportal.models import Study, User, loading
from qaportal.paging import capped_count, keyset_page
from qaportal.permissions import (
    BLIND_SOURCES,
    can_correct_read,
    can_edit_study,
    can_see_access_list,
    can_see_blind_grants,
    role_required,
)
from qaportal.studies import bp, service
from qaportal.studies.actions import actions_for
from qaportal.studies.deid import DeidExportError, build_deidentified_zip, deid_options
from qaportal.studies.forms import DeidDownloadForm, StudyContextForm, StudySearchForm
from qaportal.studies.listing import (
    DEFAULT_SORT,
    MODALITIES,
    SORTS,
    STATUSES,
    StudyFilter,
    filtered_studies,
    sort_keys,
)
from qaportal.studies.presenter import present, present_for
from qaportal.studies.queries import study_for
from qaportal.studies.upload_routes import reader_choices

PAGE_SIZE = 50


@bp.route("/", methods=["GET", "POST"])
@role_required("radiologist", "reviewer", "qa_manager", "admin")
def index():
    form, flt, cursor = _study_search()
    stmt = filtered_studies(current_user, flt)
    page = keyset_page(db.session, stmt, sort_keys(flt), Study.id, cursor, PAGE_SIZE,
                       options=loading.study_rows())
    total, capped = capped_count(db.session, stmt, current_app.config["LIST_COUNT_CAP"])
    with prefetched(current_user, page.items):
        rows = [(s, present_for(current_user, s).view) for s in page.items]
    audit.record("study.list_viewed", first_page=page.first, count=len(rows),
                 **flt.audit_details())
    db.session.commit()
    return render_template("studies/index.html", rows=rows, total=total, capped=capped,
                           page=page, form=form, flt=flt, page_args=_page_args(flt))


def _study_search() -> tuple[StudySearchForm, StudyFilter, str | None]:
    """Read the list's search form: POST (CSRF-checked, may carry a patient name) or GET
    (filters without patient data only: a name or MRN never travels in a URL)."""
    if request.method == "POST":
        form = StudySearchForm()
    else:
        form = StudySearchForm(formdata=request.args, meta={"csrf": False})
        form.q.data = ""
    form.modality.choices = choices([("", "Any")] + [(m, m) for m in MODALITIES])
    form.status.choices = choices(STATUSES.items())
    form.sort.choices = choices((k, label) for k, (label, _keys) in SORTS.items())
    if request.method == "GET" and not form.sort.data:
        form.sort.data = DEFAULT_SORT
    if not form.validate():  # CSRF itself is checked before the view (CSRFProtect)
        return form, StudyFilter(), None
    cursor = form.cursor.data if request.method == "POST" else request.args.get("cursor")
    flt = StudyFilter(text=(form.q.data or "").strip(), modality=form.modality.data or "",
                      date_from=form.date_from.data, date_to=form.date_to.data,
                      status=form.status.data or "", sort=form.sort.data or DEFAULT_SORT)
    return form, flt, cursor


def _page_args(flt: StudyFilter) -> dict:
    """The non-identifying filters as URL values for GET pager links."""
    args = {"modality": flt.modality, "status": flt.status,
            "date_from": flt.date_from.isoformat() if flt.date_from else "",
            "date_to": flt.date_to.isoformat() if flt.date_to else "",
            "sort": flt.sort if flt.sort != DEFAULT_SORT else ""}
    return {k: v for k, v in args.items() if v}


@bp.route("/<int:study_id>")
def detail(study_id: int):
    study, mode = study_for(current_user, study_id)
    shown = present_for(current_user, study, deidentified=mode != "full")
    text, view, blind = shown.text, shown.view, shown.blind
    audit.record("study.viewed", study, mode=mode)
    show_read = mode == "full" and study.read is not None and not blind
    access, blind_grants = _access_list(study, show_read)
    db.session.commit()
    return render_template(
        "studies/detail.html", study=study, view=view, mode=mode,
        actions=actions_for(current_user, study, mode),
        can_edit=can_edit_study(current_user, study), show_read=show_read,
        can_correct=show_read and can_correct_read(current_user, study),
        deid_form=DeidDownloadForm(formdata=None), access=access, blind=blind,
        keep_device=shown.may_keep_device_identity,
        blind_grants=blind_grants, notes=text,
    )


def _access_list(study: Study, show_read: bool) -> tuple[list | None, int]:
    """Return the grants the current user may see on the study page, and how many blind
    peer-review grants were left out (only QA managers see who reviews a study; each view
    showing a reviewer beside the reader is audited as an identity view)."""
    if not can_see_access_list(current_user, study):
        return None, 0
    grants = sorted((g for g in study.access if g.revoked_at is None),
                    key=lambda g: g.granted_at)
    blind = [g for g in grants if g.source_type in BLIND_SOURCES]
    if can_see_blind_grants(current_user):
        if blind:
            audit.record("qa.identities_viewed", study, page="study",
                         reader_shown=show_read, grants=len(blind))
        return grants, 0
    return [g for g in grants if g.source_type not in BLIND_SOURCES], len(blind)


@bp.route("/<int:study_id>/edit", methods=["GET", "POST"])
def edit(study_id: int):
    study, mode = study_for(current_user, study_id)
    if not can_edit_study(current_user, study):
        abort(403)
    form = StudyContextForm(obj=study)
    form.reader_id.choices = reader_choices(study.owner)
    read = study.read
    if request.method == "GET":
        form.reader_id.data = read.reader_id if read else study.owner_id
        form.report_text.data = read.report_text if read else ""
    if form.validate_on_submit():
        reader = db.session.get(User, form.reader_id.data) if form.reader_id.data else None
        try:
            service.update_context(
                study, by=current_user, jurisdiction=form.jurisdiction.data,
                clinical_question=form.clinical_question.data,
                clinical_history=form.clinical_history.data,
            )
            service.set_original_read(
                study, by=current_user, reader=reader or study.owner,
                report_text=form.report_text.data, finalized_at=form.finalized_utc(),
            )
        except service.StudyError as exc:
            db.session.rollback()
            form.report_text.errors.append(str(exc))
        else:
            db.session.commit()
            flash("Saved.", "success")
            return redirect(url_for("studies.detail", study_id=study.id))
    audit.record("study.viewed", study, mode=mode, page="edit")  # the form shows the report
    db.session.commit()
    return render_template("studies/edit.html", study=study, form=form,
                           view=present(study, mode), read_final=bool(read and read.is_final))


@bp.route("/<int:study_id>/deidentified.zip")
def download_deidentified(study_id: int):
    study, mode = study_for(current_user, study_id)
    shown = present_for(current_user, study, deidentified=mode != "full")
    form = DeidDownloadForm(request.args)
    options = deid_options(retain_dates=form.retain_dates.data,
                           retain_patient_characteristics=form.retain_patient_characteristics.data,
                           retain_device_identity=(form.retain_device_identity.data
                                                   and shown.may_keep_device_identity))
    try:
        zip_file, report = build_deidentified_zip(study, options)
    except (StoredFileMissing, StoredFileCorrupt) as exc:
        what = "is missing" if isinstance(exc, StoredFileMissing) else \
            "failed its integrity check"
        current_app.logger.error("study %s: a stored file %s", study.id, what)
        flash(f"A stored image {what}, so the de-identified copy cannot be built. "
              "An administrator can run `qaportal verify-storage`.", "error")
        return redirect(url_for("studies.detail", study_id=study.id))
    except DeidExportError as exc:
        current_app.logger.error("study %s: %s", study.id, exc)
        flash(f"The de-identified copy cannot be built: {exc}.", "error")
        return redirect(url_for("studies.detail", study_id=study.id))
    audit.record("study.downloaded", study, kind="deidentified", mode=mode,
                 options=sorted(o.name for o in options), files=report.files,
                 pixel_review=report.pixel_review)
    db.session.commit()
    # An unnamed temporary file: closing it (after the body is sent) frees the space.
    return send_file(zip_file, mimetype="application/zip", as_attachment=True,
                     download_name=f"{study.pseudonym}.zip", max_age=0)
