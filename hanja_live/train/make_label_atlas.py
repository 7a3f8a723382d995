"""Make the label atlas that the overlay draws hanja labels from.

OpenCV's putText knows only the Hershey fonts (no CJK) and JetPack's OpenCV has no freetype
module, so the few characters a label needs are rendered once, here, into a grayscale PNG
(white glyph coverage on black) plus a JSON index; hanja_live/glyphs.py loads both at start.

The outlines come from a subset of Noto Sans CJK KR Bold (SIL OFL 1.1, licence beside it in
hanja_live/assets/labels/). They are filled with OpenCV on an 8x supersampled grid with the
non-zero winding rule and averaged down, so neither Pillow nor FreeType is needed.

    # re-render the atlas from the bundled subset
    python -m hanja_live.train.make_label_atlas
    # re-make the subset from the system font first (Debian/Ubuntu: fonts-noto-cjk)
    python -m hanja_live.train.make_label_atlas \\
        --subset-from /usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc --font-number 1
"""

import argparse
import json
import os
import sys

import cv2
import numpy as np

from hanja_live import CLASS_NAMES

LABEL_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "assets", "labels")
SUBSET_NAME = "NotoSansCJKkr-Bold-labels.otf"
ATLAS_PNG = "atlas.png"
ATLAS_JSON = "atlas.json"
# The ten class labels, what a confidence like "0.87" or "87%" needs, and the status line's
# "29.8 FPS  12.3 ms".
CHARS = "".join(CLASS_NAMES) + "0123456789.%-FPSms"
EM_PX = 96
SUPERSAMPLE = 8
CURVE_STEPS = 12


def subset_font(source, font_number, out_path, chars=CHARS):
    """Write an OpenType/CFF font holding only ``chars`` (plus .notdef) from ``source``."""
    from fontTools import subset

    options = subset.Options()
    options.font_number = font_number
    options.layout_features = []  # single glyphs only: no shaping tables needed
    options.name_IDs = ["*"]  # keep copyright, licence and trademark notices
    options.notdef_outline = True
    options.desubroutinize = True
    font = subset.load_font(source, options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=chars)
    subsetter.subset(font)
    subset.save_font(font, out_path, options)
    font.close()


def _flatten_pen_class():
    from fontTools.pens.basePen import BasePen

    class FlattenPen(BasePen):
        """Collects each contour as a polyline in font units (curves cut into straight steps)."""

        def __init__(self, glyph_set):
            BasePen.__init__(self, glyph_set)
            self.contours = []
            self._points = []

        def _moveTo(self, pt):
            self._points = [pt]

        def _lineTo(self, pt):
            self._points.append(pt)

        def _curveToOne(self, pt1, pt2, pt3):
            p0 = np.array(self._getCurrentPoint(), float)
            p1, p2, p3 = (np.array(p, float) for p in (pt1, pt2, pt3))
            t = np.linspace(0.0, 1.0, CURVE_STEPS + 1)[1:, None]
            s = 1.0 - t
            pts = s ** 3 * p0 + 3 * s * s * t * p1 + 3 * s * t * t * p2 + t ** 3 * p3
            self._points.extend(map(tuple, pts))

        def _closePath(self):
            if len(self._points) > 2:
                self.contours.append(np.array(self._points, float))
            self._points = []

        _endPath = _closePath

    return FlattenPen


def _fill_nonzero(contours, shape):
    """Fill polylines (pixel coordinates, float) with the non-zero winding rule -> bool mask.

    cv2.fillPoly fills every contour alone; adding +1/-1 per contour by its orientation and
    keeping non-zero sums gives holes (opposite direction) and overlaps (same direction) right.
    """
    shift = 4
    winding = np.zeros(shape, np.int16)
    scratch = np.zeros(shape, np.uint8)
    for pts in contours:
        x, y = pts[:, 0], pts[:, 1]
        area2 = np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)
        if area2 == 0:
            continue
        scratch[:] = 0
        fixed = np.round(pts * (1 << shift)).astype(np.int32)
        cv2.fillPoly(scratch, [fixed], 1, lineType=cv2.LINE_8, shift=shift)
        winding += np.int16(1 if area2 > 0 else -1) * scratch
    return winding != 0


def render_atlas(font_path, chars=CHARS, em_px=EM_PX):
    """Render ``chars`` side by side, one em high; returns (atlas uint8 (em_px, W), index dict)."""
    from fontTools.ttLib import TTFont

    font = TTFont(font_path)
    units = font["head"].unitsPerEm
    ascent = font["OS/2"].sTypoAscender
    cmap = font.getBestCmap()
    glyph_set = font.getGlyphSet()
    pen_class = _flatten_pen_class()
    scale = float(em_px) / units
    ss = SUPERSAMPLE
    cells, images, x = [], [], 0
    for ch in chars:
        if ord(ch) not in cmap:
            raise SystemExit("%s has no glyph for %r; re-make the subset with --subset-from"
                             % (font_path, ch))
        name = cmap[ord(ch)]
        width = max(1, int(round(glyph_set[name].width * scale)))
        pen = pen_class(glyph_set)
        glyph_set[name].draw(pen)
        # font units (y up, baseline 0) -> supersampled pixels (y down, em box from the top)
        contours = [np.stack([p[:, 0] * scale * ss, (ascent - p[:, 1]) * scale * ss], axis=1)
                    for p in pen.contours]
        mask = _fill_nonzero(contours, (em_px * ss, width * ss)).astype(np.float32)
        cell = cv2.resize(mask, (width, em_px), interpolation=cv2.INTER_AREA)
        images.append(np.round(cell * 255).astype(np.uint8))
        cells.append({"char": ch, "x": x, "width": width})
        x += width
    names = font["name"]
    source = "%s, %s" % (names.getDebugName(4), names.getDebugName(5))
    font.close()
    atlas = np.concatenate(images, axis=1)
    index = {
        "font": os.path.basename(font_path),
        "source": "subset of %s; licence: OFL.txt; made by hanja_live/train/make_label_atlas.py"
                  % source,
        "em_px": em_px,
        "baseline_px": int(round(ascent * scale)),
        "cells": cells,
    }
    return atlas, index


def write_atlas(out_dir, atlas, index):
    png = os.path.join(out_dir, ATLAS_PNG)
    if not cv2.imwrite(png, atlas, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise SystemExit("could not write %s" % png)
    head = {k: v for k, v in index.items() if k != "cells"}
    lines = [json.dumps(head, ensure_ascii=False)[:-1] + ', "cells": [']
    lines.append(",\n".join(json.dumps(c, ensure_ascii=False) for c in index["cells"]))
    lines.append("]}")
    with open(os.path.join(out_dir, ATLAS_JSON), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return png


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subset-from", metavar="FONT",
                        help="make the subset font from this .otf/.ttc first")
    parser.add_argument("--font-number", type=int, default=1,
                        help="face inside a .ttc collection (NotoSansCJK-*.ttc: 1 = KR)")
    parser.add_argument("--em-px", type=int, default=EM_PX, help="atlas glyph height in pixels")
    parser.add_argument("--out-dir", default=LABEL_DIR)
    args = parser.parse_args(argv)

    font_path = os.path.join(args.out_dir, SUBSET_NAME)
    if args.subset_from:
        subset_font(args.subset_from, args.font_number, font_path)
        print("subset: %s (%d bytes)" % (font_path, os.path.getsize(font_path)))
    elif not os.path.isfile(font_path):
        raise SystemExit("%s is missing; pass --subset-from with a Noto Sans CJK font" % font_path)
    atlas, index = render_atlas(font_path, em_px=args.em_px)
    png = write_atlas(args.out_dir, atlas, index)
    print("atlas: %s %dx%d, %d glyphs" % (png, atlas.shape[1], atlas.shape[0], len(index["cells"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
