"""Boxes, hanja label tags and the FPS line drawn onto frames.

Every class's tag (its colour, its glyph from the label atlas, the "0." of the confidence) and
the ten confidence digits in its colours are rendered once at start, and so are strips of each
class colour for the outlines. Per box the work is four strip copies for the outline and three
small copies for the tag: no drawing calls, and only the outline grows with the box.
"""

import math

import cv2
import numpy as np

from .glyphs import GlyphAtlas

# Ten saturated colours, distinct from each other and dark enough to read on white paper (RGB).
PALETTE_RGB = (
    (220, 20, 60),  # crimson
    (0, 90, 220),  # blue
    (0, 145, 70),  # green
    (235, 115, 0),  # orange
    (140, 40, 190),  # purple
    (0, 135, 150),  # teal
    (205, 0, 140),  # magenta
    (135, 80, 20),  # brown
    (30, 35, 115),  # navy
    (95, 135, 0),  # olive
)
UNKNOWN_RGB = (110, 110, 110)  # class index outside the names list
STATUS_BG = (32, 32, 32)
STATUS_FG = (255, 255, 255)
STATUS_CHARS = "0123456789.-FPSms"
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_COORD_LIMIT = 1 << 20  # box coordinates are clipped to this before the cast to int
# typographic characters the Hershey font lacks, written as their ASCII look-alikes
_ASCII_LOOKALIKES = {u"\u2013": "-", u"\u2014": "-", u"\u2018": "'", u"\u2019": "'",
                     u"\u201c": '"', u"\u201d": '"', u"\u2026": "..."}


def palette(n):
    """``n`` BGR colours: the ten of PALETTE_RGB, repeated when there are more classes."""
    return [tuple(int(v) for v in PALETTE_RGB[i % len(PALETTE_RGB)][::-1]) for i in range(n)]


def _luminance(bgr):
    """Relative luminance (0 black .. 1 white) of a BGR colour, per WCAG."""
    lin = []
    for v in bgr[::-1]:
        c = v / 255.0
        lin.append(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def text_color(bg):
    """White or black, whichever contrasts more with the BGR background ``bg``."""
    lum = _luminance(bg)
    return (255, 255, 255) if (1.05 / (lum + 0.05)) >= ((lum + 0.05) / 0.05) else (0, 0, 0)


def _blend(coverage, bg, fg):
    """(H, W) uint8 coverage -> (H, W, 3) uint8: ``fg`` laid over ``bg`` with that alpha."""
    alpha = coverage.astype(np.float32)[:, :, None] / 255.0
    out = np.asarray(bg, np.float32) * (1.0 - alpha) + np.asarray(fg, np.float32) * alpha
    return np.round(out).astype(np.uint8)


def _number(value):
    return "--" if value is None or not math.isfinite(value) else "%.1f" % value


def _hershey_coverage(text, height):
    """Coverage of an ASCII ``text`` with OpenCV's own font, for labels the atlas lacks."""
    text = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text) or "?"
    scale = 0.62 * height / cv2.getTextSize("0", _FONT, 1.0, 1)[0][1]
    thickness = max(1, int(round(height / 14.0)))
    (w, h), _ = cv2.getTextSize(text, _FONT, scale, thickness)
    mask = np.zeros((height, w + 2 * thickness), np.uint8)
    cv2.putText(mask, text, (thickness, (height + h) // 2), _FONT, scale, 255, thickness,
                cv2.LINE_AA)
    return mask


class Annotator(object):
    """Draws detections and a status line onto BGR frames, in place.

    names: class names, index = class id; characters in the label atlas (the hanja numerals
      and digits) are drawn from it, other ASCII names with OpenCV's font.
    label_height: height of a label tag in pixels (the glyph's em box).
    thickness: outline width in pixels, drawn inside the box.
    colors: one BGR colour per class; default: ``palette(len(names))``.
    show_conf: write the confidence ("0.87") after the label.
    """

    def __init__(self, names, label_height=24, thickness=2, colors=None, show_conf=True):
        names = [str(n) for n in names]
        if not names:
            raise ValueError("Annotator needs at least one class name")
        if int(label_height) < 10:
            raise ValueError("label_height must be at least 10 pixels, got %r" % (label_height,))
        if int(thickness) < 1:
            raise ValueError("thickness must be at least 1 pixel, got %r" % (thickness,))
        if colors is None:
            colors = palette(len(names))
        colors = [tuple(int(v) for v in c) for c in colors]
        if len(colors) < len(names) or any(len(c) != 3 or not all(0 <= v <= 255 for v in c)
                                           for c in colors):
            raise ValueError("colors must hold one (B, G, R) triple of 0..255 per class (%d)"
                             % len(names))
        self.names = tuple(names)
        self.label_height = int(label_height)
        self.thickness = int(thickness)
        self.show_conf = bool(show_conf)
        # the last entry serves class ids outside ``names``
        self.colors = colors[:len(names)] + [tuple(UNKNOWN_RGB[::-1])]
        self._hline = self._vline = np.zeros((len(self.colors), 0, 0, 3), np.uint8)
        self._atlas = GlyphAtlas(self.label_height)
        self._pad = max(2, self.label_height // 5)
        self._build_tags(names + ["?"])
        t = self.thickness
        # box columns x1 y1 x2 y2 = 0 1 2 3 -> the four bands' r0 r1 c0 c1
        self._band_cols = np.array([1, 1, 0, 2, 3, 3, 0, 2, 1, 3, 0, 0, 1, 3, 2, 2])
        self._band_offsets = np.array([0, t, 0, 0, -t, 0, 0, 0, 0, 0, 0, t, 0, 0, -t, 0])
        self._band_is_row = np.array([True, True, False, False] * 4)
        # bands never leave their box, however thin it is: clamp to y1..y2 / x1..x2
        self._band_low = np.array([1, 1, 0, 0] * 4)
        self._band_high = np.array([3, 3, 2, 2] * 4)
        self._build_status()

    def _label_coverage(self, name):
        if self._atlas.has(name):
            return self._atlas.render(name)
        return _hershey_coverage(name, self.label_height)

    def _build_tags(self, names):
        h, pad = self.label_height, self._pad
        digits = [self._atlas.glyph(d) for d in "0123456789"]
        self._digit_w = max(d.shape[1] for d in digits)
        prefix_w = self._atlas.width("0.")
        conf_w = prefix_w + 2 * self._digit_w if self.show_conf else 0
        # tags[c, lead]: class c with "0." (lead 0) or "1." (lead 1) already in the conf area
        widths, tags, digit_x = [], [], []
        digit_patches = np.zeros((len(names), 10, h, self._digit_w, 3), np.uint8)
        for c, name in enumerate(names):
            label = self._label_coverage(name)
            width = pad + label.shape[1] + pad + (conf_w + pad if conf_w else 0)
            widths.append(width)
            digit_x.append(2 * pad + label.shape[1] + prefix_w)
            bg, fg = self.colors[c], text_color(self.colors[c])
            per_lead = []
            for lead in "01":
                coverage = np.zeros((h, width), np.uint8)
                coverage[:, pad:pad + label.shape[1]] = label
                if conf_w:
                    x = 2 * pad + label.shape[1]
                    coverage[:, x:x + prefix_w] = self._atlas.render(lead + ".")
                per_lead.append(_blend(coverage, bg, fg))
            tags.append(per_lead)
            for d, glyph in enumerate(digits):
                cell = np.zeros((h, self._digit_w), np.uint8)
                x = (self._digit_w - glyph.shape[1]) // 2
                cell[:, x:x + glyph.shape[1]] = glyph
                digit_patches[c, d] = _blend(cell, bg, fg)
        self._tag_w = np.array(widths, np.int64)
        self._tags = tags
        self._digits = digit_patches
        self._digit_x = digit_x
        self._scratch = np.zeros((h, max(widths), 3), np.uint8)

    def _line_buffers(self, img_h, img_w):
        """Outline strips in every class colour, (C, t, W, 3) and (C, H, t, 3).

        Copying a slice of a filled strip is several times faster than broadcasting a colour
        into a long thin slice, which keeps long box edges cheap.
        """
        if self._hline.shape[2] < img_w or self._vline.shape[1] < img_h:
            colors = np.array(self.colors, np.uint8)[:, None, None, :]
            t, n = self.thickness, len(self.colors)
            w, h = max(img_w, self._hline.shape[2]), max(img_h, self._vline.shape[1])
            self._hline = np.ascontiguousarray(np.broadcast_to(colors, (n, t, w, 3)))
            self._vline = np.ascontiguousarray(np.broadcast_to(colors, (n, h, t, 3)))
        return self._hline, self._vline

    def tag_width(self, cls):
        # type: (int) -> int
        """Width in pixels of the label tag of class ``cls``."""
        return int(self._tag_w[cls if 0 <= cls < len(self.names) else len(self.names)])

    def annotate(self, image, detections):
        """Draw ``detections`` (hanja_live.detections.Detections) onto ``image``; returns it."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError("annotate needs an (H, W, 3) uint8 BGR image, got %s %s"
                             % (image.dtype, image.shape))
        if len(detections) == 0:
            return image
        img_h, img_w = image.shape[:2]
        box = np.rint(detections.xyxy)  # (N, 4) pixel edges x1 y1 x2 y2; x2, y2 exclusive
        cls, conf = detections.cls, detections.conf
        finite = np.isfinite(box).all(axis=1)
        if not finite.all():
            box, cls, conf = box[finite], cls[finite], conf[finite]
        box = np.minimum(np.maximum(box, -_COORD_LIMIT), _COORD_LIMIT).astype(np.int64)
        keep = ((box[:, 2:] > box[:, :2]).all(axis=1) & (box[:, 2:] > 0).all(axis=1)
                & (box[:, :2] < (img_w, img_h)).all(axis=1))
        if not keep.all():
            box, cls, conf = box[keep], cls[keep], conf[keep]
            if len(box) == 0:
                return image
        n_names = len(self.names)
        cls = np.where((cls >= 0) & (cls < n_names), cls, n_names)
        # outline bands inside the box, (N, 16): top, bottom, left, right, each r0 r1 c0 c1
        bands = box[:, self._band_cols] + self._band_offsets
        bands = np.minimum(np.maximum(bands, box[:, self._band_low]), box[:, self._band_high])
        bands = np.minimum(np.maximum(bands, 0), np.where(self._band_is_row, img_h, img_w)).tolist()
        # a tag sits on the box's top edge, or just inside it when there is no room above
        h = self.label_height
        x1, y1 = box[:, 0], box[:, 1]
        tw = self._tag_w[cls]
        ty = np.where(y1 >= h, y1 - h, np.maximum(y1, 0))
        ty = np.maximum(np.minimum(ty, img_h - h), 0)
        tx = np.maximum(np.minimum(np.maximum(x1, 0), img_w - tw), 0)
        # fmax/fmin: a NaN confidence shows as 0.00 instead of indexing with garbage
        pct = np.rint(np.fmin(np.fmax(conf, 0.0), 1.0) * 100.0).astype(np.int64)
        rows = np.stack([cls, ty, tx, np.minimum(h, img_h - ty), np.minimum(tw, img_w - tx),
                         pct // 100, (pct // 10) % 10, pct % 10], axis=1).tolist()
        hline, vline = self._line_buffers(img_h, img_w)
        for b, c in zip(bands, cls.tolist()):
            image[b[0]:b[1], b[2]:b[3]] = hline[c, :b[1] - b[0], :b[3] - b[2]]
            image[b[4]:b[5], b[6]:b[7]] = hline[c, :b[5] - b[4], :b[7] - b[6]]
            image[b[8]:b[9], b[10]:b[11]] = vline[c, :b[9] - b[8], :b[11] - b[10]]
            image[b[12]:b[13], b[14]:b[15]] = vline[c, :b[13] - b[12], :b[15] - b[14]]
        scratch, dw = self._scratch, self._digit_w
        for c, y, x, vh, vw, lead, d1, d2 in rows:
            tag = self._tags[c][lead]
            if self.show_conf:
                width = tag.shape[1]
                out = scratch[:, :width]
                out[...] = tag
                dx = self._digit_x[c]
                out[:, dx:dx + dw] = self._digits[c, d1]
                out[:, dx + dw:dx + 2 * dw] = self._digits[c, d2]
                tag = out
            image[y:y + vh, x:x + vw] = tag[:vh, :vw]
        return image

    def _build_status(self):
        h = self.label_height
        self._status_pad = max(1, self._pad // 2)
        self._status_glyphs = {ch: _blend(self._atlas.glyph(ch), STATUS_BG, STATUS_FG)
                               for ch in STATUS_CHARS if self._atlas.has(ch)}
        space = np.zeros((h, max(1, h // 4)), np.uint8)
        self._status_glyphs[" "] = _blend(space, STATUS_BG, STATUS_FG)
        self._status_bg = np.zeros((h + 2 * self._status_pad, 0, 3), np.uint8)
        self._status_scale = 0.62 * h / cv2.getTextSize("0", _FONT, 1.0, 1)[0][1]
        self._status_thickness = max(1, int(round(h / 14.0)))

    def draw_status(self, image, fps, infer_ms, extra=""):
        """Top-left "29.8 FPS  12.3 ms" (+ ``extra``) on a dark strip; returns image.

        ``fps`` is drawn as given: smooth it with hanja_live.fps.FpsMeter. ``None`` (or NaN)
        shows "--".
        The numbers come from pre-rendered atlas glyphs (a handful of small copies); only
        ``extra`` goes through cv2.putText, in ASCII: dashes and quotes become their
        look-alikes, any other character "?".
        """
        text = "%s FPS  %s ms" % (_number(fps), _number(infer_ms))
        glyphs = self._status_glyphs
        patches = [glyphs[ch] for ch in text if ch in glyphs]
        img_h, img_w = image.shape[:2]
        pad = self._pad
        width = 2 * pad + sum(p.shape[1] for p in patches)
        extra = "".join(_ASCII_LOOKALIKES.get(ch, ch if 32 <= ord(ch) < 127 else "?")
                        for ch in extra)
        scale, thick = self._status_scale, self._status_thickness
        below = ""
        if extra:
            extra = "  " + extra
            (extra_w, _), _ = cv2.getTextSize(extra, _FONT, scale, thick)
            if width + extra_w <= img_w:
                width += extra_w
            else:  # a narrow frame: the text goes on a line of its own, never cut off
                below, extra = extra.strip(), ""
        strip_h = self._status_bg.shape[0]
        if self._status_bg.shape[1] < width:
            self._status_bg = np.empty((strip_h, width, 3), np.uint8)
            self._status_bg[...] = STATUS_BG
        vh, vw = min(strip_h, img_h), min(width, img_w)
        image[:vh, :vw] = self._status_bg[:vh, :vw]
        x, y = pad, self._status_pad
        for patch in patches:
            if x >= img_w:
                break
            ph, pw = min(patch.shape[0], img_h - y), min(patch.shape[1], img_w - x)
            if ph > 0:
                image[y:y + ph, x:x + pw] = patch[:ph, :pw]
            x += patch.shape[1]
        if extra:
            baseline_y = y + self._atlas.baseline
            cv2.putText(image, extra, (x, baseline_y), _FONT, scale, STATUS_FG, thick, cv2.LINE_AA)
        if below:
            self._draw_line_below(image, below, strip_h)
        return image

    def _draw_line_below(self, image, text, top):
        """``text`` on a dark strip under the status line, shrunk to the frame's width."""
        img_h, img_w = image.shape[:2]
        pad = self._pad
        scale, thick = self._status_scale, self._status_thickness
        (text_w, _), _ = cv2.getTextSize(text, _FONT, scale, thick)
        if text_w > img_w - 2 * pad:
            scale *= max(0.2, (img_w - 2 * pad) / float(text_w))
            thick = max(1, int(round(thick * scale / self._status_scale)))
        (text_w, text_h), base = cv2.getTextSize(text, _FONT, scale, thick)
        bottom = min(img_h, top + text_h + base + 2 * self._status_pad)
        image[top:bottom, :min(img_w, text_w + 2 * pad)] = STATUS_BG
        cv2.putText(image, text, (pad, top + self._status_pad + text_h), _FONT, scale, STATUS_FG,
                    thick, cv2.LINE_AA)
