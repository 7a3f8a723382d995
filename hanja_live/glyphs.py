"""Glyphs OpenCV's putText cannot draw (the hanja labels), pre-rendered into a label atlas.

assets/labels/atlas.png is white-on-black coverage, one em high, glyphs side by side, and
atlas.json names the character in each cell. Both are made offline from a bundled subset of
Noto Sans CJK by ``python -m hanja_live.train.make_label_atlas``; at start every glyph is scaled
once to the height the overlay asks for, so drawing a label is only array copies.
"""

import json
import os

import cv2
import numpy as np

from .errors import HanjaLiveError

ATLAS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets", "labels")
REBUILD_HINT = ("reinstall hanja_live or rebuild it with "
                "'python -m hanja_live.train.make_label_atlas'")


def _read_index(path):
    try:
        with open(path, "r", encoding="utf-8") as f:
            index = json.load(f)
        cells = [(str(c["char"]), int(c["x"]), int(c["width"])) for c in index["cells"]]
        em_px = int(index["em_px"])
        baseline = int(index["baseline_px"])
    except (IOError, OSError) as exc:
        raise HanjaLiveError("cannot read the label atlas index %s (%s); %s"
                             % (path, exc.strerror or exc, REBUILD_HINT))
    except (ValueError, KeyError, TypeError) as exc:
        raise HanjaLiveError("the label atlas index %s is damaged (%s); %s"
                             % (path, exc, REBUILD_HINT))
    return cells, em_px, baseline


class GlyphAtlas(object):
    """Coverage masks of the atlas glyphs, each (height, width) uint8, 0 = empty, 255 = ink.

    ``height`` is the em box in pixels: a CJK glyph fills most of it, digits sit on
    ``baseline`` like in the font.
    """

    def __init__(self, height, atlas_dir=ATLAS_DIR):
        # type: (int, str) -> None
        height = int(height)
        if height < 4:
            raise ValueError("glyph height must be at least 4 pixels, got %d" % height)
        png = os.path.join(atlas_dir, "atlas.png")
        cells, em_px, baseline = _read_index(os.path.join(atlas_dir, "atlas.json"))
        atlas = cv2.imread(png, cv2.IMREAD_GRAYSCALE)
        if atlas is None:
            raise HanjaLiveError("the label atlas %s is missing or unreadable; %s"
                                 % (png, REBUILD_HINT))
        if atlas.shape[0] != em_px or any(x < 0 or x + w > atlas.shape[1] for _, x, w in cells):
            raise HanjaLiveError("the label atlas %s does not match %s; %s"
                                 % (png, "atlas.json", REBUILD_HINT))
        scale = float(height) / em_px
        interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
        self.height = height
        self.baseline = int(round(baseline * scale))
        self._glyphs = {}
        for ch, x, w in cells:
            width = max(1, int(round(w * scale)))
            self._glyphs[ch] = cv2.resize(atlas[:, x:x + w], (width, height),
                                          interpolation=interpolation)

    @property
    def chars(self):
        # type: () -> str
        return "".join(sorted(self._glyphs))

    def has(self, text):
        # type: (str) -> bool
        """True when every character of a non-empty ``text`` is in the atlas."""
        return bool(text) and all(ch in self._glyphs for ch in text)

    def glyph(self, ch):
        # type: (str) -> np.ndarray
        """(height, w) uint8 coverage of one character; KeyError when the atlas lacks it."""
        return self._glyphs[ch]

    def width(self, text):
        # type: (str) -> int
        return sum(self._glyphs[ch].shape[1] for ch in text)

    def render(self, text):
        # type: (str) -> np.ndarray
        """(height, width(text)) uint8 coverage of ``text`` set on one line."""
        if not text:
            return np.zeros((self.height, 0), np.uint8)
        return np.concatenate([self._glyphs[ch] for ch in text], axis=1)
