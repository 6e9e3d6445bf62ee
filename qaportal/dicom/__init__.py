"""Pure DICOM functions for the portal: parse, sources, store, render, de-identify, generate.

Nothing here imports Flask or SQLAlchemy, so the same code runs in a request, a worker
or a command-line tool.
"""

from .deidentify import (
    DeidContext,
    DeidOption,
    DeidResult,
    date_shift_for,
    deidentify_dataset,
    deidentify_file,
)
from .errors import DicomRejected, StoredFileCorrupt, StoredFileMissing
from .generate import generate_ct_series
from .parse import InstanceHeader, ParseLimits, header_dataset, read_header
from .render import (
    WINDOW_PRESETS,
    default_window,
    frame_count,
    render_frame,
    render_thumbnail,
)
from .sources import Received, SourceItem, SourceLimits, iter_files
from .store import FilesystemStore, ImageStore, StoredFile, new_key, served_copy, store_file

__all__ = [
    "WINDOW_PRESETS",
    "DeidContext",
    "DeidOption",
    "DeidResult",
    "DicomRejected",
    "FilesystemStore",
    "ImageStore",
    "InstanceHeader",
    "ParseLimits",
    "Received",
    "SourceItem",
    "SourceLimits",
    "StoredFile",
    "StoredFileCorrupt",
    "StoredFileMissing",
    "date_shift_for",
    "default_window",
    "deidentify_dataset",
    "deidentify_file",
    "frame_count",
    "generate_ct_series",
    "header_dataset",
    "iter_files",
    "new_key",
    "read_header",
    "render_frame",
    "render_thumbnail",
    "served_copy",
    "store_file",
]
