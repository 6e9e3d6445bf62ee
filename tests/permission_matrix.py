"""The permission matrix: every endpoint, for anonymous users and for each role.

tests/test_permission_matrix.py reads every route from app.url_map and fails when an
endpoint has no entry here, so a new route cannot escape the check. Feature branches
append their entries (and the objects they need) at the end, under a comment naming the
feature, to keep merges simple.

Every URL rule of an endpoint is requested with every method it allows (GET and POST;
POST is sent with empty form data, CSRF off: the CSRF check has its own test).

An entry maps each of ANONYMOUS + ROLES to the status code expected when a user holding
only that role requests the route (anonymous HTML requests are sent to sign in: LOGIN).
Optional keys:
  "method":    the method those codes are for: "GET" (default when the route allows it) or
               "POST".
  "POST" / "GET": {role: status} for the route's other method. A role refused (403/404)
               and an anonymous user sent to sign in need no entry there: the refusal holds
               for every method. The roles allowed must be declared (the test says which).
  "params":    function (objs, users) -> URL values; objs holds what OBJECTS built.
  "unrelated": a role: a user holding it but WITHOUT relation to the object must get 404.
Every route with an <int:...> value is also requested with ids that do not exist: each
role that is not refused (403) must then get 404.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ANONYMOUS = "anonymous"
ROLES = ("radiologist", "reviewer", "qa_manager", "admin")
LOGIN = 302  # anonymous users are redirected to /login
METHODS = ("GET", "POST")


def everyone(status: int, anonymous: int = LOGIN) -> dict[str, int]:
    """Return an entry where every signed-in role gets the same status."""
    return {ANONYMOUS: anonymous, **dict.fromkeys(ROLES, status)}


def only(roles: tuple[str, ...], status: int = 200, refused: int = 403) -> dict[str, int]:
    """Return an entry where the given roles get status and every other role is refused."""
    return {ANONYMOUS: LOGIN, **{r: status if r in roles else refused for r in ROLES}}


# Objects the parametrised routes need: name -> function(users) -> object. users maps
# each role to the matrix user holding only that role (plus "other_admin").
OBJECTS: dict[str, Callable[[dict[str, Any]], Any]] = {}


def _subject(users):
    from tests.factories import make_certification, make_user

    user = make_user(roles=("radiologist",), licenses=["CA"])
    make_certification(user)
    return user


def _study(users):
    from tests.factories import make_study

    return make_study(users["radiologist"])


OBJECTS["subject"] = _subject  # an account the administrator manages
OBJECTS["study"] = _study  # uploaded by the matrix radiologist


def _batch(users):
    from qaportal.extensions import db
    from qaportal.models import UploadBatch

    batch = UploadBatch(user_id=users["radiologist"].id, source="browser")
    db.session.add(batch)
    db.session.flush()
    return batch


OBJECTS["batch"] = _batch  # an upload by the matrix radiologist


EXPECTED: dict[str, dict[str, Any]] = {
    # -- foundation: static files, sign-in, account --------------------------------------
    "static": {**everyone(200, anonymous=200),
               "params": lambda objs, users: {"filename": "css/app.css"}},
    "home.health": everyone(200, anonymous=200),
    "home.index": everyone(200),
    # A signed-in user is sent home; the 2FA step without a pending sign-in goes to /login.
    # POSTs with an empty form: the form comes back with its errors (200; some pages 400 or
    # 422), or a signed-in user is sent on (302).
    "auth.login": {**everyone(302, anonymous=200), "POST": everyone(302, anonymous=200)},
    "auth.login_totp": {**everyone(302, anonymous=302), "POST": everyone(302)},
    "auth.logout": {**everyone(302), "method": "POST"},
    "auth.account": everyone(200),
    "auth.change_password": {**everyone(200), "POST": everyone(200)},
    "auth.totp_enrol": {**everyone(200), "POST": everyone(200)},
    "auth.totp_disable": {**everyone(302), "method": "POST"},
    # -- foundation: administration --------------------------------------------------------
    "admin.users": only(("admin",)),
    "admin.user_new": {**only(("admin",)), "POST": {"admin": 200}},
    "admin.user_edit": {**only(("admin",)), "POST": {"admin": 200},
                        "params": lambda objs, users: {"user_id": objs["subject"].id}},
    "admin.user_action": {
        **only(("admin",), status=302), "method": "POST",
        "params": lambda objs, users: {"user_id": objs["subject"].id, "action": "unlock"},
    },
    # Empty form data: the admin gets the page back with the errors (422).
    "admin.license_add": {**only(("admin",), status=422), "method": "POST",
                          "params": lambda objs, users: {"user_id": objs["subject"].id}},
    "admin.certification_add": {**only(("admin",), status=422), "method": "POST",
                                "params": lambda objs, users: {"user_id": objs["subject"].id}},
    "admin.credential_remove": {
        **only(("admin",), status=302), "method": "POST",
        "params": lambda objs, users: {"user_id": objs["subject"].id, "kind": "license",
                                       "item_id": objs["subject"].licenses[0].id},
    },
    # -- foundation: audit log ----------------------------------------------------------------
    "auditlog.index": only(("qa_manager", "admin")),
    "auditlog.export": only(("qa_manager", "admin")),
    # -- studies ------------------------------------------------------------------------------
    "studies.index": {**only(("radiologist", "reviewer", "qa_manager", "admin")),
                      "POST": dict.fromkeys(ROLES, 200)},
    "studies.detail": {
        ANONYMOUS: LOGIN, "radiologist": 200, "reviewer": 404, "qa_manager": 200, "admin": 200,
        "params": lambda objs, users: {"study_id": objs["study"].id},
        "unrelated": "radiologist",
    },
    "studies.upload": {**only(("radiologist",)), "POST": {"radiologist": 302}},
    "studies.batch_create": {**only(("radiologist",), status=201), "method": "POST"},
    "studies.batch_files": {
        **only(("radiologist",)), "method": "POST", "unrelated": "radiologist",
        "params": lambda objs, users: {"batch_id": objs["batch"].id},
    },
    "studies.batch_finish": {
        **only(("radiologist",)), "method": "POST", "unrelated": "radiologist",
        "params": lambda objs, users: {"batch_id": objs["batch"].id},
    },
    "studies.batch_summary": {
        **only(("radiologist",)), "unrelated": "radiologist",
        "params": lambda objs, users: {"batch_id": objs["batch"].id},
    },
    # Only the uploader (and an administrator correcting it) edits notes and the report.
    "studies.edit": {
        ANONYMOUS: LOGIN, "radiologist": 200, "reviewer": 404, "qa_manager": 403, "admin": 200,
        "POST": {"radiologist": 200, "admin": 200},
        "params": lambda objs, users: {"study_id": objs["study"].id},
        "unrelated": "radiologist",
    },
    "studies.download_deidentified": {
        ANONYMOUS: LOGIN, "radiologist": 200, "reviewer": 404, "qa_manager": 200, "admin": 200,
        "params": lambda objs, users: {"study_id": objs["study"].id},
        "unrelated": "radiologist",
    },
}


# -- second opinions (qaportal/opinions) and notifications -----------------------------------

def _opinion_request(users):
    """A request by the matrix radiologist, claimed by a neuro consultant (accepted)."""
    from qaportal.opinions import service
    from tests.factories import make_opinion_request, make_study, make_user

    consultant = make_user(subspecialties=["neuro"], licenses=["CA"])
    req = make_opinion_request(make_study(users["radiologist"]), users["radiologist"])
    service.claim(req, consultant)
    return req


def _notification(users):
    from qaportal.notify import notify

    return notify(users["radiologist"], "opinion.test", "Matrix notice", "/opinions/",
                  email=False)


OBJECTS["opinion_request"] = _opinion_request
OBJECTS["notification"] = _notification


def _req(objs, users):
    return {"request_id": objs["opinion_request"].id}


def _opinion_post(requester: int) -> dict[str, Any]:
    """A POST only the consultant may make: the requester, QA and admins are refused."""
    return {ANONYMOUS: LOGIN, "radiologist": requester, "reviewer": 404, "qa_manager": 403,
            "admin": 403, "method": "POST", "params": _req, "unrelated": "radiologist"}


EXPECTED.update({
    "opinions.worklist": only(("radiologist", "qa_manager", "admin")),
    "opinions.new": {
        ANONYMOUS: LOGIN, "radiologist": 200, "reviewer": 403, "qa_manager": 403, "admin": 403,
        "POST": {"radiologist": 200},
        "params": lambda objs, users: {"study_id": objs["study"].id},
        "unrelated": "radiologist",
    },
    "opinions.detail": {
        ANONYMOUS: LOGIN, "radiologist": 200, "reviewer": 404, "qa_manager": 200, "admin": 200,
        "params": _req, "unrelated": "radiologist",
    },
    # Requester, QA and admins may see the request; the service refuses them (flash, 302).
    "opinions.claim": {**_opinion_post(302), "qa_manager": 302, "admin": 302},
    "opinions.accept": {**_opinion_post(302), "qa_manager": 302, "admin": 302},
    "opinions.decline": _opinion_post(403),
    "opinions.cancel": _opinion_post(400),  # the requester's empty reason: form re-shown
    "opinions.reroute": _opinion_post(403),  # only a declined request is re-routed
    "opinions.message": _opinion_post(400),  # the requester's empty message: form re-shown
    "opinions.write": {**_opinion_post(403), "method": "GET"},
    "opinions.autosave": _opinion_post(403),
    "opinions.sign": _opinion_post(403),
    "opinions.addendum": _opinion_post(403),
    "notifications.index": everyone(200),
    "notifications.open_": {
        ANONYMOUS: LOGIN, "radiologist": 302, "reviewer": 404, "qa_manager": 404, "admin": 404,
        "method": "POST", "params": lambda objs, users: {"note_id": objs["notification"].id},
        "unrelated": "radiologist",
    },
    "notifications.read_all": {**everyone(302), "method": "POST"},
})


# -- reports ------------------------------------------------------------------------------------
def _export(users):
    from tests.factories import make_export_record, make_user

    return make_export_record(make_user(roles=("admin",)))


OBJECTS["export"] = _export  # an export made by an administrator outside the matrix
_EXPORT_ID = {"params": lambda objs, users: {"document_id": objs["export"].document_id}}
EXPECTED.update({
    # Radiologists get the page with the case packet of their own requests only.
    "reports.index": only(("radiologist", "qa_manager", "admin")),
    # No parameters: the page comes back with the form's errors (400).
    "reports.preview": {**only(("qa_manager", "admin"), status=400),
                        "params": lambda objs, users: {"kind": "audit"}},
    "reports.export": {**only(("qa_manager", "admin"), status=400), "method": "POST",
                       "params": lambda objs, users: {"kind": "audit"}},
    "reports.download": {**only(("qa_manager", "admin"), refused=404), **_EXPORT_ID,
                         "unrelated": "radiologist"},
    # Every signed-in user may check a document; an empty form is answered with 400.
    "reports.verify": {**everyone(200), "POST": everyone(400)},
})


# -- peer review and QA (qaportal/reviews, qaportal/qa) --------------------------------------

def _review_assignment(users):
    """A sampled read (by another radiologist) assigned to the matrix reviewer."""
    from tests.factories import make_assignment, make_study, make_user

    reader = make_user(["radiologist"])
    return make_assignment(make_study(reader).read, users["reviewer"])


def _discrepancy_case(users):
    """A decided case on the matrix radiologist's read (a learning case); the matrix
    reviewer sat on it."""
    from qaportal.qa import cases
    from tests.factories import make_review, make_study, make_user

    reviewer = make_user(["reviewer"])
    review = make_review(make_study(users["radiologist"]).read, reviewer, "3b", learning_case=True)
    case = cases.open_case(review, by=reviewer)
    cases.assign_committee(case, [users["reviewer"]], users["qa_manager"])
    cases.cast_vote(case, users["reviewer"], "3b", "Missed.")
    cases.record_decision(case, users["qa_manager"], final_score="3b", outcome="upheld",
                          rationale="Should be seen.")
    return case


def _sampling_run(users):
    from qaportal.qa import sampling
    from tests.factories import make_rule, make_study, make_user

    reader = make_user(["radiologist"])
    make_study(reader)
    return sampling.commit_run(make_rule(users["qa_manager"], percent=100), 7,
                               users["qa_manager"])


def _conference(users):
    """A conference the matrix radiologist is invited to."""
    from datetime import date

    from qaportal.qa import learning

    conf = learning.create_conference(users["qa_manager"], title="Matrix conference",
                                      held_on=date.today())
    learning.invite(conf, [users["radiologist"]], users["qa_manager"])
    return conf


OBJECTS["review_assignment"] = _review_assignment
OBJECTS["discrepancy_case"] = _discrepancy_case
OBJECTS["sampling_run"] = _sampling_run
OBJECTS["conference"] = _conference


def _assignment(objs, users):
    return {"assignment_id": objs["review_assignment"].id}


def _case(objs, users):
    return {"case_id": objs["discrepancy_case"].id}


def _rule(objs, users):
    return {"rule_id": objs["sampling_run"].rule_id}


def _qa(status: int = 200, params=None) -> dict[str, Any]:
    entry: dict[str, Any] = only(("qa_manager",), status=status)
    if params is not None:
        entry["params"] = params
    return entry


def _reviewer_only(status: int, method: str = "GET") -> dict[str, Any]:
    return {**only(("reviewer",), status=status), "method": method, "params": _assignment,
            "unrelated": "reviewer"}


EXPECTED.update({
    "reviews.worklist": only(("reviewer",)),
    "reviews.worklist_json": only(("reviewer",)),
    "reviews.review": _reviewer_only(200),
    "reviews.download": _reviewer_only(200),
    "reviews.reveal": _reviewer_only(302, "POST"),  # an empty impression is allowed
    "reviews.submit": _reviewer_only(400, "POST"),  # no score: the form comes back
    # The matrix reviewer has no access to the radiologist's study.
    "reviews.adhoc": {**only(("reviewer",), status=404),
                      "params": lambda objs, users: {"study_id": objs["study"].id}},
    "reviews.committee_list": only(("radiologist", "reviewer")),
    "reviews.committee": {
        ANONYMOUS: LOGIN, "radiologist": 404, "reviewer": 200, "qa_manager": 403, "admin": 403,
        "params": _case, "unrelated": "reviewer"},
    "reviews.vote": {
        ANONYMOUS: LOGIN, "radiologist": 404, "reviewer": 400, "qa_manager": 403, "admin": 403,
        "method": "POST", "params": _case, "unrelated": "reviewer"},
    "reviews.feedback_list": only(("radiologist",)),
    "reviews.feedback": {**only(("radiologist",)), "params": _case,
                         "unrelated": "radiologist"},
    "reviews.respond": {**only(("radiologist",), status=400), "method": "POST",
                        "params": _case, "unrelated": "radiologist"},
    "reviews.conference_list": everyone(200),
    "reviews.conference": {
        ANONYMOUS: LOGIN, "radiologist": 200, "reviewer": 404, "qa_manager": 200, "admin": 404,
        "params": lambda objs, users: {"conference_id": objs["conference"].id},
        "unrelated": "radiologist"},
    "qa.dashboard": _qa(),
    "qa.statistics": _qa(),
    "qa.rules": _qa(),
    # Two rules: /qa/rules/new and /qa/rules/<rule_id>/edit (the matrix QA manager's rule).
    "qa.rule_form": {**_qa(params=_rule), "POST": {"qa_manager": 200}},
    "qa.run_preview": {**_qa(params=_rule), "POST": {"qa_manager": 200}},
    "qa.run_detail": _qa(params=lambda objs, users: {"run_id": objs["sampling_run"].id}),
    "qa.reviews": _qa(),
    "qa.review_detail": _qa(params=lambda objs, users: {
        "review_id": objs["discrepancy_case"].review_id}),
    "qa.amend": {**_qa(400, params=lambda objs, users: {
        "review_id": objs["discrepancy_case"].review_id}), "method": "POST"},
    "qa.cases": _qa(),
    "qa.case_detail": _qa(params=_case),
    "qa.case_committee": {**_qa(400, params=_case), "method": "POST"},  # already decided
    "qa.case_decide": {**_qa(400, params=_case), "method": "POST"},
    "qa.teaching": _qa(),
    "qa.teaching_new": {**_qa(params=lambda objs, users: {
        "review_id": objs["discrepancy_case"].review_id}), "POST": {"qa_manager": 200}},
    "qa.conferences": {**_qa(), "POST": {"qa_manager": 200}},
    "qa.conference": {**_qa(params=lambda objs, users: {
        "conference_id": objs["conference"].id}), "POST": {"qa_manager": 400}},
})


# -- studies: viewer ------------------------------------------------------------------------
def _viewer_instance(users):
    """An instance row in a study of the matrix radiologist (its file is not stored: the
    frame and thumbnail routes then answer with a placeholder image, status 200)."""
    from qaportal.extensions import db
    from qaportal.models import Instance
    from tests.factories import make_study

    study = make_study(users["radiologist"])
    series = study.series[0]
    inst = Instance(sop_uid=f"2.25.{series.id}999", series=series, rows=64, columns=64,
                    frames=1, storage_key="ab" * 16, sha256="0" * 64, size_bytes=1)
    series.instance_count = series.frame_count = 1
    db.session.add(inst)
    db.session.flush()
    return inst


OBJECTS["viewer_instance"] = _viewer_instance


def _viewer_entry(params):
    return {ANONYMOUS: LOGIN, "radiologist": 200, "reviewer": 404, "qa_manager": 200,
            "admin": 200, "unrelated": "radiologist", "params": params}


def _series_params(objs, users):
    inst = objs["viewer_instance"]
    return {"study_id": inst.series.study_id, "series_id": inst.series_id}


EXPECTED.update({
    "studies.viewer": _viewer_entry(
        lambda objs, users: {"study_id": objs["viewer_instance"].series.study_id}),
    "studies.series_frames": _viewer_entry(_series_params),
    "studies.series_thumbnail": _viewer_entry(_series_params),
    "studies.frame_png": _viewer_entry(lambda objs, users: {
        "study_id": objs["viewer_instance"].series.study_id,
        "instance_id": objs["viewer_instance"].id, "n": 0}),
})

# -- reports: hospital privileges on the account page ------------------------------
EXPECTED.update({
    "admin.privilege_add": {**only(("admin",), status=422), "method": "POST",
                            "params": lambda objs, users: {"user_id": objs["subject"].id}},
})

# -- audit log: verify the chain ---------------------------------
EXPECTED.update({
    "auditlog.verify": {**only(("qa_manager", "admin"), status=302), "method": "POST"},
})

# -- context: per-study context of a multi-study upload, QA read correction -------
def _batch_with_study(users):
    from qaportal.extensions import db
    from qaportal.models import UploadBatch
    from tests.factories import make_study

    study = make_study(users["radiologist"], report=None)
    batch = UploadBatch(user_id=users["radiologist"].id, source="browser",
                        study_ids=[study.id])
    db.session.add(batch)
    db.session.flush()
    return batch


OBJECTS["batch_with_study"] = _batch_with_study  # an upload by the matrix radiologist

EXPECTED.update({
    "studies.batch_study_context": {
        **only(("radiologist",), status=302), "method": "POST", "unrelated": "radiologist",
        "params": lambda objs, users: {"batch_id": objs["batch_with_study"].id,
                                       "study_id": objs["batch_with_study"].study_ids[0]},
    },
    # QA managers correct a final read; administrators too (they may correct a study).
    "studies.correct_read": {
        **only(("qa_manager", "admin")), "POST": {"qa_manager": 200, "admin": 200},
        "params": lambda objs, users: {"study_id": objs["study"].id},
    },
})

# -- personal API tokens: the account page's tokens and the administrators' list ----------
def _api_token(users):
    from qaportal.auth import tokens

    user = users["radiologist"]
    return tokens.create(user, label="matrix", scopes=("read",), expires_days=30, by=user).token


OBJECTS["api_token"] = _api_token  # a token of the matrix radiologist

EXPECTED.update({
    # An empty form: refused with the form (422) for everyone signed in.
    "auth.token_create": {**everyone(422), "method": "POST"},
    # Only its owner revokes a token on the account page; anyone else's answers 404.
    "auth.token_revoke": {
        **only(("radiologist",), status=302, refused=404), "method": "POST",
        "unrelated": "radiologist",
        "params": lambda objs, users: {"token_id": objs["api_token"].id},
    },
    "admin.api_tokens": only(("admin",)),
    "admin.api_token_revoke": {
        **only(("admin",), status=302), "method": "POST",
        "params": lambda objs, users: {"token_id": objs["api_token"].id},
    },
})


# -- DICOMweb QIDO-RS: search (anonymous: JSON 401; a study one may not see: 404) -----------
def _qido_study():
    return {ANONYMOUS: 401, "radiologist": 200, "reviewer": 404,
            "qa_manager": 200, "admin": 200}


def _qido_study_params(objs, users):
    return {"study_uid": objs["study"].study_uid}


def _qido_series_params(objs, users):
    study = objs["study"]
    return {"study_uid": study.study_uid, "series_uid": study.series[0].series_uid}


EXPECTED.update({
    "dicomweb.search_studies": everyone(200, anonymous=401),
    "dicomweb.search_series": everyone(200, anonymous=401),
    "dicomweb.search_instances": everyone(200, anonymous=401),
    "dicomweb.search_study_series": {**_qido_study(), "params": _qido_study_params},
    "dicomweb.search_study_instances": {**_qido_study(), "params": _qido_study_params},
    "dicomweb.search_series_instances": {**_qido_study(), "params": _qido_series_params},
})


# -- DICOMweb: WADO-RS frames, rendered and thumbnail ----------------------------------------
# No "unrelated" key: these routes name studies by DICOM UIDs, and the unrelated-user test
# uploads a copy carrying the same UIDs, which is that user's own study (served to them);
# tests/test_dicomweb_frames.py checks strangers and de-identified callers.
def _dicomweb_uids(objs, users):
    """Ingest a real CT slice for the matrix radiologist (lazily: only these routes need
    a stored file); return the URL values of its instance and frame 1."""
    import warnings

    from pydicom.data import get_testdata_file

    from qaportal.extensions import db
    from qaportal.models import Study
    from qaportal.studies import jobs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = get_testdata_file("CT_small.dcm")
    owner = users["radiologist"]
    run = jobs.import_files([("ct.dcm", path)], owner.id, jobs.new_batch(owner, "test").id)
    (study_id,) = run.study_ids
    study = db.session.get(Study, study_id)
    inst = study.series[0].instances[0]
    return {"study_uid": study.study_uid, "series_uid": study.series[0].series_uid,
            "instance_uid": inst.sop_uid, "frame_list": "1"}


def _dicomweb_entry():
    return {ANONYMOUS: 401, "radiologist": 200, "reviewer": 404, "qa_manager": 200,
            "admin": 200, "params": _dicomweb_uids}


EXPECTED.update({f"dicomweb.{name}": _dicomweb_entry() for name in (
    "retrieve_frames", "study_rendered", "series_rendered", "instance_rendered",
    "frames_rendered", "study_thumbnail", "series_thumbnail", "instance_thumbnail",
    "frame_thumbnail")})


# -- DICOMweb WADO-RS: instances, metadata, bulk data -------------------------------------
def _wado_instance(users):
    """CT_small stored for real in a study of the matrix radiologist, under the rows' UIDs
    (written directly: cheaper than an ingest for every matrix case)."""
    import io

    import pydicom

    from qaportal.dicom import new_key
    from qaportal.extensions import db
    from qaportal.models import Instance
    from qaportal.studies.storage import image_store
    from tests.factories import make_study
    from tests.studyfiles import sample

    study = make_study(users["radiologist"])
    series = study.series[0]
    ds = pydicom.dcmread(sample("CT_small.dcm"))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study.study_uid, series.series_uid
    ds.SOPInstanceUID = f"{series.series_uid}.1"
    buf = io.BytesIO()
    ds.save_as(buf)
    buf.seek(0)
    key = new_key()
    stored = image_store().put(key, buf, sync=False)
    inst = Instance(sop_uid=ds.SOPInstanceUID, series=series, sop_class_uid=ds.SOPClassUID,
                    rows=128, columns=128, frames=1, transfer_syntax_uid="1.2.840.10008.1.2.1",
                    storage_key=key, sha256=stored.sha256, size_bytes=stored.size)
    series.instance_count = series.frame_count = 1
    db.session.add(inst)
    db.session.flush()
    return inst


OBJECTS["wado_instance"] = _wado_instance


def _wado_entry():
    # Owner, QA and admin reach the study; a reviewer without an assignment does not. No
    # "unrelated" check: that test uploads the object's UIDs as the stranger's own study,
    # which DICOMweb then rightly serves them (test_dicomweb_wado checks strangers).
    def params(objs, users):
        inst = objs["wado_instance"]
        return {"study_uid": inst.series.study.study_uid, "series_uid": inst.series.series_uid,
                "instance_uid": inst.sop_uid, "tag_path": "7FE00010"}

    return {ANONYMOUS: 401, "radiologist": 200, "reviewer": 404, "qa_manager": 200,
            "admin": 200, "params": params}


EXPECTED.update({endpoint: _wado_entry() for endpoint in (
    "dicomweb.retrieve_study", "dicomweb.retrieve_series", "dicomweb.retrieve_instance",
    "dicomweb.study_metadata", "dicomweb.series_metadata", "dicomweb.instance_metadata",
    "dicomweb.bulkdata")})


# -- DICOMweb STOW-RS: store instances (the roles that upload) -------------------------------
# The matrix posts an empty form: a radiologist gets past the role check to the media type
# check (415); anonymous callers of the API get JSON 401, never a redirect.
EXPECTED.update({
    "dicomweb.stow_studies": {**only(("radiologist",), status=415), ANONYMOUS: 401,
                              "method": "POST"},
    "dicomweb.stow_study": {**only(("radiologist",), status=415), ANONYMOUS: 401,
                            "method": "POST",
                            "params": lambda objs, users: {"study_uid": "1.2.826.0.1.3680043.2"}},
})


# -- Deliveries of signed results: a manual resend (requester/owner, QA, admins) -------------
def _delivery(users):
    from qaportal.extensions import db
    from qaportal.models import Delivery, DicomPeer
    from tests.factories import make_opinion_request, make_study

    owner = users["radiologist"]
    req = make_opinion_request(make_study(owner), owner)
    peer = DicomPeer(ae_title="MATRIXPACS", addresses=["127.0.0.1"], owner_id=owner.id,
                     send_kind="dicom", send_host="127.0.0.1", send_port=1, send_ae="MATRIXPACS")
    db.session.add(peer)
    db.session.flush()
    row = Delivery(request_id=req.id, peer_id=peer.id, status="failed", attempts=5)
    db.session.add(row)
    db.session.flush()
    return row


OBJECTS["delivery"] = _delivery
EXPECTED["opinions.resend_delivery"] = {
    ANONYMOUS: LOGIN, "radiologist": 302, "reviewer": 404, "qa_manager": 302, "admin": 302,
    "method": "POST", "unrelated": "radiologist",
    "params": lambda objs, users: {"request_id": objs["delivery"].request_id,
                                   "delivery_id": objs["delivery"].id},
}
# -- Reads received by HL7/FHIR: the FHIR endpoint (the roles that upload) and the
# administrators' page of unmapped readers. An empty form to the FHIR endpoint gets past
# the role check to the media type check (415).
EXPECTED.update({
    "fhir.diagnostic_report_create": {**only(("radiologist",), status=415), ANONYMOUS: 401,
                                      "method": "POST"},
    "admin.unmapped_reader_list": only(("admin",)),
    "admin.unmapped_reader_map": {**only(("admin",), status=302), "method": "POST"},
})


def _fhir_read(users):
    from qaportal.extensions import db
    from qaportal.models import IncomingRead

    row = IncomingRead(source="fhir", kind="report", message_id="MATRIX-1",
                       owner_id=users["radiologist"].id, accession_number="MATRIXACC",
                       report_text="Matrix report.", status="waiting_images")
    db.session.add(row)
    db.session.flush()
    return row


OBJECTS["fhir_read"] = _fhir_read  # a read the matrix radiologist sent by FHIR
EXPECTED["fhir.diagnostic_report_read"] = {
    **only(("radiologist",)), ANONYMOUS: 401, "unrelated": "radiologist",
    "params": lambda objs, users: {"read_id": objs["fhir_read"].id},
}


# -- hospital feeds: known DICOM peers (administrators only) ---------------------------------
def _peer(users):
    from qaportal.extensions import db
    from qaportal.models import DicomPeer

    peer = DicomPeer(ae_title="MATRIX_PEER", addresses=["127.0.0.1"],
                     owner_id=users["radiologist"].id)
    db.session.add(peer)
    db.session.flush()
    return peer


OBJECTS["peer"] = _peer  # a site whose studies the matrix radiologist owns

# Empty form data: the admin gets the form back with the errors (422).
EXPECTED.update({
    "admin.peers": only(("admin",)),
    "admin.peer_new": {**only(("admin",)), "POST": {"admin": 422}},
    "admin.peer_edit": {**only(("admin",)), "POST": {"admin": 422},
                        "params": lambda objs, users: {"peer_id": objs["peer"].id}},
    "admin.peer_action": {
        **only(("admin",), status=302), "method": "POST",
        "params": lambda objs, users: {"peer_id": objs["peer"].id, "action": "enable"},
    },
})


# -- long exports in the job queue (only the person who asked sees the job) ------------------
def _export_job(users):
    from qaportal.extensions import db
    from qaportal.models import ExportJob

    job = ExportJob(kind="audit_csv", parameters={}, requested_by_id=users["qa_manager"].id,
                    status="queued", progress=0, rows_done=0)
    db.session.add(job)
    db.session.flush()
    return job


OBJECTS["export_job"] = _export_job  # queued, asked for by the matrix QA manager


def _job(objs, users):
    return {"job_id": objs["export_job"].id}


_JOB_VIEWERS = {**only(("radiologist", "qa_manager", "admin")), "radiologist": 404,
                "admin": 404, "params": _job}
EXPECTED.update({
    "auditlog.export_job": {**only(("qa_manager", "admin"), status=302), "method": "POST"},
    "exports.jobs": only(("radiologist", "qa_manager", "admin")),
    "exports.job": {**_JOB_VIEWERS, "unrelated": "qa_manager"},
    "exports.job_status": {**_JOB_VIEWERS, "unrelated": "qa_manager"},
    "exports.download": {**_JOB_VIEWERS, "qa_manager": 409, "unrelated": "qa_manager"},
})


# -- viewer marks: a key image drawn (whoever sees the opinion or review in full) ------------
def _viewer_mark(users):
    from pydicom.data import get_testdata_file

    from qaportal.extensions import db
    from qaportal.models import OpinionRequest, Study, ViewerMark, utcnow
    from qaportal.studies import jobs
    from tests.factories import make_user

    owner = users["radiologist"]
    run = jobs.import_files([("ct.dcm", get_testdata_file("CT_small.dcm"))], owner.id,
                            jobs.new_batch(owner, "cli").id)
    study = db.session.get(Study, next(iter(run.study_ids)))
    inst = study.series[0].instances[0]
    consultant = make_user(["radiologist"])
    now = utcnow()
    req = OpinionRequest(study_id=study.id, requester_id=owner.id, consultant_id=consultant.id,
                         named_consultant_id=consultant.id, clinical_question="Matrix?",
                         priority="routine", status="accepted", due_at=now, accepted_at=now)
    db.session.add(req)
    db.session.flush()
    mark = ViewerMark(opinion_request_id=req.id, instance_id=inst.id, kind="sr",
                      title="Matrix marks", author_id=consultant.id,
                      measurements=[{"label": "L", "graphic_type": "POINT", "points": [[5, 5]],
                                     "coordinates": "2D", "image_id": inst.id, "frame": None}],
                      key_images=[{"image_id": inst.id, "frame": None}])
    db.session.add(mark)
    db.session.flush()
    return mark


OBJECTS["viewer_mark"] = _viewer_mark  # on an opinion the matrix radiologist requested
EXPECTED["marks.key_image"] = {
    ANONYMOUS: LOGIN, "radiologist": 200, "reviewer": 404, "qa_manager": 200, "admin": 200,
    "unrelated": "radiologist",
    "params": lambda objs, users: {"mark_id": objs["viewer_mark"].id, "index": 0},
}


# -- OHIF viewer at /viewer/ohif/ (qaportal/ohif): sign-in only. A page naming a study
# (?StudyInstanceUIDs=, a query the matrix cannot send) answers only to those whose DICOMweb
# serves it under that UID: tests/test_ohif.py. Without the fetched build (no network at
# `make test`) its pages answer 503.
def _ohif_page_status() -> int:
    from qaportal.ohif.fetch import DEFAULT_DEST

    return 200 if (DEFAULT_DEST / "dist" / "index.html").is_file() else 503


EXPECTED.update({
    "ohif.index": everyone(302),
    "ohif.app_config": everyone(200),
    "ohif.serve": {**everyone(_ohif_page_status()),
                   "params": lambda objs, users: {"path": "viewer"}},
})


# -- committee record PDF (qaportal/reports/committee_record.py): QA managers only; the
# export answers 303 to its download. The reports pages' kind "committee" goes through
# reports.preview / reports.export like every kind.
EXPECTED["qa.case_record"] = {**_qa(303, params=_case), "method": "POST"}
