"""Backgrounds, pens and capture effects for the synthetic handwriting scenes.

Every function draws its randomness from the ``numpy.random.Generator`` it is given, so a
scene is reproducible from its seed. The page (paper + ink) is drawn flat as uint8 BGR;
``view_homography`` then maps it into the camera frame, and the
lighting / camera functions act in frame space, in the order light reaches a sensor:
paper -> ink -> perspective -> light and shadow -> lens blur -> sensor noise -> JPEG,
in float32 [0, 1] from the light onwards.
Smooth fields (light, shadow, glare, paper blotches) are drawn at low resolution and scaled
up, which keeps a 640x480 scene at a few milliseconds.
"""

import math
from typing import NamedTuple, Optional, Tuple

import cv2
import numpy as np

PAPER_KINDS = ("white", "off_white", "lined", "grid", "coloured", "notebook", "whiteboard")
PAPER_WEIGHTS = (0.20, 0.12, 0.16, 0.16, 0.08, 0.14, 0.14)

# Pastel and kraft sheets (BGR reflectance): sticky-note yellow, pink, blue, green, kraft, grey.
_COLOURED_PAPERS = np.array([
    (0.55, 0.90, 0.97), (0.80, 0.78, 0.97), (0.95, 0.85, 0.72), (0.72, 0.93, 0.78),
    (0.50, 0.66, 0.78), (0.80, 0.80, 0.80), (0.70, 0.85, 0.95),
], np.float32)

# Rulings printed on paper (BGR reflectance at full line density): light blue, grey, green, red.
_RULING_COLOURS = np.array([
    (0.85, 0.65, 0.45), (0.62, 0.62, 0.62), (0.60, 0.80, 0.60), (0.50, 0.50, 0.90),
    (0.90, 0.75, 0.60),
], np.float32)


class Pen(NamedTuple):
    """How ink from one writing tool looks on paper.

    colour is the BGR reflectance of fully dense ink; opacity its peak density; grain > 0
    breaks the stroke up like graphite on paper tooth; widen is a dilation in pixels per
    100 px of character height (felt tips draw wider lines than the ink renderer's pen).
    """
    name: str
    colour: np.ndarray
    opacity: float
    grain: float
    widen: float


# name, BGR colour, opacity range, grain, widen, weight
_PEN_TABLE = (
    ("ballpoint_black", (0.16, 0.14, 0.13), (0.80, 1.00), 0.00, 0.0, 0.20),
    ("ballpoint_blue", (0.55, 0.22, 0.12), (0.80, 1.00), 0.00, 0.0, 0.17),
    ("gel_black", (0.08, 0.08, 0.08), (0.90, 1.00), 0.00, 0.5, 0.06),
    ("pencil", (0.42, 0.40, 0.38), (0.60, 0.90), 0.45, 0.0, 0.15),
    ("marker_black", (0.09, 0.09, 0.10), (0.90, 1.00), 0.00, 2.5, 0.12),
    ("marker_blue", (0.62, 0.30, 0.08), (0.85, 1.00), 0.00, 2.5, 0.08),
    ("marker_red", (0.16, 0.14, 0.78), (0.85, 1.00), 0.00, 2.5, 0.07),
    ("marker_green", (0.32, 0.55, 0.10), (0.85, 1.00), 0.00, 2.5, 0.05),
    ("brush", (0.06, 0.06, 0.07), (0.92, 1.00), 0.00, 1.0, 0.10),
)
PEN_NAMES = tuple(row[0] for row in _PEN_TABLE)
_PEN_WEIGHTS = np.array([row[-1] for row in _PEN_TABLE], np.float64) / sum(row[-1] for row in _PEN_TABLE)
# Whiteboards only take dry-erase markers.
_MARKERS = tuple(i for i, row in enumerate(_PEN_TABLE) if row[0].startswith("marker"))


def choose_pen(rng, paper_kind="white"):
    # type: (np.random.Generator, str) -> Pen
    """A random pen with per-pen jitter of colour and density."""
    if paper_kind == "whiteboard":
        index = _MARKERS[int(rng.integers(len(_MARKERS)))]
    else:
        index = int(rng.choice(len(_PEN_TABLE), p=_PEN_WEIGHTS))
    return make_pen(rng, _PEN_TABLE[index][0])


def make_pen(rng, name):
    # type: (np.random.Generator, str) -> Pen
    """The pen called ``name`` (see PEN_NAMES) with per-pen jitter of colour and density."""
    rows = [row for row in _PEN_TABLE if row[0] == name]
    if not rows:
        raise KeyError("unknown pen %r; choose from %s" % (name, ", ".join(PEN_NAMES)))
    name, bgr, (lo, hi), grain, widen, _ = rows[0]
    colour = np.clip(np.asarray(bgr, np.float32) + rng.normal(0.0, 0.03, 3).astype(np.float32), 0.02, 0.95)
    return Pen(name, colour, float(rng.uniform(lo, hi)), grain, widen)


def widen_mask(mask, pen, char_h):
    # type: (np.ndarray, Pen, float) -> np.ndarray
    """Thicken an ink mask for felt-tip pens; radius grows with the character height."""
    radius = int(round(pen.widen * char_h / 100.0))
    if radius <= 0:
        return mask
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    padded = cv2.copyMakeBorder(mask, radius, radius, radius, radius, cv2.BORDER_CONSTANT, value=0)
    return cv2.dilate(padded, kernel)


def apply_ink(page, alpha, x, y, pen, rng):
    # type: (np.ndarray, np.ndarray, int, int, Pen, np.random.Generator) -> None
    """Multiply ink ``alpha`` (h, w) into the uint8 ``page`` (H, W, 3) at top-left (x, y).

    Multiplicative: paper texture and printed rulings show through the ink, and ink over a
    ruling is darker than either. Parts outside the page are cut off. In place.
    """
    ph, pw = page.shape[:2]
    h, w = alpha.shape
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, pw), min(y + h, ph)
    if x1 <= x0 or y1 <= y0:
        return
    a = alpha[y0 - y:y1 - y, x0 - x:x1 - x] * np.float32(pen.opacity)
    if pen.grain > 0:
        # Graphite catches only the tops of the paper fibres: per-pixel breakup, strongest
        # where the stroke is faint.
        tooth = rng.random(a.shape, dtype=np.float32)
        a *= 1.0 - np.float32(pen.grain) * tooth * (1.0 - 0.5 * a)
    roi = page[y0:y1, x0:x1]
    # + 0.5 rounds: the unsafe cast truncates.
    shade = 1.0 - a[..., None] * (1.0 - pen.colour)
    np.multiply(roi, shade, out=shade)
    shade += np.float32(0.5)
    np.copyto(roi, shade, casting="unsafe")


def _smooth_field(rng, hw, cells, amplitude):
    # type: (np.random.Generator, Tuple[int, int], int, float) -> np.ndarray
    """(h, w) float32 field around 0, varying over about ``cells`` blobs across the long side."""
    h, w = hw
    scale = max(h, w) / float(cells)
    gh, gw = max(2, int(math.ceil(h / scale)) + 1), max(2, int(math.ceil(w / scale)) + 1)
    grid = rng.uniform(-amplitude, amplitude, (gh, gw)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def paper_colour(rng, kind):
    # type: (np.random.Generator, str) -> np.ndarray
    """BGR reflectance (3,) of a sheet of the given kind."""
    if kind == "coloured":
        base = _COLOURED_PAPERS[int(rng.integers(len(_COLOURED_PAPERS)))]
        return np.clip(base + rng.normal(0, 0.03, 3).astype(np.float32), 0.3, 1.0)
    if kind == "off_white" or (kind in ("lined", "notebook", "grid") and rng.random() < 0.3):
        return np.array([rng.uniform(0.78, 0.88), rng.uniform(0.87, 0.93), rng.uniform(0.92, 0.97)], np.float32)
    if kind == "whiteboard":
        v = rng.uniform(0.90, 0.97)
        return np.array([v + 0.02, v + 0.01, v - 0.01], np.float32).clip(0, 1)
    v = rng.uniform(0.91, 0.99)
    return (np.array([v, v, v], np.float32) + rng.normal(0, 0.01, 3).astype(np.float32)).clip(0, 1)


def make_paper(rng, hw, kind, pitch=32.0, origin=(0.0, 0.0)):
    # type: (np.random.Generator, Tuple[int, int], str, float, Tuple[float, float]) -> np.ndarray
    """A flat sheet (h, w, 3) uint8 BGR of the given kind.

    pitch and origin place the rulings (line spacing / grid cell in page pixels and the
    position of one line crossing) so that a layout can write on the lines or into the cells.
    """
    h, w = hw
    base = paper_colour(rng, kind)
    glossy = kind == "whiteboard"
    # Fibre grain drawn at half resolution (fibres are wider than a pixel) plus slow blotches;
    # one brightness field (h, w) that scales the paper colour.
    gh, gw = (h + 1) // 2, (w + 1) // 2
    grain_amp = 0.006 if glossy else rng.uniform(0.01, 0.035)
    grain = rng.random((gh, gw), dtype=np.float32)
    field = cv2.resize(grain, (w, h), interpolation=cv2.INTER_LINEAR)
    field *= np.float32(2 * grain_amp)
    field += np.float32(1.0 - grain_amp)
    field += _smooth_field(rng, hw, int(rng.integers(3, 9)), 0.015 if glossy else 0.03)
    if glossy:
        field -= _whiteboard_ghosts(rng, hw)
    page = cv2.merge([cv2.convertScaleAbs(field, alpha=255.0 * float(c)) for c in base])
    if kind in ("lined", "grid", "notebook"):
        _draw_rulings(rng, page, base, kind, max(float(pitch), 4.0), origin)
    if kind == "notebook":
        _draw_margin(rng, page, base, pitch, origin)
    return page


def _whiteboard_ghosts(rng, hw):
    # type: (np.random.Generator, Tuple[int, int]) -> np.ndarray
    """Half-erased marker smears: (h, w) float32 darkening of faint, blurred strokes."""
    h, w = hw
    small = np.zeros((max(2, h // 4), max(2, w // 4)), np.uint8)
    for _ in range(int(rng.integers(0, 6))):
        pts = np.cumsum(rng.normal(0, small.shape[0] / 6.0, (int(rng.integers(3, 8)), 2)), axis=0)
        pts += (rng.uniform(0, small.shape[1]), rng.uniform(0, small.shape[0]))
        cv2.polylines(small, [pts.astype(np.int32)], False, int(rng.integers(40, 140)),
                      int(rng.integers(2, 8)), cv2.LINE_AA)
    small = cv2.GaussianBlur(small, (0, 0), 2.0).astype(np.float32)
    small *= np.float32(rng.uniform(0.03, 0.10) / 255.0)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _ruled_positions(start, pitch, limit):
    # type: (float, float, int) -> np.ndarray
    first = start - math.floor(start / pitch) * pitch
    return np.arange(first, limit, pitch)


def _full_lines(ys, xs, hw):
    # type: (np.ndarray, np.ndarray, Tuple[int, int]) -> np.ndarray
    """(N, 2, 2) segments: horizontal lines at ys and vertical lines at xs across the page."""
    h, w = hw
    hor = np.stack([np.column_stack([np.zeros_like(ys), ys]), np.column_stack([np.full_like(ys, w), ys])], 1)
    ver = np.stack([np.column_stack([xs, np.zeros_like(xs)]), np.column_stack([xs, np.full_like(xs, h)])], 1)
    return np.concatenate([hor, ver]).reshape(-1, 2, 2)


def _dashed(ys, xs, hw, dash):
    # type: (np.ndarray, np.ndarray, Tuple[int, int], float) -> np.ndarray
    """(N, 2, 2) dashes of length ``dash`` (equal gaps) along lines at ys / xs."""
    h, w = hw
    along_x = np.arange(0.0, w, 2 * dash)
    along_y = np.arange(0.0, h, 2 * dash)
    hy, hx = np.meshgrid(ys, along_x, indexing="ij")
    hor = np.stack([np.stack([hx, hy], -1), np.stack([hx + dash, hy], -1)], -2).reshape(-1, 2, 2)
    vx, vy = np.meshgrid(xs, along_y, indexing="ij")
    ver = np.stack([np.stack([vx, vy], -1), np.stack([vx, vy + dash], -1)], -2).reshape(-1, 2, 2)
    return np.concatenate([hor, ver])


def _draw_rulings(rng, page, base, kind, pitch, origin):
    # type: (np.random.Generator, np.ndarray, np.ndarray, str, float, Tuple[float, float]) -> None
    """Printed lines: ruled (lined, notebook), square grid, practice grid or graph paper."""
    hw = (page.shape[0], page.shape[1])
    colour = _RULING_COLOURS[int(rng.integers(len(_RULING_COLOURS)))]
    density = rng.uniform(0.35, 0.9)
    line_bgr = base * (1.0 - density * (1.0 - colour))
    ox, oy = origin
    thick = 2 if pitch > 60 and rng.random() < 0.3 else 1
    ys = _ruled_positions(oy, pitch, hw[0])
    xs = _ruled_positions(ox, pitch, hw[1]) if kind == "grid" else np.zeros(0)
    segments = [_full_lines(ys, xs, hw)]
    if kind == "grid":
        style = rng.random()
        if style < 0.35:
            # Practice grid (tianzige): a dashed cross through every cell.
            segments.append(_dashed(np.r_[ys - pitch / 2, ys[-1:] + pitch / 2],
                                    np.r_[xs - pitch / 2, xs[-1:] + pitch / 2], hw, pitch / 10))
        elif style < 0.55:
            # Graph paper: fine lines at a fraction of the writing cell, fainter than the cell lines.
            fine = pitch / int(rng.integers(2, 5))
            fine_bgr = base * (1.0 - 0.5 * density * (1.0 - colour))
            _polylines(page, _full_lines(_ruled_positions(oy, fine, hw[0]), _ruled_positions(ox, fine, hw[1]), hw),
                       fine_bgr, 1)
    _polylines(page, np.concatenate(segments), line_bgr, thick)


def _draw_margin(rng, page, base, pitch, origin):
    # type: (np.random.Generator, np.ndarray, np.ndarray, float, Tuple[float, float]) -> None
    """Notebook margin: one or two red vertical lines left of the writing."""
    h, w = page.shape[:2]
    x = float(origin[0]) - rng.uniform(0.5, 3.0) * max(pitch, 4.0)
    if rng.random() < 0.3:
        x = rng.uniform(0.05, 0.25) * w
    xs = np.array([x, x + 3.0]) if rng.random() < 0.3 else np.array([x])
    red = np.array([0.45, 0.45, 0.92], np.float32) + rng.normal(0, 0.03, 3).astype(np.float32)
    bgr = base * (1.0 - rng.uniform(0.5, 0.9) * (1.0 - red.clip(0, 1)))
    _polylines(page, _full_lines(np.zeros(0), xs, (h, w)), bgr, 1)


def _polylines(img, segments, bgr, thick):
    # type: (np.ndarray, np.ndarray, np.ndarray, int) -> None
    """Anti-aliased segments (N, 2, 2) in colour ``bgr`` (reflectance 0..1) on a uint8 image."""
    if len(segments) == 0:
        return
    # 4 fractional bits: lines fall between pixels, as printed lines seen by a camera do.
    pts = np.round(np.asarray(segments, np.float64) * 16).astype(np.int32)
    colour = tuple(float(c) * 255.0 for c in bgr)
    cv2.polylines(img, list(pts), False, colour, thick, cv2.LINE_AA, shift=4)


def camera_homography(out_hw, pitch_deg, yaw_deg, roll_deg, focal):
    # type: (Tuple[int, int], float, float, float, float) -> np.ndarray
    """(3, 3) homography from page points relative to the page point seen at the frame centre
    to frame pixels.

    A pinhole camera with focal length ``focal`` x long side looks at the page from distance
    ``focal`` x long side, tilted by pitch / yaw and rolled, so one page pixel is about one
    frame pixel at the frame centre.
    """
    h, w = out_hw
    f = focal * max(h, w)
    p, y, r = (math.radians(v) for v in (pitch_deg, yaw_deg, roll_deg))
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    rot = rz @ rx @ ry
    k = np.array([[f, 0, w / 2.0], [0, f, h / 2.0], [0, 0, 1]])
    # Page point (X, Y, 0) -> camera coordinates R (X, Y, 0) + (0, 0, f) -> pixels.
    hom = k @ np.column_stack([rot[:, 0], rot[:, 1], [0.0, 0.0, f]])
    return hom / hom[2, 2]


def view_homography(out_hw, pitch_deg, yaw_deg, roll_deg, focal):
    # type: (Tuple[int, int], float, float, float, float) -> Tuple[np.ndarray, Tuple[int, int]]
    """Camera over a flat page: (3, 3) homography page -> frame and the page size to draw.

    The page size returned is the bounding box of what the frame sees (see
    ``camera_homography``), so drawing that much page covers every frame pixel.
    """
    h, w = out_hw
    hom = camera_homography(out_hw, pitch_deg, yaw_deg, roll_deg, focal)
    corners = np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1]], np.float64).T
    back = np.linalg.solve(hom, corners)
    back = back[:2] / back[2]
    lo = np.floor(back.min(axis=1)) - 2
    hi = np.ceil(back.max(axis=1)) + 2
    shift = np.array([[1, 0, lo[0]], [0, 1, lo[1]], [0, 0, 1]])
    hom = hom @ shift
    return hom / hom[2, 2], (int(hi[1] - lo[1]), int(hi[0] - lo[0]))


def random_view(rng, out_hw, max_roll=20.0, max_tilt=28.0, max_page_area=2.6):
    # type: (np.random.Generator, Tuple[int, int], float, float, float) -> Tuple[np.ndarray, Tuple[int, int]]
    """A hand-held camera pose: mostly near top-down, now and then strongly tilted or rolled."""
    h, w = out_hw
    for _ in range(20):
        roll = float(np.clip(rng.normal(0, max_roll / 2.5), -max_roll, max_roll))
        tilt = max_tilt if rng.random() < 0.3 else max_tilt / 2.5
        pitch = float(np.clip(rng.normal(0, tilt / 2), -max_tilt, max_tilt))
        yaw = float(np.clip(rng.normal(0, tilt / 2.5), -max_tilt, max_tilt))
        focal = float(rng.uniform(0.7, 1.4))
        hom, page_hw = view_homography(out_hw, pitch, yaw, roll, focal)
        if page_hw[0] * page_hw[1] <= max_page_area * h * w:
            return hom, page_hw
    return view_homography(out_hw, 0.0, 0.0, float(rng.uniform(-5, 5)), 1.0)


def local_scale(hom, x, y):
    # type: (np.ndarray, float, float) -> float
    """How many frame pixels one page pixel spans at page point (x, y) (sqrt of the Jacobian)."""
    px, py, pw = hom @ np.array([x, y, 1.0])
    u, v = px / pw, py / pw
    jac = np.array([[hom[0, 0] - u * hom[2, 0], hom[0, 1] - u * hom[2, 1]],
                    [hom[1, 0] - v * hom[2, 0], hom[1, 1] - v * hom[2, 1]]]) / pw
    return float(math.sqrt(abs(np.linalg.det(jac))))


def project(hom, pts):
    # type: (np.ndarray, np.ndarray) -> np.ndarray
    """(N, 2) page points -> (N, 2) frame points."""
    pts = np.asarray(pts, np.float64)
    full = np.column_stack([pts, np.ones(len(pts))]) @ hom.T
    return full[:, :2] / full[:, 2:3]


def make_background(rng, hw, shade=None):
    # type: (np.random.Generator, Tuple[int, int], Optional[np.ndarray]) -> np.ndarray
    """What lies beyond the paper: desk (wood, dark, fabric, light) and clutter, (h, w, 3) uint8.

    Drawn at half resolution: it is usually out of the camera's focus plane. ``shade``
    ((h // 2, w // 2) float32 gain) darkens it, e.g. with the shadow of the sheet lying on it.
    """
    h, w = hw
    sh, sw = max(2, h // 2), max(2, w // 2)
    kind = rng.choice(("wood", "dark", "fabric", "light", "clutter"), p=(0.25, 0.2, 0.15, 0.15, 0.25))
    if kind == "wood":
        tone = np.array([rng.uniform(0.15, 0.35), rng.uniform(0.28, 0.48), rng.uniform(0.40, 0.65)], np.float32)
        yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
        angle = rng.uniform(0, math.pi)
        along = xx * math.cos(angle) + yy * math.sin(angle)
        warp = _smooth_field(rng, (sh, sw), 4, 25.0)
        grain = 0.5 + 0.5 * np.sin((along + warp) * np.float32(rng.uniform(0.08, 0.3)))
        img = tone * (0.75 + 0.35 * grain)[..., None]
    elif kind == "fabric":
        tone = rng.uniform(0.1, 0.7, 3).astype(np.float32)
        img = tone * (0.8 + 0.4 * rng.random((sh, sw), dtype=np.float32))[..., None]
    else:
        lo, hi = {"dark": (0.03, 0.2), "light": (0.55, 0.85), "clutter": (0.1, 0.6)}[kind]
        tone = rng.uniform(lo, hi) * rng.uniform(0.8, 1.2, 3).astype(np.float32)
        img = np.ones((sh, sw, 3), np.float32) * tone
    img = img * (1.0 + _smooth_field(rng, (sh, sw), 3, 0.25))[..., None]
    if kind == "clutter" or rng.random() < 0.3:
        _draw_clutter(rng, img)
    img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.3, 1.0)))
    if shade is not None:
        img *= shade[..., None]
    img = cv2.convertScaleAbs(np.clip(img, 0, 1), alpha=255.0)
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)


def _draw_clutter(rng, img):
    # type: (np.random.Generator, np.ndarray) -> None
    """Objects on a desk: boxes, books, a phone, round things, cables, printed stripes."""
    h, w = img.shape[:2]
    for _ in range(int(rng.integers(2, 9))):
        colour = tuple(float(c) for c in rng.uniform(0, 1, 3))
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        size = rng.uniform(0.05, 0.4) * max(h, w)
        shape = rng.integers(4)
        if shape == 0:
            box = ((cx, cy), (size, size * rng.uniform(0.3, 1.5)), rng.uniform(0, 180))
            cv2.fillConvexPoly(img, cv2.boxPoints(box).astype(np.int32), colour, cv2.LINE_8)
        elif shape == 1:
            cv2.ellipse(img, (int(cx), int(cy)), (int(size / 2), int(size / 2 * rng.uniform(0.4, 1))),
                        rng.uniform(0, 180), 0, 360, colour, -1)
        elif shape == 2:
            pts = np.cumsum(rng.normal(0, size / 3, (6, 2)), axis=0) + (cx, cy)
            cv2.polylines(img, [pts.astype(np.int32)], False, colour, int(rng.integers(2, 6)))
        else:
            # Printed matter: stripes of text-like dark bars.
            x0, y0 = int(cx), int(cy)
            for k in range(int(rng.integers(3, 10))):
                length = int(size * rng.uniform(0.4, 1.0))
                cv2.line(img, (x0, y0 + 4 * k), (x0 + length, y0 + 4 * k), (0.1, 0.1, 0.1), 1)


def paper_mask(page_hw, rect, hom, out_hw):
    # type: (Tuple[int, int], Tuple[float, float, float, float], np.ndarray, Tuple[int, int]) -> np.ndarray
    """(h, w) float32 coverage of the paper rect (x0, y0, x1, y1 in page pixels) in the frame."""
    x0, y0, x1, y1 = rect
    quad = project(hom, np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64))
    mask = np.zeros(out_hw, np.uint8)
    cv2.fillConvexPoly(mask, np.round(quad * 16).astype(np.int32), 255, cv2.LINE_AA, shift=4)
    return mask.astype(np.float32) * np.float32(1.0 / 255.0)


def composite_paper(frame_page, mask, rng):
    # type: (np.ndarray, np.ndarray, np.random.Generator) -> np.ndarray
    """Paper (uint8 frame) where ``mask`` (h, w) float32 covers, desk elsewhere; uint8.

    The desk gets the soft shadow the sheet casts on it: the mask offset a little and blurred.
    """
    h, w = mask.shape
    small = cv2.resize(mask, (max(2, w // 2), max(2, h // 2)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), float(rng.uniform(1.0, 3.0)))
    dx, dy = rng.uniform(-2.0, 2.0, 2)
    shift = np.array([[1, 0, dx], [0, 1, dy]], np.float32)
    small = cv2.warpAffine(small, shift, (small.shape[1], small.shape[0]))
    small *= np.float32(-rng.uniform(0.2, 0.5))
    small += np.float32(1.0)
    background = make_background(rng, (h, w), shade=small)
    if hasattr(cv2, "blendLinear"):
        return cv2.blendLinear(frame_page, background, mask, 1.0 - mask)
    m = mask[..., None]
    out = frame_page * m + background * (1.0 - m) + 0.5
    return out.astype(np.uint8)


def _blob(shape, cx, cy, sx, sy, angle):
    # type: (Tuple[int, int], float, float, float, float, float) -> np.ndarray
    """Anisotropic Gaussian bump (h, w) float32 with peak 1."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c, s = math.cos(angle), math.sin(angle)
    u = (xx - cx) * c + (yy - cy) * s
    v = -(xx - cx) * s + (yy - cy) * c
    return np.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2)).astype(np.float32)


def light_fields(rng, frame, paper_kind, low_light):
    # type: (np.random.Generator, np.ndarray, str, bool) -> Tuple[np.ndarray, Optional[np.ndarray]]
    """Gain (h, w, 3) for the uint8 ``frame`` (includes the 1 / 255) and additive glare (h, w)
    or None.

    The gain folds together exposure, white balance, uneven light, soft hand / phone shadows
    and lens vignetting, so the frame is multiplied once. Exposure works like a camera's
    automatic exposure: it brings the bright end of the lit frame (paper, mostly) to a level
    just under white, or well under it in low light.
    """
    h, w = frame.shape[:2]
    # Eighth resolution: light varies slowly; a shadow's penumbra spans tens of pixels.
    lh, lw = max(4, h // 8), max(4, w // 8)
    gain = np.ones((lh, lw), np.float32)
    gain += _smooth_field(rng, (lh, lw), int(rng.integers(2, 5)), rng.uniform(0.03, 0.18))
    yy, xx = np.mgrid[0:lh, 0:lw].astype(np.float32)
    # A window or lamp to one side: brightness falls off across the frame.
    ang = rng.uniform(0, 2 * math.pi)
    ramp = ((xx / lw - 0.5) * math.cos(ang) + (yy / lh - 0.5) * math.sin(ang))
    gain *= 1.0 + np.float32(rng.uniform(0, 0.35)) * ramp
    if rng.random() < 0.35:
        gain *= 1.0 - np.float32(rng.uniform(0.15, 0.55)) * _shadow(rng, (lh, lw))
    if rng.random() < 0.6:
        r2 = ((xx / lw - 0.5) ** 2 + (yy / lh - 0.5) ** 2) * 2.0
        gain *= 1.0 - np.float32(rng.uniform(0.1, 0.45)) * r2 ** 1.5
    # White balance: warm tungsten to cool daylight / LED.
    temp = rng.uniform(-1, 1)
    wb = np.array([1.0 + 0.12 * temp, 1.0, 1.0 - 0.12 * temp], np.float32) * rng.uniform(0.95, 1.05, 3).astype(np.float32)
    small = gain[..., None] * wb
    lit = cv2.resize(frame, (lw, lh), interpolation=cv2.INTER_AREA).astype(np.float32) * small
    target = rng.uniform(0.25, 0.5) if low_light else rng.uniform(0.8, 1.0)
    bright = max(float(np.percentile(lit, 90)), 1.0)
    exposure = float(np.clip(target * 255.0 / bright, 0.3, 3.0))
    # Gain for a uint8 frame: scales 0..255 to 0..1 on the way.
    small *= np.float32(exposure / 255.0)
    light = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    glare = None
    if (paper_kind == "whiteboard" and rng.random() < 0.75) or rng.random() < 0.08:
        spot = np.zeros((lh, lw), np.float32)
        for _ in range(int(rng.integers(1, 3))):
            sx = rng.uniform(0.05, 0.3) * lw
            spot += _blob((lh, lw), rng.uniform(0, lw), rng.uniform(0, lh), sx, sx * rng.uniform(0.3, 1.0),
                          rng.uniform(0, math.pi)) * np.float32(rng.uniform(0.2, 0.7))
        glare = cv2.resize(np.minimum(spot, 0.75), (w, h), interpolation=cv2.INTER_LINEAR)
    return light, glare


def _shadow(rng, hw):
    # type: (np.random.Generator, Tuple[int, int]) -> np.ndarray
    """Soft shadow (h, w) in [0, 1] of a hand, an arm or a phone reaching in from a frame edge."""
    h, w = hw
    mask = np.zeros((h, w), np.float32)
    side = int(rng.integers(4))
    # Hands and phones reach in from beyond the frame edge.
    t = rng.uniform(0.1, 0.9)
    entry = [(t * w, -h * 0.2), (w * 1.2, t * h), (t * w, h * 1.2), (-w * 0.2, t * h)][side]
    tip = (rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h)
    width = rng.uniform(0.12, 0.35) * min(h, w)
    if rng.random() < 0.5:
        # Hand: an arm strip ending in a palm.
        cv2.line(mask, (int(entry[0]), int(entry[1])), (int(tip[0]), int(tip[1])), 1.0, max(1, int(width)))
        cv2.ellipse(mask, (int(tip[0]), int(tip[1])), (int(width * 0.9), int(width * 0.7)),
                    rng.uniform(0, 180), 0, 360, 1.0, -1)
    else:
        # Phone or ruler: a straight-sided bar.
        direction = np.array(tip) - np.array(entry)
        direction /= max(np.linalg.norm(direction), 1e-6)
        normal = np.array([-direction[1], direction[0]]) * width / 2
        quad = np.array([np.array(entry) + normal, np.array(tip) + normal, np.array(tip) - normal,
                         np.array(entry) - normal])
        cv2.fillConvexPoly(mask, quad.astype(np.int32), 1.0)
    penumbra = rng.uniform(0.02, 0.08) * max(h, w)
    return cv2.GaussianBlur(mask, (0, 0), float(penumbra))


def apply_light(img, light, glare):
    # type: (np.ndarray, np.ndarray, Optional[np.ndarray]) -> np.ndarray
    """Light a uint8 frame: float32 [0, 1] result (the gain includes the 1 / 255)."""
    img = img * light
    if glare is not None:
        # Specular reflection adds light on top of whatever is there (screen blend).
        g = glare[..., None]
        img *= 1.0 - g
        img += g * np.float32(0.98)
    return img


def motion_kernel(length, angle):
    # type: (float, float) -> np.ndarray
    """Normalised line kernel for linear motion blur of ``length`` pixels."""
    size = int(math.ceil(length)) | 1
    kernel = np.zeros((size, size), np.float32)
    c = size // 2
    dx, dy = math.cos(angle) * length / 2, math.sin(angle) * length / 2
    cv2.line(kernel, (int(round((c - dx) * 16)), int(round((c - dy) * 16))),
             (int(round((c + dx) * 16)), int(round((c + dy) * 16))), 1.0, 1, cv2.LINE_8, shift=4)
    total = kernel.sum()
    if total <= 0:
        kernel[c, c] = 1.0
        total = 1.0
    return kernel / total


def defocus_kernel(radius):
    # type: (float) -> np.ndarray
    """Disc kernel (the out-of-focus point spread of a round aperture)."""
    size = int(math.ceil(radius)) * 2 + 1
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) - size // 2
    kernel = np.clip(radius + 0.5 - np.sqrt(xx * xx + yy * yy), 0, 1)
    return (kernel / kernel.sum()).astype(np.float32)


def apply_blur(rng, img):
    # type: (np.random.Generator, np.ndarray) -> np.ndarray
    """Focus and motion: none, slight Gaussian softness, disc defocus or a short motion streak."""
    choice = rng.random()
    if choice < 0.35:
        return img
    if choice < 0.7:
        return cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.4, 1.2)))
    if choice < 0.85:
        return cv2.filter2D(img, -1, defocus_kernel(float(rng.uniform(1.0, 3.0))))
    return cv2.filter2D(img, -1, motion_kernel(float(rng.uniform(2.0, 9.0)), float(rng.uniform(0, math.pi))))


def add_sensor_noise(rng, img, strength):
    # type: (np.random.Generator, np.ndarray, float) -> np.ndarray
    """Sensor noise of standard deviation about ``strength``, in place.

    Drawn at half resolution and scaled up: after demosaicing and the camera's noise
    reduction, noise is blotchy over two or three pixels, with a grey (luminance) part and a
    weaker colour part. Uniform noise of matching variance: normals cost several times more
    and look the same once the frame is JPEG-compressed.
    """
    h, w = img.shape[:2]
    raw = rng.random(((h + 1) // 2, (w + 1) // 2, 4), dtype=np.float32)
    # Bilinear upscaling halves the variance of half-resolution noise; sqrt(12) makes the
    # uniform's variance 1. Channel 0 is the grey part, 1..3 the colour part (0.6 as strong);
    # the constant removes the uniforms' mean of 0.5 each.
    k = np.float32(strength * math.sqrt(12.0) * 1.4)
    small = raw[..., 1:] * (k * np.float32(0.6))
    small += raw[..., :1] * k
    small -= k * np.float32(0.8)
    img += cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return img


def to_uint8(img, gamma=1.0):
    # type: (np.ndarray, float) -> np.ndarray
    """Float [0, 1] -> uint8 with saturation and an optional tone curve."""
    out = cv2.convertScaleAbs(np.maximum(img, 0, out=img), alpha=255.0)
    if gamma != 1.0:
        lut = (np.linspace(0, 1, 256) ** gamma * 255.0 + 0.5).astype(np.uint8)
        out = cv2.LUT(out, lut)
    return out


def jpeg_roundtrip(img, quality):
    # type: (np.ndarray, int) -> np.ndarray
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        return img
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def capture(rng, img, paper_kind):
    # type: (np.random.Generator, np.ndarray, str) -> np.ndarray
    """Frame-space light, lens and sensor on a uint8 BGR frame (h, w, 3); returns uint8 BGR."""
    low_light = rng.random() < 0.12
    light, glare = light_fields(rng, img, paper_kind, low_light)
    # Blur first, while the frame is still uint8 (several times cheaper): light and glare vary
    # slowly, so blurring before or after lighting gives the same picture.
    img = apply_blur(rng, img)
    img = apply_light(img, light, glare)
    if rng.random() < 0.8 or low_light:
        strength = rng.uniform(0.006, 0.02) if low_light else rng.uniform(0.002, 0.015)
        img = add_sensor_noise(rng, img, strength)
    # Cameras brighten dark scenes with a tone curve, lifting the noise with them.
    gamma = rng.uniform(0.65, 0.85) if low_light else rng.uniform(0.85, 1.15)
    out = to_uint8(img, gamma)
    if rng.random() < 0.3:
        out = jpeg_roundtrip(out, int(rng.integers(20, 60)))
    return out
