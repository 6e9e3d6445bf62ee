"""The image store this app uses, built from configuration."""

from __future__ import annotations

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
