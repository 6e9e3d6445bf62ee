"""Known DICOM peers and reader identifiers from the command line; credentials sealed at
rest; which association a peer may open (find_peer, address_allowed).

The admin pages are tested in test_feeds_peers_admin.py.
"""

from __future__ import annotations

import base64
import os
import stat

import pytest
import sqlalchemy as sa

from qaportal import create_app
from qaportal.config import ConfigError
from qaportal.extensions import db as _db
from qaportal.feeds.peer_service import stow_authorization
from qaportal.feeds.peers import address_allowed, find_peer
from qaportal.feeds.secrets import SecretError, seal, unseal
from qaportal.models import DicomPeer, User
from tests.console import console_env, qaportal
from tests.factories import make_user
from tests.feeds_world import audit_actions, peer_by_ae

SECRET = "stow-user:Harbour-Lantern-77"


def _run(app, *args, stdin: str | None = None):
    return app.test_cli_runner().invoke(args=list(args), input=stdin)


def _error(result) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


_peer = peer_by_ae
_actions = audit_actions


@pytest.fixture
def owner(app):
    user = make_user(roles=("radiologist",), email="site-owner@example.test")
    _db.session.commit()
    return user


def test_add_list_disable_enable_are_audited(app, owner):
    result = _run(app, "peer", "add", " CT_SITE1 ", "--address", "10.1.2.3", "--address",
                  "10.2.0.0/16, 2001:db8::/32", "--owner", "Site-Owner@example.test",
                  "--send-dicom", "pacs.example.org:104:PACS_SCP", "--description", "North")
    assert result.exit_code == 0, result.output
    peer = _peer("CT_SITE1")
    assert peer.addresses == ["10.1.2.3", "10.2.0.0/16", "2001:db8::/32"]
    assert (peer.owner_id, peer.active, peer.send_kind) == (owner.id, True, "dicom")
    assert (peer.send_host, peer.send_port, peer.send_ae) == ("pacs.example.org", 104, "PACS_SCP")
    listing = _run(app, "peer", "list").output.splitlines()
    assert listing[1].split("\t")[:5] == [
        "CT_SITE1", "active", owner.email, "10.1.2.3,10.2.0.0/16,2001:db8::/32",
        "C-STORE pacs.example.org:104:PACS_SCP"]
    assert _run(app, "peer", "disable", "CT_SITE1").output.strip() == "peer CT_SITE1 disabled"
    assert _peer("CT_SITE1").active is False
    assert "disabled already" in _run(app, "peer", "disable", "CT_SITE1").output
    assert "\tdisabled\t" in _run(app, "peer", "list").output
    assert _run(app, "peer", "enable", "CT_SITE1").exit_code == 0
    assert _peer("CT_SITE1").active is True
    events = _actions("peer.")
    assert [e.action for e in events] == ["peer.created", "peer.disabled", "peer.enabled"]
    assert all(e.actor_id is None and e.actor_label.startswith("command line (")
               for e in events)
    assert events[0].object_id == str(peer.id)
    assert events[0].details["addresses"] == peer.addresses


@pytest.mark.parametrize("args, message", [
    (["A" * 17], "longer than 16 characters"),
    (["CT\\1"], "backslash"),
    (["    "], "is empty"),
    (["CT\t1"], "printable ASCII"),
    (["CTÉ"], "printable ASCII"),
    (["CT1", "--address", "10.1.2.300"], "is not an IPv4 or IPv6 address"),
    (["CT1", "--address", "10.1.2.3/16"], "did you mean 10.1.0.0/16?"),
    (["CT1", "--address", "fe80::1%eth0"], "without a zone"),
    (["CT1", "--address", ","], "at least one address"),
    (["CT1", "--owner", "nobody@example.test"], "no account with the e-mail"),
    (["CT1", "--owner", "gone@example.test"], "is deactivated"),
    (["CT1", "--owner", "qa@example.test"], "does not hold the radiologist role"),
    (["CT1", "--send-stow", "ftp://pacs.example.org/"], "absolute http:// or https://"),
    (["CT1", "--send-stow", "https://u:p@pacs.example.org/dicom-web"], "no user name or"),
])
def test_bad_values_are_refused_in_one_line(app, owner, args, message):
    make_user(roles=("radiologist",), email="gone@example.test", active=False)
    make_user(roles=("qa_manager",), email="qa@example.test")
    _db.session.commit()
    base = {"--address": "10.1.2.3", "--owner": owner.email}
    ae, *rest = args
    for option, value in base.items():
        if option not in rest:
            rest += [option, value]
    result = _run(app, "peer", "add", ae, *rest)
    assert result.exit_code == 1
    assert _error(result).startswith("error: ") and message in result.output
    assert _db.session.scalar(sa.select(sa.func.count()).select_from(DicomPeer)) == 0
    assert not _actions("peer.")


@pytest.mark.parametrize("destination, message", [
    ("pacs.example.org:104", "is not HOST:PORT:AE"),
    ("pacs.example.org:0:PACS", "not between 1 and 65535"),
    ("pacs.example.org:port:PACS", "is not a number"),
    ("pacs_example!org:104:PACS", "is not a host name or an IP address"),
    ("pacs.example.org:104:" + "P" * 17, "destination AE title"),
])
def test_bad_dicom_destination_is_a_usage_error(app, owner, destination, message):
    result = _run(app, "peer", "add", "CT1", "--address", "10.1.2.3", "--owner", owner.email,
                  "--send-dicom", destination)
    assert result.exit_code == 2 and message in _error(result)
    assert _peer("CT1") is None


def test_ipv6_destination_and_usage_errors(app, owner):
    ok = _run(app, "peer", "add", "CT6", "--address", "::1", "--owner", owner.email,
              "--send-dicom", "[2001:db8::5]:11112:PACS")
    assert ok.exit_code == 0, ok.output
    assert "C-STORE [2001:db8::5]:11112:PACS" in ok.output
    assert (_peer("CT6").send_host, _peer("CT6").send_port) == ("2001:db8::5", 11112)
    both = _run(app, "peer", "add", "CT7", "--address", "::1", "--owner", owner.email,
                "--send-dicom", "h:104:AE", "--send-stow", "https://h/")
    assert both.exit_code == 2 and "not both" in _error(both)
    creds = _run(app, "peer", "add", "CT7", "--address", "::1", "--owner", owner.email,
                 "--stow-credentials-stdin", stdin=SECRET)
    assert creds.exit_code == 2 and "goes with --send-stow" in _error(creds)
    missing = _run(app, "peer", "add", "CT7", "--owner", owner.email)
    assert missing.exit_code == 2 and "--address" in missing.output
    assert _peer("CT7") is None
    unknown = _run(app, "peer", "disable", "NOPE")
    assert unknown.exit_code == 1 and "no peer with the AE title 'NOPE'" in _error(unknown)


def test_existing_ae_title_is_refused_in_any_letter_case(app, owner):
    args = ["--address", "10.1.2.3", "--owner", owner.email]
    assert _run(app, "peer", "add", "PACS1", *args).exit_code == 0
    again = _run(app, "peer", "add", "pacs1", "--address", "10.9.9.9", "--owner", owner.email)
    assert again.exit_code == 1
    assert _error(again) == ("error: a peer with the AE title 'PACS1' exists already "
                             "(change it instead)")
    assert _peer("PACS1").addresses == ["10.1.2.3"] and _peer("pacs1") is None
    assert len(_actions("peer.created")) == 1


def _raw_credentials(ae: str) -> str:
    return _db.session.execute(sa.text(
        "SELECT stow_credentials FROM dicom_peers WHERE ae_title = :ae"), {"ae": ae}).scalar()


def test_stow_credentials_from_stdin_are_stored_sealed(app, owner):
    result = _run(app, "peer", "add", "STOW1", "--address", "10.1.2.3", "--owner", owner.email,
                  "--send-stow", "https://pacs.example.org/dicom-web",
                  "--stow-credentials-stdin", stdin=SECRET + "\n")
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output and "credentials set" in result.output
    raw = _raw_credentials("STOW1")
    assert raw.startswith("sealed1:") and "Harbour-Lantern-77" not in raw and "stow-user" not in raw
    assert unseal(raw) == SECRET
    peer = _peer("STOW1")
    assert stow_authorization(peer) == "Basic " + base64.b64encode(SECRET.encode()).decode()
    assert "Harbour" not in str(_actions("peer.created")[0].details)
    assert _actions("peer.created")[0].details["stow_credentials"] == "set"
    assert "Harbour" not in _run(app, "peer", "list").output

    bearer = _run(app, "peer", "add", "STOW2", "--address", "10.1.2.4", "--owner", owner.email,
                  "--send-stow", "https://pacs.example.org/dicom-web",
                  "--stow-credentials-stdin", stdin="bearer  eyJhbGciOi.payload.sig\n")
    assert bearer.exit_code == 0, bearer.output
    assert stow_authorization(_peer("STOW2")) == "Bearer eyJhbGciOi.payload.sig"
    for bad in ("just-a-word", "user:", "Bearer two words", ""):
        refused = _run(app, "peer", "add", "STOW3", "--address", "10.1.2.5", "--owner",
                       owner.email, "--send-stow", "https://h.example.org/",
                       "--stow-credentials-stdin", stdin=bad + "\n")
        assert refused.exit_code == 1 and _error(refused).startswith("error: "), bad
    assert _peer("STOW3") is None


def test_seal_is_randomised_and_a_wrong_key_is_a_clear_error(app):
    first, second = seal("u:p"), seal("u:p")
    assert first != second and unseal(first) == unseal(second) == "u:p"
    assert "u:p" not in first
    app.config["FEEDS_KEY"] = "another-key-" + "x" * 32
    app.config.pop("FEEDS_KEY_FILE", None)
    with pytest.raises(SecretError, match="cannot be decrypted with QAPORTAL_FEEDS_KEY: the "
                                          "key has changed"):
        unseal(first)
    with pytest.raises(SecretError, match="not a sealed value"):
        unseal("u:p")
    with pytest.raises(SecretError, match="cannot be decrypted"):
        unseal("sealed1:not-base64!")


def test_a_peer_whose_credentials_do_not_open_gives_a_clear_error(app, owner):
    _run(app, "peer", "add", "STOW1", "--address", "10.1.2.3", "--owner", owner.email,
         "--send-stow", "https://pacs.example.org/dicom-web", "--stow-credentials-stdin",
         stdin=SECRET)
    app.config["FEEDS_KEY"] = "rotated-" + "k" * 40
    with pytest.raises(SecretError, match="restore the old key or enter them again"):
        stow_authorization(_peer("STOW1"))


def test_key_on_sqlite_is_an_instance_file(tmp_path):
    # Whatever database the run uses: this app is on the embedded SQLite (never opened).
    app = create_app({"INSTANCE_PATH": str(tmp_path / "i"), "TESTING": True, "LOCAL": True,
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'q.sqlite'}"})
    path = app.config["FEEDS_KEY_FILE"]
    assert path == str(tmp_path / "i" / "feeds-key")
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode == 0o600
    with open(path) as fh:
        assert fh.read().strip() == app.config["FEEDS_KEY"]
    with app.app_context():
        assert unseal(seal("a:b")) == "a:b"
        token = seal("a:b")
        app.config["FEEDS_KEY"] = "y" * 40  # as if the file had been replaced
        with pytest.raises(SecretError, match="instance file .*feeds-key"):
            unseal(token)
    again = create_app({"INSTANCE_PATH": str(tmp_path / "i"), "TESTING": True, "LOCAL": True,
                        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'q.sqlite'}"})
    with again.app_context():  # the next start reads the same file
        assert unseal(token) == "a:b"


def test_key_on_a_server_database_derives_from_secret_key(tmp_path):
    server = {"INSTANCE_PATH": str(tmp_path / "i"), "TESTING": True, "LOCAL": True,
              "SQLALCHEMY_DATABASE_URI": "postgresql://nobody@127.0.0.1:1/none",
              "SECRET_KEY": "s" * 64}
    app = create_app(server)
    assert not app.config.get("FEEDS_KEY") and not (tmp_path / "i" / "feeds-key").exists()
    with app.app_context():
        token = seal("u:p")
    # Setting QAPORTAL_FEEDS_KEY to the old SECRET_KEY keeps credentials readable after
    # SECRET_KEY is rotated.
    rotated = create_app({**server, "SECRET_KEY": "t" * 64, "FEEDS_KEY": "s" * 64})
    with rotated.app_context():
        assert unseal(token) == "u:p"
    other = create_app({**server, "SECRET_KEY": "t" * 64})
    with other.app_context(), pytest.raises(SecretError, match="derived from QAPORTAL_SECRET"):
        unseal(token)
    with pytest.raises(ConfigError, match="QAPORTAL_FEEDS_KEY must be at least 32"):
        create_app({**server, "FEEDS_KEY": "short"})


def test_reader_id_set_clear_unique_and_radiologists_only(app, owner):
    other = make_user(roles=("radiologist",), email="other@example.test")
    make_user(roles=("reviewer",), email="rev@example.test")
    _db.session.commit()
    ok = _run(app, "reader-id", "set", "SITE-OWNER@example.test", " 1234567893 ")
    assert ok.exit_code == 0 and ok.output.strip() == f"{owner.email}: reader identifier 1234567893"
    assert _run(app, "reader-id", "set", owner.email, "1234567893").exit_code == 0
    dup = _run(app, "reader-id", "set", other.email, "1234567893")
    assert dup.exit_code == 1
    assert _error(dup) == ("error: the reader identifier 1234567893 belongs to "
                           "site-owner@example.test already")
    rev = _run(app, "reader-id", "set", "rev@example.test", "RAD-7")
    assert rev.exit_code == 1 and "only for radiologists" in _error(rev)
    bad = _run(app, "reader-id", "set", other.email, "RAD^7")
    assert bad.exit_code == 1 and "letters, digits" in _error(bad)
    nobody = _run(app, "reader-id", "set", "nobody@example.test", "X1")
    assert nobody.exit_code == 1 and "no account" in _error(nobody)
    assert _run(app, "reader-id", "set", other.email, "RAD-0042").exit_code == 0
    assert _run(app, "reader-id", "set", owner.email, "").exit_code == 0
    _db.session.expire_all()
    assert _db.session.get(User, owner.id).reader_id is None
    assert _run(app, "reader-id", "clear", other.email).exit_code == 0
    assert _db.session.get(User, other.id).reader_id is None
    events = _actions("user.reader_id")
    assert [(e.action, e.details["reader_id"]) for e in events] == [
        ("user.reader_id_set", [None, "1234567893"]),
        ("user.reader_id_set", [None, "RAD-0042"]),
        ("user.reader_id_cleared", ["1234567893", None]),
        ("user.reader_id_cleared", ["RAD-0042", None]),
    ]


# -- which association a peer may open ---------------------------------------------------

@pytest.mark.parametrize("address, allowed, expected", [
    ("10.1.2.3", ["10.1.2.3"], True),
    ("10.1.2.4", ["10.1.2.3"], False),
    ("10.1.200.7", ["10.1.0.0/16"], True),
    ("10.2.0.1", ["10.1.0.0/16"], False),
    ("::ffff:10.1.2.3", ["10.1.2.3"], True),  # an IPv4 client on a dual-stack socket
    ("2001:db8::7", ["2001:db8::/32"], True),
    ("2001:db9::7", ["2001:db8::/32"], False),
    ("::1", ["::1"], True),
    ("fe80::1%eth0", ["fe80::/10"], True),
    ("127.0.0.1", ["::1"], False),
    ("not-an-address", ["0.0.0.0/0"], False),
    ("10.1.2.3", ["garbage", "10.1.2.3"], True),
    ("10.1.2.3", [], False),
])
def test_address_allowed(address, allowed, expected):
    assert address_allowed(address, allowed) is expected


def test_find_peer_refuses_unknown_inactive_and_deactivated_owner(app, owner):
    assert _run(app, "peer", "add", "CT1", "--address", "127.0.0.1", "--address", "::1/128",
                "--owner", owner.email).exit_code == 0
    assert find_peer("CT1", "127.0.0.1").ae_title == "CT1"
    assert find_peer("CT1 ", "::1").ae_title == "CT1"  # trailing padding of the AE field
    assert find_peer("CT1", "127.0.0.2") is None
    assert find_peer("CT2", "127.0.0.1") is None
    assert find_peer("", "127.0.0.1") is None
    _run(app, "peer", "disable", "CT1")
    _db.session.expire_all()
    assert find_peer("CT1", "127.0.0.1") is None
    _run(app, "peer", "enable", "CT1")
    _db.session.expire_all()
    assert find_peer("CT1", "127.0.0.1") is not None
    _db.session.get(User, owner.id).active = False
    _db.session.commit()
    assert find_peer("CT1", "127.0.0.1") is None
    assert "\towner deactivated\t" in _run(app, "peer", "list").output


@pytest.mark.slow
def test_the_console_script_reads_credentials_from_stdin(tmp_path):
    """The real `qaportal` entry point: the secret comes only through stdin."""
    instance = tmp_path / "instance"
    instance.mkdir()
    env = console_env(instance)
    assert qaportal(env, "db", "upgrade").returncode == 0
    assert qaportal(env, "create-user", "site@example.test", "--name", "Site",
                    "--role", "radiologist").returncode == 0
    added = qaportal(env, "peer", "add", "STOW1", "--address", "127.0.0.1", "--owner",
                     "site@example.test", "--send-stow", "https://127.0.0.1:8443/dicom-web",
                     "--stow-credentials-stdin", stdin=SECRET + "\n")
    assert added.returncode == 0, added.stderr
    assert SECRET not in added.stdout + added.stderr
    again = qaportal(env, "peer", "add", "STOW1", "--address", "127.0.0.1", "--owner",
                     "site@example.test")
    assert again.returncode == 1 and again.stdout == ""
    assert again.stderr.strip() == ("error: a peer with the AE title 'STOW1' exists already "
                                    "(change it instead)")
    for part in instance.glob("qaportal.sqlite*"):  # the database and its write-ahead log
        assert SECRET.encode() not in part.read_bytes()
