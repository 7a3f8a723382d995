"""Glyph outlines from the bundled font subsets, flattened to polygons.

Outlines are read with fontTools (no rasteriser needed) so that the renderer can distort the
vertices before filling them. Coordinates are in em units: x right, y down, origin at the
baseline; contours keep the font's winding so holes can be told from islands.
"""

import functools
import os
from typing import List, Tuple

import numpy as np

ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
FONTS_DIR = os.path.join(ASSETS, "fonts")

_CURVE_SAMPLES = 6


def font_file(key: str) -> str:
    return os.path.join(FONTS_DIR, key, f"{key}.ttf")


def font_keys() -> List[str]:
    """Keys of the bundled fonts (folder names under assets/fonts)."""
    return sorted(k for k in os.listdir(FONTS_DIR) if os.path.exists(font_file(k)))


def _flatten_pen_class():
    from fontTools.pens.basePen import BasePen

    class FlattenPen(BasePen):
        """Collects contours as point lists, sampling curves at fixed steps."""

        def __init__(self, glyphset):
            super().__init__(glyphset)
            self.contours = []  # type: List[List[Tuple[float, float]]]
            self._cur = []  # type: List[Tuple[float, float]]

        def _moveTo(self, pt):
            self._cur = [pt]

        def _lineTo(self, pt):
            self._cur.append(pt)

        def _curveToOne(self, pt1, pt2, pt3):
            p0 = np.array(self._getCurrentPoint())
            ctrl = np.array([pt1, pt2, pt3])
            t = np.linspace(0, 1, _CURVE_SAMPLES + 1)[1:, None]
            u = 1 - t
            pts = u ** 3 * p0 + 3 * u * u * t * ctrl[0] + 3 * u * t * t * ctrl[1] + t ** 3 * ctrl[2]
            self._cur.extend(map(tuple, pts))

        def _qCurveToOne(self, pt1, pt2):
            p0 = np.array(self._getCurrentPoint())
            t = np.linspace(0, 1, _CURVE_SAMPLES + 1)[1:, None]
            u = 1 - t
            pts = u * u * p0 + 2 * u * t * np.array(pt1) + t * t * np.array(pt2)
            self._cur.extend(map(tuple, pts))

        def _closePath(self):
            if len(self._cur) >= 3:
                self.contours.append(self._cur)
            self._cur = []

        _endPath = _closePath

    return FlattenPen


@functools.lru_cache(maxsize=None)
def _font(key: str):
    from fontTools.ttLib import TTFont

    font = TTFont(font_file(key))
    return font, font.getBestCmap(), font.getGlyphSet(), float(font["head"].unitsPerEm)


@functools.lru_cache(maxsize=None)
def font_chars(key: str) -> frozenset:
    """Characters the bundled font ``key`` can draw (with a non-empty outline)."""
    _, cmap, _, _ = _font(key)
    return frozenset(chr(cp) for cp in cmap if _glyph_contours(key, chr(cp)))


@functools.lru_cache(maxsize=None)
def _glyph_contours(key: str, char: str) -> tuple:
    _, cmap, glyphset, upem = _font(key)
    name = cmap.get(ord(char))
    if name is None:
        return ()
    pen = _flatten_pen_class()(glyphset)
    glyphset[name].draw(pen)
    out = []
    for contour in pen.contours:
        pts = np.asarray(contour, dtype=np.float64) / upem
        pts[:, 1] = -pts[:, 1]
        out.append(pts)
    return tuple(out)


def glyph_contours(key: str, char: str) -> List[np.ndarray]:
    """Closed contours of ``char`` in font ``key``: list of (N, 2) arrays in em units, y down.
    Empty when the font lacks the character."""
    return [c.copy() for c in _glyph_contours(key, char)]

