"""Several app servers (docs/deployment.md, section 7): two gunicorn servers
behind nginx's round-robin, one PostgreSQL database, one Redis job queue, one shared folder
for images and exports, each server with an instance folder of its own. What one server
does the other honours: a pool claim raced through both has one winner, an upload whose
parts land on both is one study, a sign-out on one ends the session on the other, failed
sign-ins lock the account counted across both, refused API tokens are rate-limited counted
across both, an export queued on one and made by the worker downloads from the other, and
the audit chain they all wrote verifies under the one key.

Real nginx from Debian on a free loopback port with its files in the test's folder, the test
run's own redis-server (tests/redis_server.py), and a PostgreSQL database of its own on
QAPORTAL_TEST_DATABASE_URL's server (else 127.0.0.1:5432).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from tests.console import console_env, qaportal

pytestmark = pytest.mark.slow

PASSWORD = "harbour-violet-lantern-42"
TOKEN_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _program(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if path is None:
        pytest.skip(f"{name} is not installed (Debian package in the Makefile's TEST_DEBS)")
    return path


def _wait_http(url: str, proc: subprocess.Popen, log: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if requests.get(url, timeout=30).status_code < 500:
                return
        except requests.ConnectionError:  # not listening yet
            pass
        time.sleep(0.1)
    pytest.fail(f"{url} did not answer in {seconds} s:\n{log.read_text()}")


def _database(stack: ExitStack) -> str:
    """Create a database of this test's own; return its URL (skip without PostgreSQL)."""
    base = sa.make_url(os.environ.get("QAPORTAL_TEST_DATABASE_URL") or PG_DEFAULT)
    admin = base.set(drivername="postgresql+psycopg")
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    name = f"qaportal_two_servers_{uuid.uuid4().hex[:12]}"
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        engine.dispose()
        pytest.skip(f"no PostgreSQL server at {admin.host}:{admin.port}: {exc.orig}")

    def drop():
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        engine.dispose()

    stack.callback(drop)
    return base.set(drivername="postgresql", database=name).render_as_string(
        hide_password=False)


class Processes:
    """The processes this test started, stopped together (SIGTERM to all, then wait)."""

    def __init__(self):
        self.started: list[tuple[subprocess.Popen, object, int]] = []

    def start(self, args: list[str], log: Path, stop_signal: int = signal.SIGTERM,
              **kwargs) -> subprocess.Popen:
        out = log.open("w")
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, **kwargs)
        self.started.append((proc, out, stop_signal))
        return proc

    def stop(self) -> None:
        for proc, _, stop_signal in self.started:
            if proc.poll() is None:
                proc.send_signal(stop_signal)
        for proc, out, _ in self.started:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            out.close()


NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
{user}
events {{ worker_connections 64; }}
http {{
    # As docs/deployment.md: the path, never the query string (patient names and IDs).
    log_format qaportal '$remote_addr - $remote_user [$time_local] '
                        '"$request_method $uri $server_protocol" $status $body_bytes_sent '
                        '$request_time "$http_user_agent"';
    access_log {tmp}/nginx-access.log qaportal;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream qaportal {{
        server 127.0.0.1:{port_a};
        server 127.0.0.1:{port_b};
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 64m;
        location / {{
            proxy_pass http://qaportal;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
            # Which server answered, for the test only.
            add_header X-Upstream $upstream_addr always;
        }}
    }}
}}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, redis_server):
    """Start PostgreSQL's database, Redis, two gunicorn servers, a job worker and nginx."""
    nginx = _program("nginx")
    tmp = tmp_path_factory.mktemp("two-servers")
    with ExitStack() as stack:
        url = _database(stack)
        procs = Processes()
        stack.callback(procs.stop)  # before the database is dropped
        shared = tmp / "shared"  # on a real installation: NFS or another shared filesystem
        env = {  # the same on every server and worker
            "QAPORTAL_DATABASE_URL": url,
            "QAPORTAL_SECRET_KEY": secrets.token_hex(32),
            "QAPORTAL_AUDIT_KEY": secrets.token_hex(32),
            "QAPORTAL_IMAGE_ROOT": str(shared / "images"),
            "QAPORTAL_EXPORT_ROOT": str(shared / "exports"),
            "QAPORTAL_JOB_QUEUE_URL": f"{redis_server.url}/13",  # the run's own Redis
            "QAPORTAL_JOB_QUEUE_NAME": f"qaportal-{uuid.uuid4().hex[:12]}",
            "QAPORTAL_PROXY_FIX": "1",
            "QAPORTAL_LOCAL": "1",  # plain HTTP on loopback here: TLS ends at nginx in production
            "QAPORTAL_AUDIT_SYSLOG": "0",
            "QAPORTAL_SIGN_IN_RATE_LIMIT": "100 per minute",
            "QAPORTAL_API_TOKEN_FAILURE_RATE_LIMIT": "3 per minute",
        }
        (tmp / "seed").mkdir()
        seed_env = console_env(tmp / "seed", **env)
        seed = _schema(tmp, env)
        worker_log = tmp / "worker.log"
        worker = procs.start([sys.executable, "-c", "import sys; from qaportal.cli import main; "
                              "sys.argv[0] = 'qaportal'; main()", "worker", "-w", "1"],
                             worker_log, env=seed_env, cwd=tmp / "seed")
        servers = {}
        for name in ("a", "b"):
            instance = tmp / f"server-{name}"  # each server's own: cache, tmp, anchor log
            instance.mkdir()
            port = _free_port()
            log = tmp / f"gunicorn-{name}.log"
            # No control socket: gunicorn's default is one per user, in ~/.gunicorn.
            proc = procs.start([sys.executable, "-m", "gunicorn", "--config",
                                "python:qaportal.gunicorn_config", "--access-logfile", "-",
                                "--workers", "1", "--bind", f"127.0.0.1:{port}", "--timeout",
                                "60", "--no-control-socket", "qaportal:create_app()"],
                               log, signal.SIGINT, env=console_env(instance, **env), cwd=instance)
            servers[name] = (f"http://127.0.0.1:{port}", port, proc, log)
        port = _free_port()
        conf = tmp / "nginx.conf"
        conf.write_text(NGINX_CONF.format(
            tmp=tmp, port=port, port_a=servers["a"][1], port_b=servers["b"][1],
            user="user root root;" if os.geteuid() == 0 else ""))
        proxy = procs.start([nginx, "-p", str(tmp), "-c", str(conf), "-e",
                             str(tmp / "nginx-error.log")], tmp / "nginx.log")
        people = _seed(seed)  # while the servers start
        for base, _, proc, log in servers.values():
            _wait_http(f"{base}/health", proc, log)
        _wait_http(f"http://127.0.0.1:{port}/health", proxy, tmp / "nginx-error.log")
        yield {"url": f"http://127.0.0.1:{port}", "a": servers["a"][0], "b": servers["b"][0],
               "env": seed_env, "db": url, "people": people, "tmp": tmp,
               "worker": (worker, worker_log), "shared": shared}


def _schema(tmp: Path, env: dict[str, str]):
    """Make the schema with the servers' settings, in this process; return the app."""
    from qaportal import create_app
    from qaportal.extensions import db
    from tests.conftest import FAST_HASHING

    settings = {key: env[f"QAPORTAL_{name}"] for name, key in (
        ("DATABASE_URL", "SQLALCHEMY_DATABASE_URI"), ("SECRET_KEY", "SECRET_KEY"),
        ("AUDIT_KEY", "AUDIT_KEY"), ("IMAGE_ROOT", "IMAGE_ROOT"),
        ("EXPORT_ROOT", "EXPORT_ROOT"), ("JOB_QUEUE_URL", "JOB_QUEUE_URL"),
        ("JOB_QUEUE_NAME", "JOB_QUEUE_NAME"))}
    app = create_app({**settings, **FAST_HASHING, "INSTANCE_PATH": str(tmp / "seed"),
                      "LOCAL": True, "AUDIT_SYSLOG": False})
    with app.app_context():
        db.create_all()  # the models' schema (tests/test_migrations.py: as `db upgrade` makes)
    return app


def _seed(app) -> dict:
    """Accounts and an open pool request, with the servers' keys: the seeding's audit entries
    join the one chain."""
    from qaportal.extensions import db
    from tests.factories import make_opinion_request, make_study, make_user

    with app.app_context():
        made = {"requester": make_user(licenses=["CA"], password=PASSWORD),
                "uploader": make_user(password=PASSWORD),
                "victim": make_user(password=PASSWORD),
                "qa": make_user(roles=("qa_manager",), password=PASSWORD)}
        for who in ("b", "c"):
            made[who] = make_user(subspecialties=["neuro"], licenses=["CA"], password=PASSWORD)
        req = make_opinion_request(make_study(made["requester"]), made["requester"])
        db.session.commit()
        people = {who: user.email for who, user in made.items()}
        people.update(request=req.id, ids={who: user.id for who, user in made.items()})
        db.session.remove()
        db.engine.dispose()
    return people


def _token(page: requests.Response) -> str:
    found = TOKEN_RE.search(page.text)
    assert found, page.text[:500]
    return found.group(1)


def sign_in(base: str, email: str, password: str = PASSWORD) -> requests.Session:
    s = requests.Session()
    token = _token(s.get(f"{base}/login", timeout=10))
    r = s.post(f"{base}/login", data={"csrf_token": token, "email": email,
                                     "password": password}, allow_redirects=False, timeout=30)
    assert r.status_code == 302 and "/login" not in r.headers["Location"], r.text[:300]
    return s


def _at_once(*calls):
    """Run the calls in threads released together; return their results in order."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(i, call):
        barrier.wait()
        results[i] = call()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def _query(cluster, sql: str, **params):
    engine = sa.create_engine(sa.make_url(cluster["db"]).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql), params).all()
    finally:
        engine.dispose()


def test_the_access_logs_carry_paths_never_query_strings(cluster):
    for base in (cluster["url"], cluster["a"], cluster["b"]):
        requests.get(f"{base}/dicomweb/studies?PatientName=QSECRET%5EPAT*"
                     "&00100020=QSECRETPID", timeout=30)
    # A server writes its access line after the response has gone: wait for the lines.
    deadline = time.monotonic() + 15
    while True:
        nginx = (cluster["tmp"] / "nginx-access.log").read_text()
        servers = "".join((cluster["tmp"] / f"gunicorn-{n}.log").read_text() for n in "ab")
        logged = ('"GET /dicomweb/studies HTTP/1.1" 401' in nginx
                  and servers.count('"GET /dicomweb/studies HTTP/1.') >= 3)
        if logged or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert '"GET /dicomweb/studies HTTP/1.1" 401' in nginx, nginx[-1000:]
    assert servers.count('"GET /dicomweb/studies HTTP/1.') >= 3, servers[-2000:]  # 1.0: nginx
    assert "QSECRET" not in nginx + servers


def test_a_claim_raced_through_both_servers_has_one_winner(cluster):
    url, people = cluster["url"], cluster["people"]
    rid = people["request"]
    consultants = {who: sign_in(url, people[who]) for who in ("b", "c")}
    tokens = {who: _token(s.get(f"{url}/opinions/{rid}", timeout=10))
              for who, s in consultants.items()}

    def claim(who):
        return lambda: consultants[who].post(f"{url}/opinions/{rid}/claim",
                                             data={"csrf_token": tokens[who]},
                                             allow_redirects=False, timeout=30)

    answers = dict(zip(("b", "c"), _at_once(claim("b"), claim("c")), strict=True))
    # nginx sent the two simultaneous claims to different servers.
    assert len({a.headers["X-Upstream"] for a in answers.values()}) == 2
    assert all(a.status_code == 302 for a in answers.values())
    won = [w for w, a in answers.items() if a.headers["Location"].endswith(f"/opinions/{rid}")]
    assert len(won) == 1, {w: a.headers["Location"] for w, a in answers.items()}
    lost = "c" if won == ["b"] else "b"
    assert answers[lost].headers["Location"].rstrip("/").endswith("/opinions")
    page = consultants[lost].get(f"{url}{answers[lost].headers['Location']}", timeout=10)
    assert "Another consultant claimed this request a moment ago." in page.text
    page = consultants[won[0]].get(f"{url}/opinions/{rid}", timeout=10)
    assert f"You claimed request #{rid}." in page.text
    assert _query(cluster, "SELECT status, consultant_id FROM opinion_requests WHERE id = :i",
                  i=rid) == [("accepted", people["ids"][won[0]])]
    assert _query(cluster, "SELECT count(*) FROM audit_events WHERE action = 'opinion.claimed'"
                  ) == [(1,)]


def test_an_upload_split_across_both_servers_is_one_complete_study(cluster, tmp_path):
    from qaportal.dicom import FilesystemStore, generate_ct_series

    url, people = cluster["url"], cluster["people"]
    s = sign_in(url, people["uploader"])
    csrf = {"X-CSRFToken": _token(s.get(f"{url}/studies/upload", timeout=10)),
            "Accept": "application/json"}
    files = generate_ct_series(tmp_path / "ct", slices=8)
    batch = s.post(f"{url}/studies/upload/batches", headers=csrf, timeout=10)
    assert batch.status_code == 201, batch.text[:300]
    files_url = url + batch.json()["files_url"]

    def part(paths):
        return lambda: s.post(files_url, headers=csrf, timeout=60, files=[
            ("files", (f"ct/{p.name}", p.read_bytes(), "application/dicom")) for p in paths])

    parts = _at_once(part(files[:4]), part(files[4:]))  # two browser lanes, as upload.js
    assert len({p.headers["X-Upstream"] for p in parts}) == 2
    assert [p.status_code for p in parts] == [200, 200], [p.text[:300] for p in parts]
    assert sum(p.json()["stored"] for p in parts) == 8
    done = s.post(url + batch.json()["finish_url"], headers=csrf, timeout=30,
                  data={"csrf_token": csrf["X-CSRFToken"],
                        "reader_id": str(people["ids"]["uploader"]), "tz_offset": "0"})
    assert done.status_code == 200, done.text[:300]
    summary = s.get(url + done.json()["redirect"], timeout=10)
    assert summary.status_code == 200
    rows = _query(cluster, "SELECT stored, duplicates, errors, study_ids FROM upload_batches "
                  "WHERE id = :i", i=batch.json()["batch_id"])
    stored, duplicates, errors, study_ids = rows[0]
    assert (stored, duplicates, errors, len(study_ids)) == (8, 0, [], 1)
    study_id = study_ids[0]
    instances = _query(cluster, "SELECT i.id, i.storage_key, i.sha256 FROM instances i JOIN "
                       "series s ON s.id = i.series_id WHERE s.study_id = :i", i=study_id)
    assert len(instances) == 8
    shared_store = FilesystemStore(cluster["shared"] / "images")
    for _, key, sha256 in instances:
        shared_store.verify(key, sha256)  # every file, whichever server took it, intact
    # Each server renders a frame of it from the shared store (into its own frame cache).
    first = instances[0][0]
    for server in ("a", "b"):
        base = cluster[server]
        direct = requests.Session()
        direct.cookies.update(s.cookies)
        png = direct.get(f"{base}/studies/{study_id}/instances/{first}/frames/0.png",
                         timeout=30)
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG"), png.status_code
    for server in ("a", "b"):
        frames = cluster["tmp"] / f"server-{server}" / "cache" / "frames"
        assert list(frames.glob("??/*.png")), f"server {server} cached no frame"


def test_a_sign_out_on_one_server_ends_the_session_on_the_other(cluster):
    a, b, people = cluster["a"], cluster["b"], cluster["people"]
    s = sign_in(a, people["requester"])  # one cookie jar for both, as a browser's
    home = s.get(f"{b}/", allow_redirects=False, timeout=10)
    assert home.status_code == 200  # the session signed in on A is known on B
    cookie = dict(s.cookies)
    out = s.post(f"{a}/logout", data={"csrf_token": _token(home)}, allow_redirects=False,
                 timeout=10)
    assert out.status_code == 302
    for base in (b, a):
        again = requests.Session()
        again.cookies.update(cookie)  # the old cookie, replayed
        refused = again.get(f"{base}/", allow_redirects=False, timeout=10)
        assert refused.status_code == 302 and "/login" in refused.headers["Location"], base


def test_failed_sign_ins_lock_the_account_counted_across_both_servers(cluster):
    a, b, people = cluster["a"], cluster["b"], cluster["people"]
    email = people["victim"]
    for base in (a, b, a, b, a):  # five failures: three on A, two on B
        s = requests.Session()
        r = s.post(f"{base}/login", data={"csrf_token": _token(s.get(f"{base}/login")),
                                          "email": email, "password": "wrong-guess-123456"},
                   allow_redirects=False, timeout=30)
        assert r.status_code == 401
    s = requests.Session()
    r = s.post(f"{b}/login", data={"csrf_token": _token(s.get(f"{b}/login")), "email": email,
                                   "password": PASSWORD}, allow_redirects=False, timeout=30)
    assert r.status_code == 401, "the right password signed in: the lockout was not shared"
    assert "Invalid e-mail or password" in r.text
    assert _query(cluster, "SELECT locked_until IS NOT NULL FROM users WHERE email = :e",
                  e=email) == [(True,)]


def test_refused_api_tokens_are_rate_limited_counted_across_both_servers(cluster):
    a, b = cluster["a"], cluster["b"]
    wrong = {"Authorization": "Bearer qap_not-a-token-of-this-portal"}
    answers = [requests.get(f"{base}/dicomweb/studies", headers=wrong, timeout=10).status_code
               for base in (a, b, a, b)]  # the limit is 3 a minute per client address
    assert answers == [401, 401, 401, 429]


def test_an_export_queued_on_one_server_downloads_from_the_other(cluster):
    a, b, people = cluster["a"], cluster["b"], cluster["people"]
    worker, worker_log = cluster["worker"]
    s = sign_in(a, people["qa"])
    token = _token(s.get(f"{a}/audit/", timeout=10))
    queued = s.post(f"{a}/audit/export-job", data={"csrf_token": token},
                    allow_redirects=False, timeout=10)
    assert queued.status_code == 302, queued.text[:300]
    job = int(queued.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    other = requests.Session()
    other.cookies.update(s.cookies)
    deadline = time.monotonic() + 60  # the worker may still be starting
    while (state := other.get(f"{b}/exports/{job}/status", timeout=10).json())["status"] \
            != "done":
        assert worker.poll() is None and time.monotonic() < deadline, (
            state, worker_log.read_text())
        time.sleep(0.2)
    assert "on Redis redis://127.0.0.1:" in worker_log.read_text()
    csv = other.get(f"{b}/exports/{job}/download", timeout=10)
    assert csv.status_code == 200 and "auth.login" in csv.text
    assert (cluster["shared"] / "exports").is_dir()
    # Both servers, the worker and the seeding wrote one audit chain under the one key.
    verify = qaportal(cluster["env"], "audit-verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_server_or_worker_with_another_audit_key_refuses_to_start(cluster, tmp_path):
    """A third server given another QAPORTAL_AUDIT_KEY stops at start-up, naming the setting
    and printing no key, instead of writing entries audit-verify would reject."""
    from tests.console import qaportal

    other = secrets.token_hex(32)
    env = {**cluster["env"], "QAPORTAL_INSTANCE_PATH": str(tmp_path),
           "QAPORTAL_AUDIT_KEY": other}
    server = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--workers", "1", "--bind",
         f"127.0.0.1:{_free_port()}", "--no-control-socket", "qaportal:create_app()"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert server.returncode != 0
    assert "QAPORTAL_AUDIT_KEY differs" in server.stderr, server.stderr[-2000:]
    worker = qaportal(env, "worker", "-w", "1")
    assert worker.returncode == 3 and "QAPORTAL_AUDIT_KEY differs" in worker.stderr
    for output in (server.stdout + server.stderr, worker.stdout + worker.stderr):
        assert other not in output and cluster["env"]["QAPORTAL_AUDIT_KEY"] not in output


def test_stow_rs_bodies_read_from_the_socket_keep_the_connection_right(cluster, tmp_path):
    """STOW-RS under gunicorn reads a body of known length straight from the socket
    (qaportal/studies/socket_body.py): two stores and a search on one keep-alive
    connection to a server, and a store through nginx, each whole, byte for byte."""
    import hashlib

    import pydicom

    from qaportal.dicom import generate_ct_series
    from tests.test_dicomweb_stow import CT, related

    # A signed-in browser's session (an API token would meet the token-failure limit that
    # test_refused_api_tokens_... spends for 127.0.0.1): STOW then needs X-CSRFToken.
    direct = sign_in(cluster["a"], cluster["people"]["uploader"])
    csrf = _token(direct.get(f"{cluster['a']}/studies/upload", timeout=30))
    studies = [generate_ct_series(tmp_path / f"ct{i}", slices=3) for i in range(3)]
    headers = {"X-CSRFToken": csrf, "Content-Type": CT, "Accept": "application/dicom+json"}
    answers = [direct.post(f"{cluster['a']}/dicomweb/studies", headers=headers, timeout=60,
                           data=related([p.read_bytes() for p in files]))
               for files in studies[:2]]
    found = direct.get(f"{cluster['a']}/dicomweb/studies", timeout=30,
                       headers={"Accept": "application/dicom+json"})
    answers.append(direct.post(f"{cluster['url']}/dicomweb/studies", headers=headers,
                               timeout=60, data=related([p.read_bytes()
                                                         for p in studies[2]])))
    for answer in answers:
        assert answer.status_code == 200, answer.text[:500]
        assert len(answer.json()["00081199"]["Value"]) == 3
    assert found.status_code == 200
    stored_first = {pydicom.dcmread(files[0]).StudyInstanceUID for files in studies[:2]}
    assert stored_first <= {s["0020000D"]["Value"][0] for s in found.json()}
    sent = {pydicom.dcmread(p).SOPInstanceUID: hashlib.sha256(p.read_bytes()).hexdigest()
            for files in studies for p in files}
    rows = _query(cluster, "SELECT sop_uid, sha256 FROM instances WHERE sop_uid = ANY(:uids)",
                  uids=list(sent))
    assert dict(rows) == sent
