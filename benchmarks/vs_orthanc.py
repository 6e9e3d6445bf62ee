"""DICOMweb side by side: the portal (gunicorn) against Debian's Orthanc with its DICOMweb plugin.

Both servers start on loopback with empty storage and get the same files and the same
requests: STOW-RS of a 500-slice 512x512 CT built from a real slice (50 instances per
request, 1 and 4 clients), WADO-RS whole-study retrieve, series metadata, one frame, one
rendered frame, and QIDO-RS over 1,000 studies; then C-STORE: dcmtk's storescu sending the
CT over one association to `qaportal dicom-listen` and to Orthanc's DICOM port
(benchmarks/cstore.py). Prints each pair, the ratio and the targets.
Installs nothing: without Debian's orthanc and orthanc-dicomweb it measures the portal alone.
Run from the repository root: `python benchmarks/vs_orthanc.py [--workers 3] [--slices 500]`.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import queue
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks import cstore  # noqa: E402
from benchmarks.vs_orthanc_report import report, summarise_profiles  # noqa: E402
from qaportal.dicom import generate_ct_series  # noqa: E402
from tests.orthanc import Orthanc, unavailable  # noqa: E402

EMAIL = "bench@example.test"
PASSWORD = "stow-qido-wado-" + secrets.token_hex(8)
PER_REQUEST = 50
WARM_SLICES, WARM_PER_REQUEST = 40, 5  # a warm-up study of its own, before any figure
DICOM_PARTS = 'multipart/related; type="application/dicom"'
FRAME_PARTS = 'multipart/related; type="application/octet-stream"'
RENDERED = "image/png"
DICOM_JSON = "application/dicom+json"


# --- the two servers --------------------------------------------------------------------

@dataclass
class Server:
    """A DICOMweb origin: its root URL and the headers every request carries."""

    name: str
    root: str
    headers: dict[str, str] = field(default_factory=dict)
    pid: int | None = None  # the server's process (with its children: gunicorn's workers)

    def cpu_s(self) -> float | None:
        """CPU time (user + system, every thread) the server's processes have used."""
        return None if self.pid is None else tree_cpu_s(self.pid)

    def session(self) -> requests.Session:
        """A keep-alive session (urllib3 sets TCP_NODELAY on its sockets)."""
        s = requests.Session()
        s.trust_env = False
        s.headers.update(self.headers)
        return s


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of pid and its live children, from /proc (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += map(int, (task / "children").read_text().split())
        except OSError:  # gone meanwhile
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(env: dict, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run([sys.executable, "-m", "qaportal.cli", *args], env=env, input=stdin,
                            capture_output=True, text=True, cwd=REPO)
    if result.returncode != 0:
        raise RuntimeError(f"qaportal {args[0]} failed: {(result.stderr or result.stdout)[-800:]}")
    return result.stdout


WSGI = """from qaportal import create_app
app = create_app()
if {profile!r}:
    from werkzeug.middleware.profiler import ProfilerMiddleware
    app.wsgi_app = ProfilerMiddleware(app.wsgi_app, stream=None, profile_dir={profile!r})
"""


@contextlib.contextmanager
def portal(root: Path, workers: int, profile: str | None = None) -> Iterator[Server]:
    """The portal under gunicorn (sync workers, as `make run`) on its own SQLite instance."""
    env = {**os.environ, "QAPORTAL_INSTANCE_PATH": str(root / "portal"), "QAPORTAL_LOCAL": "1",
           "QAPORTAL_SECRET_KEY": secrets.token_hex(32), "PYTHONPATH": str(REPO),
           "PYTHONWARNINGS": "ignore",
           # Not the viewer's one-off gzip of its build after a deployment (seconds of one
           # worker's CPU from the first request on, i.e. during the first STOW figure).
           "QAPORTAL_OHIF_PRECOMPRESS": "0"}
    env.pop("QAPORTAL_DATABASE_URL", None)
    (root / "bench_wsgi.py").write_text(WSGI.format(profile=profile))
    env["PYTHONPATH"] = f"{REPO}{os.pathsep}{root}"
    _cli(env, "db", "upgrade")
    _cli(env, "create-user", EMAIL, "--name", "Bench Radiologist", "--role", "radiologist",
         "--password-stdin", stdin=PASSWORD + "\n")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--bind",
         f"127.0.0.1:{port}", "--timeout", "600", "--log-level", "warning",
         "bench_wsgi:app"], cwd=REPO, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(base + "/login", timeout=10)
                break
            except requests.RequestException:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not start") from None
                time.sleep(0.2)
        server = _portal_auth(env, base)
        server.pid = proc.pid
        yield server
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _portal_auth(env: dict, base: str) -> Server:
    """The radiologist's read+write API token, printed once by `qaportal token create`."""
    out = _cli(env, "token", "create", EMAIL, "--scope", "read", "--scope", "write",
               "--label", "benchmark")
    token = out.strip().splitlines()[0].strip()
    return Server("portal", base + "/dicomweb", {"Authorization": f"Bearer {token}"})


# --- files and requests -----------------------------------------------------------------

def multipart(blobs: list[bytes]) -> tuple[bytes, str]:
    boundary = "bench-" + uuid.uuid4().hex
    parts = []
    for blob in blobs:
        parts += [f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode(), blob,
                  b"\r\n"]
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f'{DICOM_PARTS}; boundary={boundary}'


def batches(blobs: list[bytes], size: int = PER_REQUEST) -> list[tuple[bytes, str]]:
    return [multipart(blobs[i:i + size]) for i in range(0, len(blobs), size)]


def small_studies(count: int) -> list[bytes]:
    """`count` one-instance studies from a real CT slice, each its own patient and date."""
    import io

    template = dcmread(get_testdata_file("CT_small.dcm"))
    out = []
    for i in range(count):
        ds = copy.deepcopy(template)
        ds.PatientName = f"BENCH^P{i:04d}"
        ds.PatientID = f"BENCH{i:04d}"
        ds.AccessionNumber = f"ACC{i:05d}"
        ds.StudyDate = f"20{10 + i % 15:02d}{1 + i % 12:02d}{1 + i % 28:02d}"
        ds.StudyInstanceUID = generate_uid()
        ds.SeriesInstanceUID = generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out.append(buf.getvalue())
    return out


def stow(server: Server, bodies: list[tuple[bytes, str]], clients: int,
         cpu: dict[str, float] | None = None) -> float:
    """Send every body with `clients` threads (one keep-alive session each); return seconds
    (and in cpu: the server's CPU seconds, "server_s", when it has a process to read, and
    this process's, "client_s": the clients' share of the machine)."""
    work: queue.SimpleQueue = queue.SimpleQueue()
    for item in bodies:
        work.put(item)
    failures: list[str] = []

    def send() -> None:
        with server.session() as s:
            while True:
                try:
                    body, ctype = work.get_nowait()
                except queue.Empty:
                    return
                r = s.post(server.root + "/studies", data=body, timeout=600,
                           headers={"Content-Type": ctype, "Accept": DICOM_JSON})
                failed = r.ok and r.json().get("00081198", {}).get("Value")
                if r.status_code != 200 or failed:
                    failures.append(f"{r.status_code} {r.text[:300]}")

    start, cpu_start, own_start = time.perf_counter(), server.cpu_s(), time.process_time()
    threads = [threading.Thread(target=send) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if cpu is not None:
        cpu["client_s"] = time.process_time() - own_start
        if cpu_start is not None:
            cpu["server_s"] = server.cpu_s() - cpu_start
    if failures:
        raise RuntimeError(f"STOW failed: {failures[0]}")
    return elapsed


def year_range(year: int) -> str:
    return f"{year}0101-{year}1231"


def median_of(n: int, fn: Callable[[int], None]) -> float:
    times = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def fetch(s: requests.Session, url: str, accept: str, **params) -> int:
    """GET, read the whole body as it streams; return its length."""
    with s.get(url, headers={"Accept": accept}, params=params, stream=True, timeout=600) as r:
        if r.status_code != 200:
            raise RuntimeError(f"GET {url} answered {r.status_code}: {r.text[:300]}")
        return sum(len(chunk) for chunk in r.iter_content(1 << 20))


# --- the run ----------------------------------------------------------------------------

@dataclass
class Study:
    uid: str
    series: str
    instances: list[str]
    blobs: list[bytes]


def ct_study(root: Path, name: str, slices: int) -> Study:
    paths = generate_ct_series(root / name, slices=slices, patient=("BENCH^CT", "BENCHCT"))
    blobs = [p.read_bytes() for p in paths]
    first = dcmread(paths[0], stop_before_pixels=True)
    sops = [dcmread(p, stop_before_pixels=True, specific_tags=["SOPInstanceUID"]).SOPInstanceUID
            for p in paths]
    return Study(first.StudyInstanceUID, first.SeriesInstanceUID, sops, blobs)


def measure(server: Server, a: Study, b: Study, small: list[tuple[bytes, str]],
            studies: int, repeat: int, stow_only: bool = False,
            warm: list[tuple[bytes, str]] | None = None) -> dict[str, float]:
    """Every figure for one server, in the same order for both (a step that fails is
    reported and left out, so that a partial server still gives the other figures);
    stow_only: the two STOW-RS figures alone; warm: bodies stored first, not measured."""
    fig: dict[str, float] = {}
    if warm:
        # Both servers get the same warm-up, from 4 clients so that every gunicorn worker
        # has served a request: a worker's first one pays for its lazy imports and first
        # connections, which a server that has been running does not.
        try:
            stow(server, warm, 4)
        except (RuntimeError, requests.RequestException, ValueError) as exc:
            print(f"{server.name} warm-up: failed: {str(exc)[:300]}")
    n = len(a.blobs)
    s = server.session()
    study_url = f"{server.root}/studies/{a.uid}"
    series_url = f"{study_url}/series/{a.series}"
    picks = [a.instances[(i * 7919) % n] for i in range(repeat)]

    def stow_step(key: str, study: Study, clients: int) -> None:
        cpu: dict[str, float] = {}
        fig[key] = n / stow(server, batches(study.blobs), clients, cpu)
        if "server_s" in cpu:
            fig[key + "_cpu_ms"] = 1000 * cpu["server_s"] / n
        fig[key + "_client_cpu_ms"] = 1000 * cpu["client_s"] / n

    def retrieve() -> None:
        sizes: list[int] = []
        fig["retrieve_s"] = median_of(3, lambda i: sizes.append(fetch(s, study_url,
                                                                      DICOM_PARTS)))
        if min(sizes) < sum(map(len, a.blobs)):
            raise RuntimeError(f"retrieved {min(sizes)} bytes, less than was stored")
        fig["retrieve_mb_s"] = sizes[-1] / 1024**2 / fig["retrieve_s"]

    def qido() -> None:
        stow(server, small, 4)
        page = s.get(server.root + "/studies", params={"limit": 100},
                     headers={"Accept": DICOM_JSON})
        if page.status_code != 200 or len(page.json()) != min(100, studies + 3):
            raise RuntimeError(f"QIDO gave {page.status_code}, {len(page.content)} bytes")
        fig["qido_page_ms"] = 1000 * median_of(repeat, lambda i: fetch(
            s, server.root + "/studies", DICOM_JSON, limit=100, offset=100 * (i % 10)))
        fig["qido_date_ms"] = 1000 * median_of(repeat, lambda i: fetch(
            s, server.root + "/studies", DICOM_JSON, StudyDate=year_range(2010 + i % 15)))

    steps: list[tuple[str, Callable[[], object]]] = [
        ("stow_1", lambda: stow_step("stow_1", a, 1)),
        ("stow_4", lambda: stow_step("stow_4", b, 4)),
        ("retrieve", retrieve),
        ("metadata", lambda: fig.__setitem__("metadata_ms", 1000 * median_of(
            repeat, lambda i: fetch(s, series_url + "/metadata", DICOM_JSON)))),
        ("frame", lambda: fig.__setitem__("frame_ms", 1000 * median_of(repeat, lambda i: fetch(
            s, f"{series_url}/instances/{picks[i]}/frames/1", FRAME_PARTS)))),
        ("rendered", lambda: fig.__setitem__("rendered_ms", 1000 * median_of(
            repeat, lambda i: fetch(s, f"{series_url}/instances/{picks[-1 - i]}/rendered",
                                    RENDERED)))),
        ("qido", qido),
    ]
    if stow_only:
        steps = steps[:2]
    for name, step in steps:
        try:
            step()
        except (RuntimeError, requests.RequestException, ValueError) as exc:
            print(f"{server.name} {name}: failed, left out: {str(exc)[:300]}")
    s.close()
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=500)
    parser.add_argument("--studies", type=int, default=1000, help="studies for the QIDO figures")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers (make run: 3)")
    parser.add_argument("--repeat", type=int, default=20, help="N for the medians")
    parser.add_argument("--only", choices=["portal", "orthanc", "stow"], action="append",
                        default=[], help="measure one server; stow: the STOW-RS figures "
                                         "alone (no QIDO, retrieve or C-STORE); may repeat")
    parser.add_argument("--cstore-only", action="store_true", help="measure C-STORE alone")
    parser.add_argument("--profile", metavar="DIR",
                        help="write a cProfile file per portal request into DIR")
    args = parser.parse_args()
    stow_only = "stow" in args.only
    only = next((o for o in args.only if o != "stow"), None)
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory(prefix="qaportal-vs-orthanc-") as tmp:
        root = Path(tmp)
        if args.cstore_only:
            fig = cstore.measure(root, cstore.ct_files(root, args.slices), only)
            cstore.report(fig, args.slices)
            return
        t = time.perf_counter()
        a, b = ct_study(root, "a", args.slices), ct_study(root, "b", args.slices)
        warm = batches(ct_study(root, "warm", WARM_SLICES).blobs, WARM_PER_REQUEST)
        small = [] if stow_only else batches(small_studies(args.studies))
        mb = sum(map(len, a.blobs)) / 1024**2
        print(f"built 2 x {args.slices} slices ({mb:.0f} MB each) and {len(small) and args.studies}"
              f" small studies in {time.perf_counter() - t:.0f} s; {PER_REQUEST} instances per "
              f"STOW; each server first stores a {WARM_SLICES}-slice study ({WARM_PER_REQUEST}"
              " per request, 4 clients), not measured")
        orthanc_fig = None
        reason = unavailable()
        if only != "portal" and reason:
            print(f"Orthanc not measured: {reason}")
        elif only != "portal":
            with Orthanc(folder=root / "orthanc") as orthanc:
                server = Server("Orthanc", orthanc.url + "/dicom-web", pid=orthanc.proc.pid)
                orthanc_fig = measure(server, a, b, small, args.studies, args.repeat,
                                      stow_only, warm)
            print("Orthanc:", {k: round(v, 1) for k, v in orthanc_fig.items()})
        portal_fig: dict = {}
        if only != "orthanc":
            if args.profile:
                Path(args.profile).mkdir(parents=True, exist_ok=True)
            with portal(root, args.workers, args.profile) as server:
                portal_fig = measure(server, a, b, small, args.studies, args.repeat,
                                     stow_only, warm)
            print(f"portal ({args.workers} gunicorn workers):",
                  {k: round(v, 1) for k, v in portal_fig.items()})
        report(portal_fig, orthanc_fig)
        if not stow_only:
            cstore.report(cstore.measure(root, cstore.ct_files(root, args.slices), only),
                          args.slices)
    if args.profile:
        summarise_profiles(Path(args.profile))


if __name__ == "__main__":
    main()
