"""QIDO-RS (/dicomweb/studies, series, instances): matching keys, fields, paging, access.

A caller finds only what they may see, and a study served de-identified only by its served
values: a blind reviewer searching by the real name, ID, accession, date or UID finds
nothing; by the pseudonym, the shifted date or the remapped UID they find it.
"""

from __future__ import annotations

import secrets
from datetime import date, time, timedelta
from urllib.parse import urlsplit

import pytest
import requests
import sqlalchemy as sa
from dicomweb_client import DICOMwebClient
from pydicom import Dataset
from requests.structures import CaseInsensitiveDict

from qaportal.auth import tokens
from qaportal.extensions import db
from qaportal.models import AuditEvent, Instance, Series
from tests.factories import make_assignment, make_study, make_user

JSON = "application/dicom+json"
NAME, PID, ACC, UID, DATE, TIME = "0010" "0010", "00100020", "00080050", "0020000D", \
    "00080020", "00080030"


def _add_instances(series: Series, n: int, sop_class: str = "1.2.840.10008.5.1.4.1.1.2"):
    for i in range(1, n + 1):
        series.instances.append(Instance(
            sop_uid=f"{series.series_uid}.{i}", sop_class_uid=sop_class, instance_number=i,
            rows=512, columns=512, frames=1, storage_key=secrets.token_hex(16),
            sha256="0" * 64, size_bytes=1000))
    series.instance_count = n
    series.study.instance_count += n


def _study(owner, *, patient_id="", accession_number="", modalities=None, **kw):
    study = make_study(owner, **kw)
    study.patient_id, study.accession_number = patient_id or study.patient_id, \
        accession_number or study.accession_number
    if modalities:
        study.modalities = modalities
    return study


@pytest.fixture
def w(db):
    """An uploader's three studies, another user's look-alike, and a blind reviewer of a."""
    owner = make_user(["radiologist"])
    other = make_user(["radiologist"])
    reviewer = make_user(["reviewer", "radiologist"])
    qa = make_user(["qa_manager"])
    a = _study(owner, patient_name="SMITH^JOHN", patient_id="PID-A",
                   accession_number="ACC-A", study_date=date(2024, 3, 10),
                   study_time=time(9, 30), description="CT CHEST",
                   referring_physician="REFER^ROSA", institution="Harbour General",
                   patient_birth_date=date(1950, 5, 5))
    b = _study(owner, patient_name="DOE^JANE", patient_id="PID-B", modality="MR",
                   accession_number="ACC-B", study_date=date(2023, 12, 31),
                   study_time=time(14, 0), description="MR BRAIN")
    c = _study(owner, patient_name="SMYTHE^ANNA", patient_id="PID-C",
                   accession_number="ACC-C", study_date=date(2022, 6, 1), modalities="CT/PT",
                   description="PET CT")
    c.series.append(Series(series_uid=f"{c.study_uid}.9", modality="PT", series_number=2,
                           body_part="WHOLEBODY"))
    c.series_count = 2
    _add_instances(a.series[0], 3)
    hidden = _study(other, patient_name="SMITH^JOHN", patient_id="PID-A",
                        accession_number="ACC-A", study_date=date(2024, 3, 10))
    assignment = make_assignment(a.read, reviewer, deidentified=True)
    db.session.commit()
    return {"owner": owner, "other": other, "reviewer": reviewer, "qa": qa, "a": a, "b": b,
            "c": c, "hidden": hidden, "assignment": assignment}


def _get(client, path, accept=JSON, **params):
    return client.get("/dicomweb/" + path, query_string=params, headers={"Accept": accept})


def _uids(response, tag=UID):
    assert response.status_code == 200, response.data[:300]
    return [r[tag]["Value"][0] for r in response.json]


def _value(result, tag):
    return result[tag].get("Value", [None])[0]


def test_studies_answer_the_required_attributes_newest_first(client, auth, w):
    auth.login(w["owner"])
    r = _get(client, "studies")
    assert r.status_code == 200 and r.mimetype == JSON
    assert _uids(r) == [w["a"].study_uid, w["b"].study_uid, w["c"].study_uid]
    first = r.json[0]
    for tag in ("00080020", "00080030", "00080050", "00080061", "00080090", "00100010",
                "00100020", "00100030", "00100040", "0020000D", "00200010", "00201206",
                "00201208", "00081030", "00081190"):
        assert tag in first, tag
    assert first[NAME]["Value"] == [{"Alphabetic": "SMITH^JOHN"}]
    assert _value(first, DATE) == "20240310" and _value(first, TIME) == "093000"
    assert _value(first, "00081190") == f"http://localhost/dicomweb/studies/{w['a'].study_uid}"
    assert _value(first, "00201208") == 3
    assert r.json[2]["00080061"]["Value"] == ["CT", "PT"]
    assert "00080080" not in first  # InstitutionName only when asked


@pytest.mark.parametrize("pattern,expected", [
    ("Smi*", "a"), ("SM?TH*", "ac"), ("SMITH^J?HN", "a"), ("john", "a"), ("smith^john", "a"),
    ("doe", "b"),
    ("DOE^JANE", "b"), ("*ANN*", "c"), ("sm*", "ac"), ("*", "abc"), ("", "abc"),
    ("SMIT", ""), ("JANE^DOE", ""),
])
def test_patient_name_matches_whole_name_or_components_ignoring_case(client, auth, w, pattern,
                                                                      expected):
    auth.login(w["owner"])
    got = _uids(_get(client, "studies", PatientName=pattern))
    assert got == [w[k].study_uid for k in expected]
    assert _uids(_get(client, "studies", **{"00100010": pattern})) == got


@pytest.mark.parametrize("params,expected", [
    ({"PatientID": "PID-B"}, "b"), ({"PatientID": "pid-b"}, ""), ({"PatientID": "PID-?"}, "abc"),
    ({"AccessionNumber": "ACC-C"}, "c"), ({"00080050": "ACC-A\\ACC-B"}, "ab"),
    ({"StudyDescription": "MR*"}, "b"), ({"StudyDescription": "mr*"}, ""),
    ({"ReferringPhysicianName": "rosa"}, "a"), ({"PatientSex": "F"}, "abc"),
    ({"StudyDate": "20231231"}, "b"), ({"StudyDate": "20230101-20241231"}, "ab"),
    ({"StudyDate": "-20231231"}, "bc"), ({"StudyDate": "20231231-"}, "ab"),
    ({"StudyTime": "0900-1000"}, "a"), ({"StudyTime": "14"}, "b"), ({"StudyTime": "1400-"}, "b"),
    ({"ModalitiesInStudy": "PT"}, "c"), ({"ModalitiesInStudy": "MR,PT"}, "bc"),
    ({"ModalitiesInStudy": "MR\\PT"}, "bc"), ({"ModalitiesInStudy": "CT"}, "ac"),
    ({"PatientName": "S*", "ModalitiesInStudy": "CT", "StudyDate": "20230101-"}, "a"),
    ({"StudyID": "1"}, ""),
    # SQL wildcard characters are literal in DICOM values.
    ({"PatientID": "PID_?"}, ""), ({"PatientID": "%"}, ""), ({"PatientID": "PID%*"}, ""),
    ({"StudyDescription": "[CM]*"}, ""),
])
def test_matching_keys(client, auth, w, params, expected):
    auth.login(w["owner"])
    assert _uids(_get(client, "studies", **params)) == [w[k].study_uid for k in expected]


def test_study_uid_lists_take_commas_and_backslashes(client, auth, w):
    auth.login(w["owner"])
    a, c = w["a"].study_uid, w["c"].study_uid
    assert _uids(_get(client, "studies", StudyInstanceUID=f"{c},{a}")) == [a, c]
    assert _uids(_get(client, "studies", **{"0020000D": f"{c}\\{a}"})) == [a, c]
    assert _uids(_get(client, "studies", StudyInstanceUID=w["hidden"].study_uid)) == []


def test_series_and_instances_across_studies_and_inside_one(client, auth, w):
    auth.login(w["owner"])
    a, c = w["a"], w["c"]
    r = _get(client, "series", Modality="PT")
    assert _uids(r, "0020000E") == [f"{c.study_uid}.9"]
    assert _value(r.json[0], NAME) == {"Alphabetic": "SMYTHE^ANNA"}  # study attributes too
    assert _uids(_get(client, "series", PatientName="smith"), "0020000E") == \
        [a.series[0].series_uid]
    r = _get(client, f"studies/{c.study_uid}/series")
    assert _uids(r, "00200011") == [1, 2]
    assert NAME not in r.json[0] and _value(r.json[0], UID) == c.study_uid
    assert _value(r.json[1], "00081190") == \
        f"http://localhost/dicomweb/studies/{c.study_uid}/series/{c.study_uid}.9"
    se = a.series[0]
    r = _get(client, f"studies/{a.study_uid}/series/{se.series_uid}/instances")
    assert _uids(r, "00080018") == [f"{se.series_uid}.{i}" for i in (1, 2, 3)]
    first = r.json[0]
    assert (_value(first, "00280010"), _value(first, "00280011"), _value(first, "00280008"),
            _value(first, "00200013")) == (512, 512, 1, 1)
    assert _value(first, "00080016") == "1.2.840.10008.5.1.4.1.1.2"
    assert _value(first, "00081190").endswith(
        f"/studies/{a.study_uid}/series/{se.series_uid}/instances/{se.series_uid}.1")
    assert _uids(_get(client, "instances", SOPInstanceUID=f"{se.series_uid}.2"),
                 "00080018") == [f"{se.series_uid}.2"]
    assert _uids(_get(client, "instances", InstanceNumber="3"), "00080018") == \
        [f"{se.series_uid}.3"]
    r = _get(client, f"studies/{a.study_uid}/instances", SeriesNumber="1")
    assert _uids(r, "00080018") == [f"{se.series_uid}.{i}" for i in (1, 2, 3)]
    assert _value(r.json[0], "00080060") == "CT" and NAME not in r.json[0]  # series fields
    r = _get(client, f"studies/{a.study_uid}/series/{se.series_uid}/instances")
    assert "00080060" not in r.json[0] and _value(r.json[0], "0020000E") == se.series_uid
    assert _get(client, f"studies/{w['hidden'].study_uid}/series").status_code == 404
    assert _get(client, f"studies/{a.study_uid}/series/1.2.3/instances").status_code == 404


def test_includefield_by_keyword_tag_and_all(client, auth, w):
    auth.login(w["owner"])
    r = _get(client, "studies", PatientID="PID-A", includefield="InstitutionName")
    assert _value(r.json[0], "00080080") == "Harbour General"
    r = client.get("/dicomweb/studies?PatientID=PID-A&includefield=00080080,00080056"
                   "&includefield=PatientName")
    assert "00080080" in r.json[0] and _value(r.json[0], "00080056") == "ONLINE"
    r = _get(client, "series", Modality="PT", includefield="all")
    assert _value(r.json[0], "00180015") == "WHOLEBODY" and "00080080" in r.json[0]
    r = _get(client, "studies", includefield="PatientWeight")
    assert r.status_code == 200 and "PatientWeight" in r.headers["Warning"]
    assert _get(client, "studies", includefield="NoSuchThing").status_code == 400


def test_bad_and_unsupported_keys(client, auth, w):
    auth.login(w["owner"])
    r = _get(client, "studies", NoSuchAttribute="1")
    assert r.status_code == 400 and "NoSuchAttribute" in r.json["error"]
    r = _get(client, "studies", PatientWeight="70")
    assert r.status_code == 200 and len(r.json) == 3
    assert "PatientWeight" in r.headers["Warning"] and "70" not in r.headers["Warning"]
    r = _get(client, "studies", Modality="MR")  # a series key at study level: ignored
    assert len(r.json) == 3 and "Modality" in r.headers["Warning"]
    for params in ({"StudyDate": "2024-01-01"}, {"StudyDate": "20241301"},
                   {"StudyTime": "9am"}, {"SeriesNumber": "one"}, {"limit": "-1"},
                   {"limit": "0"}, {"offset": "x"}):
        r = _get(client, "series", **params)
        assert r.status_code == 400 and r.json["error"], params


def test_fuzzymatching_is_ignored_politely(client, auth, w):
    auth.login(w["owner"])
    r = _get(client, "studies", PatientName="smith", fuzzymatching="true")
    assert _uids(r) == [w["a"].study_uid]
    assert r.headers["Warning"].startswith("299 localhost ")
    assert "fuzzymatching is not supported" in r.headers["Warning"]
    assert "Warning" not in _get(client, "studies", fuzzymatching="false").headers


def test_no_match_is_200_with_an_empty_list(client, auth, w):
    auth.login(w["owner"])
    r = _get(client, "studies", PatientName="NOBODY")
    assert r.status_code == 200 and r.json == [] and r.mimetype == JSON


def test_accept_negotiation(client, auth, w):
    auth.login(w["owner"])
    assert _get(client, "studies", accept="application/json").mimetype == "application/json"
    assert _get(client, "studies", accept="*/*").mimetype == JSON
    r = _get(client, "studies", accept="application/dicom+xml")
    assert r.status_code == 406 and "application/dicom+json" in r.json["error"]
    assert _get(client, "series", accept="*/*, application/dicom+json;q=0, "
                "application/json;q=0").status_code == 406


def test_limit_offset_pages_do_not_overlap_and_warn(client, auth, app, w):
    auth.login(w["owner"])
    everything = _uids(_get(client, "studies"))
    first, second = _get(client, "studies", limit=2), _get(client, "studies", limit=2, offset=2)
    assert _uids(first) + _uids(second) == everything
    assert "additional results" in first.headers["Warning"]
    assert "Warning" not in second.headers
    assert _uids(_get(client, "studies", offset=5)) == []
    app.config["QIDO_MAX_RESULTS"] = 2
    r = _get(client, "studies")
    assert len(r.json) == 2 and "additional results" in r.headers["Warning"]
    r = _get(client, "studies", limit=50)
    assert len(r.json) == 2 and "maximum of 2" in r.headers.get_all("Warning")[0]


def test_instances_page_across_studies(client, auth, w):
    auth.login(w["owner"])
    se = w["a"].series[0]
    got = [_uids(_get(client, "instances", limit=1, offset=i), "00080018") for i in range(4)]
    assert got == [[f"{se.series_uid}.1"], [f"{se.series_uid}.2"], [f"{se.series_uid}.3"], []]


def _count_statements(app, fn):
    count = [0]

    def bump(*args):
        count[0] += 1

    engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", bump)
    try:
        response = fn()
    finally:
        sa.event.remove(engine, "before_cursor_execute", bump)
    return response, count[0]


def test_other_users_studies_change_nothing_not_even_the_statement_count(client, auth, app, w):
    auth.login(w["owner"])
    queries = [("studies", {"PatientName": "SMITH*"}), ("series", {"PatientID": "PID-A"}),
               ("instances", {}), ("studies", {"AccessionNumber": "ACC-A"})]
    _get(client, "studies")  # the first request after sign-in finds the user loaded
    before = [_count_statements(app, lambda p=p, q=q: _get(client, p, **q)) for p, q in queries]
    for i in range(30):  # many look-alikes of another uploader, each with a series
        _study(w["other"], patient_name="SMITH^JOHN", patient_id="PID-A",
               accession_number="ACC-A", study_date=date(2024, 3, 10) + timedelta(days=i))
    db.session.commit()
    # The test's commit expired the signed-in user its requests share with it (a request's
    # own commit keeps them): load them again before counting, as before the first count.
    _get(client, "studies")
    after = [_count_statements(app, lambda p=p, q=q: _get(client, p, **q)) for p, q in queries]
    for (r1, n1), (r2, n2) in zip(before, after, strict=True):
        assert r1.data == r2.data and r1.headers.get("Warning") == r2.headers.get("Warning")
        assert n1 == n2, (before, after)
    assert all(n <= 12 for _, n in after), [n for _, n in after]


def test_qa_manager_sees_every_study_once_per_uid(client, auth, w):
    copy = make_study(w["other"], patient_name="DOE^JANE", study_date=date(2023, 12, 31))
    copy.study_uid = w["b"].study_uid  # another uploader's copy of the same study
    db.session.commit()
    auth.login(w["qa"])
    got = _uids(_get(client, "studies"))
    assert sorted(got) == sorted({w[k].study_uid for k in ("a", "b", "c", "hidden")})
    r = _get(client, "studies", StudyInstanceUID=w["b"].study_uid, includefield="all")
    assert len(r.json) == 1 and _value(r.json[0], PID) == "PID-B"  # the earliest copy
    auth.logout()
    auth.login(w["other"])
    r = _get(client, "studies", StudyInstanceUID=w["b"].study_uid)
    assert _value(r.json[0], PID) == copy.patient_id  # their own copy


def test_blind_reviewer_sees_and_finds_only_the_deidentified_study(client, auth, w):
    a, reviewer = w["a"], w["reviewer"]
    auth.login(reviewer)
    r = _get(client, "studies", includefield="all")
    assert len(r.json) == 1
    got = r.json[0]
    served_uid = _value(got, UID)
    assert served_uid.startswith("2.25.") and served_uid != a.study_uid
    assert _value(got, NAME) == {"Alphabetic": a.pseudonym} and _value(got, PID) == a.pseudonym
    shifted = a.study_date + timedelta(days=a.deid_date_shift_days)
    assert _value(got, DATE) == shifted.strftime("%Y%m%d")
    for tag in ("00080050", "00100030", "00080090", "00080080", "00081030"):
        assert "Value" not in got[tag], tag
    assert _value(got, "00081190").endswith(f"/studies/{served_uid}")
    text = r.get_data(as_text=True)
    for secret in ("SMITH", "PID-A", "ACC-A", a.study_uid, "REFER", "Harbour", "20240310",
                   "19500505", a.series[0].series_uid, "CT CHEST"):
        assert secret not in text, secret
    # Original values find nothing; served ones find it.
    for key, original in (("PatientName", "SMITH*"), ("PatientName", "john"),
                          ("PatientID", "PID-A"), ("AccessionNumber", "ACC-A"),
                          ("StudyInstanceUID", a.study_uid), ("StudyDate", "20240310"),
                          ("StudyDescription", "CT*"), ("ReferringPhysicianName", "REFER*"),
                          ("PatientBirthDate", "19500505")):
        assert _uids(_get(client, "studies", **{key: original})) == [], key
    for key, served in (("PatientName", a.pseudonym.lower()), ("PatientID", a.pseudonym),
                        ("StudyInstanceUID", served_uid),
                        ("StudyDate", shifted.strftime("%Y%m%d")),
                        ("ModalitiesInStudy", "CT"), ("StudyTime", "0930")):
        assert _uids(_get(client, "studies", **{key: served})) == [served_uid], key


def test_blind_reviewer_series_and_instances_are_remapped(client, auth, w):
    a, reviewer = w["a"], w["reviewer"]
    se = a.series[0]
    auth.login(reviewer)
    served_uid = _uids(_get(client, "studies"))[0]
    assert _get(client, f"studies/{a.study_uid}/series").status_code == 404
    assert _get(client, f"studies/{served_uid}/series", PatientID="PID-A").json == []
    r = _get(client, f"studies/{served_uid}/series")
    served_series = _uids(r, "0020000E")[0]
    assert served_series != se.series_uid and served_series.startswith("2.25.")
    assert "Value" not in r.json[0]["0008103E"]  # no series description
    r = _get(client, f"studies/{served_uid}/series/{served_series}/instances")
    sops = _uids(r, "00080018")
    assert len(sops) == 3 and not any(s.startswith(se.series_uid) for s in sops)
    assert _value(r.json[0], "00081190").endswith(
        f"/studies/{served_uid}/series/{served_series}/instances/{sops[0]}")
    everywhere = _get(client, "instances", includefield="all")
    assert _uids(everywhere, "00080018") == sops
    assert se.series_uid not in everywhere.get_data(as_text=True)
    assert _uids(_get(client, "instances", SOPInstanceUID=f"{se.series_uid}.1"),
                 "00080018") == []
    assert _uids(_get(client, "instances", SOPInstanceUID=sops[1]), "00080018") == [sops[1]]
    assert _uids(_get(client, "series", SeriesInstanceUID=se.series_uid), "0020000E") == []
    assert _uids(_get(client, "series", SeriesInstanceUID=served_series),
                 "0020000E") == [served_series]


def test_blind_reviewer_pages_mix_with_own_studies(client, auth, w):
    reviewer = w["reviewer"]
    own = make_study(reviewer, patient_name="OWN^ONE", study_date=date(2025, 1, 1))
    older = make_study(reviewer, patient_name="OWN^TWO", study_date=date(2001, 1, 1))
    db.session.commit()
    auth.login(reviewer)
    everything = _uids(_get(client, "studies"))
    assert len(everything) == 3
    assert everything[0] == own.study_uid and everything[-1] == older.study_uid
    pages = [_uids(_get(client, "studies", limit=1, offset=i)) for i in range(3)]
    assert [p[0] for p in pages] == everything


def test_every_search_is_audited_without_query_values(client, auth, w):
    auth.login(w["owner"])
    _get(client, "studies", PatientName="SMITH*")
    _get(client, f"studies/{w['c'].study_uid}/series")
    rows = db.session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action == "dicomweb.searched").order_by(AuditEvent.seq)).all()
    assert [(e.details["level"], e.details["results"]) for e in rows] == \
        [("study", 1), ("series", 2)]
    assert rows[1].object_id == str(w["c"].id) and rows[0].object_id is None
    assert "SMITH" not in str([e.details for e in rows])
    assert all(e.actor_id == w["owner"].id for e in rows)


def test_anonymous_gets_401(client, w):
    r = _get(client, "studies")
    assert r.status_code == 401 and r.is_json


class _FlaskAdapter:
    """A requests transport that hands each request to the Flask test client (signed in),
    so dicomweb-client, the reference client, talks to the real views without a socket."""

    def __init__(self, client):
        self.client = client

    def send(self, request, **kwargs):
        url = urlsplit(request.url)
        got = self.client.open(url.path, method=request.method, query_string=url.query,
                               headers={k: v for k, v in request.headers.items()
                                        if k.lower() not in ("cookie", "host")},
                               data=request.body)
        response = requests.Response()
        response.status_code, response.url, response.request = \
            got.status_code, request.url, request
        response.headers = CaseInsensitiveDict(got.headers)
        response._content = got.get_data()
        return response

    def close(self):
        pass


def test_dicomweb_client_searches(client, auth, w):
    auth.login(w["owner"])
    session = requests.Session()
    session.mount("http://portal.test/", _FlaskAdapter(client))
    dw = DICOMwebClient("http://portal.test/dicomweb", session=session)
    found = [Dataset.from_json(d) for d in dw.search_for_studies(
        search_filters={"PatientName": "sm*", "StudyDate": "20200101-"},
        fields=["InstitutionName"])]
    assert [str(d.PatientName) for d in found] == ["SMITH^JOHN", "SMYTHE^ANNA"]
    assert found[0].InstitutionName == "Harbour General"
    pages = dw.search_for_studies(limit=1, get_remaining=True)
    assert [d[UID]["Value"][0] for d in pages] == [w[k].study_uid for k in "abc"]
    a = w["a"]
    series = dw.search_for_series(a.study_uid)
    assert [d["0020000E"]["Value"][0] for d in series] == [a.series[0].series_uid]
    instances = dw.search_for_instances(a.study_uid, a.series[0].series_uid,
                                        search_filters={"InstanceNumber": 2})
    assert [Dataset.from_json(d).SOPInstanceUID for d in instances] == \
        [f"{a.series[0].series_uid}.2"]
    assert dw.search_for_studies(search_filters={"PatientID": "NOBODY"}) == []


def test_bearer_token_searches_as_its_user_and_is_audited(client, w):
    secret = tokens.create(w["reviewer"], label="viewer", scopes=("read",), expires_days=30,
                           by=w["reviewer"]).secret
    db.session.commit()
    r = client.get("/dicomweb/studies", headers={"Authorization": f"Bearer {secret}",
                                                 "Accept": JSON})
    assert r.status_code == 200 and len(r.json) == 1
    assert _value(r.json[0], NAME) == {"Alphabetic": w["a"].pseudonym}
    event = db.session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action == "dicomweb.searched")).one()
    assert event.actor_id == w["reviewer"].id and event.details["via"] == "token"
    assert client.get("/dicomweb/studies", headers={"Authorization": "Bearer nope"}
                      ).status_code == 401
