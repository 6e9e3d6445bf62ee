"""Browser: OHIF's viewer at /viewer/ohif/ draws a real study from the portal's DICOMweb,
for the uploader, a consultant and a blind reviewer (who never receives an original
identifier, in any response), with no request leaving the portal and no CSP violation;
and each of the CSP's relaxations for OHIF is needed."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from qaportal.extensions import db
from qaportal.ohif import routes as ohif_routes
from tests.e2e.browser import sign_in
from tests.e2e.ohif_world import (
    RECORD_CSP,
    fetched_build,
    original_identifiers,
    sentinel_study,
    wait_for_image,
    webgl_browser,
)
from tests.factories import make_assignment, make_user


@pytest.fixture
def page(playwright) -> Page:  # noqa: F811 - this module's page: WebGL2 on, the build there
    fetched_build()
    browser = webgl_browser(playwright)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    pg = context.new_page()
    pg.add_init_script(RECORD_CSP)
    yield pg
    context.close()
    browser.close()


def _watch(page: Page, base: str) -> dict:
    """Collect the requests to other origins and every response, from now on."""
    seen: dict[str, list] = {"foreign": [], "responses": []}

    def on_request(r):
        if not r.url.startswith((base + "/", "data:", "blob:")):
            seen["foreign"].append(r.url)

    def on_response(r):
        # Read now: a page's bodies are gone once the browser navigates away.
        body = None if 300 <= r.status < 400 else r.body()
        seen["responses"].append((r.url, r.status, body))

    page.on("request", on_request)
    page.on("response", on_response)
    return seen


def _open_from(page: Page, link_page: str) -> str:
    """Go to a portal page, follow its "Open in OHIF" link; return the link."""
    page.goto(link_page)
    link = page.locator("a.ohif-link")
    expect(link).to_be_visible()  # WebGL2 is there: the script shows it
    href = link.get_attribute("href")
    page.goto(page.url.split("/", 3)[0] + "//" + page.url.split("/", 3)[2] + href)
    return href


def _drawn_cleanly(page: Page, seen: dict) -> None:
    stats = wait_for_image(page)
    assert stats[0] > 10, stats
    assert seen["foreign"] == [], seen["foreign"]
    assert page.evaluate("window.__csp") == []


def test_uploader_opens_the_study_from_its_page(live_server, page: Page, tmp_path):
    with live_server.app.app_context():
        owner = make_user(roles=("radiologist",), email="ohif-owner@e2e.test")
        study = sentinel_study(owner, tmp_path / "ct")
        db.session.commit()
        uid, study_id = study.study_uid, study.id
    base = live_server.url
    sign_in(page, base, "ohif-owner@e2e.test")
    seen = _watch(page, base)
    href = _open_from(page, f"{base}/studies/{study_id}")
    assert href == f"/viewer/ohif/viewer?StudyInstanceUIDs={uid}"
    _drawn_cleanly(page, seen)
    assert any(f"/dicomweb/studies/{uid}/series/" in url and "/frames/" in url
               for url, _, _ in seen["responses"])
    # The series' thumbnail is the JPEG the portal renders, not a frame drawn in the browser.
    for _ in range(100):
        thumbs = [(status, body) for url, status, body in seen["responses"]
                  if f"/dicomweb/studies/{uid}/series/" in url and "/thumbnail" in url]
        if thumbs:
            break
        page.wait_for_timeout(100)
    assert thumbs and all(s == 200 and b[:2] == b"\xff\xd8" for s, b in thumbs), thumbs[:1]
    expect(page.locator("img[src*='/thumbnail']").first).to_be_visible()


def test_consultant_opens_the_study_of_an_opinion_request(live_server, page: Page, tmp_path):
    from qaportal.opinions import service as opinions

    with live_server.app.app_context():
        owner = make_user(roles=("radiologist",), licenses=["CA"])
        consultant = make_user(roles=("radiologist",), licenses=["CA"],
                               subspecialties=["neuro"], email="ohif-consultant@e2e.test")
        study = sentinel_study(owner, tmp_path / "ct")
        study.jurisdiction = "CA"
        req = opinions.create_request(study, owner, priority="routine", question="Infarct?",
                                      colleague=consultant)
        opinions.accept(req, consultant)
        db.session.commit()
        req_id = req.id
    base = live_server.url
    sign_in(page, base, "ohif-consultant@e2e.test")
    seen = _watch(page, base)
    _open_from(page, f"{base}/opinions/{req_id}")
    _drawn_cleanly(page, seen)


def test_blind_reviewer_receives_no_original_identifier(live_server, page: Page, tmp_path):
    from qaportal.dicomweb.access import deid_context
    from qaportal.models import OriginalRead, utcnow

    with live_server.app.app_context():
        reader = make_user(roles=("radiologist",))
        reviewer = make_user(roles=("reviewer",), email="ohif-reviewer@e2e.test")
        study = sentinel_study(reader, tmp_path / "ct")
        read = OriginalRead(study_id=study.id, reader_id=reader.id, report_text="No bleed.",
                            finalized_at=utcnow(), entered_by_id=reader.id)
        db.session.add(read)
        db.session.flush()
        assignment = make_assignment(read, reviewer, deidentified=True)
        db.session.commit()
        forbidden = original_identifiers(study)
        remapped = deid_context(study).new_uid_for(study.study_uid)
        assignment_id = assignment.id
    base = live_server.url
    sign_in(page, base, "ohif-reviewer@e2e.test")
    seen = _watch(page, base)
    href = _open_from(page, f"{base}/reviews/{assignment_id}")
    # the remapped UID, and the open review the marks saved from the viewer belong to
    assert href == (f"/viewer/ohif/viewer?StudyInstanceUIDs={remapped}"
                    f"&qaportal_context=review-assignment:{assignment_id}")
    _drawn_cleanly(page, seen)
    page.wait_for_load_state("networkidle")
    responses = seen["responses"]
    frames = [url for url, _, _ in responses if "/frames/" in url]
    assert frames and all(remapped in url for url in frames)
    for url, status, body in responses:
        assert all(value not in url for value in forbidden), url
        if body is None:
            assert 300 <= status < 400, url  # only a redirect has no body
            continue
        low = body.lower()
        for value in forbidden:
            assert value.lower().encode() not in low, (value, url)
    pages = [url for url, _, _ in responses if "/reviews/" in url or "/viewer/ohif/viewer" in url
             or url.endswith("/app-config.js") or "/metadata" in url]
    assert len(pages) >= 4, pages  # the review page, the viewer page, its config, metadata


# Each relaxation of the viewer's CSP is needed: without it, the browser reports a violation
# of that directive while OHIF opens a study (a JPEG 2000 one: its decoder is WebAssembly,
# compiled in a worker, whose violations reach the console only). With all of them, none.
RELAXATIONS = [("RELAXED", d, t) for d, tokens in ohif_routes.RELAXED.items() for t in tokens]
RELAXATIONS += [("WORKER_RELAXED", d, t)
                for d, tokens in ohif_routes.WORKER_RELAXED.items() for t in tokens]


@pytest.mark.parametrize(("table", "directive", "token"), [("", "none", None), *RELAXATIONS])
def test_each_csp_relaxation_is_needed(live_server, page: Page, tmp_path, monkeypatch,
                                       table, directive, token):
    from tests.dicomweb_helpers import ingest, one_study_of

    if table:
        relaxed = {d: tuple(t for t in tokens if t != token)
                   for d, tokens in getattr(ohif_routes, table).items()}
        monkeypatch.setattr(ohif_routes, table, relaxed)
    with live_server.app.app_context():
        owner = make_user(roles=("radiologist",), email="ohif-csp@e2e.test")
        study = ingest(owner, one_study_of(["MR_small_jp2klossless.dcm"], tmp_path / "in"))
        db.session.commit()
        uid = study.study_uid
    base = live_server.url
    sign_in(page, base, "ohif-csp@e2e.test")
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text))
    page.goto(f"{base}/viewer/ohif/viewer?StudyInstanceUIDs={uid}")
    if token is None:
        wait_for_image(page)
        page.wait_for_load_state("networkidle")
        assert page.evaluate("window.__csp") == []
        bad = [m for m in console if "Content Security" in m or "EvalError" in m]
        assert not bad, "\n".join(bad)
        return
    prefix = re.compile(rf"^{re.escape(directive)}(-elem|-attr)? ")
    violations: list[str] = []
    for _ in range(60):
        violations = page.evaluate("window.__csp")
        if any(prefix.match(v) for v in violations) or any(
                "Content Security" in m and (directive in m or token in m) for m in console):
            return
        page.wait_for_timeout(500)
    pytest.fail(f"no {directive} violation without {token}: {violations} {console[:5]}")
