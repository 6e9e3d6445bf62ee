"""The image store this app uses, built from configuration."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, current_app

from qaportal.dicom import FilesystemStore, ImageStore


def image_store(app: Flask | None = None) -> ImageStore:
    """Return the app's image store: a filesystem store under IMAGE_ROOT, or with
    IMAGE_STORE=dicomweb a PACS reached over DICOMweb (keys mapped in pacs_objects)."""
    app = app or current_app._get_current_object()
    store = app.extensions.get("qaportal_image_store")
    if store is None:
        cfg = app.config
        if cfg.get("IMAGE_STORE") == "dicomweb":
            from qaportal.dicom.dicomweb_store import DicomWebStore
            from qaportal.studies.pacs_index import DatabaseIndex

            store = DicomWebStore(
                cfg["IMAGE_STORE_URL"], DatabaseIndex(),
                username=cfg.get("IMAGE_STORE_USERNAME"),
                password=cfg.get("IMAGE_STORE_PASSWORD"),
                timeout=float(cfg.get("IMAGE_STORE_TIMEOUT") or 60),
                verify_writes=bool(cfg.get("IMAGE_STORE_VERIFY_WRITES")),
                delete=cfg.get("IMAGE_STORE_DELETE") or "mapping")
        else:
            store = FilesystemStore(cfg["IMAGE_ROOT"])
        app.extensions["qaportal_image_store"] = store
    return store


def is_local(store: ImageStore) -> bool:
    """Tell whether the store keeps files on a local path (FilesystemStore)."""
    return hasattr(store, "file_name")


def stale_upload_files(app: Flask | None = None, older_than_s: float = 3600.0) -> list[Path]:
    """Return files and folders in UPLOAD_TMP that a killed request left behind."""
    import time

    app = app or current_app._get_current_object()
    folder = Path(app.config["UPLOAD_TMP"])
    if not folder.is_dir():
        return []
    cutoff = time.time() - older_than_s
    return sorted(p for p in folder.iterdir() if p.stat().st_mtime < cutoff)
