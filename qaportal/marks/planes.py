"""Put a 3D mark (SCOORD3D, points in a frame of reference) on the acquired image it lies on.

A viewer's multiplanar views save their marks as patient coordinates in millimetres. When
every point of such a mark lies on the plane of one acquired image of the study (as with
a length drawn on the axial view of an axial CT), the mark is also stored in that image's
pixel coordinates, so it is listed by series and image and drawn on its key image like a
2D mark. A mark on a reformatted plane that no acquired image shares (a sagittal length on
an axial CT) stays 3D: it is listed, not drawn.

The geometry comes from the headers as the author is served them (the metadata cache of
qaportal.dicomweb.served): a blind reviewer's frame of reference is remapped, and so is the
one in the document they saved; positions and orientations are never changed.

Pixel coordinates follow SCOORD's convention: (0, 0) is the top left corner of the top
left pixel, whose centre Image Position (Patient) gives; x runs along the rows (the first
direction cosine), y down the columns.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from qaportal.dicomweb.access import Target
from qaportal.dicomweb.served import Item, ServeError, Server, items

DEFAULT_HALF_THICKNESS = 0.5  # mm: a point this close to a plane without a thickness is on it
MIN_HALF_THICKNESS = 0.01


@dataclass(frozen=True)
class Plane:
    """One acquired image (or frame) as a plane in its frame of reference."""

    image_id: int
    frame: int | None  # 1-based frame of a multi-frame image, else None
    frame_of_reference: str
    origin: tuple[float, float, float]  # centre of the top left pixel (mm)
    row_dir: tuple[float, float, float]  # along a row: increasing column index
    col_dir: tuple[float, float, float]  # down a column: increasing row index
    spacing: tuple[float, float]  # (between rows, between columns), mm
    half_thickness: float

    @property
    def normal(self) -> tuple[float, float, float]:
        return _unit(_cross(self.row_dir, self.col_dir))

    def distance(self, point: Sequence[float]) -> float:
        return abs(_dot(_sub(point, self.origin), self.normal))

    def to_pixels(self, point: Sequence[float]) -> list[float]:
        d = _sub(point, self.origin)
        return [round(_dot(d, self.row_dir) / self.spacing[1] + 0.5, 3),
                round(_dot(d, self.col_dir) / self.spacing[0] + 0.5, 3)]


@dataclass(frozen=True)
class Placed:
    """A 3D mark put on an acquired image."""

    image_id: int
    frame: int | None
    points: list[list[float]]  # [[x, y], ...] in the image's pixel coordinates


def place(points: Sequence[Sequence[float]], frame_of_reference: str,
          planes: Iterable[Plane]) -> Placed | None:
    """Return the mark on the plane all its points lie on (the closest such), or None.
    Each plane's tolerance is its half_thickness (see tighten)."""
    best: tuple[float, Plane] | None = None
    for plane in planes:
        if plane.frame_of_reference != frame_of_reference:
            continue
        worst = max(plane.distance(p) for p in points)
        if worst <= plane.half_thickness and (best is None or worst < best[0]):
            best = (worst, plane)
    if best is None:
        return None
    plane = best[1]
    return Placed(plane.image_id, plane.frame, [plane.to_pixels(p) for p in points])


def study_planes(target: Target) -> list[Plane]:
    """Return the planes of the study's images as the target's caller is served them."""
    server = Server(target)
    todo = items(target)
    out: list[Plane] = []
    with server.batch(todo):
        for item in todo:
            try:
                header = json.loads(server.metadata(item))
            except (ServeError, ValueError, OSError):
                continue  # an image that cannot be served places nothing
            out.extend(planes_of(item, header))
    return tighten(out)


def tighten(planes: list[Plane]) -> list[Plane]:
    """Limit each plane's tolerance to half the distance to its nearest parallel neighbour
    (slices thicker than their spacing overlap: a point belongs to the nearest one)."""
    stacks: dict[tuple, list[tuple[float, Plane]]] = {}
    for plane in planes:
        normal = plane.normal
        key = (plane.frame_of_reference, *(round(v, 3) for v in normal))
        stacks.setdefault(key, []).append((_dot(plane.origin, normal), plane))
    out: dict[int, Plane] = {}
    for stack in stacks.values():
        stack.sort(key=lambda pair: pair[0])
        for n, (position, plane) in enumerate(stack):
            gaps = [abs(position - stack[m][0]) for m in (n - 1, n + 1)
                    if 0 <= m < len(stack) and abs(position - stack[m][0]) > 1e-3]
            half = min([plane.half_thickness, *(g / 2 for g in gaps)])
            out[id(plane)] = replace(plane, half_thickness=max(half, MIN_HALF_THICKNESS))
    return [out[id(plane)] for plane in planes]


def planes_of(item: Item, header: dict) -> list[Plane]:
    """Return the planes of one image from its DICOM JSON header (none without geometry)."""
    frame_of_reference = _first(header, "00200052")
    if not isinstance(frame_of_reference, str) or not frame_of_reference:
        return []
    shared = _item(header, "52009229")
    per_frame = _values(header, "52009230")
    if per_frame:  # an enhanced multi-frame image: functional groups per frame
        out = []
        for n, group in enumerate(per_frame, 1):
            plane = _plane(item.id, n, frame_of_reference,
                           _fg(group, shared, "00209113", "00200032"),
                           _fg(group, shared, "00209116", "00200037"),
                           _fg(group, shared, "00289110", "00280030"),
                           _fg(group, shared, "00289110", "00180050"))
            if plane is not None:
                out.append(plane)
        return out
    plane = _plane(item.id, None, frame_of_reference, _values(header, "00200032"),
                   _values(header, "00200037"), _values(header, "00280030"),
                   _values(header, "00180050"))
    return [plane] if plane is not None else []


def _plane(image_id: int, frame: int | None, frame_of_reference: str, position,
           orientation, spacing, thickness) -> Plane | None:
    try:
        origin = tuple(float(v) for v in position or ())
        cosines = [float(v) for v in orientation or ()]
        pixel = tuple(float(v) for v in spacing or ())
    except (TypeError, ValueError):
        return None
    if len(origin) != 3 or len(cosines) != 6 or len(pixel) != 2 or min(pixel) <= 0:
        return None
    row_dir, col_dir = _unit(cosines[:3]), _unit(cosines[3:])
    if row_dir is None or col_dir is None or _unit(_cross(row_dir, col_dir)) is None:
        return None
    try:
        half = float(thickness[0]) / 2 if thickness else DEFAULT_HALF_THICKNESS
    except (TypeError, ValueError):
        half = DEFAULT_HALF_THICKNESS
    if not math.isfinite(half) or half <= 0:
        half = DEFAULT_HALF_THICKNESS
    return Plane(image_id, frame, frame_of_reference, origin, row_dir, col_dir, pixel,
                 max(half, MIN_HALF_THICKNESS))


def _values(header: dict, tag: str) -> list:
    element = header.get(tag) or {}
    return element.get("Value") or []


def _first(header: dict, tag: str):
    values = _values(header, tag)
    return values[0] if values else None


def _item(header: dict, tag: str) -> dict:
    values = _values(header, tag)
    return values[0] if values and isinstance(values[0], dict) else {}


def _fg(group: dict, shared: dict, macro: str, tag: str) -> list:
    """A value of a functional group macro: the frame's own, else the shared one."""
    for source in (group, shared):
        inner = _item(source, macro) if isinstance(source, dict) else {}
        if tag in inner:
            return _values(inner, tag)
    return []


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _sub(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    return (float(a[0]) - b[0], float(a[1]) - b[1], float(a[2]) - b[2])


def _cross(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _unit(v: Sequence[float]):
    norm = math.sqrt(sum(float(x) * float(x) for x in v))
    if not math.isfinite(norm) or norm < 1e-6:
        return None
    return tuple(float(x) / norm for x in v)
