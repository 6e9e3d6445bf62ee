"""Quick checks that the study pages render for their owner."""

import pydicom.data


def test_upload_then_study_page(client, login_as, app):
    login_as("radiologist")
    page = client.get("/studies/upload")
    assert page.status_code == 200
    with open(pydicom.data.get_testdata_file("CT_small.dcm"), "rb") as fh:
        response = client.post("/studies/upload", data={
            "files": [(fh, "CT_small.dcm")], "jurisdiction": "CA",
            "clinical_question": "Nodule?", "report_text": "Normal CT.", "finalize_now": "y",
        }, content_type="multipart/form-data")
    assert response.status_code == 302, response.data[:300]
    summary = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "1</span> stored" in summary
    from qaportal.extensions import db
    from qaportal.models import Study

    study = db.session.scalars(db.select(Study)).one()
    assert study.read.is_final and study.jurisdiction == "CA"
    detail = client.get(f"/studies/{study.id}").get_data(as_text=True)
    assert "Normal CT." in detail
    z = client.get(f"/studies/{study.id}/deidentified.zip?retain_dates=y")
    assert z.status_code == 200 and z.data[:2] == b"PK"
