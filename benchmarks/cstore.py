"""C-STORE side by side: dcmtk's storescu sends one CT over one association to the portal's
`qaportal dicom-listen` and to Orthanc's DICOM port (TCP_NODELAY on both ends).

Used by benchmarks/vs_orthanc.py; `python benchmarks/cstore.py [--slices 500]` runs this part
alone. The portal's listener runs as the real command on its own SQLite instance, with the
sending AE registered as a known peer owned by the benchmark account.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from qaportal.dicom import generate_ct_series  # noqa: E402
from tests.orthanc import Orthanc, free_port, unavailable  # noqa: E402

SCU_AE = "BENCHSCU"
EMAIL = "cstore-bench@example.test"
ADD_PEER = """
from qaportal import create_app
from qaportal.extensions import db
from qaportal.models import DicomPeer, User
app = create_app()
with app.app_context():
    owner = db.session.scalar(db.select(User).where(User.email == {email!r}))
    db.session.add(DicomPeer(ae_title={ae!r}, addresses=["127.0.0.1"], owner_id=owner.id))
    db.session.commit()
"""


def storescu(port: int, called_ae: str, files: list[Path]) -> float:
    """Send files over one association; return the seconds it took (raise if any failed)."""
    env = {**os.environ, "TCP_NODELAY": "1"}
    start = time.perf_counter()
    result = subprocess.run(["storescu", "--required", "-xe", "-aet", SCU_AE, "-aec", called_ae,
                             "127.0.0.1", str(port), *map(str, files)],
                            capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"storescu to {called_ae} failed: {result.stderr[-800:]}")
    return elapsed


def _run(env: dict, *args: str, stdin: str | None = None) -> None:
    result = subprocess.run([sys.executable, *args], env=env, input=stdin, capture_output=True,
                            text=True, cwd=REPO)
    if result.returncode != 0:
        raise RuntimeError(f"{args[:3]} failed: {(result.stderr or result.stdout)[-800:]}")


@contextlib.contextmanager
def portal_listener(root: Path) -> Iterator[int]:
    """`qaportal dicom-listen` on a free port of its own instance; yield the port."""
    env = {**os.environ, "QAPORTAL_INSTANCE_PATH": str(root / "portal-dicom"),
           "QAPORTAL_LOCAL": "1", "QAPORTAL_SECRET_KEY": secrets.token_hex(32),
           "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
    env.pop("QAPORTAL_DATABASE_URL", None)
    _run(env, "-m", "qaportal.cli", "db", "upgrade")
    _run(env, "-m", "qaportal.cli", "create-user", EMAIL, "--name", "Bench PACS owner",
         "--role", "radiologist", "--password-stdin",
         stdin="Pq7-" + secrets.token_hex(12) + "\n")
    _run(env, "-c", ADD_PEER.format(email=EMAIL, ae=SCU_AE))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "qaportal.cli", "dicom-listen", "--port",
                             str(port)], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        if "listening" not in line:
            raise RuntimeError(f"dicom-listen did not start: {line!r}")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def measure(root: Path, files: list[Path], only: str | None = None) -> dict[str, float]:
    """inst/s for the portal and Orthanc (a server that cannot run is left out)."""
    fig: dict[str, float] = {}
    if not shutil.which("storescu"):
        print("C-STORE not measured: Debian package dcmtk is not installed (no storescu)")
        return fig
    reason = unavailable()
    if only != "portal" and reason:
        print(f"Orthanc C-STORE not measured: {reason}")
    elif only != "portal":
        dicom_port = free_port()
        # Orthanc's DICOM server is DCMTK's: its sockets get TCP_NODELAY from this variable
        # (Orthanc's own "TcpNoDelay" is for HTTP only). Without it Orthanc stalls on
        # delayed ACKs and runs at about a tenth of its speed here (21 vs 214-255 inst/s).
        with Orthanc(folder=root / "orthanc-dicom", DicomServerEnabled=True,
                     DicomPort=dicom_port, DicomAet="ORTHANC",
                     env={"TCP_NODELAY": "1"}) as orthanc:
            fig["cstore_orthanc"] = len(files) / storescu(dicom_port, "ORTHANC", files)
            stored = orthanc.get("/statistics").json()["CountInstances"]
            if stored != len(files):
                raise RuntimeError(f"Orthanc stored {stored} of {len(files)} instances")
    fig["cstore_floor"] = durable_write_floor(root, files)
    fig["cstore_pynetdicom"] = pynetdicom_floor(files)
    if only != "orthanc":
        with portal_listener(root) as port:
            fig["cstore_portal"] = len(files) / storescu(port, "QAPORTAL", files)
    return fig


def durable_write_floor(root: Path, files: list[Path]) -> float:
    """inst/s of writing each file once and making it durable, one after the other.

    C-STORE is one request at a time (storescu waits for each response) and a response may
    only be sent once its instance is durable, so no receiver that keeps that promise can
    beat this figure on this disk: it is the ceiling for both servers.
    """
    folder = root / "durable-floor"
    folder.mkdir()
    blobs = [f.read_bytes() for f in files]
    start = time.perf_counter()
    for i, blob in enumerate(blobs):
        fd = os.open(folder / f"{i}.dcm", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, blob)
            os.fdatasync(fd)
        finally:
            os.close(fd)
    elapsed = time.perf_counter() - start
    shutil.rmtree(folder)
    return len(blobs) / elapsed


def pynetdicom_floor(files: list[Path]) -> float:
    """inst/s of storescu to a pynetdicom Storage SCP that stores nothing.

    The same AE settings and server class as `qaportal dicom-listen` (largest PDU,
    TCP_NODELAY), and a handler that answers success at once: what the library's receive
    path costs before anything is written.
    """
    from pynetdicom import evt

    from qaportal.feeds.listener import NoDelayAssociationServer, application_entity

    ae = application_entity("NOOPSCP")
    port = free_port()
    server = ae.make_server(("127.0.0.1", port), ae_title="NOOPSCP",
                            evt_handlers=[(evt.EVT_C_STORE, lambda event: 0x0000)],
                            server_class=NoDelayAssociationServer)
    ae._servers.append(server)  # as AE.start_server does: shutdown() expects it
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        return len(files) / storescu(port, "NOOPSCP", files)
    finally:
        server.shutdown()
        thread.join(timeout=10)


def ct_files(root: Path, slices: int) -> list[Path]:
    return generate_ct_series(root / "cstore-ct", slices=slices,
                              patient=("BENCH^CSTORE", "BENCHCS"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=500)
    parser.add_argument("--only", choices=["portal", "orthanc"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qaportal-cstore-") as tmp:
        root = Path(tmp)
        fig = measure(root, ct_files(root, args.slices), args.only)
    report(fig, args.slices)


def report(fig: dict[str, float], slices: int) -> None:
    p, o = fig.get("cstore_portal"), fig.get("cstore_orthanc")
    line = f"C-STORE, {slices} CT instances, one association: "
    line += f"portal {p:.0f} inst/s" if p else "portal n/a"
    line += f", Orthanc {o:.0f} inst/s" if o else ", Orthanc n/a"
    if p and o:
        line += f", ratio {p / o:.2f}x (target >= 2x Orthanc: {'met' if p >= 2 * o else 'MISSED'})"
    print(line)
    floor = fig.get("cstore_floor")
    if floor:
        line = (f"  ceiling on this disk (write + fdatasync of each instance in turn, nothing "
                f"else): {floor:.0f} inst/s")
        if o:
            line += f"; 2x Orthanc would need {2 * o:.0f} inst/s"
        print(line)
    bare = fig.get("cstore_pynetdicom")
    if bare:
        print(f"  pynetdicom alone (same AE and server, storing nothing): {bare:.0f} inst/s")
    if floor and bare:
        both = 1 / (1 / floor + 1 / bare)
        print(f"  both costs in turn, as one C-STORE after another must pay them: at most "
              f"{both:.0f} inst/s")


if __name__ == "__main__":
    main()
