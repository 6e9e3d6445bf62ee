"""The image store this app uses, built from configuration."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, current_app

from qaportal.dicom import FilesystemStore, ImageStore


def image_store(app: Flask | None = None) -> ImageStore:
    """Return the app's image store (a filesystem store under IMAGE_ROOT for now)."""
    app = app or current_app._get_current_object()
    store = app.extensions.get("qaportal_image_store")
    if store is None:
        store = FilesystemStore(app.config["IMAGE_ROOT"])
        app.extensions["qaportal_image_store"] = store
    return store


def stale_upload_files(app: Flask | None = None, older_than_s: float = 3600.0) -> list[Path]:
    """Return files and folders in UPLOAD_TMP that a killed request left behind."""
    import time

    app = app or current_app._get_current_object()
    folder = Path(app.config["UPLOAD_TMP"])
    if not folder.is_dir():
        return []
    cutoff = time.time() - older_than_s
    return sorted(p for p in folder.iterdir() if p.stat().st_mtime < cutoff)
