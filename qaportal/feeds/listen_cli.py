"""`qaportal dicom-listen`: run the DICOM listener until interrupted (Ctrl-C or SIGTERM)."""

from __future__ import annotations

import signal
import threading

import click
from flask import current_app
from flask.cli import with_appcontext


@click.command("dicom-listen")
@with_appcontext
@click.option("--ae", "ae_title", help="The listener's AE title (setting DICOM_LISTEN_AE, "
              "default QAPORTAL).")
@click.option("--port", type=click.IntRange(0, 65535),
              help="TCP port (setting DICOM_LISTEN_PORT, default 11112; 0: any free port).")
@click.option("--bind", help="Address to listen on (setting DICOM_LISTEN_BIND, default "
              "127.0.0.1).")
def dicom_listen(ae_title: str | None, port: int | None, bind: str | None) -> None:
    """Receive images from the known DICOM peers (C-STORE, C-ECHO)."""
    from qaportal.feeds.listener import ListenConfig, Listener

    app = current_app._get_current_object()
    try:
        config = ListenConfig.from_app(app, ae_title, port, bind)
        listener = Listener(app, config)
        listener.start()
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot listen: {exc}") from exc
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    scheme = "DICOM TLS" if config.tls_cert else "DICOM"
    click.echo(f"listening for {scheme} on {config.bind} port {listener.port} as AE "
               f"{config.ae_title}", err=False)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        listener.stop()
        click.echo("stopped")
