"""Handwritten-looking ink masks of single characters for the synthetic training data.

``render_ink`` draws one character as a float32 alpha mask (1 = ink), either by writing its
stroke skeleton (KanjiVG, Make Me a Hanzi) with a simulated pen, or by filling a handwriting
font's outline after bending it. Everything random comes from the caller's
``numpy.random.Generator``, so the same generator state gives the same mask.

Sources are split so that the "test" split never sees a skeleton or font the "train" split
learned from (for the target numerals); negatives fall back to any source that has them.
"""

import functools
from typing import Callable, List, Optional, Tuple

import cv2
import numpy as np

from hanja_live.train import font_outlines, strokes
from hanja_live.train.charsets import TARGETS

SPLITS = ("train", "test")

# Make Me a Hanzi medians come from Arphic's Kaiti fonts, so they go with AR PL UKai into the
# test split; KanjiVG's Kaisho variants are a separate hand, also test-only.
SPLIT_SOURCES = {
    "train": ("kanjivg", "font:lxgw_wenkai", "font:seto", "font:unpen", "font:unpilgia"),
    "test": ("mmah", "kanjivg_kaisho", "font:ukai", "font:klee_one", "font:unpenheulim"),
}

# Written skeletons look most like real pen strokes, so they are drawn twice as often as fonts.
_SKELETON_WEIGHT = 2.0
_FONT_WEIGHT = 1.0

# Characters whose ink spans the full writing height; their median height in a source defines
# that source's nominal writing box (이, whose ㅣ runs top to bottom, for fonts without hanja).
_REFERENCE_CHARS = ("十木丁千", "이")

# AR PL UKai draws Latin letters, digits and signs in a printed serif; only its hanja look
# written by hand.
_FONTS_WITHOUT_HANDWRITTEN_LATIN = ("ukai",)
_CJK_START = 0x2E80

PEN_TYPES = ("ballpoint", "gel", "pencil", "marker", "brush")
_PEN_WEIGHTS = np.array([0.3, 0.2, 0.15, 0.2, 0.15])


def _is_font(source: str) -> bool:
    return source.startswith("font:")


def _covers(source: str, char: str) -> bool:
    if source == "kanjivg":
        return strokes.has_kanjivg(char)
    if source == "kanjivg_kaisho":
        return strokes.has_kanjivg(char, kaisho=True)
    if source == "mmah":
        return strokes.has_mmah(char)
    if _is_font(source):
        key = source[5:]
        if key in _FONTS_WITHOUT_HANDWRITTEN_LATIN and ord(char) < _CJK_START:
            return False
        return char in font_outlines.font_chars(key)
    raise KeyError(f"unknown ink source {source!r}")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def sources_for(char: str, split: str) -> List[str]:
    """Ink sources that can draw ``char`` in ``split``, in a fixed order.

    Targets only ever use their split's sources; a negative missing from its split's sources
    borrows from the other split (negatives may share sources)."""
    _check_split(split)
    return list(_sources_for(char, split))


@functools.lru_cache(maxsize=None)
def _sources_for(char: str, split: str) -> Tuple[str, ...]:
    found = [s for s in SPLIT_SOURCES[split] if _covers(s, char)]
    if not found and char not in TARGETS:
        found = [s for sp in SPLITS for s in SPLIT_SOURCES[sp] if _covers(s, char)]
    return tuple(found)


def _geometry(source: str, char: str) -> List[np.ndarray]:
    if source == "kanjivg":
        return strokes.kanjivg_strokes(char)
    if source == "kanjivg_kaisho":
        return strokes.kanjivg_strokes(char, kaisho=True)
    if source == "mmah":
        return strokes.mmah_strokes(char)
    return font_outlines.glyph_contours(source[5:], char)


@functools.lru_cache(maxsize=None)
def _reference_height(source: str) -> float:
    """Ink height of a full-height character in the source's units (median over references)."""
    for refs in _REFERENCE_CHARS:
        heights = []
        for ch in refs:
            if _covers(source, ch):
                pts = np.vstack(_geometry(source, ch))
                heights.append(pts[:, 1].max() - pts[:, 1].min())
        if heights:
            return float(np.median(heights))
    return 0.85


# ---------------------------------------------------------------------------------------------
# Geometry helpers


def _resample(poly: np.ndarray, spacing: float) -> Tuple[np.ndarray, float]:
    """Evenly spaced points along a polyline: (N, 2) -> (M, 2) with M >= 2, plus its length."""
    seg = np.hypot(*np.diff(poly, axis=0).T)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    length = float(arc[-1])
    if length < 1e-9:
        return np.repeat(poly[:1], 2, axis=0), 0.0
    n = max(2, int(np.ceil(length / spacing)) + 1)
    s = np.linspace(0.0, length, n)
    return np.stack([np.interp(s, arc, poly[:, 0]), np.interp(s, arc, poly[:, 1])], axis=1), length


def _resample_closed(contour: np.ndarray, spacing: float) -> np.ndarray:
    closed = np.vstack([contour, contour[:1]])
    pts, _ = _resample(closed, spacing)
    return pts[:-1]


def _normals(pts: np.ndarray) -> np.ndarray:
    """Unit normals (N, 2) of a polyline (N, 2), from central differences."""
    tangent = np.gradient(pts, axis=0)
    norm = np.hypot(tangent[:, 0], tangent[:, 1])[:, None]
    tangent = tangent / np.maximum(norm, 1e-9)
    return np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)


def _char_transform(rng: np.random.Generator, center: np.ndarray, scale: float,
                    elastic: float = 1.0) -> Callable[[np.ndarray], np.ndarray]:
    """A random smooth deformation of the whole character: elastic waves in the unit box
    (amplitude times ``elastic``), then slant, aspect change, rotation and scaling to pixels.
    Maps (N, 2) -> (N, 2)."""
    n_waves = 3
    freq = rng.uniform(0.6, 1.8, size=(2, n_waves)) * 2 * np.pi
    angle = rng.uniform(0, 2 * np.pi, size=(2, n_waves))
    direction = np.stack([np.cos(angle), np.sin(angle)], axis=-1)  # (2, waves, 2)
    phase = rng.uniform(0, 2 * np.pi, size=(2, n_waves))
    amp = rng.uniform(0.004, 0.014, size=(2, n_waves)) * elastic

    rot = np.deg2rad(rng.normal(0.0, 2.5))
    slant = rng.normal(0.0, 0.09)
    aspect = np.exp(rng.normal(0.0, 0.09))
    c, s = np.cos(rot), np.sin(rot)
    matrix = scale * np.array([[c, -s], [s, c]]) @ np.array([[1.0, -slant], [0.0, 1.0]]) \
        @ np.diag([aspect, 1.0 / np.sqrt(aspect)])

    def apply(pts: np.ndarray) -> np.ndarray:
        rel = pts - center
        # (N, 2, waves): each wave is a sine along its own direction.
        arg = np.einsum("nd,kwd->nkw", rel, direction) * freq + phase
        rel = rel + (amp * np.sin(arg)).sum(axis=2)
        return rel @ matrix.T

    return apply


# ---------------------------------------------------------------------------------------------
# Pens


class _Pen:
    """Width profile and ink strength of one writing instrument (all widths in char heights)."""

    def __init__(self, kind: str, rng: np.random.Generator):
        self.kind = kind
        self.nib_angle = rng.uniform(0, np.pi)
        if kind == "ballpoint":
            self.width = rng.uniform(0.02, 0.036)
            self.direction_gain, self.taper, self.press = 0.0, 0.15, rng.uniform(1.0, 1.35)
            self.alpha = rng.uniform(0.8, 1.0)
        elif kind == "gel":
            self.width = rng.uniform(0.03, 0.055)
            self.direction_gain, self.taper, self.press = 0.0, 0.1, rng.uniform(1.0, 1.2)
            self.alpha = rng.uniform(0.9, 1.0)
        elif kind == "pencil":
            self.width = rng.uniform(0.022, 0.042)
            self.direction_gain, self.taper, self.press = 0.1, 0.3, rng.uniform(1.0, 1.2)
            self.alpha = rng.uniform(0.45, 0.8)
        elif kind == "marker":
            self.width = rng.uniform(0.06, 0.11)
            # A chisel tip draws thin along its edge, wide across it.
            self.direction_gain = rng.choice([0.0, rng.uniform(0.3, 0.55)])
            self.taper, self.press = 0.05, 1.0
            self.alpha = rng.uniform(0.9, 1.0)
        elif kind == "brush":
            self.width = rng.uniform(0.06, 0.12)
            self.direction_gain, self.taper, self.press = rng.uniform(0.2, 0.4), 0.85, rng.uniform(1.15, 1.45)
            self.alpha = rng.uniform(0.85, 1.0)
        else:
            raise ValueError(f"unknown pen type {kind!r}; choose from {PEN_TYPES}")

    def widths(self, pts: np.ndarray, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Pen width at each point (N,) of a stroke; t (N,) runs 0..1 along it."""
        # Heavier start where the pen lands, optional taper as it lifts.
        start = 1.0 + (self.press - 1.0) * np.exp(-t / 0.06)
        lift = rng.uniform(0.2, 1.0) * self.taper
        end = 1.0 - lift * np.clip((t - 0.7) / 0.3, 0.0, 1.0) ** 1.5
        wobble = 1.0 + rng.uniform(0.0, 0.12) * np.sin(2 * np.pi * (rng.uniform(0.5, 2.0) * t
                                                                     + rng.uniform()))
        w = self.width * start * end * wobble
        if self.direction_gain:
            d = np.gradient(pts, axis=0)
            theta = np.arctan2(d[:, 1], d[:, 0])
            w = w * (1.0 - self.direction_gain + self.direction_gain
                     * np.abs(np.sin(theta - self.nib_angle)) * 1.4)
        return w


# ---------------------------------------------------------------------------------------------
# Skeleton sources: write each stroke with a pen


def _jitter_stroke(poly: np.ndarray, rng: np.random.Generator, spacing: float
                   ) -> Tuple[np.ndarray, np.ndarray]:
    """Handwriting variation of one stroke in unit-box coordinates.

    Returns points (N, 2) and their position t (N,) along the stroke, 0..1."""
    pts, length = _resample(poly, spacing)
    if length < 1e-6:
        # A dot: give it a tiny body so the pen leaves a blob.
        pts = np.vstack([pts[0], pts[0] + rng.normal(0, 0.01, 2)])
        pts, length = _resample(pts, spacing)
    t = np.linspace(0.0, 1.0, len(pts))
    normal = _normals(pts)

    # Bow the stroke and shift its ends independently (changes length, angle, curvature).
    bow = rng.normal(0.0, 0.035) * length
    ends = rng.normal(0.0, 0.014, size=(2, 2))
    # Hand tremor: a random walk across the stroke, pinned to zero at both ends.
    walk = np.cumsum(rng.normal(0.0, 1.0, len(t)))
    walk = (walk - walk[-1] * t) * (rng.uniform(0.0, 0.0025) / np.sqrt(len(t)))
    pts = pts + normal * (bow * np.sin(np.pi * t) + walk)[:, None] \
        + (1 - t)[:, None] * ends[0] + t[:, None] * ends[1]

    # Start / end: stop short (leaves gaps where strokes should meet) or overshoot.
    ext = rng.uniform(-0.035, 0.02, size=2)
    if rng.uniform() < 0.25:
        ext[1] = rng.uniform(0.02, 0.07)
    pts = _extend_ends(pts, ext, spacing)

    if rng.uniform() < 0.12 and len(pts) >= 3:
        pts = _add_hook(pts, rng, spacing)
    t = np.linspace(0.0, 1.0, len(pts))
    return pts, t


def _extend_ends(pts: np.ndarray, ext: np.ndarray, spacing: float) -> np.ndarray:
    """Lengthen (ext > 0) or shorten (ext < 0) a stroke at its start ext[0] and end ext[1]."""
    seg = np.hypot(*np.diff(pts, axis=0).T)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    length = arc[-1]
    # Never cut away more than 40 % of a stroke.
    lo = min(-ext[0], 0.2 * length) if ext[0] < 0 else 0.0
    hi = length - (min(-ext[1], 0.2 * length) if ext[1] < 0 else 0.0)
    keep = pts[(arc >= lo) & (arc <= hi)]
    if len(keep) < 2:
        keep = pts[[0, -1]]
    parts = [keep]
    if ext[0] > 0:
        d = keep[0] - keep[min(2, len(keep) - 1)]
        d = d / max(np.hypot(*d), 1e-9)
        n = max(1, int(ext[0] / spacing))
        parts.insert(0, keep[0] + d * np.linspace(ext[0], ext[0] / n, n)[:, None])
    if ext[1] > 0:
        d = keep[-1] - keep[max(-3, -len(keep))]
        d = d / max(np.hypot(*d), 1e-9)
        n = max(1, int(ext[1] / spacing))
        parts.append(keep[-1] + d * np.linspace(ext[1] / n, ext[1], n)[:, None])
    return np.vstack(parts)


def _add_hook(pts: np.ndarray, rng: np.random.Generator, spacing: float) -> np.ndarray:
    """A short flick where the pen leaves the paper, curling off the stroke's end."""
    d = pts[-1] - pts[-3]
    heading = np.arctan2(d[1], d[0])
    turn = rng.choice([-1.0, 1.0]) * rng.uniform(1.8, 2.7)
    length = rng.uniform(0.02, 0.06)
    n = max(3, int(length / spacing) + 1)
    angles = heading + turn * np.linspace(0.3, 1.0, n)
    steps = np.stack([np.cos(angles), np.sin(angles)], axis=1) * (length / n)
    return np.vstack([pts, pts[-1] + np.cumsum(steps, axis=0)])


def _render_skeleton(polys: List[np.ndarray], rng: np.random.Generator, scale: float,
                     ss: int) -> Tuple[np.ndarray, _Pen]:
    """Write the strokes with a random pen; returns a supersampled uint8 canvas."""
    pen = _Pen(PEN_TYPES[rng.choice(len(PEN_TYPES), p=_PEN_WEIGHTS)], rng)
    spacing = 1.2 / scale  # about one output pixel between points
    strokes_px = []
    widths_px = []
    all_pts = np.vstack(polys)
    center = (all_pts.min(axis=0) + all_pts.max(axis=0)) / 2
    transform = _char_transform(rng, center, scale)
    for poly in polys:
        pts, t = _jitter_stroke(poly, rng, spacing)
        w = pen.widths(pts, t, rng) * scale
        strokes_px.append(transform(pts))
        widths_px.append(w)

    # Fast writing joins consecutive strokes with a faint connecting trace.
    links = []
    if len(polys) > 1 and pen.kind != "brush" and rng.uniform() < 0.06:
        for a, b in zip(strokes_px[:-1], strokes_px[1:]):
            if np.hypot(*(a[-1] - b[0])) < 0.4 * scale:
                links.append(np.linspace(a[-1], b[0], 8))
    return _draw_polylines(strokes_px, widths_px, links, pen, rng, ss), pen


def _draw_polylines(strokes_px: List[np.ndarray], widths_px: List[np.ndarray],
                    links: List[np.ndarray], pen: _Pen, rng: np.random.Generator,
                    ss: int) -> np.ndarray:
    pad = max(float(np.max(np.concatenate(widths_px))), 1.0) + 3.0
    every = np.vstack(strokes_px + links) if links else np.vstack(strokes_px)
    origin = every.min(axis=0) - pad
    size = np.ceil(every.max(axis=0) + pad - origin).astype(int)
    canvas = np.zeros((size[1] * ss, size[0] * ss), np.uint8)
    layer = np.empty_like(canvas)
    shift = 4
    unit = ss * (1 << shift)
    for pts, w in zip(strokes_px, widths_px):
        ink = int(255 * pen.alpha * rng.uniform(0.85, 1.0))
        layer.fill(0)
        fixed = np.round((pts - origin) * unit).astype(np.int64)
        thick = np.maximum(1, np.round((w[:-1] + w[1:]) * 0.5 * ss)).astype(int)
        for (x0, y0), (x1, y1), th in zip(fixed[:-1].tolist(), fixed[1:].tolist(), thick.tolist()):
            cv2.line(layer, (x0, y0), (x1, y1), ink, th, cv2.LINE_8, shift)
        np.maximum(canvas, layer, out=canvas)
    link_w = max(1, int(round(np.median(np.concatenate(widths_px)) * 0.45 * ss)))
    for pts in links:
        fixed = np.round((pts - origin) * unit).astype(np.int32)
        cv2.polylines(canvas, [fixed], False, int(110 * pen.alpha), link_w, cv2.LINE_8, shift)
    return canvas


# ---------------------------------------------------------------------------------------------
# Font sources: bend the outline, then change its stroke weight


def _render_font(contours: List[np.ndarray], rng: np.random.Generator, scale: float,
                 ss: int) -> Tuple[np.ndarray, _Pen]:
    pen = _Pen(PEN_TYPES[rng.choice(len(PEN_TYPES), p=_PEN_WEIGHTS)], rng)
    all_pts = np.vstack(contours)
    center = (all_pts.min(axis=0) + all_pts.max(axis=0)) / 2
    # Fonts have no per-stroke jitter, so they get a stronger whole-glyph bend instead.
    transform = _char_transform(rng, center, scale, elastic=1.6)
    dense = [transform(_resample_closed(c, 0.012)) for c in contours]

    # Stroke weight change: blur the filled glyph and cut it at a random level.
    sigma = rng.uniform(0.01, 0.025) * scale * ss
    grow = rng.uniform(-0.008, 0.022) * scale
    pad = 3.0 * sigma / ss + max(grow, 0.0) + 3.0
    every = np.vstack(dense)
    origin = every.min(axis=0) - pad
    size = np.ceil(every.max(axis=0) + pad - origin).astype(int)
    shape = (size[1] * ss, size[0] * ss)

    # Non-zero winding: each contour adds +1 or -1 by its orientation; overlaps stay filled.
    winding = np.zeros(shape, np.int16)
    scratch = np.zeros(shape, np.uint8)
    for poly in dense:
        fixed = np.round((poly - origin) * ss * 16).astype(np.int32)
        area = np.sum(poly[:, 0] * np.roll(poly[:, 1], -1) - np.roll(poly[:, 0], -1) * poly[:, 1])
        x0, y0 = fixed.min(axis=0) >> 4
        x1, y1 = (fixed.max(axis=0) >> 4) + 2
        scratch[y0:y1, x0:x1] = 0
        cv2.fillPoly(scratch, [fixed], 1, cv2.LINE_8, 4)
        if area > 0:
            winding[y0:y1, x0:x1] += scratch[y0:y1, x0:x1]
        else:
            winding[y0:y1, x0:x1] -= scratch[y0:y1, x0:x1]
    filled = (winding != 0).astype(np.float32)
    soft = cv2.GaussianBlur(filled, (0, 0), sigma)
    # A threshold below 0.5 thickens the strokes by about `grow` px; noise roughens the edge.
    level = float(np.clip(0.5 - grow / max(2.0 * sigma / ss, 1e-6) * 0.5, 0.15, 0.8))
    rough = rng.normal(0.0, 0.06, size=(shape[0] // 4 + 1, shape[1] // 4 + 1)).astype(np.float32)
    rough = cv2.resize(rough, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    # Roughen only the edge band, so no specks appear away from the glyph.
    rough *= soft > 0.05
    ink = ((soft + rough) > level).astype(np.uint8) * int(255 * pen.alpha)
    return ink, pen


# ---------------------------------------------------------------------------------------------
# Finishing: downsample, pen texture, tight crop


def _supersampling(height_px: int) -> int:
    return 4 if height_px <= 96 else (3 if height_px <= 192 else 2)


def _texture(alpha: np.ndarray, pen: _Pen, rng: np.random.Generator) -> np.ndarray:
    if pen.kind == "pencil":
        grain = rng.uniform(0.35, 1.0, size=alpha.shape).astype(np.float32)
        alpha *= cv2.GaussianBlur(grain, (0, 0), 0.6)
    elif pen.kind in ("ballpoint", "brush"):
        # Ink that runs dry in places: a faint low-frequency fade.
        h, w = alpha.shape
        fade = rng.uniform(0.75, 1.0, size=(max(2, h // 8), max(2, w // 8))).astype(np.float32)
        alpha *= cv2.resize(fade, (w, h), interpolation=cv2.INTER_CUBIC).clip(0.0, 1.0)
    return alpha


def _crop(alpha: np.ndarray, margin: int) -> np.ndarray:
    rows = np.flatnonzero(alpha.max(axis=1) > 0)
    cols = np.flatnonzero(alpha.max(axis=0) > 0)
    if rows.size == 0:
        return np.zeros((1 + 2 * margin, 1 + 2 * margin), np.float32)
    crop = alpha[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    return np.ascontiguousarray(np.pad(crop, margin))


def render_ink(char: str, rng: np.random.Generator, height_px: int, split: str = "train",
               source: Optional[str] = None) -> np.ndarray:
    """One handwritten rendering of ``char`` as a float32 alpha mask (h, w) in [0, 1].

    The mask is cropped to the ink plus a 1-2 px margin. ``height_px`` is the height of the
    character's nominal writing box, so a full-height character like 十 is about that tall
    while 一 comes out short and wide. ``source`` pins one of ``sources_for(char, split)``;
    by default one is drawn from ``rng``. Raises ValueError for an unknown split, a source
    outside the split, or a character no source of that split can draw.
    """
    _check_split(split)
    if height_px < 4:
        raise ValueError(f"height_px must be at least 4, got {height_px}")
    sources = _sources_for(char, split)
    if not sources:
        raise ValueError(f"no bundled {split} ink source draws {char!r} "
                         f"(U+{ord(char):04X}); add it to hanja_live/train/charsets.py and "
                         f"rebuild the assets with hanja_live/train/assets/make_assets.py")
    if source is None:
        weights = np.array([_FONT_WEIGHT if _is_font(s) else _SKELETON_WEIGHT for s in sources])
        source = sources[rng.choice(len(sources), p=weights / weights.sum())]
    elif source not in sources:
        raise ValueError(f"source {source!r} cannot draw {char!r} in split {split!r}; "
                         f"choose from {list(sources)}")
    geometry = _geometry(source, char)
    scale = height_px / _reference_height(source) * float(np.exp(rng.normal(0.0, 0.04)))
    ss = _supersampling(height_px)
    render = _render_font if _is_font(source) else _render_skeleton
    canvas, pen = render(geometry, rng, scale, ss)
    h, w = canvas.shape[0] // ss, canvas.shape[1] // ss
    small = cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA)
    alpha = small.astype(np.float32) * np.float32(1.0 / 255.0)
    alpha = _texture(alpha, pen, rng)
    return _crop(alpha, int(rng.integers(1, 3)))
