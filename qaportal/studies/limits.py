"""The configured bounds on what one uploaded file may make the parser do."""

from __future__ import annotations

from flask import current_app

from qaportal.dicom.parse import ParseLimits


def parse_limits() -> ParseLimits:
    """Return MAX_FRAMES_PER_INSTANCE and MAX_INFLATED_BYTES as parser limits."""
    cfg = current_app.config
    return ParseLimits(max_frames=cfg["MAX_FRAMES_PER_INSTANCE"],
                       max_inflated_bytes=cfg["MAX_INFLATED_BYTES"])
