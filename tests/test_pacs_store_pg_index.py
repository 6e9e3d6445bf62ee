"""The PACS store against Orthanc in the scaled-out layout: its index in PostgreSQL.

docs/deployment.md gives Orthanc Debian's orthanc-postgresql index plugin when one archive
serves several app servers. The portal's tests of the PACS as image store (upload, study
page, frames, WADO-RS, verify-storage with a missing and an unmapped instance) run here
again against such an Orthanc: its index in a database of its own on the test run's
PostgreSQL server, created and dropped by the fixture (never the portal's database).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests import orthanc as orthanc_peer
from tests.conftest import _admin_url
from tests.test_pacs_store import (  # noqa: F401 (collected here with this module's archive)
    _store,
    pacs_app,
    test_portal_with_the_pacs_store,
    test_round_trip_gives_the_bytes_stored,
    test_verify_storage_on_the_pacs_store,
)

PG_INDEX_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancPostgreSQLIndex.so")


@pytest.fixture
def archive(postgres_url):
    """Orthanc with the DICOMweb plugin and its index in a PostgreSQL database of its own."""
    reason = orthanc_peer.unavailable()
    if reason:
        pytest.skip(reason)
    if not PG_INDEX_PLUGIN.is_file():
        pytest.skip(f"Debian package orthanc-postgresql is not installed (no {PG_INDEX_PLUGIN})")
    if postgres_url is None:
        pytest.skip("needs a PostgreSQL server (QAPORTAL_TEST_DATABASE_URL): Orthanc's index "
                    "goes there")
    server = _admin_url(postgres_url)
    name = f"qaportal_orthanc_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    index = {"EnableIndex": True, "EnableStorage": False, "Host": server.host or "127.0.0.1",
             "Port": server.port or 5432, "Database": name,
             "Username": server.username or "postgres", "Password": server.password or "",
             "Lock": False, "EnableSsl": False}
    try:
        with orthanc_peer.Orthanc(Plugins=[str(orthanc_peer.DICOMWEB_PLUGIN),
                                           str(PG_INDEX_PLUGIN)], PostgreSQL=index) as peer:
            yield peer
            # The instances are indexed in PostgreSQL, not in a SQLite file of Orthanc's.
            assert not list(peer.folder.rglob("index")), list(peer.folder.rglob("*"))
            with sa.create_engine(server.set(database=name)).connect() as conn:
                counted = conn.exec_driver_sql(
                    "SELECT count(*) FROM resources WHERE resourcetype = 3").scalar()
            assert counted == len(peer.get("/instances").json())
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
