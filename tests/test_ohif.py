"""OHIF at /viewer/ohif/: the pinned fetch, the generated app-config.js, the viewer's CSP,
and who may open which study in it (the portal's DICOMweb rules), audited.

The pages are served from a small build of the real one's shape (tests/test_ohif.py's
FAKE_INDEX) so these run without the network; the browser tests use the fetched build.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from qaportal.extensions import db
from qaportal.hooks import CSP
from qaportal.models import AuditEvent, ReviewAssignment
from qaportal.ohif import config as ohif_config
from qaportal.ohif import fetch
from qaportal.ohif.routes import RELAXED, WORKER_RELAXED, csp
from tests.studyfiles import sample
from tests.test_dicomweb_stow import CT, related

# The real index.html's shape: absolute "/" links and two inline scripts.
FAKE_INDEX = ('<!doctype html><html lang="en"><head><meta charset="UTF-8">'
              '<script>console.time("scriptToView"),window.PUBLIC_URL="/"</script>'
              '<link rel="manifest" href="/manifest.json">'
              '<script rel="preload" as="script" src="/app-config.js"></script>'
              '<script rel="preload" as="script" type="module" src="/init-service-worker.js">'
              '</script><script>function browserImportFunction(n){return import(n)}'
              'window.PUBLIC_URL="/"</script><script defer src="/app.bundle.abc.js"></script>'
              '<link href="/app.bundle.css" rel="stylesheet"></head><body><div id="root">'
              '</div></body></html>')


def _tarball(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _package(tmp_path: Path, **extra: bytes) -> Path:
    return _tarball(tmp_path / "app.tgz", {
        "package/package.json": b'{"name": "@ohif/app"}',
        "package/dist/index.html": FAKE_INDEX.encode(),
        "package/dist/app.bundle.abc.js": b'(()=>{__webpack_require__.p = "/";})();',
        "package/dist/app.bundle.css": b"@font-face{src:url(/f.woff2)}",
        **extra,
    })


@pytest.fixture
def ohif_build(app, tmp_path):
    """A build of the real one's shape, unpacked by the real code into the app's OHIF_DIR."""
    tarball = _package(tmp_path)
    dest = tmp_path / "ohif"
    fetch.unpack(tarball, dest, fetch.integrity_of(tarball))
    app.config["OHIF_DIR"] = str(dest)
    return dest


# -- fetch -----------------------------------------------------------------------------------

def test_integrity_mismatch_is_refused_and_nothing_is_unpacked(tmp_path):
    tarball = _package(tmp_path)
    dest = tmp_path / "ohif"
    with pytest.raises(fetch.FetchError, match="integrity mismatch"):
        fetch.unpack(tarball, dest, fetch.INTEGRITY)  # the pin of the real package
    assert not (dest / "dist").exists() and not (dest / fetch.STAMP).exists()


def test_unpack_keeps_dist_points_it_at_the_served_path_and_stamps(tmp_path):
    tarball = _package(tmp_path)
    dest = tmp_path / "ohif"
    integrity = fetch.integrity_of(tarball)
    fetch.unpack(tarball, dest, integrity, "9.9.9")
    assert sorted(p.name for p in (dest / "dist").iterdir()) == [
        "app.bundle.abc.js", "app.bundle.css", "index.html"]
    assert not (dest / "package.json").exists()
    bundle = (dest / "dist" / "app.bundle.abc.js").read_text()
    assert '__webpack_require__.p = "/viewer/ohif/";' in bundle
    assert "url(/viewer/ohif/f.woff2)" in (dest / "dist" / "app.bundle.css").read_text()
    assert fetch.is_current(dest, "9.9.9", integrity)
    # Idempotent: the stamp matches, so nothing is downloaded again.
    assert fetch.fetch(dest, "9.9.9", integrity) is False
    assert not fetch.is_current(dest, "9.9.10", integrity)


def test_a_member_leaving_the_folder_is_refused(tmp_path):
    tarball = _package(tmp_path, **{"package/dist/../../evil.js": b"x"})
    with pytest.raises(fetch.FetchError, match="would leave the folder"):
        fetch.unpack(tarball, tmp_path / "ohif", fetch.integrity_of(tarball))
    assert not (tmp_path / "evil.js").exists()


def test_the_pin_is_a_sha512_of_the_named_version():
    assert fetch.PACKAGE == "@ohif/app" and re.fullmatch(r"\d+\.\d+\.\d+", fetch.VERSION)
    assert fetch.INTEGRITY.startswith("sha512-") and len(fetch.INTEGRITY) == 7 + 88


def test_download_failure_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("npm_config_registry", "http://127.0.0.1:9/")  # nothing listens
    monkeypatch.setenv("npm_config_fetch_retries", "0")
    monkeypatch.setenv("npm_config_cache", str(tmp_path / "npm-cache"))  # no cached copy
    monkeypatch.setattr(fetch, "TARBALL_URL", "http://127.0.0.1:9/app-{version}.tgz")
    monkeypatch.setattr(fetch, "DEFAULT_DEST", tmp_path / "ohif")
    assert fetch.main([str(tmp_path / "ohif")]) == 1
    err = capsys.readouterr().err
    assert "failed" in err and "/viewer/ohif/ will answer 503" in err
    assert not (tmp_path / "ohif" / "dist").exists()


def test_a_failed_download_keeps_the_build_already_there(tmp_path, monkeypatch, capsys):
    # An unpacking of an older layout (or version) is not current, so fetch downloads again;
    # offline, the build in place stays served, and the message says so.
    tarball = _package(tmp_path)
    dest = tmp_path / "ohif"
    fetch.unpack(tarball, dest, fetch.integrity_of(tarball), "9.9.9")
    before = (dest / "dist" / "index.html").read_bytes()
    monkeypatch.setattr(fetch.shutil, "which", lambda name: None)  # straight from the URL:
    monkeypatch.setattr(fetch, "TARBALL_URL", "http://127.0.0.1:9/app-{version}.tgz")  # shut
    assert fetch.main([str(dest)]) == 1
    err = capsys.readouterr().err
    assert "keeping the build already in" in err and "@ohif/app@9.9.9" in err
    assert "will answer 503" not in err
    assert (dest / "dist" / "index.html").read_bytes() == before


# -- app-config.js ---------------------------------------------------------------------------

def _window_config(js: str) -> dict:
    found = re.search(r"window\.config = (\{.*?\n\});\n", js, re.S)
    assert found, js[:500]
    return json.loads(found.group(1))


def test_app_config_has_one_same_origin_data_source_and_the_csrf_header(client, login_as):
    login_as("radiologist")
    resp = client.get("/viewer/ohif/app-config.js")
    assert resp.status_code == 200 and resp.mimetype == "text/javascript"
    assert resp.headers["Cache-Control"] == "no-store"
    js = resp.get_data(as_text=True)
    cfg = _window_config(js)
    (source,) = cfg["dataSources"]
    assert cfg["defaultDataSourceName"] == source["sourceName"] == "qaportal"
    roots = {source["configuration"][k] for k in ("qidoRoot", "wadoRoot", "wadoUriRoot")}
    assert roots == {"/dicomweb"}  # a path: the page's own origin
    assert cfg["routerBasename"] == "/viewer/ohif"
    assert 'window.PUBLIC_URL = "/viewer/ohif/";' in js
    # No other origin anywhere: no analytics, fonts, demo servers, OIDC.
    assert not re.search(r"https?:|//[a-z]", js, re.I)
    for key in ("oidc", "googleAnalytics", "whiteLabeling", "dangerouslyUseDynamicConfig"):
        assert key not in cfg
    # Writes (STOW of OHIF's SR) carry the CSRF token of the page's <meta>.
    # and the draft the saved marks belong to (X-QAPortal-Context), when the page names one.
    assert ohif_config.WRITE_HEADERS == {"X-CSRFToken": "csrf-token",
                                         "X-QAPortal-Context": "qaportal-context"}
    assert '"X-CSRFToken": "csrf-token"' in js and '"X-QAPortal-Context"' in js


def test_app_config_and_pages_need_sign_in(client, ohif_build):
    for url in ("/viewer/ohif/app-config.js", "/viewer/ohif/viewer",
                "/viewer/ohif/app.bundle.abc.js"):
        resp = client.get(url)
        assert resp.status_code == 302 and "/login" in resp.headers["Location"], url


def test_stow_with_the_pages_csrf_token_is_accepted(tmp_path):
    from tests.conftest import make_test_app
    from tests.factories import DEFAULT_PASSWORD, make_user

    app = make_test_app(tmp_path, f"sqlite:///{tmp_path / 'csrf.sqlite'}",
                        WTF_CSRF_ENABLED=True)
    tarball = _package(tmp_path)
    fetch.unpack(tarball, tmp_path / "ohif", fetch.integrity_of(tarball))
    app.config["OHIF_DIR"] = str(tmp_path / "ohif")
    client = app.test_client()
    with app.app_context():
        user = make_user(roles=("radiologist",))
        db.session.commit()
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
        assert client.post("/login", data={"email": user.email, "password": DEFAULT_PASSWORD,
                                           "csrf_token": token}).status_code == 302
    html = client.get("/viewer/ohif/viewer").get_data(as_text=True)
    meta = re.search(r'<meta name="csrf-token" content="([^"]+)">', html).group(1)
    body = related([Path(sample("CT_small.dcm")).read_bytes()])
    headers = {"Content-Type": CT, "Accept": "application/dicom+json"}
    refused = client.post("/dicomweb/studies", data=body, headers=headers)
    assert refused.status_code == 400
    stored = client.post("/dicomweb/studies", data=body,
                         headers={**headers, "X-CSRFToken": meta})
    assert stored.status_code == 200, stored.get_data(as_text=True)[:300]


# -- CSP -------------------------------------------------------------------------------------

def _directives(policy: str) -> dict[str, list[str]]:
    return {p.split()[0]: p.split()[1:] for p in policy.split(";") if p.strip()}


def test_csp_is_relaxed_only_under_the_viewer_and_only_as_listed(client, login_as, ohif_build):
    login_as("radiologist")
    strict = _directives(CSP)
    worker = {"Sec-Fetch-Dest": "worker"}
    for url, headers, table in (
            ("/viewer/ohif/viewer", {}, RELAXED),
            ("/viewer/ohif/app-config.js", {}, RELAXED),
            ("/viewer/ohif/app.bundle.abc.js", {}, RELAXED),
            ("/viewer/ohif/app.bundle.abc.js", worker, {**RELAXED, **WORKER_RELAXED}),
            ("/viewer/ohif/viewer", worker, RELAXED)):  # a page is never a worker's script
        got = _directives(client.get(url, headers=headers).headers["Content-Security-Policy"])
        assert set(got) == set(strict) | set(table)
        for name, values in got.items():
            extra = [v for v in values if v not in strict.get(name, [])]
            assert extra == [v for v in table.get(name, ()) if v not in strict.get(name, [])]
        assert got["connect-src"] == ["'self'"] and got["default-src"] == ["'self'"]
        for keyword in ("'unsafe-inline'", "*", "data:", "blob:"):
            assert keyword not in got["script-src"] + got["style-src"]
        if table is RELAXED:
            assert got["script-src"] == ["'self'"]  # no eval of any kind on the page
    for url in ("/", "/studies/", "/dicomweb/studies", "/viewer/", "/viewer/ohifx"):
        assert client.get(url, headers=worker).headers["Content-Security-Policy"] == CSP, url
    assert csp({}) == CSP


# -- pages, access, audit --------------------------------------------------------------------

def test_index_is_rewritten_to_run_under_the_prefix(client, login_as, ohif_build):
    login_as("radiologist")
    resp = client.get("/viewer/ohif/viewer")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    assert "<script>" not in html  # no inline script (the CSP allows none)
    assert "init-service-worker" not in html
    assert 'src="/viewer/ohif/app-config.js"' in html
    assert 'src="/viewer/ohif/app.bundle.abc.js"' in html
    assert 'href="/viewer/ohif/app.bundle.css"' in html
    assert not re.search(r'(src|href)="/(?!viewer/ohif/)', html)
    assert re.search(r'<meta name="csrf-token" content="[^"]+">', html)
    for hidden in ("index.html", "app-config.js/x", "sw.js", "google.js"):
        assert client.get(f"/viewer/ohif/{hidden}").status_code == 404, hidden
    assert client.get("/viewer/ohif/missing.js").status_code == 404
    assert client.get("/viewer/ohif/../studies/").status_code == 404


def test_without_the_build_pages_answer_503(client, login_as, app, tmp_path):
    login_as("radiologist")
    app.config["OHIF_DIR"] = str(tmp_path / "nothing")
    resp = client.get("/viewer/ohif/viewer")
    assert resp.status_code == 503 and "make ohif" in resp.get_data(as_text=True)


def _opened(study) -> list[dict]:
    events = db.session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action == "study.viewed", AuditEvent.object_id == str(study.id))
        .order_by(AuditEvent.seq))
    return [e.details for e in events if e.details.get("page") == "ohif"]


def test_owner_opens_their_study_and_it_is_audited(client, world, ohif_build):
    study = world["study"]
    resp = client.get(f"/viewer/ohif/viewer?StudyInstanceUIDs={study.study_uid}")
    assert resp.status_code == 200
    assert _opened(study) == [{"mode": "full", "page": "ohif", "deidentified": False}]
    page = client.get(f"/studies/{study.id}").get_data(as_text=True)
    link = re.search(r'<a class="btn ohif-link" href="([^"]+)"[^>]*data-needs-webgl2 hidden>'
                     r"Open in OHIF</a>", page)
    assert link and link.group(1) == (
        f"/viewer/ohif/viewer?StudyInstanceUIDs={study.study_uid}")


def test_a_study_not_served_to_the_user_is_404_and_not_audited(client, auth, world,
                                                               ohif_build):
    from tests.factories import make_user

    study = world["study"]
    stranger = make_user(roles=("radiologist",))
    db.session.commit()
    auth.logout()
    auth.login(stranger)
    resp = client.get(f"/viewer/ohif/viewer?StudyInstanceUIDs={study.study_uid}")
    assert resp.status_code == 404
    # One unseen study among seen ones refuses the whole page.
    assert client.get("/viewer/ohif/viewer?StudyInstanceUIDs=1.2.3").status_code == 404
    assert _opened(study) == []


def test_blind_reviewer_is_linked_to_the_remapped_uid_only(client, world, blind_caller,
                                                            ohif_build):
    from qaportal.dicomweb.access import deid_context

    study = world["study"]
    remapped = deid_context(study).new_uid_for(study.study_uid)
    originals = [study.study_uid, *(s.series_uid for s in study.series)]
    assignment = db.session.scalars(sa.select(ReviewAssignment).where(
        ReviewAssignment.reviewer_id == blind_caller.id)).one()
    page = client.get(f"/reviews/{assignment.id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    link = f"/viewer/ohif/viewer?StudyInstanceUIDs={remapped}"
    assert f"{link}&amp;qaportal_context=review-assignment:{assignment.id}" in html
    for uid in originals:
        assert uid not in html
    # the viewer's page holds the review as the context its saved marks are sent with
    viewer = client.get(f"{link}&qaportal_context=review-assignment:{assignment.id}")
    assert (f'<meta name="qaportal-context" content="review-assignment:{assignment.id}">'
            in viewer.get_data(as_text=True))
    forged = client.get(f"{link}&qaportal_context=review-assignment:1%22%3E%3Cscript%3E")
    assert '<meta name="qaportal-context" content="">' in forged.get_data(as_text=True)
    assert client.get(f"/viewer/ohif/viewer?StudyInstanceUIDs={study.study_uid}"
                      ).status_code == 404
    resp = client.get(f"/viewer/ohif/viewer?StudyInstanceUIDs={remapped}")
    assert resp.status_code == 200 and study.study_uid not in resp.get_data(as_text=True)
    assert _opened(study) == [{"mode": "full", "page": "ohif", "deidentified": True}] * 3
    events = db.session.scalars(sa.select(AuditEvent).where(
        AuditEvent.object_id == str(study.id))).all()
    assert all(study.study_uid not in json.dumps(e.details) for e in events)


def test_no_link_without_the_build(client, world, app, tmp_path):
    app.config["OHIF_DIR"] = str(tmp_path / "nothing")
    page = client.get(f"/studies/{world['study'].id}").get_data(as_text=True)
    assert "Open in OHIF" not in page and 'id="open-viewer"' in page


def test_consultant_of_a_deidentified_request_gets_the_remapped_uid(client, auth, world,
                                                                    ohif_build):
    from qaportal.dicomweb.access import deid_context
    from qaportal.extensions import db
    from qaportal.opinions import service as opinions
    from tests.factories import make_user

    study = world["study"]
    study.jurisdiction = "CA"
    consultant = make_user(licenses=["CA"], subspecialties=["neuro"])
    req = opinions.create_request(study, world["owner"], priority="routine", question="?",
                                  colleague=consultant, deidentified=True)
    opinions.accept(req, consultant)
    db.session.commit()
    auth.logout()
    auth.login(consultant)
    html = client.get(f"/opinions/{req.id}").get_data(as_text=True)
    remapped = deid_context(study).new_uid_for(study.study_uid)
    assert f"StudyInstanceUIDs={remapped}" in html and study.study_uid not in html
    assert f"qaportal_context=opinion-request:{req.id}" in html
    auth.logout()
    auth.login(world["owner"])  # the requester's page names no draft of theirs
    assert "qaportal_context" not in client.get(f"/opinions/{req.id}").get_data(as_text=True)
    auth.logout()
    auth.login(consultant)
    assert client.get(f"/viewer/ohif/viewer?StudyInstanceUIDs={remapped}").status_code == 200
    assert _opened(study) == [{"mode": "deidentified", "page": "ohif", "deidentified": True}]
